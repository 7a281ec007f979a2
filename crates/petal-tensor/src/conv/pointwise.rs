//! 1x1 convolution with stride 1 and no padding: the batch's pixels are the rows of
//! one GEMM, `(n*h*w, c) x (c, o)`.
//!
//! The forward pass splits those rows into blocks, one rayon task each (`block_rows`).
//! Each block's product goes to its task's scratch (in the cache), then into the output
//! in one sweep that adds the bias and applies the activation: the output is written
//! once, finished. Against starting the output at the bias for the GEMM to add to,
//! then sweeping it again for the activation, this took 5-16% less time on the
//! expansion layers of MobileNetV2 and EfficientNet-Lite0 (112x112x96 floats per image
//! in the widest) and about as much on their projections, the two ways alternating in
//! one process. The GEMM cannot write the output directly, uninitialized: the gemm
//! crate reads its destination's edge tiles even when told not to add to them. The two gradients are one GEMM each.

use std::mem::MaybeUninit;

use super::batch::{cache_block_rows, map_image_groups_written, Output};
use super::im2col::filter_factors;
use super::{ConvShape, Filter};
use crate::elementwise::write_finished_on_this_thread;
use crate::error::Result;
use crate::gemm::{gemm_in, MatMut, MatRef};
use crate::parallel::{new_batch, Start};

/// The forward pass, its output started and finished as `y` says.
pub(super) fn forward(s: &ConvShape, x: &[f32], f: Filter<'_>, y: Output<'_>) -> Result<Vec<f32>> {
    // Its groups are blocks of pixels, not images: nothing to hand a pooling.
    debug_assert!(y.reduce.is_none(), "the 1x1 path does not reduce");
    let pixels = s.batch * s.positions();
    // The 1x1 path has one group: the filter is one (c, o) matrix.
    let filters = &filter_factors(s, f)?[0];
    // Each pixel an "image" of one row: a group is a block of rows.
    let block_rows = block_rows(pixels, s.channels + s.filters);
    let (inputs, out_len) = ((x, s.channels), s.filters);
    let (bias, activation) = (y.start.per_channel(s.filters), y.activation);
    // A block's product goes to its task's scratch, then into the output once, with the
    // bias and the activation: the output is never started nor swept again.
    let kernel = |y: &mut [MaybeUninit<f32>], sums: &mut [f32], x: &[f32]| {
        let rows = y.len() / s.filters;
        let sums = &mut sums[..y.len()];
        filters.multiply(
            MatRef::row_major(x, rows, s.channels)?,
            MatMut::row_major(sums, rows, s.filters)?,
            false,
            false,
        )?;
        write_finished_on_this_thread(y, sums, bias, activation);
        Ok(())
    };
    // The kernel applies the activation; with no input channels it never runs, and the
    // output (its start) is activated for it.
    let y = match s.channels {
        0 => y,
        _ => Output {
            activation: None,
            ..y
        },
    };
    let scratch_len = block_rows * s.filters;
    // SAFETY: `write_finished_on_this_thread` writes every value of each block (or
    // panics), and nothing de-initializes one.
    unsafe { map_image_groups_written(y, pixels, out_len, inputs, block_rows, scratch_len, kernel) }
}

/// Rows per forward block for `pixels` rows of `row_values` input and output values:
/// the block count that cache-sized blocks ([`cache_block_rows`]) give, rounded up to
/// a multiple of the thread count, then the rows split evenly (so that each thread's
/// share of the rows cuts into even blocks, not full blocks and a runt; a block may end
/// up shorter than the floor).
pub(super) fn block_rows(pixels: usize, row_values: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let blocks = pixels
        .div_ceil(cache_block_rows(row_values))
        .next_multiple_of(threads);
    pixels.div_ceil(blocks.max(1)).max(1)
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    let pixels = s.batch * s.positions();
    let mut dx = new_batch(pixels, s.channels, Start::Zeros, |_, _| {});
    gemm_in(
        s.precision,
        MatRef::row_major(dy, pixels, s.filters)?,
        MatRef::row_major(f, s.channels, s.filters)?.t(),
        MatMut::row_major(&mut dx, pixels, s.channels)?,
        false,
        true,
    )?;
    Ok(dx)
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let pixels = s.batch * s.positions();
    let mut dw = vec![0.0; s.filter_len()];
    gemm_in(
        s.precision,
        MatRef::row_major(x, pixels, s.channels)?.t(),
        MatRef::row_major(dy, pixels, s.filters)?,
        MatMut::row_major(&mut dw, s.channels, s.filters)?,
        false,
        true,
    )?;
    Ok(dw)
}
