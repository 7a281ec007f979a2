//! How batch work is split over the rayon pool.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// How many consecutive images each rayon task takes so that the batch splits into
/// one task per thread. The split depends only on the batch size and the thread
/// count, so reductions over the tasks add up in the same order on every run.
pub(crate) fn images_per_task(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads()).max(1)
}

/// Whether the per-image GEMMs should split themselves over threads: only when the
/// batch is too small to give every thread a task of its own.
pub(crate) fn gemm_needs_threads(batch: usize) -> bool {
    batch < rayon::current_num_threads()
}

/// Adds the per-task partial sums in one fixed order, last task first (deterministic
/// for a thread count).
pub(crate) fn sum_partials(mut partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut total = partials.pop().unwrap_or_else(|| vec![0.0; len]);
    for partial in partials.iter().rev() {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}

/// The values each image of a new batch tensor starts from: written before a kernel
/// adds to it, or added by a kernel that writes each value itself.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start<'a> {
    /// Every value zero.
    Zeros,
    /// `pattern` over and over (in NHWC, a bias per channel).
    Repeat(&'a [f32]),
}

impl<'a> Start<'a> {
    /// The start of each of `channels` channels (a bias: a pattern of one value per
    /// channel, which this asserts), or `None` for zeros.
    pub(crate) fn per_channel(self, channels: usize) -> Option<&'a [f32]> {
        match self {
            Start::Repeat(pattern) if !pattern.is_empty() => {
                assert_eq!(pattern.len(), channels, "one start value per channel");
                Some(pattern)
            }
            _ => None,
        }
    }

    /// Writes every value of `values` (the pattern over and over; an empty pattern has
    /// nothing to repeat, and writes zeros) and hands them back initialized.
    pub(crate) fn write(self, values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
        match self {
            Start::Repeat(pattern) if !pattern.is_empty() => {
                for run in values.chunks_mut(pattern.len()) {
                    for (v, &p) in run.iter_mut().zip(pattern) {
                        v.write(p);
                    }
                }
            }
            _ => values.fill(MaybeUninit::new(0.0)),
        }
        // SAFETY: every value was written just above (the runs cover `values`).
        unsafe { assume_written(values) }
    }
}

/// `values` as the `f32`s they now hold.
///
/// # Safety
///
/// Every value of `values` must have been written.
pub(crate) unsafe fn assume_written(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: the values are initialized (the caller's promise), and `MaybeUninit<f32>`
    // has the layout of `f32`.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `values` seen as memory a kernel writes into (as a new output is), for a kernel that
/// takes new memory to write into an existing buffer.
///
/// # Safety
///
/// Nothing may de-initialize a value through the view (write `MaybeUninit::uninit()`).
pub(crate) unsafe fn as_uninit(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the values stay
    // initialized (the caller's promise).
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// A new batch of `images` images of `image_len` values, made one task per thread:
/// each task first sets its images to `start`, while they are in its cache (rather
/// than one thread zeroing the whole batch beforehand), then calls
/// `work(first_image, values)` on them.
pub(crate) fn new_batch(
    images: usize,
    image_len: usize,
    start: Start<'_>,
    work: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let task_len = images_per_task(images) * image_len;
    new_values(images * image_len, task_len, start, |offset, values| {
        work(offset / image_len, values)
    })
}

/// [`new_batch`] a group of up to `group` consecutive images at a time (the last group
/// of a task may be shorter), each group set to `start` just before
/// `work(state, first_image, values)` runs on it: an image too large for the cache is
/// still in it when `work` adds to it (the task's images started all at once would be
/// back in memory by then). Each task makes one `state` (a scratch buffer, say) for all
/// its groups.
pub(crate) fn new_image_groups<S>(
    images: usize,
    image_len: usize,
    group: usize,
    start: Start<'_>,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let write = |state: &mut S, first: usize, values: &mut [MaybeUninit<f32>]| {
        work(state, first, start.write(values))
    };
    // SAFETY: `Start::write` initializes each group before `work` sees it.
    unsafe { new_image_groups_written(images, image_len, group, state, write) }
}

/// [`new_image_groups`] for `work` that writes every value of its group itself
/// (`work(state, first_image, values)`), with no start written first.
///
/// # Safety
///
/// `work` must initialize every value of each group it is handed (or panic).
pub(crate) unsafe fn new_image_groups_written<S>(
    images: usize,
    image_len: usize,
    group: usize,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let (per_task, group) = task_groups(images, group);
    // SAFETY: `work` initializes each group of the part (the caller's promise), and the
    // groups cover the part.
    unsafe {
        filled(images * image_len, per_task * image_len, |task, part| {
            let mut state = state();
            for (g, values) in part.chunks_mut(group * image_len).enumerate() {
                work(&mut state, task * per_task + g * group, values);
            }
        })
    }
}

/// The split [`new_image_groups_written`] and [`for_each_image_group`] share: images per task
/// (one task per thread) and images per group (`group`, at least 1, at most a task's).
fn task_groups(images: usize, group: usize) -> (usize, usize) {
    let per_task = images_per_task(images);
    (per_task, group.clamp(1, per_task))
}

/// [`new_image_groups`]' tasks and groups without a batch to fill:
/// `work(state, first_image, count)` for each group, in parallel over the tasks, each
/// task making one `state`. The first error `work` returns ends its task and is returned.
pub(crate) fn for_each_image_group<S, E: Send>(
    images: usize,
    group: usize,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize, usize) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let (per_task, group) = task_groups(images, group);
    (0..images.div_ceil(per_task))
        .into_par_iter()
        .try_for_each(|task| {
            let mut state = state();
            let end = images.min((task + 1) * per_task);
            (task * per_task..end)
                .step_by(group)
                .try_for_each(|first| work(&mut state, first, group.min(end - first)))
        })
}

/// A new vector of `len` values made in parallel chunks of `chunk` values (the last may
/// be shorter): each task sets its chunk to `start`, then calls `work(offset, values)`.
/// A `Start::Repeat` pattern restarts at each chunk, so `chunk` must be a multiple of
/// its length.
pub(crate) fn new_values(
    len: usize,
    chunk: usize,
    start: Start<'_>,
    work: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let chunk = chunk.max(1);
    if let Start::Repeat(pattern) = start {
        debug_assert_eq!(
            chunk % pattern.len().max(1),
            0,
            "chunks must hold whole patterns"
        );
    }
    let write = |offset, part: &mut [MaybeUninit<f32>]| work(offset, start.write(part));
    // SAFETY: `Start::write` initializes the whole part before `work` sees it.
    unsafe { new_values_written(len, chunk, write) }
}

/// A new vector of `len` values made in parallel chunks of `chunk` values (the last may
/// be shorter), each task writing its chunk with `write(offset, part)`; nothing is set
/// first, so this is for kernels that write every value rather than add to it.
///
/// # Safety
///
/// `write` must initialize every value of each `part` it is handed (or panic).
pub(crate) unsafe fn new_values_written(
    len: usize,
    chunk: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let chunk = chunk.max(1);
    // SAFETY: `write` initializes all of each part (the caller's promise).
    unsafe { filled(len, chunk, |task, part| write(task * chunk, part)) }
}

/// A new vector of `len` values made in parallel chunks of `chunk` values, each
/// initialized by `init(task, part)`.
///
/// # Safety
///
/// `init` must initialize every value of each `part` it is handed (or panic) before
/// anything reads it.
unsafe fn filled(
    len: usize,
    chunk: usize,
    init: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    if len > 0 {
        values.spare_capacity_mut()[..len]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(task, part)| init(task, part));
    }
    // SAFETY: the chunks cover the first `len` values and each task initialized all of
    // its chunk (the caller's promise); a panic in a task reaches this thread before
    // this line.
    unsafe { values.set_len(len) };
    values
}

