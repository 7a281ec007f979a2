//! The training loop's error type.

use std::path::PathBuf;

/// Why training, evaluation or prediction stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model refused a batch or an op failed.
    #[error(transparent)]
    Nn(#[from] petal_nn::NnError),
    /// A tensor op refused its arguments (shapes that do not fit).
    #[error(transparent)]
    Tensor(#[from] petal_tensor::TensorError),
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
    /// A checkpoint file is damaged, or belongs to another model or run.
    #[error("{path}: not a usable checkpoint: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Saving a checkpoint failed (a full disk, say); the file keeps its previous content.
    #[error("{path}: could not save the checkpoint: {reason}; {previous}")]
    CheckpointWrite {
        /// The checkpoint file.
        path: PathBuf,
        /// Why the save failed (the OS error).
        reason: String,
        /// What the file still holds, as a sentence.
        previous: String,
    },
    /// The processes of a distributed run disagree (settings, data, weights) or one of
    /// them died or hangs; the message names the ranks.
    #[error("distributed training: {0}")]
    Distributed(String),
    /// The loss became NaN or infinite; training stopped before applying that step.
    #[error("training stopped: the loss became {loss} at step {step} ({culprit}); {checkpoint}")]
    NonFiniteLoss {
        /// The step (1-based) whose loss was not finite.
        step: u64,
        /// The loss value.
        loss: f32,
        /// Where the non-finite values first appear (the input, a parameter, a layer).
        culprit: String,
        /// The last good checkpoint, as a sentence.
        checkpoint: String,
    },
}

/// Result alias for the training loop.
pub type Result<T> = std::result::Result<T, TrainError>;

impl From<crate::distributed::CommError> for TrainError {
    fn from(error: crate::distributed::CommError) -> Self {
        TrainError::Distributed(error.0)
    }
}
