//! A group of threads in one process, connected through shared memory: the
//! [`Communicator`] of tests and of experiments without MPI.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{CommError, Communicator};

/// One thread's end of a [`local_group`].
pub struct LocalCommunicator {
    rank: usize,
    shared: Arc<Shared>,
}

/// `world_size` connected communicators, one per thread that will use it (rank `i` at
/// index `i`). A collective that some rank does not join within `timeout` fails on the
/// others with an error naming the missing ranks.
///
/// ```
/// use std::time::Duration;
/// use petal_train::distributed::{local_group, Communicator};
/// let sums: Vec<Vec<f32>> = std::thread::scope(|scope| {
///     let handles: Vec<_> = local_group(3, Duration::from_secs(10))
///         .into_iter()
///         .map(|comm| scope.spawn(move || {
///             let mut values = vec![comm.rank() as f32, 1.0];
///             comm.allreduce_sum(&mut values).unwrap();
///             values
///         }))
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert!(sums.iter().all(|s| s == &[3.0, 3.0]));
/// ```
pub fn local_group(world_size: usize, timeout: Duration) -> Vec<LocalCommunicator> {
    let shared = Arc::new(Shared {
        round: Mutex::new(Round {
            slots: vec![None; world_size],
            result: None,
            taken: 0,
        }),
        changed: Condvar::new(),
        timeout,
        world: world_size,
    });
    (0..world_size)
        .map(|rank| LocalCommunicator {
            rank,
            shared: Arc::clone(&shared),
        })
        .collect()
}

struct Shared {
    round: Mutex<Round>,
    changed: Condvar,
    timeout: Duration,
    world: usize,
}

/// One collective in progress: what each rank gave, then what all of them get.
struct Round {
    slots: Vec<Option<Vec<u8>>>,
    result: Option<Arc<Vec<Vec<u8>>>>,
    taken: usize,
}

