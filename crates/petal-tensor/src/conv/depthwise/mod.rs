//! Depthwise convolution (`groups == c`, each channel with its own `multiplier` filters),
//! the MobileNet/EfficientNet case.
//!
//! # Multiplier 1: register-blocked kernels
//!
//! A direct convolution that touches a whole channel row of the output for every tap
//! is bound by memory. The kernels here instead keep their sums in registers over all
//! `kh * kw` taps and write each result once:
//!
//! - a pass writes *target* pixels from *source* pixels: the forward pass writes output
//!   pixels from input pixels; the input gradient, a transposed depthwise convolution,
//!   writes input pixels (each once, gathering the output gradients that reach it)
//!   from output pixels; the filter gradient walks like the forward pass;
//! - each target row is cut into blocks of up to 8 target pixels that the *same* taps
//!   reach (`plan.rs`): the interior in blocks of 8, then 4, 2, 1; a pixel near the
//!   border (where some taps fall in the padding) in a block of its own, with only its
//!   taps. With stride `s`, the input gradient's blocks run over input pixels `s`
//!   apart (one residue class: the same taps reach them, from neighbouring output
//!   pixels), the classes' blocks interleaved in memory order;
//! - the forward pass cuts its rows differently where they are short (32 outputs or
//!   fewer) and its window slides (2 to 5 taps, stride 1 or 2, no dilation): into
//!   blocks of up to 8 that run across the
//!   borders (`Plan::clipped`), each taking the whole window and loading nothing
//!   (zeros) for the columns in the padding. A 7-pixel row of a 5x5 window was 6
//!   blocks (1, 1, 2, 1, 1, 1 pixels), now it is one of 7. One image, one thread, the
//!   two alternating in one process (a scratch program, medians of 100 rounds of 5
//!   calls, ms, border blocks -> clipped): 7x7x1152 5x5 0.135 -> 0.058, 7x7x960 3x3
//!   0.037 -> 0.022, 14x14x672 5x5 0.149 -> 0.108 and stride 2 0.045 -> 0.031,
//!   14x14x480 3x3 0.050 -> 0.041, 28x28x240 5x5 0.146 -> 0.130. Cut that way too,
//!   112x112x32 3x3 took 0.283 -> 0.278 and 56x56x144 5x5 0.609 -> 0.659 (+8% in two
//!   runs): hence the limit.
//!   With the order of channels below, whole networks (folded, batch 16, 2 threads,
//!   the old and new walks alternating in one process through a scratch switch, 14
//!   rounds of 2 predictions, medians, two runs, img/s): EfficientNet-Lite0 173.9 ->
//!   195.3 and 188.0 -> 202.0, MobileNetV2 230.3 -> 246.6 and 264.3 -> 276.1;
//! - each block runs for every block of 16 channels in turn (one AVX-512 register of
//!   `f32`; a tail of `c % 16` channels takes masked loads and stores) while its
//!   sources are in the L1 cache; the source rows that the same block of the next row
//!   reads and this one does not are prefetched (at stride 1 one row of three;
//!   prefetching all of them, as before, took 7-15% longer on single
//!   EfficientNet-Lite0 layers from 7x7x1152 to 56x56x144). Except on images of 64
//!   channels or more that fit L2, in the forward pass and the filter gradient: there
//!   one block of 16 channels goes through the whole image before the next, its rows
//!   staying in L1 from one block of pixels to the next (`kernels::channels_outer`,
//!   with timings);
//! - the output images start (bias or zeros) one at a time just before their kernel
//!   runs (`batch::map_images`), so that a large image is still cached when the kernel
//!   adds to it; a ReLU or ReLU6 after the forward pass is applied by the kernel as it
//!   stores each result (`Walk::activating`), not in a pass over the image after it;
//! - forward and input gradient ([`kernels::Gather`]): 8 sums in registers, each tap's
//!   16 weights loaded once per block and multiplied into all 8; where a block's column
//!   taps form a window (2 to 5 neighbouring taps, stride 1 or 2: the forward pass
//!   without dilation), the window slides along the row in straight code, each source
//!   vector loaded once for all the pixels that read it, the same bits (forward
//!   GFLOP/s, MobileNetV2 and EfficientNet-Lite0 layers of batch 16, 2 threads: +0% on
//!   112x112x32 up to +115% on 28x28x192, medians of `cargo bench -p petal-tensor
//!   --bench conv -- depthwise/forward`, before and after in turn). The border pixels'
//!   windows of 2 (3x3) and 3 or 4 taps (5x5) slide too: 2-10% less time on single
//!   images of the EfficientNet-Lite0 layers, most on the 7x7 and 14x14 ones, where
//!   the borders are a seventh to two sevenths of the pixels. The filter gradient
//!   ([`kernels::FilterGradient`]): 8 vectors of output gradient in registers, each
//!   tap's 16 gradient values loaded, updated from all 8 pixels and stored once per
//!   block, into one partial gradient per thread, added in task order (the same bits
//!   on every run with the same thread count, as for every kernel here).
//!
//! The vector code is AVX-512F intrinsics when the CPU has it, or arrays of 16 values
//! the compiler vectorizes: [`lanes::Isa::detect`] chooses, once, for all three passes.
//!
//! # Other multipliers
//!
//! The direct kernel of `multiplier.rs`, one tap at a time.

