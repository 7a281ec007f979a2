//! How the convolution kernels split a batch over the rayon pool: one task per thread,
//! each with its own scratch buffer, and filter gradients summed per task then added
//! in task order (the same numbers on every run with the same thread count).

use rayon::prelude::*;

use crate::parallel::{images_per_task, sum_partials};

/// Calls `kernel(out_image, scratch, in_image)` for every image, in parallel; `out` and
/// `input` hold `out_len` and `in_len` values per image.
pub(super) fn for_each_image(
    out: &mut [f32],
    out_len: usize,
    input: &[f32],
    in_len: usize,
    scratch_len: usize,
    kernel: impl Fn(&mut [f32], &mut [f32], &[f32]) + Sync,
) {
    let images = input.len() / in_len.max(1);
    let chunk = images_per_task(images);
    out.par_chunks_mut((chunk * out_len).max(1))
        .zip(input.par_chunks((chunk * in_len).max(1)))
        .for_each(|(outs, ins)| {
            let mut scratch = vec![0.0; scratch_len];
            for (o, i) in outs
                .chunks_mut(out_len.max(1))
                .zip(ins.chunks(in_len.max(1)))
            {
                kernel(o, &mut scratch, i);
            }
        });
}

/// Sums `accumulate(grad, scratch, image, grad_out_image)` over the batch into a
/// gradient of `grad_len` values.
pub(super) fn sum_over_images(
    images: &[f32],
    image_len: usize,
    grads_out: &[f32],
    grad_out_len: usize,
    grad_len: usize,
    scratch_len: usize,
    accumulate: impl Fn(&mut [f32], &mut [f32], &[f32], &[f32]) + Sync,
) -> Vec<f32> {
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
                accumulate(&mut grad, &mut scratch, x, dy);
            }
            grad
        })
        .collect();
    sum_partials(partials, grad_len)
}
