//! The error type of the optimizer crate.

use std::path::PathBuf;

use petal_nn::ParamId;

/// Why a step, a state load or a state file failed. Variants name the parameter or the
/// file concerned.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A gradient's shape differs from its parameter's.
    #[error(
        "gradient for parameter {name:?} has shape {grad:?}, but the parameter has shape {param:?}"
    )]
    GradientShape {
        /// The parameter's name.
        name: String,
        /// The parameter's shape.
        param: Vec<usize>,
        /// The gradient's shape.
        grad: Vec<usize>,
    },
    /// One step received two gradients for the same parameter.
    #[error("parameter {name:?} received more than one gradient in one step")]
    DuplicateGradient {
        /// The parameter's name.
        name: String,
    },
    /// A gradient refers to a parameter id the store does not hold (an id from another
    /// store).
    #[error("a gradient refers to {id:?}, which is not a parameter of this store")]
    UnknownParameter {
        /// The foreign id.
        id: ParamId,
    },
    /// The optimizer already holds slots of another shape for this parameter (it was
    /// used with another store).
    #[error(
        "the optimizer's slots for parameter {name:?} have shape {slots:?}, but the parameter has shape \
         {param:?} (was this optimizer used with another model?)"
    )]
    SlotShape {
        /// The parameter's name.
        name: String,
        /// The shape of the optimizer's slots.
        slots: Vec<usize>,
        /// The parameter's shape.
        param: Vec<usize>,
    },
    /// The state was saved by another kind of optimizer.
    #[error("the state belongs to a {found:?} optimizer, but this optimizer is {expected:?}")]
    StateKind {
        /// This optimizer's kind.
        expected: String,
        /// The state's kind.
        found: String,
    },
    /// The state's slots do not fit this optimizer's configuration or the model's
    /// parameters; every problem is listed.
    #[error("the optimizer state does not match the optimizer and the model:{}", list(.problems))]
    StateMismatch {
        /// One line per problem, each naming the slot or parameter.
        problems: Vec<String>,
    },
    /// Reading or writing a state file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A state file is not a readable optimizer state.
    #[error("{path}: not a readable optimizer state file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn list(problems: &[String]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}
