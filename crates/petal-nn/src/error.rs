//! The error type of the autodiff crate.

use petal_tensor::TensorError;

/// What went wrong while building or differentiating a computation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NnError {
    /// A kernel refused its arguments (the message names the op and the shapes).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// An op combined values recorded on two different tapes.
    #[error("{op}: its inputs were recorded on different tapes")]
    MixedTapes {
        /// The op that was called.
        op: &'static str,
    },
    /// An op's backward returned a gradient whose shape differs from its input's.
    #[error("backward of node {node} returned a gradient of shape {got:?} for an input of shape {expected:?}")]
    GradientShape {
        /// Tape position of the op.
        node: usize,
        /// The input's shape.
        expected: Vec<usize>,
        /// The gradient's shape.
        got: Vec<usize>,
    },
    /// `check_gradients` found an analytic gradient that disagrees with finite differences.
    #[error(
        "gradient of input {input} at flat index {index}: tape says {analytic}, finite differences say {numeric}"
    )]
    GradientMismatch {
        /// Which input of the checked function.
        input: usize,
        /// Flat (row-major) index of the element.
        index: usize,
        /// The tape's gradient.
        analytic: f64,
        /// The central-difference estimate.
        numeric: f64,
    },

    /// A loss was given targets it cannot compare with (a cross-entropy target row
    /// that is not a probability distribution).
    #[error("{loss}: {reason}")]
    Targets {
        /// The loss.
        loss: &'static str,
        /// What is wrong with the targets.
        reason: String,
    },

    /// A layer cannot be built or called as asked (bad configuration or input shape).
    #[error("layer {layer}: {reason}")]
    Layer {
        /// The layer's name.
        layer: String,
        /// What is wrong.
        reason: String,
    },
    /// A parameter name was added twice to one store.
    #[error("parameter {name:?} already exists")]
    DuplicateParam {
        /// The name.
        name: String,
    },
    /// A parameter was given a value of another shape.
    #[error("parameter {name:?} has shape {expected:?}, got {got:?}")]
    ParamShape {
        /// The parameter's name.
        name: String,
        /// Its shape.
        expected: Vec<usize>,
        /// The offered shape.
        got: Vec<usize>,
    },
}

/// Result alias for autodiff operations.
pub type Result<T> = std::result::Result<T, NnError>;
