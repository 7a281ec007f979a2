//! Stochastic gradient descent with momentum, Nesterov momentum and weight decay
//! (PyTorch's `torch.optim.SGD` without dampening).

use crate::optimizer::rule::{ParamUpdate, Rule};
use crate::SlotOptimizer;

/// The configuration of [`Sgd`].
///
/// Per element, with `g` the gradient and `w` the weight:
/// ```text
/// g = g + weight_decay * w                    (L2 penalty folded into the gradient)
/// v = momentum * v + g                        (only when momentum != 0; v starts at 0)
/// update = g + momentum * v  if nesterov,  v  otherwise  (g when momentum == 0)
/// w = w - lr * update
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Step size; default 0.01.
    pub learning_rate: f32,
    /// Momentum factor; default 0 (plain SGD, no velocity slot).
    pub momentum: f32,
    /// Use Nesterov momentum; default false.
    pub nesterov: bool,
    /// L2 weight decay added to the gradient; default 0.
    pub weight_decay: f32,
}

impl SgdConfig {
    /// Plain SGD with `learning_rate`; set the other fields with struct update syntax.
    pub fn new(learning_rate: f32) -> Self {
        Self {
            learning_rate,
            ..Self::default()
        }
    }
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// SGD: `Sgd::new(SgdConfig { momentum: 0.9, ..SgdConfig::new(0.01) })`. Its slot is
/// `velocity` (when momentum is not 0).
pub type Sgd = SlotOptimizer<SgdConfig>;

impl Rule for SgdConfig {
    const KIND: &'static str = "sgd";

    fn slot_names(&self) -> &'static [&'static str] {
        if self.momentum == 0.0 {
            &[]
        } else {
            &["velocity"]
        }
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }

    fn update(&self, u: ParamUpdate<'_>) {
        let (lr, wd, momentum) = (u.learning_rate, self.weight_decay, self.momentum);
        match u.slots {
            [] => {
                for (w, &g) in u.value.iter_mut().zip(u.grad) {
                    *w -= lr * (g + wd * *w);
                }
            }
            [velocity] => {
                for ((w, &g), v) in u.value.iter_mut().zip(u.grad).zip(velocity.iter_mut()) {
                    let g = g + wd * *w;
                    *v = momentum * *v + g;
                    let update = if self.nesterov { g + momentum * *v } else { *v };
                    *w -= lr * update;
                }
            }
            _ => unreachable!("SGD keeps at most one slot"),
        }
    }
}
