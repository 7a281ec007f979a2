//! The [`Communicator`] on MPI (rsmpi), with a watchdog: a collective that does not
//! complete within the timeout names the ranks that are not answering and aborts the
//! job.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::request::{LocalScope, Request};
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use mpi::Threading;
use petal_train::distributed::{CommError, Communicator};

use crate::LaunchError;

/// Tags of the watchdog's roll call.
const PING: i32 = 7701;
const PONG: i32 = 7702;

/// This process's place in an MPI job (`MPI_COMM_WORLD`).
///
/// Every collective is non-blocking and polled: while it waits, the process answers
/// other ranks' roll calls; when it has waited `timeout`, it asks every other rank
/// whether it is alive (a point-to-point message), waits a few seconds for answers,
/// prints which ranks did not answer (they died or hang) and aborts the job with
/// `MPI_Abort` (MPI cannot cancel a collective). A rank that dies outright is also
/// noticed by the launcher: `mpirun` then stops every process and names the rank.
pub struct MpiCommunicator {
    // Dropping it finalizes MPI; it must outlive `world`.
    _universe: Universe,
    world: SimpleCommunicator,
    timeout: Duration,
    /// MPI is initialized for serialized calls: this lock serializes them.
    lock: Mutex<u64>,
}

// SAFETY: MPI is initialized with at least `Threading::Serialized` (checked in `init`),
// and every MPI call goes through `lock`, so no two threads call MPI at the same time.
unsafe impl Send for MpiCommunicator {}
// SAFETY: as above.
unsafe impl Sync for MpiCommunicator {}

/// Environment variables that MPI launchers set in the processes they start.
const LAUNCHER_VARIABLES: [&str; 5] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "SLURM_PROCID",
];

impl MpiCommunicator {
    /// Initializes MPI; collectives wait at most `timeout` for the other ranks. Fails
    /// with a launch hint when the process was not started by an MPI launcher
    /// (`mpirun`, `srun`), or when MPI was already initialized.
    pub fn init(timeout: Duration) -> Result<Self, LaunchError> {
        if !LAUNCHER_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some())
        {
            return Err(LaunchError::NotLaunched);
        }
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| LaunchError::Mpi("MPI was already initialized".into()))?;
        if threading < Threading::Serialized {
            return Err(LaunchError::Mpi(format!(
                "the MPI library offers threading {threading:?}; Petal needs Serialized"
            )));
        }
        let world = universe.world();
        Ok(Self {
            _universe: universe,
            world,
            timeout,
            lock: Mutex::new(0),
        })
    }

    /// Runs the collective that `start` begins to completion, polling it; past the
    /// timeout, holds the roll call and aborts. `what` names the collective.
    fn complete<'a, D: ?Sized>(
        &self,
        what: &str,
        sequence: u64,
        request: Request<'a, D, &LocalScope<'a>>,
    ) {
        let started = Instant::now();
        let mut request = request;
        let mut pause = Duration::from_micros(1);
        loop {
            match request.test() {
                Ok(_) => return,
                Err(pending) => request = pending,
            }
            self.answer_roll_calls(sequence);
            if started.elapsed() > self.timeout {
                self.roll_call_and_abort(what, sequence);
            }
            // Spin briefly, then yield the core to the ranks still computing.
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Answers every pending "are you alive?" with this rank's collective count.
    fn answer_roll_calls(&self, sequence: u64) {
        while let Some((message, status)) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(PING)
        {
            let (_asked, _): (u64, _) = message.matched_receive();
            self.world
                .process_at_rank(status.source_rank())
                .send_with_tag(&sequence, PONG);
        }
    }

    /// Asks every other rank whether it is alive, names those that do not answer
    /// within a few seconds, and aborts the job.
    fn roll_call_and_abort(&self, what: &str, sequence: u64) -> ! {
        let me = self.world.rank();
        let size = self.world.size();
        for other in (0..size).filter(|&r| r != me) {
            self.world
                .process_at_rank(other)
                .send_with_tag(&sequence, PING);
        }
        let mut answered = vec![false; size as usize];
        answered[me as usize] = true;
        let grace = Instant::now();
        while grace.elapsed() < Duration::from_secs(3) && !answered.iter().all(|&a| a) {
            self.answer_roll_calls(sequence);
            while let Some((message, status)) = self
                .world
                .any_process()
                .immediate_matched_probe_with_tag(PONG)
            {
                let (_at, _): (u64, _) = message.matched_receive();
                answered[status.source_rank() as usize] = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let silent: Vec<String> = (answered.iter().enumerate())
            .filter(|(_, &a)| !a)
            .map(|(r, _)| r.to_string())
            .collect();
        let reason = match silent.len() {
            0 => "every rank answered, so they are in different collectives (ranks running different programs or settings?)".to_string(),
            1 => format!("rank {} did not answer: it died or hangs", silent[0]),
            _ => format!("ranks {} did not answer: they died or hang", silent.join(", ")),
        };
        eprintln!(
            "petal-distributed: rank {me}: the {what} (collective {sequence}) did not complete within {:?}; {reason}. Stopping every rank.",
            self.timeout
        );
        self.world.abort(3)
    }

    /// Takes the MPI lock and counts one more collective.
    fn next(&self) -> std::sync::MutexGuard<'_, u64> {
        let mut count = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count += 1;
        count
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn world_size(&self) -> usize {
        self.world.size() as usize
    }

    fn allreduce_sum(&self, values: &mut [f32]) -> Result<(), CommError> {
        let count = self.next();
        let send = values.to_vec();
        mpi::request::scope(|scope| {
            let request = self.world.immediate_all_reduce_into(
                scope,
                &send[..],
                values,
                SystemOperation::sum(),
            );
            self.complete("allreduce", *count, request);
        });
        Ok(())
    }

    fn broadcast(&self, values: &mut [f32]) -> Result<(), CommError> {
        let count = self.next();
        mpi::request::scope(|scope| {
            let request = self
                .world
                .process_at_rank(0)
                .immediate_broadcast_into(scope, values);
            self.complete("broadcast", *count, request);
        });
        Ok(())
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<(), CommError> {
        let mut len = [bytes.len() as u64];
        {
            let count = self.next();
            mpi::request::scope(|scope| {
                let request = self
                    .world
                    .process_at_rank(0)
                    .immediate_broadcast_into(scope, &mut len[..]);
                self.complete("broadcast", *count, request);
            });
        }
        bytes.resize(len[0] as usize, 0);
        let count = self.next();
        mpi::request::scope(|scope| {
            let request = self
                .world
                .process_at_rank(0)
                .immediate_broadcast_into(scope, &mut bytes[..]);
            self.complete("broadcast", *count, request);
        });
        Ok(())
    }

    fn allgather_u64(&self, value: u64) -> Result<Vec<u64>, CommError> {
        let count = self.next();
        let mut all = vec![0u64; self.world_size()];
        mpi::request::scope(|scope| {
            let request = self
                .world
                .immediate_all_gather_into(scope, &value, &mut all[..]);
            self.complete("allgather", *count, request);
        });
        Ok(all)
    }
}
