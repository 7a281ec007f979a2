//! 1x1 convolution with stride 1 and no padding: the batch's pixels are the rows of
//! one GEMM, `(n*h*w, c) x (c, o)`.
//!
//! The forward pass splits those rows into blocks, one rayon task each (`block_rows`).
//! Each block's product goes to its task's scratch (in the cache), then into the output
//! in one sweep that adds the bias and applies the activation: the output is written
//! once, finished. Before, the output was started at the bias, the GEMM added to it,
//! and another sweep applied the activation. On the Intel Xeon of the benchmark page,
//! the two ways alternating in one process (a scratch program, 40 rounds each, batch
//! 16, 2 threads), the expansion layers of MobileNetV2 and EfficientNet-Lite0 of the
//! `pointwise` bench took 5-16% less time this way, their projections no more or less
//! within the noise (±6%).
//!
//! The product cannot go straight into the new, uninitialized output: [`MatMut`] views
//! initialized values, and the gemm crate copies the edge tiles of its destination
//! into a buffer before writing them back, even when it does not add to them.
//!
//! The two gradients are one GEMM each.

use std::mem::MaybeUninit;

use super::batch::{cache_block_rows, map_image_groups_written, Output};
use super::im2col::filter_factors;
use super::{ConvShape, Filter};
use crate::elementwise::{write_finished_on_this_thread, Unary};
use crate::error::Result;
use crate::gemm::{gemm_in, MatMut, MatRef, RightFactor};
use crate::parallel::{new_batch, Start};

/// The forward pass, its output started and finished as `output` says.
pub(super) fn forward(
    s: &ConvShape,
    x: &[f32],
    f: Filter<'_>,
    output: Output<'_>,
) -> Result<Vec<f32>> {
    // Its groups are blocks of pixels, not images: nothing to hand a pooling.
    debug_assert!(output.reduce.is_none(), "the 1x1 path does not reduce");
    let pixels = s.batch * s.positions();
    // Each pixel an "image" of one row: a group is a block of rows.
    let block_rows = block_rows(pixels, s.channels + s.filters);
    let (inputs, out_len) = ((x, s.channels), s.filters);
    // A block's product goes to its task's scratch, then into the output once, with the
    // bias and the activation: the output is never started nor swept again.
    let product = FinishedProduct {
        filter: &filter_factors(s, f)?[0],
        channels: s.channels,
        filters: s.filters,
        bias: output.start.per_channel(s.filters),
        activation: output.activation,
    };
    let kernel =
        |out: &mut [MaybeUninit<f32>], sums: &mut [f32], x: &[f32]| product.write(x, out, sums);
    // The kernel applies the activation; with no input channels it never runs, and
    // `map_image_groups_written` activates the start.
    let finished_by_kernel = Output {
        activation: output.activation.filter(|_| s.channels == 0),
        ..output
    };
    let scratch_len = block_rows * s.filters;
    // SAFETY: the kernel's only errors come before it writes; after the product,
    // `write_finished_on_this_thread` writes every value of the block (or panics), and
    // nothing de-initializes one.
    unsafe {
        map_image_groups_written(
            finished_by_kernel,
            pixels,
            out_len,
            inputs,
            block_rows,
            scratch_len,
            kernel,
        )
    }
}

/// A 1x1 product finished as it is written: `activation(x * filter + bias)` (the 1x1
/// path has one group: the filter is one `(channels, filters)` matrix).
pub(super) struct FinishedProduct<'a> {
    pub filter: &'a RightFactor<'a>,
    pub channels: usize,
    pub filters: usize,
    pub bias: Option<&'a [f32]>,
    pub activation: Option<Unary>,
}

impl FinishedProduct<'_> {
    /// Writes the finished outputs of the pixels `x` (`channels` values each) into
    /// `out`, every value once: the product into `sums` (scratch, at least as long as
    /// `out`), then one sweep adding the bias and applying the activation.
    pub fn write(&self, x: &[f32], out: &mut [MaybeUninit<f32>], sums: &mut [f32]) -> Result<()> {
        let rows = x.len().checked_div(self.channels).unwrap_or(0);
        let sums = &mut sums[..out.len()];
        self.filter.multiply(
            MatRef::row_major(x, rows, self.channels)?,
            MatMut::row_major(sums, rows, self.filters)?,
            false,
            false,
        )?;
        write_finished_on_this_thread(out, sums, self.bias, self.activation);
        Ok(())
    }
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
