//! # petal-train
//!
//! The training loop, read like Keras' `compile` and `fit`: a [`Trainer`] holds the model
//! with its optimizer, loss, learning-rate schedule, [`callbacks`] and [`metrics`], and
//! [`Trainer::fit`] runs the epochs (batches, shuffling by seed, [`Validation`] data or
//! split, progress) and returns the [`History`] of the run. Also here: [`evaluate`] and
//! [`predict`], full [`checkpoint`]s to resume a run bit for bit, [`ensemble`]
//! averaging, and [`distributed`] (data-parallel) training on a group of processes.
//!
//! ```
//! use petal_data::InMemoryDataset;
//! use petal_nn::layers::{DenseConfig, FlattenConfig};
//! use petal_nn::{Loss, Sequential};
//! use petal_optim::{Adam, AdamConfig};
//! use petal_tensor::Tensor;
//! use petal_train::metrics::Precision;
//! use petal_train::{FitConfig, Trainer, Validation};
//!
//! // Two points, two classes.
//! let data = InMemoryDataset::new(Tensor::from_vec(&[2, 1, 1, 1], vec![-1.0, 1.0])?, vec![0, 1], 2)?;
//! let mut model = Sequential::new(&[1, 1, 1], 0)
//!     .add(FlattenConfig::default())?
//!     .add(DenseConfig::new(2))?
//!     .build()?;
//! let config = FitConfig { epochs: 30, batch_size: 2, verbose: false, ..FitConfig::default() };
//! let history = Trainer::new(&mut model, Adam::new(AdamConfig::new(0.1)))
//!     .loss(Loss::SparseCategoricalCrossentropy)
//!     .metric(Precision)
//!     .fit(&data, Validation::Data(&data), &config)?;
//! assert_eq!(history.last("accuracy"), Some(1.0));
//! assert_eq!(history.last("val_precision"), Some(1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod callbacks;
pub mod checkpoint;
pub mod distributed;
pub mod ensemble;
mod error;
mod evaluate;
mod exact;
mod fit;
mod history;
pub mod metrics;
mod mixing;
mod non_finite;
mod progress;
mod validation;

pub use error::{Result, TrainError};
pub use evaluate::{evaluate, predict, Evaluation};
pub use fit::{FitConfig, Trainer};
pub use history::{EpochLogs, History};
pub use validation::Validation;
