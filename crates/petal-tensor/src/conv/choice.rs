//! Which kernel computes a stride-1 3x3 convolution the Winograd path can take: Petal's
//! choice by shape (documented at the top of [`crate::conv`]), or one set for
//! a stretch of code with [`with_kernel_3x3`] (benchmarks and accuracy studies).

use std::cell::Cell;

use super::winograd::{self, Tile};
use super::ConvShape;
use crate::scoped::with_setting;
use crate::Precision;

/// The kernel for the stride-1 3x3 convolutions with one group and at least 16 channels
/// and filters (the shapes the Winograd path takes; other shapes are unaffected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernel3x3 {
    /// Petal's choice by shape.
    #[default]
    Auto,
    /// im2col and GEMM: the direct convolution's multiplies.
    Im2col,
    /// Winograd F(2x2, 3x3): 2.25x fewer multiplies.
    WinogradF2x2,
    /// Winograd F(4x4, 3x3): 4x fewer multiplies.
    WinogradF4x4,
}

thread_local! {
    static KERNEL: Cell<Kernel3x3> = const { Cell::new(Kernel3x3::Auto) };
}

/// Runs `work` with the 3x3 convolutions it calls on this thread computed by `kernel`
/// (the previous choice comes back afterwards, also on a panic).
///
/// ```
/// use petal_tensor::conv::{conv2d, with_kernel_3x3, Kernel3x3};
/// use petal_tensor::{Conv2dSpec, Tensor};
/// let x = Tensor::from_vec(&[1, 9, 9, 16], (0..1296).map(|i| (i % 7) as f32).collect())?;
/// let f = Tensor::from_vec(&[3, 3, 16, 16], (0..2304).map(|i| (i % 5) as f32 - 2.0).collect())?;
/// let spec = Conv2dSpec::default();
/// let direct = with_kernel_3x3(Kernel3x3::Im2col, || conv2d(&x, &f, None, &spec))?;
/// let f4x4 = with_kernel_3x3(Kernel3x3::WinogradF4x4, || conv2d(&x, &f, None, &spec))?;
/// for (a, b) in direct.as_slice().iter().zip(f4x4.as_slice()) {
///     assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0));
/// }
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn with_kernel_3x3<R>(kernel: Kernel3x3, work: impl FnOnce() -> R) -> R {
    with_setting(&KERNEL, kernel, work)
}

impl Kernel3x3 {
    /// The kernel [`with_kernel_3x3`] set on this thread ([`Kernel3x3::Auto`] outside
    /// any).
    pub fn scoped() -> Self {
        KERNEL.get()
    }
}

/// The tiling the Winograd path computes this convolution with (the same for its
/// three passes), or `None` if it goes elsewhere: a shape the path cannot take, or
/// im2col chosen by [`with_kernel_3x3`].
pub(super) fn winograd_tile(s: &ConvShape) -> Option<Tile> {
    if !winograd::applies(s) {
        return None;
    }
    match Kernel3x3::scoped() {
        Kernel3x3::Auto => Some(auto_tile(s)),
        Kernel3x3::Im2col => None,
        Kernel3x3::WinogradF2x2 => Some(Tile::F2),
        Kernel3x3::WinogradF4x4 => Some(Tile::F4),
    }
}

/// Channels and filters from which F(4x4) runs instead of F(2x2), every pass. `cargo
/// bench -p petal-tensor --bench conv -- kernel3x3` (2 threads, two runs, ms, forward /
/// input gradient / filter gradient):
///
/// | layer | im2col | F(2x2) | F(4x4) |
/// |---|---|---|---|
/// | flowers 16 px 128->256 | 10.4 / 11.2 / 11.1 | 5.8 / 6.5 / 6.8 | 3.9 / 4.8 / 5.0 |
/// | VGG 56 px 128->128 | 10.0 / 9.6 / 9.4 | 5.3 / 5.2 / 6.1 | 3.4 / 3.9 / 4.2 |
/// | flowers2 64 px 32->64 | 23.8 / 13.3 / 12.0 | 18.0 / 9.3 / 11.0 | 15.6 / 7.0 / 6.6 |
/// | mnist2 13 px 32->64 | 1.36 / 1.65 / 1.31 | 1.10 / 1.68 / 1.31 | 1.00 / 1.52 / 1.07 |
///
/// F(4x4) is the faster from 32 channels on, every pass. It rounds worse (up to 3e-5 of
/// the RMS against F(2x2)'s 3e-6, `tests/winograd_accuracy.rs`), far below what
/// training notices; oneDNN also trains with it. Whole training steps, `cargo xtask bench
/// --only mnist-same-train --only flowers-train` (2 threads, three runs alternating
/// with the threshold at 128): the MNIST CNN with 'same' padding 3370-3613 -> 3948-4150
/// images/s (+15%), the flowers CNN 330-344 -> 356-368 (+8%); the Keras MNIST CNN, whose
/// one such layer has 11x11 outputs, is unchanged. Layers of 16 to 31 channels (none in
/// the lecture's networks, not measured) keep F(2x2).
const F4X4_MIN_CHANNELS: usize = 32;

