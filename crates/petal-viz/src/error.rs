//! What can go wrong when making a figure.

use std::path::PathBuf;

/// A figure could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// The data handed in does not fit the figure.
    #[error("{0}")]
    Input(String),
    /// The model failed while computing a saliency map or feature maps.
    #[error(transparent)]
    Model(#[from] petal_nn::NnError),
    /// No gradient of the class score reaches the layer (or input) to explain.
    #[error("no gradient reaches {layer}: {reason}")]
    NoGradient {
        /// The layer, or `input`.
        layer: String,
        /// Why not.
        reason: String,
    },
    /// Writing or encoding the file failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, VizError>;

impl From<petal_tensor::TensorError> for VizError {
    fn from(e: petal_tensor::TensorError) -> Self {
        VizError::Model(e.into())
    }
}
