//! The error type of every fallible tensor operation.

/// Why a tensor operation refused its arguments.
///
/// Every variant names the operation, so a message read far from the call
/// site still says which call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// Two shapes that must agree do not.
    #[error("{op}: shapes {lhs:?} and {rhs:?} do not fit: {reason}")]
    ShapeMismatch {
        /// The operation that was called.
        op: &'static str,
        /// The first shape involved.
        lhs: Vec<usize>,
        /// The second shape involved.
        rhs: Vec<usize>,
        /// What rule the shapes break.
        reason: String,
    },
    /// An argument is out of range or meaningless for this operation.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation that was called.
        op: &'static str,
        /// What is wrong with the argument.
        reason: String,
    },
}

/// Result alias for tensor operations.
pub type Result<T> = std::result::Result<T, TensorError>;

pub(crate) fn shape_mismatch(
    op: &'static str,
    lhs: &[usize],
    rhs: &[usize],
    reason: impl Into<String>,
) -> TensorError {
    TensorError::ShapeMismatch {
        op,
        lhs: lhs.to_vec(),
        rhs: rhs.to_vec(),
        reason: reason.into(),
    }
}

pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> TensorError {
    TensorError::InvalidArgument {
        op,
        reason: reason.into(),
    }
}
