//! How the convolution kernels split a batch over the rayon pool: one task per thread,
//! each with its own scratch buffer, outputs started and finished per image inside the
//! task, and filter gradients summed per task then added in task order (the same
//! numbers on every run with the same thread count).

use std::sync::Mutex;

use rayon::prelude::*;

use crate::elementwise::{apply_on_this_thread, Unary};
use crate::error::{Result, TensorError};
use crate::parallel::{images_per_task, new_images, sum_partials, Start};

/// How a kernel's new output begins and ends: each image starts as `start` (zeros, or
/// the bias of each filter), the kernel adds its sums, then `activation` (if any) runs
/// on the image while it is still in the cache.
#[derive(Clone, Copy, Debug)]
pub(super) struct Output<'a> {
    pub start: Start<'a>,
    pub activation: Option<Unary>,
}

impl Output<'_> {
    /// Zeros, no activation: for gradients.
    pub fn zeros() -> Self {
        Self {
            start: Start::Zeros,
            activation: None,
        }
    }
}

/// A new output of `images` images of `out_len` values, made in parallel: each
/// starts as `output` says (just before its kernel runs), then
/// `kernel(out_image, scratch, in_image)` adds to it
/// (`input` holds `in_len` values per image; empty input images add nothing), then
/// the activation runs. The first error a kernel returns stops its task and is
/// returned.
pub(super) fn map_images(
    output: Output<'_>,
    images: usize,
    out_len: usize,
    input: &[f32],
    in_len: usize,
    scratch_len: usize,
    kernel: impl Fn(&mut [f32], &mut [f32], &[f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let first_error: Mutex<Option<TensorError>> = Mutex::new(None);
    // Per task: the scratch buffer, and whether a kernel failed (the task's other images
    // are then only started).
    let task = || (vec![0.0; scratch_len], false);
    let values = new_images(
        images,
        out_len,
        output.start,
        task,
        |(scratch, failed), i, out| {
            if *failed {
                return;
            }
            if in_len > 0 {
                let image = &input[i * in_len..][..in_len];
                if let Err(e) = kernel(out, scratch, image) {
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    *failed = true;
                    return;
                }
            }
            if let Some(activation) = output.activation {
                apply_on_this_thread(out, activation);
            }
        },
    );
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

/// Sums `accumulate(grad, scratch, image, grad_out_image)` over the batch into a
/// gradient of `grad_len` values; the first error `accumulate` returns is returned.
pub(super) fn sum_over_images(
    images: &[f32],
    image_len: usize,
    grads_out: &[f32],
    grad_out_len: usize,
    grad_len: usize,
    scratch_len: usize,
    accumulate: impl Fn(&mut [f32], &mut [f32], &[f32], &[f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let count = images.len() / image_len.max(1);
    let chunk = images_per_task(count);
    let partials = images
        .par_chunks((chunk * image_len).max(1))
        .zip(grads_out.par_chunks((chunk * grad_out_len).max(1)))
        .map(|(xs, dys)| {
            let mut grad = vec![0.0; grad_len];
            let mut scratch = vec![0.0; scratch_len];
            for (x, dy) in xs
                .chunks(image_len.max(1))
                .zip(dys.chunks(grad_out_len.max(1)))
            {
                accumulate(&mut grad, &mut scratch, x, dy)?;
            }
            Ok(grad)
        })
        .collect::<Result<_>>()?;
    Ok(sum_partials(partials, grad_len))
}