/// Petal's tiling for `s`.
fn auto_tile(s: &ConvShape) -> Tile {
    if s.precision == Precision::Bf16 && bf16_stage_pays(s.channels, s.filters) {
        Tile::F2
    } else {
        f32_tile(s)
    }
}

/// Petal's tiling when the element-wise stage runs in f32.
fn f32_tile(s: &ConvShape) -> Tile {
    if s.channels >= F4X4_MIN_CHANNELS && s.filters >= F4X4_MIN_CHANNELS {
        Tile::F4
    } else {
        Tile::F2
    }
}

/// Whether F(2x2) with its element-wise stage in bf16 (see [`winograd`]'s
/// `StageFilters`) beats F(4x4) in f32 (whose stage stays f32: in bf16 its
/// transforms' large weights leave errors of up to a quarter of the result's RMS,
/// `tests/winograd_accuracy.rs`).
///
/// Per output and pair of channel and filter, F(4x4) multiplies 36/16 = 2.25 times and
/// F(2x2) 16/4 = 4 times, at twice the rate in bf16 (2 f32-multiply units); per output
/// and channel (or filter) each transforms 2.25 and 4 values, at a cost `α` multiplies
/// each. F(2x2) in bf16 is thus the cheaper when `4 (c·o/2 + α (c + o)) < 2.25 (c·o +
/// α (c + o))`, that is when `c·o / (c + o) > 7α`: only wide layers, whose products
/// outweigh their transforms, gain.
///
/// `α` from `cargo bench -p petal-tensor --bench conv -- 'kernel3x3/.*/(f4x4|f2x2_bf16)/'`
/// (2 threads, ms, F(4x4) in f32 -> F(2x2) in bf16; forward in two runs):
///
/// | layer | c·o/(c+o) | forward | input gradient | filter gradient |
/// |---|---|---|---|---|
/// | mnist2 13 px 32->64 | 21 | 1.89 -> 2.38, 1.85 -> 2.58 | 3.45 -> 3.20 | 2.36 -> 2.98 |
/// | flowers2 64 px 32->64 | 21 | 12.6 -> 28.8, 12.6 -> 23.0 | 12.3 -> 16.8 | |
/// | mnist_same2 28 px 32->32 | 16 | 6.6 -> 7.1, 7.3 -> 9.7 | 6.8 -> 8.5 | |
/// | VGG 56 px 128->128 | 64 | 9.7 -> 12.8, 7.5 -> 8.8 | 11.0 -> 13.3 | 11.0 -> 14.3 |
/// | flowers4 16 px 128->256 | 85 | 8.6 -> 8.5, 8.8 -> 7.5 | 9.2 -> 8.5 | 11.7 -> 10.1 |
/// | ResNet18 14 px 256->256 | 128 | 9.8 -> 6.7, 8.2 -> 6.5 | 11.1 -> 7.6 | 15.2 -> 9.0 |
/// | ResNet18 7 px 512->512 | 256 | 15.6 -> 12.9 | 19.4 -> 19.2 | 19.1 -> 11.8 |
///
/// VGG's loss and flowers4's gain put `7α` between 64 and 85; the threshold is their
/// middle. (MNIST-same's 14 px 64->64, `c·o/(c+o)` = 32, also gained, forward 5.3 -> 4.5,
/// filter gradient 5.6 -> 5.2: F(4x4) pads its 14 outputs to 16 there. The rule leaves
/// out the padding, so that a filter's tiling does not depend on the image size, see
/// [`super::PreparedFilter`].)
fn bf16_stage_pays(channels: usize, filters: usize) -> bool {
    channels * filters > BF16_STAGE_MIN_WIDTH * (channels + filters)
}

/// The threshold on `c·o / (c + o)` of [`bf16_stage_pays`].
const BF16_STAGE_MIN_WIDTH: usize = 75;
