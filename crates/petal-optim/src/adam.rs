//! Adam and AdamW (Kingma & Ba; Loshchilov & Hutter), with Keras's default
//! hyper-parameters and PyTorch's update formulas.

use crate::optimizer::rule::{ParamUpdate, Rule};
use crate::SlotOptimizer;

/// The configuration of [`Adam`].
///
/// Per element, at the parameter's `t`-th update (t = 1, 2, ...):
/// ```text
/// m = beta1 * m + (1 - beta1) * g
/// v = beta2 * v + (1 - beta2) * g^2
/// m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)
/// w = w - lr * m_hat / (sqrt(v_hat) + epsilon)
/// ```
///
/// ```
/// use petal_nn::ParamStore;
/// use petal_optim::{Adam, AdamConfig, Optimizer};
/// use petal_tensor::Tensor;
///
/// let mut store = ParamStore::new();
/// let w = store.add("w", Tensor::from_vec(&[2], vec![1.0, -1.0])?, true)?;
/// let mut adam = Adam::new(AdamConfig::new(0.1));
/// let grad = Tensor::from_vec(&[2], vec![0.5, -3.0])?;
/// adam.step(&mut store, &[(w, grad)])?;
/// // The first Adam step moves each weight by about lr against its gradient's sign.
/// let moved = store.value(w).to_vec();
/// assert!((moved[0] - 0.9).abs() < 1e-5 && (moved[1] + 0.9).abs() < 1e-5);
/// assert_eq!(adam.iterations(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Step size; default 1e-3.
    pub learning_rate: f32,
    /// Decay of the gradient average; default 0.9.
    pub beta1: f32,
    /// Decay of the squared-gradient average; default 0.999.
    pub beta2: f32,
    /// Added to the denominator; default 1e-7 (Keras; PyTorch uses 1e-8).
    pub epsilon: f32,
}

impl AdamConfig {
    /// Adam with `learning_rate` and the Keras defaults for everything else.
    pub fn new(learning_rate: f32) -> Self {
        Self {
            learning_rate,
            ..Self::default()
        }
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }
}

/// The configuration of [`AdamW`]: Adam plus decoupled weight decay, applied before the
/// Adam update as in PyTorch: `w = w * (1 - lr * weight_decay)`, i.e.
/// `w -= lr * weight_decay * w`, with the parameter's (scaled) learning rate.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    /// The Adam part (learning rate, betas, epsilon); Keras defaults.
    pub adam: AdamConfig,
    /// Decoupled weight decay; default 0.004, Keras's AdamW default (PyTorch uses 0.01).
    pub weight_decay: f32,
}

impl AdamWConfig {
    /// AdamW with `learning_rate` and the Keras defaults for everything else.
    pub fn new(learning_rate: f32) -> Self {
        Self {
            adam: AdamConfig::new(learning_rate),
            ..Self::default()
        }
    }
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            adam: AdamConfig::default(),
            weight_decay: 0.004,
        }
    }
}

/// Adam: `Adam::new(AdamConfig::new(1e-3))`. Its slots are `m` and `v`.
pub type Adam = SlotOptimizer<AdamConfig>;
/// AdamW: `AdamW::new(AdamWConfig { weight_decay: 0.01, ..AdamWConfig::new(1e-3) })`.
/// Its slots are `m` and `v`.
pub type AdamW = SlotOptimizer<AdamWConfig>;

const ADAM_SLOTS: &[&str] = &["m", "v"];

impl Rule for AdamConfig {
    const KIND: &'static str = "adam";

    fn slot_names(&self) -> &'static [&'static str] {
        ADAM_SLOTS
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }

    fn update(&self, u: ParamUpdate<'_>) {
        adam_update(u, self, 0.0);
    }
}

impl Rule for AdamWConfig {
    const KIND: &'static str = "adamw";

    fn slot_names(&self) -> &'static [&'static str] {
        ADAM_SLOTS
    }

    fn learning_rate(&self) -> f32 {
        self.adam.learning_rate
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.adam.learning_rate = lr;
    }

    fn update(&self, u: ParamUpdate<'_>) {
        adam_update(u, &self.adam, self.weight_decay);
    }
}

/// The Adam update with decoupled weight decay (0 for plain Adam, where the decay
/// factor is exactly 1).
fn adam_update(u: ParamUpdate<'_>, config: &AdamConfig, weight_decay: f32) {
    let [m, v] = u.slots else {
        unreachable!("Adam keeps two slots")
    };
    let AdamConfig {
        beta1,
        beta2,
        epsilon,
        ..
    } = *config;
    let lr = u.learning_rate;
    let t = u.step as f64;
    let correction1 = (1.0 - f64::from(beta1).powf(t)) as f32;
    let correction2 = (1.0 - f64::from(beta2).powf(t)) as f32;
    let decay = 1.0 - lr * weight_decay;
    for (((w, &g), m), v) in u
        .value
        .iter_mut()
        .zip(u.grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        *w *= decay;
        *m = beta1 * *m + (1.0 - beta1) * g;
        *v = beta2 * *v + (1.0 - beta2) * g * g;
        let m_hat = *m / correction1;
        let v_hat = *v / correction2;
        *w -= lr * m_hat / (v_hat.sqrt() + epsilon);
    }
}