mod kernels;
mod lanes;
mod multiplier;
mod plan;

use self::kernels::{FilterGradient, Gather, Walk};
pub(super) use self::lanes::Isa;
use super::batch::{map_images, sum_filter_gradient, Output};
use super::ConvShape;
use crate::elementwise::Unary;
use crate::error::Result;

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    forward_on(Isa::detect(), s, x, f, output)
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    backward_input_on(Isa::detect(), s, dy, f)
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    backward_filter_on(Isa::detect(), s, x, dy)
}

/// [`forward`] with the vector code `isa`.
pub(super) fn forward_on(
    isa: Isa,
    s: &ConvShape,
    x: &[f32],
    f: &[f32],
    output: Output<'_>,
) -> Result<Vec<f32>> {
    if s.group_filters() != 1 {
        return multiplier::forward(s, x, f, output);
    }
    let pass = ImageForward::new(s, output.activation);
    let output = Output {
        activation: pass.leftover(),
        ..output
    };
    let (out_len, in_len) = (s.output_image_len(), s.image_len());
    map_images(output, s.batch, out_len, x, in_len, 0, |y, _, x| {
        pass.add(isa, y, x, f);
        Ok(())
    })
}

/// The forward pass of one image of `s`, its output started by the caller (by
/// [`forward_on`] per image, by the fused expansion and depthwise pass per band): the
/// kernel applies a ReLU or ReLU6 as it stores each value, where it can, and
/// [`ImageForward::leftover`] names the activation it leaves to a pass of its own.
pub(super) struct ImageForward {
    walk: Walk,
    leftover: Option<Unary>,
}

impl ImageForward {
    /// The pass for shape `s` (multiplier 1), `activation` after it.
    pub fn new(s: &ConvShape, activation: Option<Unary>) -> Self {
        let (walk, leftover) = Walk::forward(s).activating(activation);
        Self { walk, leftover }
    }

    /// Adds the depthwise sums of image `x` with filter `f` to `y`.
    pub fn add(&self, isa: Isa, y: &mut [f32], x: &[f32], f: &[f32]) {
        self.walk.run::<Gather>(isa, y, x, f);
    }

    /// The activation the kernel did not apply.
    pub fn leftover(&self) -> Option<Unary> {
        self.leftover
    }
}

/// [`backward_input`] with the vector code `isa`.
pub(super) fn backward_input_on(
    isa: Isa,
    s: &ConvShape,
    dy: &[f32],
    f: &[f32],
) -> Result<Vec<f32>> {
    if s.group_filters() != 1 {
        return multiplier::backward_input(s, dy, f);
    }
    let walk = Walk::new(s, true);
    let (out_len, in_len) = (s.image_len(), s.output_image_len());
    map_images(
        Output::zeros(),
        s.batch,
        out_len,
        dy,
        in_len,
        0,
        |dx, _, dy| {
            walk.run::<Gather>(isa, dx, dy, f);
            Ok(())
        },
    )
}

/// [`backward_filter`] with the vector code `isa`.
pub(super) fn backward_filter_on(
    isa: Isa,
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
) -> Result<Vec<f32>> {
    if s.group_filters() != 1 {
        return multiplier::backward_filter(s, x, dy);
    }
    let walk = Walk::new(s, false);
    let accumulate = |dw: &mut [f32], _: &mut [f32], x: &[f32], dy: &[f32]| {
        walk.run::<FilterGradient>(isa, dw, x, dy);
        Ok(())
    };
    sum_filter_gradient(s, x, dy, 0, accumulate)
}
