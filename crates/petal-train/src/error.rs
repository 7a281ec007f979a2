//! The training loop's error type.

use std::path::PathBuf;

/// Why training, evaluation or prediction stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model refused a batch or an op failed.
    #[error(transparent)]
    Nn(#[from] petal_nn::NnError),
    /// Loading data failed.
    #[error(transparent)]
    Data(#[from] petal_data::DataError),
    /// The optimizer refused a step.
    #[error(transparent)]
    Optim(#[from] petal_optim::OptimError),
    /// Saving or loading weights failed.
    #[error(transparent)]
    Weights(#[from] petal_nn::weights::WeightsError),
    /// Writing a log or checkpoint failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The arguments do not describe a training run.
    #[error("{0}")]
    Config(String),
}

/// Result alias for the training loop.
pub type Result<T> = std::result::Result<T, TrainError>;
