//! How the convolution kernels split a batch over the rayon pool: one task per thread,
//! each with its own scratch buffer, outputs started and finished inside the task per
//! image or group of images (for the 1x1 path, each pixel is an image of one row), and
//! filter gradients summed per task then added in task order (the same numbers on every
//! run with the same thread count).

use std::mem::MaybeUninit;
use std::sync::Mutex;

use rayon::prelude::*;

use super::ConvShape;
use crate::elementwise::{apply_on_this_thread, Unary};
use crate::error::{Result, TensorError};
use crate::parallel::{
    as_uninit, assume_written, for_each_image_group, images_per_task, new_image_groups_written,
    sum_partials, Start,
};

/// About how many bytes of a GEMM's rows (the 1x1 path's input and output pixels,
/// im2col's unrolled patches) one block of a forward pass holds: well inside a core's
/// L2 (1 MiB here), with room for the packed filters. (128 KiB to 1 MiB measured alike
/// on the 1x1 path within this machine's noise.)
const BLOCK_BYTES: usize = 256 * 1024;

/// The rows a block of [`BLOCK_BYTES`] is rounded up to: each block packs the filters
/// again, so a block much shorter than the filters are wide would spend its time
/// packing.
const MIN_BLOCK_ROWS: usize = 192;

/// Rows of `row_values` values each that make a cache-sized block: [`BLOCK_BYTES`] of
/// them, at least [`MIN_BLOCK_ROWS`].
pub(super) fn cache_block_rows(row_values: usize) -> usize {
    let row_bytes = row_values.max(1) * std::mem::size_of::<f32>();
    (BLOCK_BYTES / row_bytes).max(MIN_BLOCK_ROWS)
}

/// How a kernel's new output begins and ends: each image (or group of images) starts
/// as `start` (zeros, or the bias of each filter), the kernel adds its
/// sums, then `activation` (if any) runs on it while it is still in the cache. With a
/// `reduce`, each finished group goes to `reduce(first_image, values)` instead of into
/// the batch (which then comes back empty): a max pooling takes the group while it is
/// still in the cache, and the full output is never written to memory.
#[derive(Clone, Copy)]
pub(super) struct Output<'a> {
    pub start: Start<'a>,
    pub activation: Option<Unary>,
    pub reduce: Option<&'a Reduce<'a>>,
}

/// `reduce(first_image, values)`: takes a group of finished output images.
pub(super) type Reduce<'a> = dyn Fn(usize, &[f32]) + Sync + 'a;

