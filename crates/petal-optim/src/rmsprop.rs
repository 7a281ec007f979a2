//! RMSprop (Hinton), with Keras's default hyper-parameters.

use crate::optimizer::rule::{ParamUpdate, Rule};
use crate::SlotOptimizer;

/// The configuration of [`RmsProp`].
///
/// Per element:
/// ```text
/// v = rho * v + (1 - rho) * g^2
/// denom = v                                    (plain)
/// mg = rho * mg + (1 - rho) * g;  denom = v - mg^2   (centered)
/// step = lr * g / (sqrt(denom) + epsilon)
/// w = w - step                                 (momentum == 0)
/// buf = momentum * buf + step;  w = w - buf    (momentum != 0)
/// ```
/// Epsilon is added outside the square root, as in PyTorch (Keras adds it inside). A
/// centered denominator that rounding makes negative counts as 0.
/// Its slots are `v`, plus `mg` when centered and `momentum` when momentum is not 0.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Step size; default 1e-3.
    pub learning_rate: f32,
    /// Decay of the squared-gradient average; default 0.9.
    pub rho: f32,
    /// Momentum factor; default 0.
    pub momentum: f32,
    /// Added to the denominator; default 1e-7.
    pub epsilon: f32,
    /// Divide by the gradient's estimated variance instead of its second moment;
    /// default false.
    pub centered: bool,
}

impl RmsPropConfig {
    /// RMSprop with `learning_rate` and the Keras defaults for everything else.
    pub fn new(learning_rate: f32) -> Self {
        Self {
            learning_rate,
            ..Self::default()
        }
    }
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
        }
    }
}

/// RMSprop: `RmsProp::new(RmsPropConfig::new(1e-3))`.
pub type RmsProp = SlotOptimizer<RmsPropConfig>;

impl Rule for RmsPropConfig {
    const KIND: &'static str = "rmsprop";

    fn slot_names(&self) -> &'static [&'static str] {
        match (self.centered, self.momentum != 0.0) {
            (false, false) => &["v"],
            (true, false) => &["v", "mg"],
            (false, true) => &["v", "momentum"],
            (true, true) => &["v", "mg", "momentum"],
        }
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }

    fn update(&self, u: ParamUpdate<'_>) {
        let (v, mut mg, mut buf) = match u.slots {
            [v] => (v, None, None),
            [v, mg] if self.centered => (v, Some(mg), None),
            [v, buf] => (v, None, Some(buf)),
            [v, mg, buf] => (v, Some(mg), Some(buf)),
            _ => unreachable!("RMSprop keeps one to three slots"),
        };
        let (lr, rho, momentum, epsilon) = (u.learning_rate, self.rho, self.momentum, self.epsilon);
        for (i, (w, &g)) in u.value.iter_mut().zip(u.grad).enumerate() {
            v[i] = rho * v[i] + (1.0 - rho) * g * g;
            let denom = match mg.as_deref_mut() {
                Some(mg) => {
                    mg[i] = rho * mg[i] + (1.0 - rho) * g;
                    (v[i] - mg[i] * mg[i]).max(0.0)
                }
                None => v[i],
            };
            let step = lr * g / (denom.sqrt() + epsilon);
            match buf.as_deref_mut() {
                Some(buf) => {
                    buf[i] = momentum * buf[i] + step;
                    *w -= buf[i];
                }
                None => *w -= step,
            }
        }
    }
}
