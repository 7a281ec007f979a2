//! The differentiable ops: each method on [`Var`](crate::Var) runs a `petal-tensor`
//! kernel forward and records the matching backward kernel right next to it.

mod activation;
mod arith;
mod conv;
mod norm;
mod reduce;
mod shape;
