//! 1x1 convolution with stride 1 and no padding: the batch's pixels are the rows of
//! one GEMM, `(n*h*w, c) x (c, o)`.
//!
//! The forward pass splits those rows into blocks, one rayon task each (`block_rows`),
//! and in each block starts the output at the bias, adds the product and applies the
//! activation while the block is in the cache: one sweep over the output instead of
//! three (bias, GEMM, activation), which matters in MobileNetV2's and EfficientNet's
//! wide layers (112x112x96 floats per image). The two gradients are one GEMM each.

use super::batch::{cache_block_rows, map_image_groups, Output};
use super::im2col::filter_factors;
use super::{ConvShape, Filter};
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
    map_image_groups(y, pixels, out_len, inputs, block_rows, 0, |y, _, x| {
        let rows = y.len() / s.filters;
        filters.multiply(
            MatRef::row_major(x, rows, s.channels)?,
            MatMut::row_major(y, rows, s.filters)?,
            true,
            false,
        )
    })
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
