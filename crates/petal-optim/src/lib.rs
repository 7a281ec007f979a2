//! # petal-optim
//!
//! Optimizers that update a [`ParamStore`](petal_nn::ParamStore) from gradients:
//! [`Sgd`] (momentum, Nesterov, weight decay; PyTorch's formulas), [`Adam`], [`AdamW`]
//! and [`RmsProp`] (Keras's defaults). All of them skip frozen (non-trainable)
//! parameters, accept a per-parameter learning-rate scale for fine-tuning, create
//! their per-parameter slots lazily, and save their state as a safetensors file
//! ([`save_state`], [`load_state_file`]) so training resumes bit for bit. Also here:
//! learning-rate schedules ([`LrSchedule`]) and gradient clipping
//! ([`clip_by_global_norm`], [`clip_by_value`]).
//!
//! ```
//! use petal_nn::ParamStore;
//! use petal_optim::{clip_by_global_norm, CosineDecay, LrSchedule, Optimizer, Sgd, SgdConfig};
//! use petal_tensor::Tensor;
//!
//! let mut store = ParamStore::new();
//! let w = store.add("w", Tensor::from_vec(&[2], vec![1.0, 2.0])?, true)?;
//! let mut sgd = Sgd::new(SgdConfig { momentum: 0.9, ..SgdConfig::new(0.1) });
//! let schedule = CosineDecay::new(0.1, 100, 0.0);
//! for step in 0..3 {
//!     // gradient of sum(w^2) / 2 is w itself
//!     let mut grads = vec![(w, store.value(w).clone())];
//!     clip_by_global_norm(&mut grads, 1.0);
//!     sgd.set_learning_rate(schedule.learning_rate(step));
//!     sgd.step(&mut store, &grads)?;
//! }
//! assert!(store.value(w).as_slice()[1] < 2.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adam;
mod clip;
mod error;
mod optimizer;
mod rmsprop;
mod schedule;
mod sgd;
mod state;

pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use clip::{clip_by_global_norm, clip_by_value};
pub use error::OptimError;
pub use optimizer::{Optimizer, SlotOptimizer, UpdateRule};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::{
    Constant, CosineDecay, ExponentialDecay, LrSchedule, RunLength, StepDecay, Warmup,
};
pub use sgd::{Sgd, SgdConfig};
pub use state::{load_state_file, save_state, OptimizerState};
