//! Activations and unary math.

use std::rc::Rc;

use petal_tensor::elementwise::{unary, unary_backward, Unary};

use crate::Var;

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
