//! Broadcasting arithmetic and matrix products.

use std::rc::Rc;

use petal_tensor::elementwise::{self, sum_to_shape, BinaryOp};
use petal_tensor::gemm::matmul;
use petal_tensor::Tensor;

use crate::error::Result;
use crate::Var;

fn mul(a: &Tensor, b: &Tensor) -> Tensor {
    elementwise::binary(a, b, BinaryOp::Mul).expect("shapes broadcast in the forward pass")
}

fn reduce_to(grad: Tensor, shape: &[usize]) -> Tensor {
    if grad.shape() == shape {
        grad
    } else {
        sum_to_shape(&grad, shape).expect("shapes broadcast in the forward pass")
    }
}

impl Var {
    fn binary(&self, other: &Var, op: BinaryOp, name: &'static str) -> Result<Var> {
        let value = Rc::new(elementwise::binary(self.value(), other.value(), op)?);
        let (a, b) = (self.shared_value(), other.shared_value());
        Var::record(name, value, &[self, other], move |g, needs| {
            let grad_a = needs[0].then(|| match op {
                BinaryOp::Add | BinaryOp::Sub => reduce_to(g.clone(), a.shape()),
                BinaryOp::Mul => reduce_to(mul(g, &b), a.shape()),
                BinaryOp::Div => reduce_to(
                    elementwise::binary(g, &b, BinaryOp::Div).expect("broadcast"),
                    a.shape(),
                ),
            });
            let grad_b = needs[1].then(|| match op {
                BinaryOp::Add => reduce_to(g.clone(), b.shape()),
                BinaryOp::Sub => reduce_to(elementwise::map(g, |v| -v), b.shape()),
                BinaryOp::Mul => reduce_to(mul(g, &a), b.shape()),
                BinaryOp::Div => {
                    let quotient = elementwise::binary(&a, &b, BinaryOp::Div).expect("broadcast");
                    let over_b =
                        elementwise::binary(&quotient, &b, BinaryOp::Div).expect("broadcast");
                    reduce_to(elementwise::map(&mul(g, &over_b), |v| -v), b.shape())
                }
            });
            vec![grad_a, grad_b]
        })
    }

    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Add, "add")
    }

    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Sub, "sub")
    }

    /// `self * other` elementwise, broadcasting.
    pub fn mul(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Mul, "mul")
    }

    /// `self / other` elementwise, broadcasting.
    pub fn div(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Div, "div")
    }

    /// `self * factor`.
    pub fn scale(&self, factor: f32) -> Var {
        let value = Rc::new(elementwise::map(self.value(), |v| v * factor));
        Var::record_unary(value, self, move |g| elementwise::map(g, |v| v * factor))
    }

    /// Matrix product of 2-D values: `(m, k) x (k, n) -> (m, n)`.
    ///
    /// ```
    /// use petal_nn::{Tape, Var};
    /// use petal_tensor::Tensor;
    /// let tape = Tape::new();
    /// let x = tape.leaf(Tensor::from_vec(&[1, 2], vec![1., 2.])?);
    /// let w = Var::constant(Tensor::from_vec(&[2, 1], vec![3., 4.])?);
    /// let y = x.matmul(&w)?;
    /// assert_eq!(y.value().to_vec(), vec![11.0]);
    /// assert_eq!(y.backward()?.get(&x).unwrap().to_vec(), vec![3.0, 4.0]);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        let value = Rc::new(matmul(self.value(), other.value(), false, false)?);
        let (a, b) = (self.shared_value(), other.shared_value());
        Var::record("matmul", value, &[self, other], move |g, needs| {
            vec![
                needs[0].then(|| matmul(g, &b, false, true).expect("shapes checked in forward")),
                needs[1].then(|| matmul(&a, g, true, false).expect("shapes checked in forward")),
            ]
        })
    }
}
