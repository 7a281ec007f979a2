//! # petal-train
//!
//! The training loop: [`Trainer::fit`] (epochs, batches, shuffling by seed, validation
//! data or split, progress), [`evaluate`] and [`predict`], [`metrics`], the [`History`]
//! of a run, Keras-style [`callbacks`], full [`checkpoint`]s to resume a run bit for bit,
//! and [`ensemble`] averaging.
//!
//! ```
//! use petal_data::InMemoryDataset;
//! use petal_nn::layers::DenseConfig;
//! use petal_nn::{Loss, Sequential};
//! use petal_optim::{Adam, AdamConfig};
//! use petal_tensor::Tensor;
//! use petal_train::{FitConfig, Trainer};
//!
//! // Two points, two classes.
//! let data = InMemoryDataset::new(Tensor::from_vec(&[2, 1, 1, 1], vec![-1.0, 1.0])?, vec![0, 1], 2)?;
//! let mut model = Sequential::new(&[1, 1, 1], 0)
//!     .add(petal_nn::layers::FlattenConfig::default())?
//!     .add(DenseConfig::new(2))?
//!     .build()?;
//! let mut adam = Adam::new(AdamConfig::new(0.1));
//! let mut trainer = Trainer { model: &mut model, optimizer: &mut adam, loss: Loss::SparseCategoricalCrossentropy, schedule: None, callbacks: vec![] };
//! let config = FitConfig { epochs: 30, batch_size: 2, verbose: false, ..FitConfig::default() };
//! let history = trainer.fit(&data, None, &config)?;
//! assert_eq!(history.last("accuracy"), Some(1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod callbacks;
pub mod checkpoint;
mod checkpointing;
pub mod ensemble;
mod error;
mod exact;
mod fit;
mod history;
pub mod metrics;
mod non_finite;
mod progress;

pub use error::{Result, TrainError};
pub use fit::{evaluate, predict, Evaluation, FitConfig, Trainer};
pub use history::{EpochLogs, History};
