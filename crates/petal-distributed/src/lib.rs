//! # petal-distributed
//!
//! Petal's `fit` on many processes and machines: synchronous data parallelism (the
//! semantics of PyTorch's DistributedDataParallel, described in
//! [`petal_train::distributed`]) over MPI.
//!
//! With the cargo feature `mpi` (which needs an MPI library with its headers, e.g.
//! Debian's `libopenmpi-dev openmpi-bin`, and `libclang-dev` for the bindings),
//! `MpiCommunicator` implements petal-train's
//! [`Communicator`](petal_train::distributed::Communicator) on rsmpi, and [`launch`]
//! gives the [`Distributed`] setting of a process started by `mpirun` or `srun`. Without
//! the feature the crate has no C dependency and [`launch`] says how to build and
//! launch.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use petal_train::FitConfig;
//! // Under `mpirun -n 2 my-training-program`:
//! let distributed = petal_distributed::launch(Duration::from_secs(300))?;
//! let config = FitConfig { batch_size: 128, distributed: Some(distributed), ..FitConfig::default() };
//! # Ok(()) }
//! ```
//!
//! [`scaling`] models the step time of a data-parallel run past one machine.

#[cfg(feature = "mpi")]
mod mpi_comm;
pub mod scaling;

use std::time::Duration;

#[cfg(feature = "mpi")]
pub use mpi_comm::MpiCommunicator;
use petal_train::distributed::Distributed;

/// How to build with MPI and launch, for the errors that need it.
pub const HOW_TO_LAUNCH: &str = "build with MPI (`cargo build --release -p xtask --features mpi`, \
    which needs `apt-get install libopenmpi-dev openmpi-bin libclang-dev`) and start one process \
    per rank with an MPI launcher, e.g. `mpirun -n 2 target/release/xtask repro mnist --distributed` \
    (or `srun` under Slurm); see README.md";

/// Why a process cannot join a distributed run.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// This build has no MPI (the `mpi` feature is off).
    #[error("distributed training needs MPI, and this build has none: {HOW_TO_LAUNCH}")]
    NoMpi,
    /// The process was not started by `mpirun`/`srun`.
    #[error("distributed training needs an MPI launcher, and this process was started without one: {HOW_TO_LAUNCH}")]
    NotLaunched,
    /// The MPI library refused.
    #[error("MPI: {0}")]
    Mpi(String),
}

/// The number of ranks on this machine, as the MPI launcher tells it (OpenMPI's
/// `OMPI_COMM_WORLD_LOCAL_SIZE`, MPICH's `MPI_LOCALNRANKS`, Slurm's
/// `SLURM_NTASKS_PER_NODE`); `None` when started otherwise. Divide the cores by it for
/// the threads per rank.
pub fn local_ranks() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "SLURM_NTASKS_PER_NODE",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
    .filter(|&n: &usize| n > 0)
}

/// Sends this process's standard output to `/dev/null` unless it is rank 0, so that a
/// program's reports print once per job (standard error, with the errors, stays).
/// Without the `mpi` feature there are no other ranks and nothing changes.
pub fn quiet_followers(distributed: &Distributed) -> std::io::Result<()> {
    if distributed.is_leader() {
        return Ok(());
    }
    #[cfg(feature = "mpi")]
    {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        std::io::stdout().flush()?;
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        // SAFETY: dup2 on two open descriptors; standard output (1) is replaced atomically.
        if unsafe { libc::dup2(null.as_raw_fd(), 1) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The [`Distributed`] setting of this process in its MPI job, collectives timing out
/// after `timeout` (see `MpiCommunicator`). Errors name what is missing and how to
/// build and launch: a build without the `mpi` feature, a process started without
/// `mpirun`/`srun`.
///
/// ```
/// # #[cfg(not(feature = "mpi"))] {
/// let error = petal_distributed::launch(std::time::Duration::from_secs(1)).unwrap_err();
/// assert!(error.to_string().contains("--features mpi"));
/// # }
/// ```
pub fn launch(timeout: Duration) -> Result<Distributed, LaunchError> {
    #[cfg(feature = "mpi")]
    {
        let communicator = MpiCommunicator::init(timeout)?;
        Ok(Distributed::new(std::sync::Arc::new(communicator)))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = timeout;
        Err(LaunchError::NoMpi)
    }
}