impl Output<'_> {
    /// Zeros, no activation, kept: for gradients.
    pub fn zeros() -> Self {
        Self {
            start: Start::Zeros,
            activation: None,
            reduce: None,
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
    let inputs = (input, in_len);
    map_image_groups(output, images, out_len, inputs, 1, scratch_len, kernel)
}

/// [`map_images`] a group of up to `group` consecutive images at a time (fewer at the
/// end of a task): `kernel(out_images, scratch, in_images)` gets the group's outputs and
/// inputs, for kernels whose products gain from more rows than one image gives.
/// `inputs` is `(input, in_len)`.
pub(super) fn map_image_groups(
    output: Output<'_>,
    images: usize,
    out_len: usize,
    inputs: (&[f32], usize),
    group: usize,
    scratch_len: usize,
    kernel: impl Fn(&mut [f32], &mut [f32], &[f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    // Each group starts as `output.start`, then the kernel adds to it.
    let adding = |out: &mut [MaybeUninit<f32>], scratch: &mut [f32], xs: &[f32]| {
        kernel(output.start.write(out), scratch, xs)
    };
    // SAFETY: `Start::write` initializes every value before the kernel adds to it.
    unsafe { map_image_groups_written(output, images, out_len, inputs, group, scratch_len, adding) }
}

/// [`map_image_groups`] for a kernel that writes every value of its group's outputs
/// itself: no pass writes the start first, so the kernel must begin each value from
/// `output.start` (the bias, or zeros) on its own. An image with no input values
/// (`in_len` 0) is only started (then activated): the kernel never runs on it.
///
/// # Safety
///
/// When `kernel` returns `Ok`, it must have initialized every value of the outputs it
/// was handed (after an error, they are zeroed here); and it must never de-initialize
/// a value (with a `reduce`, it is handed initialized memory).
pub(super) unsafe fn map_image_groups_written(
    output: Output<'_>,
    images: usize,
    out_len: usize,
    (input, in_len): (&[f32], usize),
    group: usize,
    scratch_len: usize,
    kernel: impl Fn(&mut [MaybeUninit<f32>], &mut [f32], &[f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    // One group: the kernel writes its output, then the activation runs.
    let finish = |out: &mut [MaybeUninit<f32>], scratch: &mut [f32], first: usize| {
        let out = match in_len {
            0 => output.start.write(out),
            _ => {
                let count = out.len() / out_len.max(1);
                if let Err(e) = kernel(out, scratch, &input[first * in_len..][..count * in_len]) {
                    out.fill(MaybeUninit::new(0.0));
                    return Err(e);
                }
                // SAFETY: the kernel initialized every value (the caller's promise).
                unsafe { assume_written(out) }
            }
        };
        if let Some(activation) = output.activation {
            apply_on_this_thread(out, activation);
        }
        Ok(())
    };
    if let Some(reduce) = output.reduce {
        // Each group computed in a buffer of its task's own (the task's first group is
        // its largest), then handed on.
        let task = || (vec![0.0; scratch_len], Vec::<f32>::new());
        for_each_image_group(images, group, task, |(scratch, out), first, count| {
            out.resize(count * out_len, 0.0);
            // SAFETY: `out` stays initialized: the kernel never de-initializes a value
            // (the caller's promise), `finish` zeroes the group after an error, and a
            // panic drops the buffer unread.
            finish(unsafe { as_uninit(out) }, scratch, first)?;
            reduce(first, out);
            Ok(())
        })?;
        return Ok(Vec::new());
    }
    let first_error = FirstError::default();
    // Per task: the scratch buffer, and whether a kernel failed (the task's other images
    // are then zeroed).
    let task = || (vec![0.0; scratch_len], false);
    let work = |(scratch, failed): &mut (Vec<f32>, bool), first, out: &mut [MaybeUninit<f32>]| {
        if *failed {
            out.fill(MaybeUninit::new(0.0));
        } else if let Err(e) = finish(out, scratch, first) {
            first_error.keep(e);
            *failed = true;
        }
    };
    // SAFETY: `finish` initializes every value of a group (the kernel's promise, or the
    // start, or zeros after an error), and a failed task zeroes its later groups.
    let values = unsafe { new_image_groups_written(images, out_len, group, task, work) };
    first_error.into_result(values)
}

/// The first error any of a batch's tasks met (the others are dropped).
#[derive(Default)]
struct FirstError(Mutex<Option<TensorError>>);

impl FirstError {
    fn keep(&self, error: TensorError) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(error);
    }

    /// `value`, or the error kept.
    fn into_result<T>(self, value: T) -> Result<T> {
        match self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(value),
        }
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
    let batch = (images, image_len, grads_out, grad_out_len);
    sum_over_image_groups(batch, 1, grad_len, scratch_len, accumulate)
}

/// [`sum_over_images`] for the filter gradient of `s`: `accumulate(dw, scratch,
/// input_image, grad_out_image)` over the batch of inputs `x` and output gradients `dy`.
pub(super) fn sum_filter_gradient(
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
    scratch_len: usize,
    accumulate: impl Fn(&mut [f32], &mut [f32], &[f32], &[f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let (in_len, out_len) = (s.image_len(), s.output_image_len());
    sum_over_images(
        x,
        in_len,
        dy,
        out_len,
        s.filter_len(),
        scratch_len,
        accumulate,
    )
}

/// [`sum_over_images`] a group of up to `group` consecutive images at a time (fewer at
/// the end of a task): `accumulate(grad, scratch, images, grads_out)` gets the group's
/// images and output gradients. `batch` is `(images, image_len, grads_out,
/// grad_out_len)`.
pub(super) fn sum_over_image_groups(
    (images, image_len, grads_out, grad_out_len): (&[f32], usize, &[f32], usize),
    group: usize,
    grad_len: usize,
    scratch_len: usize,
    accumulate: impl Fn(&mut [f32], &mut [f32], &[f32], &[f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let count = images.len() / image_len.max(1);
    let chunk = images_per_task(count);
    let group = group.clamp(1, chunk);
    let partials = images
        .par_chunks((chunk * image_len).max(1))
        .zip(grads_out.par_chunks((chunk * grad_out_len).max(1)))
        .map(|(xs, dys)| {
            let mut grad = vec![0.0; grad_len];
            let mut scratch = vec![0.0; scratch_len];
            for (x, dy) in xs
                .chunks((group * image_len).max(1))
                .zip(dys.chunks((group * grad_out_len).max(1)))
            {
                accumulate(&mut grad, &mut scratch, x, dy)?;
            }
            Ok(grad)
        })
        .collect::<Result<_>>()?;
    Ok(sum_partials(partials, grad_len))
}