/// A rayon pool of `threads` threads, for tests that compare thread counts.
#[cfg(test)]
pub(crate) fn pool_of(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a test's rayon pool")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_starts_as_asked_and_work_sees_each_once() {
        let bias = [1.0, 2.0, 3.0];
        for threads in [1, 2, 3] {
            let pool = pool_of(threads);
            let batch = pool.install(|| {
                new_batch(5, 6, Start::Repeat(&bias), |first, values| {
                    for (i, image) in values.chunks_mut(6).enumerate() {
                        image[0] += 10.0 * (first + i) as f32;
                    }
                })
            });
            let want: Vec<f32> = (0..5)
                .flat_map(|image| [1.0 + 10.0 * image as f32, 2.0, 3.0, 1.0, 2.0, 3.0])
                .collect();
            assert_eq!(batch, want, "{threads} threads");
            for group in [1, 2, 4] {
                let by_groups = pool.install(|| {
                    let state = || 0.0;
                    new_image_groups(
                        5,
                        6,
                        group,
                        Start::Repeat(&bias),
                        state,
                        |_, first, values| {
                            for (i, image) in values.chunks_mut(6).enumerate() {
                                image[0] += 10.0 * (first + i) as f32;
                            }
                        },
                    )
                });
                assert_eq!(by_groups, want, "{threads} threads, groups of {group}");
            }
            assert!(pool
                .install(|| new_image_groups(0, 4, 2, Start::Zeros, || (), |_, _, _| {}))
                .is_empty());
            let squares = |len| {
                let write = |offset: usize, part: &mut [MaybeUninit<f32>]| {
                    for (i, v) in part.iter_mut().enumerate() {
                        v.write(((offset + i) * (offset + i)) as f32);
                    }
                };
                // SAFETY: `write` writes every value of its part.
                pool.install(|| unsafe { new_values_written(len, 4, write) })
            };
            assert_eq!(
                squares(10),
                (0..10).map(|i| (i * i) as f32).collect::<Vec<_>>()
            );
            assert!(squares(0).is_empty());
            let zeros = pool.install(|| new_batch(3, 4, Start::Zeros, |_, _| {}));
            assert_eq!(zeros, vec![0.0; 12]);
            let nothing_to_repeat = pool.install(|| new_batch(2, 3, Start::Repeat(&[]), |_, _| {}));
            assert_eq!(nothing_to_repeat, vec![0.0; 6]);
            assert!(pool
                .install(|| new_batch(0, 4, Start::Zeros, |_, _| {}))
                .is_empty());
        }
    }
}
