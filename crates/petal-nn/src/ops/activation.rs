//! Activations and unary math.

use std::rc::Rc;

use petal_tensor::elementwise::{
    add_activated, unary, unary_backward, unary_backward_from_output, Unary,
};

use crate::error::{NnError, Result};
use crate::Var;

/// An error unless `activation` (if any) has a derivative that follows from its output,
/// which a fused op needs since it keeps only its output.
pub(super) fn check_fusable(op: &'static str, activation: Option<Unary>) -> Result<()> {
    match activation {
        Some(a) if a.derivative_from_output(0.5).is_none() => Err(NnError::Tensor(
            petal_tensor::TensorError::InvalidArgument {
                op,
                reason: format!("{a:?} cannot be fused: its derivative needs its input"),
            },
        )),
        _ => Ok(()),
    }
}

impl Var {
    /// Applies `op` to every value.
    pub fn unary(&self, op: Unary) -> Var {
        let x = self.shared_value();
        let y = Rc::new(unary(&x, op));
        let out = Rc::clone(&y);
        Var::record_unary(y, self, move |g| {
            unary_backward(&x, &out, g, op).expect("same shapes")
        })
    }

    /// `activation(self + other)` for values of one shape, in one pass (ResNet's residual
    /// sum and the ReLU after it): the sum is never stored, and the backward pass uses
    /// the output alone. `activation` must have a derivative that follows from its
    /// output (ReLU, ReLU6, sigmoid, tanh, exp).
    ///
    /// ```
    /// use petal_nn::Tape;
    /// use petal_tensor::{elementwise::Unary, Tensor};
    /// let tape = Tape::new();
    /// let a = tape.leaf(Tensor::from_vec(&[2], vec![1.0, -3.0])?);
    /// let b = tape.leaf(Tensor::from_vec(&[2], vec![0.5, 1.0])?);
    /// let y = a.add_activated(&b, Unary::Relu)?;
    /// assert_eq!(y.value().to_vec(), [1.5, 0.0]);
    /// let grads = y.sum_all().backward()?;
    /// assert_eq!(grads.get(&a).unwrap().to_vec(), [1.0, 0.0]);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn add_activated(&self, other: &Var, activation: Unary) -> Result<Var> {
        check_fusable("add_activated", Some(activation))?;
        let y = Rc::new(add_activated(self.value(), other.value(), activation)?);
        let out = Rc::clone(&y);
        Var::record("add_activated", y, &[self, other], move |g, needs| {
            let g = unary_backward_from_output(&out, g, activation).expect("same shape");
            needs.iter().map(|&n| n.then(|| g.clone())).collect()
        })
    }

    /// `max(x, 0)`.
    pub fn relu(&self) -> Var {
        self.unary(Unary::Relu)
    }
    /// `min(max(x, 0), 6)`.
    pub fn relu6(&self) -> Var {
        self.unary(Unary::Relu6)
    }
    /// `x` where positive, `alpha * x` elsewhere.
    pub fn leaky_relu(&self, alpha: f32) -> Var {
        self.unary(Unary::LeakyRelu(alpha))
    }
    /// `1 / (1 + e^-x)`.
    pub fn sigmoid(&self) -> Var {
        self.unary(Unary::Sigmoid)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Var {
        self.unary(Unary::Tanh)
    }
    /// `x * sigmoid(x)` (swish).
    pub fn silu(&self) -> Var {
        self.unary(Unary::Silu)
    }
    /// `x * relu6(x + 3) / 6` (hard swish).
    pub fn hard_swish(&self) -> Var {
        self.unary(Unary::HardSwish)
    }
    /// `e^x`.
    pub fn exp(&self) -> Var {
        self.unary(Unary::Exp)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Var {
        self.unary(Unary::Log)
    }
    /// Square root.
    pub fn sqrt(&self) -> Var {
        self.unary(Unary::Sqrt)
    }
    /// `x^2`.
    pub fn square(&self) -> Var {
        self.unary(Unary::Square)
    }
    /// `|x|`.
    pub fn abs(&self) -> Var {
        self.unary(Unary::Abs)
    }
    /// `-x`.
    pub fn neg(&self) -> Var {
        self.unary(Unary::Neg)
    }
}