impl LocalCommunicator {
    /// Every rank's `data`, in rank order, once all ranks have given theirs.
    fn all_gather(&self, data: Vec<u8>) -> Result<Arc<Vec<Vec<u8>>>, CommError> {
        let shared = &*self.shared;
        let deadline = Instant::now() + shared.timeout;
        let mut round = lock(shared);
        // The previous collective is still being collected by slower ranks.
        round = wait_while(shared, round, deadline, |r| r.result.is_some())?;
        round.slots[self.rank] = Some(data);
        if round.slots.iter().all(Option::is_some) {
            let all = round.slots.iter_mut().map(|s| s.take().unwrap_or_default());
            round.result = Some(Arc::new(all.collect()));
            shared.changed.notify_all();
        }
        round = wait_while(shared, round, deadline, |r| r.result.is_none())?;
        let result = round.result.clone().unwrap_or_default();
        round.taken += 1;
        if round.taken == shared.world {
            round.result = None;
            round.taken = 0;
            shared.changed.notify_all();
        }
        Ok(result)
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Round> {
    shared
        .round
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits while `busy` holds, failing at `deadline` with the ranks that never arrived.
fn wait_while<'a>(
    shared: &'a Shared,
    mut round: MutexGuard<'a, Round>,
    deadline: Instant,
    busy: impl Fn(&Round) -> bool,
) -> Result<MutexGuard<'a, Round>, CommError> {
    while busy(&round) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let missing: Vec<String> = (round.slots.iter().enumerate())
                .filter(|(_, s)| s.is_none())
                .map(|(r, _)| r.to_string())
                .collect();
            return Err(CommError(format!(
                "rank {} did not join the collective within {:.0?}: it died or hangs",
                missing.join(", rank "),
                shared.timeout
            )));
        }
        round = shared
            .changed
            .wait_timeout(round, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    Ok(round)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Communicator for LocalCommunicator {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.world
    }

    fn allreduce_sum(&self, values: &mut [f32]) -> Result<(), CommError> {
        let all = self.all_gather(f32_bytes(values))?;
        if let Some((r, _)) = all
            .iter()
            .enumerate()
            .find(|(_, b)| b.len() != values.len() * 4)
        {
            return Err(CommError(format!(
                "allreduce of {} values, but rank {r} gave {}",
                values.len(),
                all[r].len() / 4
            )));
        }
        values.fill(0.0);
        // In rank order, so every rank sums the same way.
        for bytes in all.iter() {
            values
                .iter_mut()
                .zip(f32s(bytes))
                .for_each(|(v, x)| *v += x);
        }
        Ok(())
    }

    fn broadcast(&self, values: &mut [f32]) -> Result<(), CommError> {
        let all = self.all_gather(f32_bytes(values))?;
        if all[0].len() != values.len() * 4 {
            return Err(CommError(format!(
                "broadcast of {} values, but rank 0 sent {}",
                values.len(),
                all[0].len() / 4
            )));
        }
        values
            .iter_mut()
            .zip(f32s(&all[0]))
            .for_each(|(v, x)| *v = x);
        Ok(())
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<(), CommError> {
        let all = self.all_gather(std::mem::take(bytes))?;
        bytes.clone_from(&all[0]);
        Ok(())
    }

    fn allgather_u64(&self, value: u64) -> Result<Vec<u64>, CommError> {
        let all = self.all_gather(value.to_le_bytes().to_vec())?;
        Ok(all
            .iter()
            .map(|b| u64::from_le_bytes(b.as_slice().try_into().unwrap_or_default()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` on every rank of a local group of `n` in its own thread.
    fn on_ranks<T: Send>(
        n: usize,
        timeout: Duration,
        body: impl Fn(LocalCommunicator) -> T + Sync,
    ) -> Vec<T> {
        std::thread::scope(|scope| {
            let body = &body;
            let handles: Vec<_> = local_group(n, timeout)
                .into_iter()
                .map(|comm| scope.spawn(move || body(comm)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn collectives_give_every_rank_the_same_answer_round_after_round() {
        let results = on_ranks(3, Duration::from_secs(20), |comm| {
            let mut out = Vec::new();
            for round in 0..50 {
                let mut values = vec![comm.rank() as f32 + round as f32; 4];
                comm.allreduce_sum(&mut values).unwrap();
                out.push(values[0]);
                let mut b = vec![comm.rank() as f32; 2];
                comm.broadcast(&mut b).unwrap();
                out.push(b[1]);
                let mut bytes = vec![comm.rank() as u8; comm.rank() + 1];
                comm.broadcast_bytes(&mut bytes).unwrap();
                out.push(bytes.len() as f32);
                let gathered = comm.allgather_u64(comm.rank() as u64 * 10).unwrap();
                assert_eq!(gathered, vec![0, 10, 20]);
            }
            out
        });
        for round in 0..50 {
            let sum = 3.0 + 3.0 * round as f32;
            assert_eq!(results[0][3 * round..3 * round + 3], [sum, 0.0, 1.0]);
        }
        assert!(results.iter().all(|r| r == &results[0]));
    }

    #[test]
    fn a_rank_that_never_joins_is_named_after_the_timeout() {
        let started = Instant::now();
        let results = on_ranks(3, Duration::from_millis(300), |comm| {
            if comm.rank() == 2 {
                return None; // "dies" before the collective
            }
            Some(comm.allgather_u64(1).unwrap_err())
        });
        assert!(started.elapsed() < Duration::from_secs(5));
        for err in results.into_iter().flatten() {
            assert!(err.0.starts_with("rank 2 did not join"), "{err}");
        }
    }

    #[test]
    fn mismatched_buffers_are_refused_by_rank() {
        let results = on_ranks(2, Duration::from_secs(10), |comm| {
            let mut values = vec![0.0; 2 + comm.rank()];
            comm.allreduce_sum(&mut values)
        });
        assert!(results[0].as_ref().unwrap_err().0.contains("rank 1 gave 3"));
    }
}
