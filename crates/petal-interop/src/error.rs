//! The one error type of the crate.

use std::path::PathBuf;

use petal_nn::weights::WeightsError;

/// Why a checkpoint could not be read, loaded or converted. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a PyTorch checkpoint Petal can read (or asks for code to run).
    #[error("{path}: not a readable PyTorch checkpoint: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file is not an ONNX model Petal can import; `reason` lists every problem
    /// found (each unsupported operator with its nodes, missing or malformed tensors).
    #[error("{path}: cannot import this ONNX model: {reason}")]
    Onnx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint's tensors do not fit the model (names every tensor at fault).
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// Fetching, verifying or loading a catalog entry's files failed.
    #[error(transparent)]
    Zoo(#[from] petal_zoo::ZooError),
    /// The model has no ONNX form (names the layer).
    #[error("{path}: cannot export to ONNX: {source}")]
    Export {
        /// The file that was to be written.
        path: PathBuf,
        /// Why.
        source: crate::onnx::ExportError,
    },
    /// The model could not be built.
    #[error("building the model: {0}")]
    Model(#[from] petal_nn::NnError),
}
