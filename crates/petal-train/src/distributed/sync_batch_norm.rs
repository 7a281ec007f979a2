//! Synchronized batch norm: the [`BatchParts`] of a group, so that BatchNorm layers
//! normalize with the statistics of the global batch instead of each rank's part.

use std::cell::RefCell;
use std::sync::Arc;

use petal_nn::BatchParts;

use super::{CommError, Communicator};

/// The parts of a global batch held by the ranks of a group: per-channel sums go
/// through an allreduce (in f32, the communicator's type).
pub(crate) struct GroupParts {
    communicator: Arc<dyn Communicator>,
    failure: RefCell<Option<CommError>>,
}

impl GroupParts {
    pub(crate) fn new(communicator: Arc<dyn Communicator>) -> Self {
        Self {
            communicator,
            failure: RefCell::default(),
        }
    }

    /// The first allreduce that failed during the pass, if one did.
    pub(crate) fn failure(&self) -> Option<CommError> {
        self.failure.borrow().clone()
    }
}

impl BatchParts for GroupParts {
    fn sum_over_parts(&self, values: &mut [f64]) {
        // After a failure the group is broken: the pass finishes locally and the caller
        // reports the failure.
        if self.failure.borrow().is_some() {
            return;
        }
        let mut sums: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        match self.communicator.allreduce_sum(&mut sums) {
            Ok(()) => values
                .iter_mut()
                .zip(sums)
                .for_each(|(v, s)| *v = f64::from(s)),
            Err(error) => *self.failure.borrow_mut() = Some(error),
        }
    }
}
