//! How batch work is split over the rayon pool.

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

/// Adds the per-task partial sums in task order (deterministic for a thread count).
pub(crate) fn sum_partials(mut partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut total = partials.pop().unwrap_or_else(|| vec![0.0; len]);
    for partial in partials.iter().rev() {
        for (t, p) in total.iter_mut().zip(partial) {
            *t += p;
        }
    }
    total
}
