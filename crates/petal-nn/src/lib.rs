//! # petal-nn
//!
//! Reverse-mode automatic differentiation for Petal. A [`Tape`] records each op applied
//! to a [`Var`]; [`Var::backward`] walks it once in reverse and returns the gradients of
//! the leaves. Values used twice get the sum of their gradients. Ops on constants, or
//! inside [`no_grad`], record nothing, so inference builds no tape at all.
//!
//! ```
//! use petal_nn::{no_grad, Tape, Var};
//! use petal_tensor::Tensor;
//!
//! let tape = Tape::new();
//! let x = tape.leaf(Tensor::from_vec(&[2], vec![3.0, -1.0])?);
//! let y = x.mul(&x)?.add(&x)?.sum_all(); // sum(x^2 + x)
//! let grads = y.backward()?;
//! assert_eq!(grads.get(&x).unwrap().to_vec(), vec![7.0, -1.0]); // 2x + 1
//!
//! let recorded = tape.len();
//! let z = no_grad(|| x.relu());
//! assert_eq!(tape.len(), recorded);
//! assert!(z.node().is_none());
//! # Ok::<(), petal_nn::NnError>(())
//! ```

mod depth_first;
mod error;
mod gradcheck;
pub mod layers;
mod losses;
mod model;
mod ops;
mod params;
mod step;
mod tape;
pub mod weights;

pub use depth_first::InferenceFootprint;
pub use error::{NnError, Result};
pub use gradcheck::{check_gradients, GradientReport};
pub use layers::{BatchParts, Context, Layer, LayerConfig, Mode, Regularizer};
pub use losses::{Loss, Targets};
pub use model::{Graph, Model, ModelNode, NodeId, Sequential, Summary, SummaryRow};
pub use params::{Param, ParamId, ParamStore};
pub use step::StepGradients;
pub use tape::{no_grad, Gradients, Tape, Var};
