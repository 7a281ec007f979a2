//! Synchronous data parallelism: what `fit` needs from a group of processes training
//! one model together, and the settings of such a run.
//!
//! `fit` sees the group only through the small [`Communicator`] trait (rank, world size,
//! allreduce, broadcast, allgather). [`SingleProcess`] is the trivial group of one;
//! [`local_group`] connects threads of one process (for tests and experiments without
//! MPI); `petal-distributed` implements it on MPI.
//!
//! With [`FitConfig::distributed`](crate::FitConfig::distributed) set, a run has the
//! semantics of PyTorch's DistributedDataParallel:
//! - rank 0's initial weights (or the checkpoint rank 0 resumes from) go to every rank;
//! - `batch_size` is the *global* batch: every rank shuffles the same order (seed,
//!   epoch) and takes its contiguous part of each batch
//!   ([`shard_range`](petal_data::shard_range)), so the split depends only on the seed,
//!   the epoch, the step and the world size;
//! - each rank's gradients, weighted by its share of the batch, are summed by allreduce
//!   in buckets of [`Distributed::bucket_floats`] values, so every rank applies the
//!   gradient of the global batch and takes the same optimizer step; state updates
//!   (batch norm's moving statistics, computed per rank from its part of the batch) are
//!   averaged the same way;
//! - batch norm normalizes each rank's part with its own statistics, or, with
//!   [`Distributed::sync_batch_norm`], with those of the global batch (PyTorch's
//!   `SyncBatchNorm`): two allreduces of per-channel sums in forward and one in backward
//!   per BatchNorm layer;
//! - every [`Distributed::check_every`] steps and at every epoch end a checksum of the
//!   weights is compared across ranks, and drifting ranks stop the run by name;
//! - validation is sharded and gathered, so its figures are those of one process;
//! - only rank 0 prints progress and writes checkpoints.
//!
//! Settings that must agree (seeds, batch size, epochs, data sizes, a fingerprint of the
//! data and of the model) are compared at the start; a disagreement is refused by name.

mod agree;
mod exchange;
mod local;
mod resume;
mod sharded;
mod sync_batch_norm;

use std::sync::Arc;

pub(crate) use agree::{agree_on_start, check_weights, leaders_stop, StartSettings};
pub use agree::{data_fingerprint, weights_checksum};
pub(crate) use exchange::{average_step, Local};
pub use local::{local_group, LocalCommunicator};
pub(crate) use resume::{broadcast_weights, shared_checkpoint};
pub use sharded::{evaluate_sharded, predict_sharded};
pub(crate) use sync_batch_norm::GroupParts;

/// Why a collective operation failed: a rank died, hung past the timeout, or sent
/// something that does not fit. The message names the ranks involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommError(pub String);

/// A group of processes (ranks `0..world_size`) that train one model together.
///
/// Every rank must call the same collective operations in the same order with buffers
/// of the same length; each call returns only when every rank has made it (or fails
/// with a [`CommError`] naming the ranks that did not).
pub trait Communicator: Send + Sync {
    /// This process's rank, in `0..world_size()`.
    fn rank(&self) -> usize;

    /// The number of processes in the group.
    fn world_size(&self) -> usize;

    /// Replaces `values` on every rank by the element-wise sum over all ranks.
    fn allreduce_sum(&self, values: &mut [f32]) -> Result<(), CommError>;

    /// Replaces `values` on every rank by rank 0's.
    fn broadcast(&self, values: &mut [f32]) -> Result<(), CommError>;

    /// Replaces `bytes` on every rank by rank 0's (any length).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<(), CommError>;

    /// Every rank's `value`, in rank order (also a barrier).
    fn allgather_u64(&self, value: u64) -> Result<Vec<u64>, CommError>;
}

/// The group of one process: every collective is the identity.
///
/// ```
/// use petal_train::distributed::{Communicator, SingleProcess};
/// let mut values = [1.0, 2.0];
/// SingleProcess.allreduce_sum(&mut values)?;
/// assert_eq!(values, [1.0, 2.0]);
/// assert_eq!(SingleProcess.allgather_u64(7)?, vec![7]);
/// # Ok::<(), petal_train::distributed::CommError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn allreduce_sum(&self, _values: &mut [f32]) -> Result<(), CommError> {
        Ok(())
    }
    fn broadcast(&self, _values: &mut [f32]) -> Result<(), CommError> {
        Ok(())
    }
    fn broadcast_bytes(&self, _bytes: &mut Vec<u8>) -> Result<(), CommError> {
        Ok(())
    }
    fn allgather_u64(&self, value: u64) -> Result<Vec<u64>, CommError> {
        Ok(vec![value])
    }
}

/// How a `fit` run trains on a group of processes ([`FitConfig::distributed`]
/// (crate::FitConfig::distributed)).
#[derive(Clone)]
pub struct Distributed {
    /// The group.
    pub communicator: Arc<dyn Communicator>,
    /// Values per allreduce of the gradients (the bucket size; 4 bytes each).
    pub bucket_floats: usize,
    /// Compare a checksum of the weights across ranks every this many steps (and at
    /// every epoch end); 0 only at epoch ends.
    pub check_every: u64,
    /// Synchronized batch norm: BatchNorm layers normalize with the mean and variance
    /// of the global batch, not of this rank's part. Costs three small allreduces per
    /// BatchNorm layer and step; needs at least one sample per rank in every batch.
    pub sync_batch_norm: bool,
}

impl Distributed {
    /// Trains on `communicator`'s group with 1 Mi-value (4 MiB) buckets, a weight check
    /// every 100 steps and batch norm per rank.
    pub fn new(communicator: Arc<dyn Communicator>) -> Self {
        Self {
            communicator,
            bucket_floats: 1 << 20,
            check_every: 100,
            sync_batch_norm: false,
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.communicator.rank()
    }

    /// The number of processes.
    pub fn world_size(&self) -> usize {
        self.communicator.world_size()
    }

    /// Whether this process is rank 0, the one that prints, saves and reports.
    pub fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    /// The communicator of `group`, or [`SingleProcess`] without one: for the calls
    /// that work alone and in a group alike ([`predict_sharded`], [`evaluate_sharded`]).
    pub fn communicator_of(group: Option<&Distributed>) -> &dyn Communicator {
        match group {
            Some(group) => &*group.communicator,
            None => &SingleProcess,
        }
    }
}

impl std::fmt::Debug for Distributed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributed")
            .field("rank", &self.rank())
            .field("world_size", &self.world_size())
            .field("bucket_floats", &self.bucket_floats)
            .field("check_every", &self.check_every)
            .field("sync_batch_norm", &self.sync_batch_norm)
            .finish()
    }
}
