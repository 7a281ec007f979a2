//! Convolutions whose patch (`kh * kw * c`) is small, like a network's first layer on
//! grey or RGB images. The two products run in register-blocked kernels made for this
//! shape: with an inner dimension of 9 or 27 a general GEMM spends its time packing,
//! and a loop per tap (this module's first version) spent it on loop overhead. Vectors
//! run along the filters, one register at a time (16 with AVX-512); `pulp` compiles the
//! kernels for AVX-512, AVX2 + FMA and portable code and picks one at run time.
//!
//! The forward pass reads a block's patches in place from the image where it can
//! ([`Windows`]) and unrolls only the blocks that touch the padding. Unrolling every
//! patch, as im2col does, took a third of the forward time on Keras MNIST's first
//! layer; in place, one thread's forward pass went from 3.07 / 2.87 / 3.09 ms to
//! 1.92 / 2.00 / 1.98 ms (128x28x28x1 -> 32, valid) and from 33.6 / 38.7 / 36.5 ms to
//! 21.4 / 20.7 / 21.3 ms (32x128x128x3 -> 32, same): three alternating runs of a timing
//! program, medians of 300 and 40 calls. Blocks then ran across output rows, and those
//! that wrapped to the next row (a third of them on the 26 columns of Keras MNIST's
//! first layer) were unrolled; now each row is split into blocks of near-equal size:
//! `cargo bench -p petal-tensor --bench conv -- forward`, five alternating runs,
//! medians, 1 / 2 threads, ms: 1.81 -> 1.34 / 1.05 -> 0.78, fused with its pooling
//! 1.60 -> 1.36 on 2 threads; flowers 128 px unchanged.
//!
//! Each output row's sums then go from scratch (in L1) into the output once, with the
//! bias and the activation, and the kernel gives each patch value to two vectors of
//! filters at a time where AVX-512's 32 registers hold their sums. Before, each image
//! was started at the bias, the kernel added to it one vector of filters at a time,
//! and another sweep applied the activation. The two ways alternating in one process
//! (a scratch program, 30 rounds of 5 calls, medians, 2 threads), on the Intel Xeon
//! of the benchmark page, in two runs: MobileNetV2's stem (16x224x224x3 -> 32, stride
//! 2, ReLU6) -35% / -28%, flowers' first layer (32x128x128x3 -> 32, same) -28% / -25%
//! (-25% / -32% fused with its pooling), Keras MNIST's (128x28x28x1 -> 32, valid)
//! -35% / -45% (-20% / -31% pooled), the same bits (32 filters). Filters past the last
//! full vector now also sum from zero and take the bias last, where they started at the
//! bias: their last bit may differ from before.
//!
//! With AVX-512 and 64 filters or more, each patch value goes to four vectors of
//! filters at once, in blocks of 6 pixels (24 sums in registers): one broadcast for
//! every 4 multiply-adds, where two vectors in blocks of 8 took one for every 2. 2 threads, a timing
//! program alternating the ways, medians of 10 rounds of 3 calls: ResNet's stem
//! (16x224x224x3 -> 64, 7x7 stride 2, which [`takes_image`] sends here) 19.5-19.8 ms ->
//! 16.3-16.4 ms; VGG16's first layer (16x224x224x3 -> 64, 3x3) 25.5 -> 23.0 ms;
//! MobileNetV2's stem (32 filters) does not take it and is unchanged.
//!
//! The filter gradient reads its patches in place the same way, a stretch of an output
//! row at a time, and sums a 9-value patch in one block of 9 accumulators (it unrolled
//! every patch, then summed 8 taps and 1): `cargo bench -p petal-tensor --bench conv --
//! filter_grad`, five alternating runs, medians, 1 / 2 threads, ms: Keras MNIST's first
//! layer 2.04 -> 1.20 / 1.24 -> 0.70, flowers 128 px 3 -> 32 (same padding, the edge
//! positions still unrolled) 20.7 -> 19.2 / 11.8 -> 10.9. The input gradient takes the
//! im2col path (a first layer's input rarely needs one).

use std::mem::MaybeUninit;
use std::ops::Range;

use pulp::{Arch, Simd, WithSimd};

use super::batch::{map_image_groups_written, sum_filter_gradient, sum_over_images, Output};
use super::im2col::fill_columns;
use super::ConvShape;
use crate::elementwise::write_finished_on_this_thread;
use crate::error::Result;
use crate::parallel::as_uninit;
use crate::pool::PooledGradient;
use crate::simd::{add_to, load, store};

/// Patches up to this long take the direct path.
pub(super) const MAX_PATCH: usize = 32;
/// Longer patches of images with at most [`IMAGE_CHANNELS`] channels take the forward
/// kernel up to this length (see [`takes_image`]).
const MAX_IMAGE_PATCH: usize = 160;
/// Grey, RGB or RGBA.
const IMAGE_CHANNELS: usize = 4;

/// Whether the forward pass of a first layer on images with a patch longer than
/// [`MAX_PATCH`] runs here rather than through im2col: one group of at most
/// [`IMAGE_CHANNELS`] channels, a patch up to [`MAX_IMAGE_PATCH`]. im2col unrolls such a
/// patch in runs of a few values (7 runs of 21 for ResNet's stem) that take as long as
/// copying; read in place, the stem (16x224x224x3 -> 64, 7x7 stride 2, ReLU, 2 threads)
/// took 16.2-16.4 ms against 18.4-18.9 through im2col (2 threads, the two ways
/// alternating in one process; the same bits in that program).
pub(super) fn takes_image(s: &ConvShape) -> bool {
    s.groups == 1 && s.channels <= IMAGE_CHANNELS && s.patch_len() <= MAX_IMAGE_PATCH
}

/// Output pixels per block of the forward kernel (one accumulator register each, per
/// vector of filters).
const ROWS: usize = 8;
/// The same when each patch value goes to four vectors of filters at once (see
/// [`takes_four_vectors`]): 6 x 4 sums, the four filter vectors and the broadcast value
/// fill 29 of AVX-512's 32 registers.
const QUAD_ROWS: usize = 6;
/// Most patch entries per block of the filter-gradient kernel (one accumulator each):
/// a patch is split into blocks of near-equal size, so that no block is left with one
/// or two accumulators waiting on each other's latency (9 taps in one block, 27 in 3).
const TAPS: usize = 12;
/// Output positions (whole output rows, at least one) per block of the filter
/// gradient: 128 positions of a 27-value patch and of 32 filters' gradients are 30 KB,
/// within L1.
const GRADIENT_POSITIONS: usize = 128;
// `Gradients::add` has a kernel for each block of 1 to 12 taps, and `Block::add_rows`
// one for each count of rows up to 8.
const _: () = assert!(TAPS == 12 && ROWS == 8);

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    let windows = Windows::new(s);
    let row_len = s.cols.output * s.filters;
    let bias = output.start.per_channel(s.filters);
    // Each output row's sums go to scratch (in L1), then into the output once, with the
    // bias and the activation.
    let kernel = |out: &mut [MaybeUninit<f32>], scratch: &mut [f32], xi: &[f32]| {
        let (columns, row_sums) = scratch.split_at_mut(ROWS * s.patch_len());
        Arch::new().dispatch(PatchProducts {
            windows: &windows,
            image: xi,
            columns,
            filters: f,
            row_sums,
            finish: &mut |oy, sums| {
                let out = &mut out[oy * row_len..][..row_len];
                write_finished_on_this_thread(out, sums, bias, output.activation);
            },
        });
        Ok(())
    };
    // The kernel applies the activation; with no input values it never runs, and
    // `map_image_groups_written` activates the start.
    let finished_by_kernel = Output {
        activation: output.activation.filter(|_| s.image_len() == 0),
        ..output
    };
    let inputs = (x, s.image_len());
    let scratch_len = ROWS * s.patch_len() + row_len;
    // SAFETY: the kernel never fails, and `finish` writes every value of each output row
    // (`write_finished_on_this_thread` writes all it is handed, or panics); nothing
    // de-initializes one.
    unsafe {
        map_image_groups_written(
            finished_by_kernel,
            s.batch,
            s.output_image_len(),
            inputs,
            1,
            scratch_len,
            kernel,
        )
    }
}

/// Where the patches of a stretch of output positions in one output row are, inside
/// the image: when their windows lie inside the image, patch row `r`, entry `t` is the
/// image value at `start + r * step + offsets[t]`, where `start` is
/// [`Windows::window_start`] of the first, so the kernel reads it there and nothing is
/// unrolled. Stretches that touch the padding are unrolled into a small buffer first
/// (`fill_columns`).
struct Windows<'a> {
    shape: &'a ConvShape,
    /// The output rows and columns whose windows lie inside the image.
    inside: (Range<usize>, Range<usize>),
    /// Image offset of each patch entry from its window's first value.
    offsets: Vec<usize>,
    /// `0, 1, ..`: the same for a block unrolled into rows of the patch's length.
    unrolled: Vec<usize>,
    /// Image values between the windows of neighbouring output positions in a row.
    step: usize,
}

impl<'a> Windows<'a> {
    fn new(s: &'a ConvShape) -> Self {
        let (r, c, channels) = (&s.rows, &s.cols, s.channels);
        let offsets = (0..r.kernel)
            .flat_map(|ky| (0..c.kernel).map(move |kx| (ky, kx)))
            .flat_map(|(ky, kx)| {
                let pixel = ky * r.dilation * c.input + kx * c.dilation;
                (0..channels).map(move |ch| pixel * channels + ch)
            })
            .collect();
        Self {
            shape: s,
            inside: (r.inside_outputs(), c.inside_outputs()),
            offsets,
            unrolled: (0..s.patch_len()).collect(),
            step: c.stride * channels,
        }
    }

    /// The output columns of output row `oy` whose windows lie inside the image.
    fn inside_columns(&self, oy: usize) -> Range<usize> {
        let (rows, cols) = &self.inside;
        if rows.contains(&oy) {
            cols.clone()
        } else {
            0..0
        }
    }

    /// Output row `oy` as up to three stretches of columns `(columns, in_place)`: those
    /// whose windows lie inside the image (read in place) between those by the padding
    /// (unrolled), empty stretches left out.
    fn row_stretches(&self, oy: usize) -> impl Iterator<Item = (Range<usize>, bool)> {
        let (inside, ow) = (self.inside_columns(oy), self.shape.cols.output);
        let stretches = [
            (0..inside.start, false),
            (inside.clone(), true),
            (inside.end..ow, false),
        ];
        stretches.into_iter().filter(|(cols, _)| !cols.is_empty())
    }

    /// The image offset of the window of output `(oy, ox)`, which lies inside the image.
    fn window_start(&self, oy: usize, ox: usize) -> usize {
        let (r, c) = (&self.shape.rows, &self.shape.cols);
        let (iy, ix) = (oy * r.stride - r.pad_before, ox * c.stride - c.pad_before);
        (iy * c.input + ix) * self.shape.channels
    }

    /// The patches of output positions whose first window starts at `image[0]`.
    fn in_place(&'a self, image: &'a [f32]) -> Patches<'a> {
        Patches {
            values: image,
            step: self.step,
            offsets: &self.offsets,
        }
    }

    /// The patches unrolled into `columns`, one patch after another.
    fn unrolled(&'a self, columns: &'a [f32]) -> Patches<'a> {
        Patches {
            values: columns,
            step: self.shape.patch_len(),
            offsets: &self.unrolled,
        }
    }
}

/// The patches of a stretch of output positions: patch `r`, entry `t` is
/// `values[r * step + offsets[t]]`, read in place from an image or from unrolled rows.
#[derive(Clone, Copy)]
struct Patches<'a> {
    values: &'a [f32],
    step: usize,
    offsets: &'a [usize],
}

/// `patches * filters` for one image, an output row at a time: `filters (patch, o)`
/// row-major, the patches read in place from `image` or unrolled into `columns`; each
/// row's sums go to `row_sums`, then to `finish(row, row_sums)`.
struct PatchProducts<'a> {
    windows: &'a Windows<'a>,
    image: &'a [f32],
    columns: &'a mut [f32],
    filters: &'a [f32],
    row_sums: &'a mut [f32],
    finish: &'a mut dyn FnMut(usize, &[f32]),
}

impl WithSimd for PatchProducts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            windows,
            image,
            columns,
            filters,
            row_sums,
            finish,
        } = self;
        let s = windows.shape;
        let (patch, o, ow) = (s.patch_len(), s.filters, s.cols.output);
        // Each output row in blocks of near-equal size (26 columns as 7, 7, 6 and 6),
        // none wrapping to the next row, so that a valid layer unrolls nothing.
        let most = match takes_four_vectors::<S>(o) {
            true => QUAD_ROWS,
            false => ROWS,
        };
        for oy in 0..s.rows.output {
            let inside = windows.inside_columns(oy);
            for block in near_equal_blocks(ow, most) {
                let (first, rows) = (oy * ow + block.start, block.len());
                let patches = if inside.start <= block.start && block.end <= inside.end {
                    windows.in_place(&image[windows.window_start(oy, block.start)..])
                } else {
                    let columns = &mut columns[..rows * patch];
                    fill_columns(s, image, 0, first..first + rows, columns);
                    windows.unrolled(columns)
                };
                Block {
                    patches,
                    filters,
                    y: &mut row_sums[block.start * o..block.end * o],
                    o,
                }
                .write_rows(simd, rows);
            }
            finish(oy, &row_sums[..ow * o]);
        }
    }
}

/// One block of output positions, its `patches` and its outputs `y`, `(rows, o)`.
struct Block<'a> {
    patches: Patches<'a>,
    filters: &'a [f32],
    y: &'a mut [f32],
    o: usize,
}

impl Block<'_> {
    /// [`Block::write`] for `rows` rows, 1 to [`ROWS`].
    #[inline(always)]
    fn write_rows<S: Simd>(self, simd: S, rows: usize) {
        match rows {
            ROWS => self.write::<S, ROWS>(simd),
            1 => self.write::<S, 1>(simd),
            2 => self.write::<S, 2>(simd),
            3 => self.write::<S, 3>(simd),
            4 => self.write::<S, 4>(simd),
            5 => self.write::<S, 5>(simd),
            6 => self.write::<S, 6>(simd),
            _ => self.write::<S, 7>(simd),
        }
    }

    /// `y = patches * filters` for a block of `R` rows: rows outside, filters inside,
    /// so the block's patches stay in L1 for every vector of filters; filters past the
    /// last full vector one value at a time.
    #[inline(always)]
    fn write<S: Simd, const R: usize>(self, simd: S) {
        let Self {
            patches,
            filters,
            y,
            o,
        } = self;
        let lanes = S::F32_LANES;
        let vector_filters = o / lanes * lanes;
        // Four vectors of filters per pass in blocks of up to `QUAD_ROWS` rows, else two
        // where the registers hold their 2R sums (32 registers with AVX-512): each patch
        // value is broadcast once for all of them.
        let mut lane0 = 0;
        if R <= QUAD_ROWS && takes_four_vectors::<S>(vector_filters) {
            while lane0 + 4 * lanes <= vector_filters {
                write_vectors::<S, R, 4>(simd, patches, filters, y, o, lane0);
                lane0 += 4 * lanes;
            }
        }
        if lanes >= 16 {
            while lane0 + 2 * lanes <= vector_filters {
                write_vectors::<S, R, 2>(simd, patches, filters, y, o, lane0);
                lane0 += 2 * lanes;
            }
        }
        for lane0 in (lane0..vector_filters).step_by(lanes) {
            write_vectors::<S, R, 1>(simd, patches, filters, y, o, lane0);
        }
        if vector_filters == o {
            return;
        }
        let Patches {
            values,
            step,
            offsets,
        } = patches;
        for r in 0..R {
            let y = &mut y[r * o + vector_filters..(r + 1) * o];
            y.fill(0.0);
            for (t, &offset) in offsets.iter().enumerate() {
                let v = values[r * step + offset];
                for (y, &w) in y.iter_mut().zip(&filters[t * o + vector_filters..]) {
                    *y += v * w;
                }
            }
        }
    }
}

/// Whether blocks give each patch value to four vectors of filters at once: with
/// AVX-512's 32 registers, for layers of at least four vectors of filters (64).
fn takes_four_vectors<S: Simd>(filters: usize) -> bool {
    S::F32_LANES >= 16 && filters >= 4 * S::F32_LANES
}

/// `y = patches * filters` for `R` rows and the `V` vectors of filters from `lane0`.
#[inline(always)]
fn write_vectors<S: Simd, const R: usize, const V: usize>(
    simd: S,
    patches: Patches<'_>,
    filters: &[f32],
    y: &mut [f32],
    o: usize,
    lane0: usize,
) {
    let lanes = S::F32_LANES;
    let Patches {
        values,
        step,
        offsets,
    } = patches;
    let mut acc = [[simd.splat_f32s(0.0); V]; R];
    for (t, &offset) in offsets.iter().enumerate() {
        let w: [S::f32s; V] =
            std::array::from_fn(|v| load::<S>(&filters[t * o + lane0 + v * lanes..]));
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = simd.splat_f32s(values[r * step + offset]);
            for (acc, &w) in acc.iter_mut().zip(&w) {
                *acc = simd.mul_add_e_f32s(x, w, *acc);
            }
        }
    }
    for (r, acc) in acc.into_iter().enumerate() {
        for (v, acc) in acc.into_iter().enumerate() {
            store::<S>(&mut y[r * o + lane0 + v * lanes..], acc);
        }
    }
}

/// `0..len` in the fewest blocks of at most `most`, their sizes differing by at most
/// one (the larger first): kernels with one accumulator per entry of a block keep
/// several in flight in every block.
fn near_equal_blocks(len: usize, most: usize) -> impl Iterator<Item = Range<usize>> {
    let blocks = len.div_ceil(most.max(1));
    (0..blocks).scan(0, move |start, block| {
        let size = len / blocks + usize::from(block < len % blocks);
        *start += size;
        Some(*start - size..*start)
    })
}

/// The filter gradient from the output gradient `dy`, full-size or routed from a max
/// pooling a block of rows at a time (the gradient of a convolution fused with its
/// pooling: the rows are routed into scratch memory just before they are read, so the
/// full-size gradient is never written to memory and read back).
pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: GradientRows<'_>) -> Result<Vec<f32>> {
    let windows = Windows::new(s);
    let block_rows = (GRADIENT_POSITIONS / s.cols.output).max(1);
    let columns_len = block_rows * s.cols.output * s.patch_len();
    // Output gradient values per output row.
    let row_len = s.cols.output * s.filters;
    let blocks = move || {
        (0..s.rows.output)
            .step_by(block_rows)
            .map(move |oy| oy..s.rows.output.min(oy + block_rows))
    };
    match dy {
        GradientRows::Full(dy) => {
            let accumulate = |dw: &mut [f32], columns: &mut [f32], xi: &[f32], dyi: &[f32]| {
                for rows in blocks() {
                    let dy_rows = &dyi[rows.start * row_len..];
                    add_row_gradients(&windows, xi, dy_rows, rows, columns, dw);
                }
                Ok(())
            };
            sum_filter_gradient(s, x, dy, columns_len, accumulate)
        }
        GradientRows::Pooled(pooled) => {
            // Where image `xi`, a slice of the batch `x`, sits in it.
            let image_at = |xi: &[f32]| {
                (xi.as_ptr() as usize - x.as_ptr() as usize)
                    / (s.image_len() * size_of::<f32>()).max(1)
            };
            let accumulate = |dw: &mut [f32], scratch: &mut [f32], xi: &[f32], _: &[f32]| {
                let (columns, band) = scratch.split_at_mut(columns_len);
                for rows in blocks() {
                    let dy_rows = &mut band[..rows.len() * row_len];
                    // SAFETY: `route_rows` writes only f32 values through it.
                    pooled.route_rows(image_at(xi), rows.start, unsafe { as_uninit(dy_rows) });
                    add_row_gradients(&windows, xi, dy_rows, rows, columns, dw);
                }
                Ok(())
            };
            let scratch_len = columns_len + block_rows * row_len;
            // Each image of `x` twice: the output gradient comes from `pooled`.
            sum_over_images(
                x,
                s.image_len(),
                x,
                s.image_len(),
                s.filter_len(),
                scratch_len,
                accumulate,
            )
        }
    }
}

/// Where a filter gradient reads the output gradient.
pub(super) enum GradientRows<'a> {
    /// The output gradient itself.
    Full(&'a [f32]),
    /// A max pooling's gradient, whose windows are apart, routed rows at a time.
    Pooled(&'a PooledGradient<'a>),
}

/// `dw += patchesᵀ * dy` over the output rows `rows` of one image (`dy` from the first
/// of them on): in each row, the positions whose windows lie inside the image read their
/// patches in place, the others (by the padding) are unrolled into `columns` first.
fn add_row_gradients(
    windows: &Windows<'_>,
    image: &[f32],
    dy: &[f32],
    rows: Range<usize>,
    columns: &mut [f32],
    dw: &mut [f32],
) {
    let s = windows.shape;
    let (ow, o, patch) = (s.cols.output, s.filters, s.patch_len());
    // The part of `columns` no unrolled stretch has taken yet.
    let mut free = columns;
    let mut stretches = Vec::with_capacity(3 * rows.len());
    let rows_start = rows.start;
    for oy in rows {
        for (cols, in_place) in windows.row_stretches(oy) {
            let (first, positions) = (oy * ow + cols.start, cols.len());
            let patches = if in_place {
                windows.in_place(&image[windows.window_start(oy, cols.start)..])
            } else {
                let (taken, rest) = std::mem::take(&mut free).split_at_mut(positions * patch);
                fill_columns(s, image, 0, first..first + positions, taken);
                free = rest;
                windows.unrolled(taken)
            };
            let from = first - rows_start * ow;
            let dy = &dy[from * o..(from + positions) * o];
            stretches.push(Stretch {
                patches,
                dy,
                positions,
            });
        }
    }
    Arch::new().dispatch(Gradients {
        stretches: &stretches,
        dw,
        patch,
        o,
    });
}

/// The patches of a stretch of `positions` output positions and their output
/// gradients `(positions, o)`.
struct Stretch<'a> {
    patches: Patches<'a>,
    dy: &'a [f32],
    positions: usize,
}

/// `dw (patch, o) += patchesᵀ * dy` summed over `stretches`.
struct Gradients<'a> {
    stretches: &'a [Stretch<'a>],
    dw: &'a mut [f32],
    patch: usize,
    o: usize,
}

impl WithSimd for Gradients<'_> {
    type Output = ();

    /// For each vector of filters, the patch's entries in blocks of near-equal size of
    /// at most [`TAPS`] (each block one pass over the stretches); the filters past the
    /// last vector one value at a time.
    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let (patch, o) = (self.patch, self.o);
        let vector_filters = o / S::F32_LANES * S::F32_LANES;
        for lane0 in (0..vector_filters).step_by(S::F32_LANES) {
            for taps in near_equal_blocks(patch, TAPS) {
                self.tap_block_of(simd, taps.len(), taps.start, lane0);
            }
        }
        for Stretch { patches, dy, .. } in self.stretches {
            for (r, dy) in dy.chunks_exact(o).enumerate() {
                let values = &patches.values[r * patches.step..];
                let (dw, dy) = (self.dw.chunks_exact_mut(o), &dy[vector_filters..]);
                for (dw, &offset) in dw.zip(patches.offsets) {
                    for (dw, g) in dw[vector_filters..].iter_mut().zip(dy) {
                        *dw += values[offset] * g;
                    }
                }
            }
        }
    }
}

impl Gradients<'_> {
    /// [`Gradients::tap_block`] for `taps` entries, 1 to [`TAPS`].
    #[inline(always)]
    fn tap_block_of<S: Simd>(&mut self, simd: S, taps: usize, t0: usize, lane0: usize) {
        match taps {
            1 => self.tap_block::<S, 1>(simd, t0, lane0),
            2 => self.tap_block::<S, 2>(simd, t0, lane0),
            3 => self.tap_block::<S, 3>(simd, t0, lane0),
            4 => self.tap_block::<S, 4>(simd, t0, lane0),
            5 => self.tap_block::<S, 5>(simd, t0, lane0),
            6 => self.tap_block::<S, 6>(simd, t0, lane0),
            7 => self.tap_block::<S, 7>(simd, t0, lane0),
            8 => self.tap_block::<S, 8>(simd, t0, lane0),
            9 => self.tap_block::<S, 9>(simd, t0, lane0),
            10 => self.tap_block::<S, 10>(simd, t0, lane0),
            11 => self.tap_block::<S, 11>(simd, t0, lane0),
            _ => self.tap_block::<S, TAPS>(simd, t0, lane0),
        }
    }

    /// Gradients of patch entries `t0..t0 + N` for the vector of filters from `lane0`,
    /// summed over every position of every stretch.
    #[inline(always)]
    fn tap_block<S: Simd, const N: usize>(&mut self, simd: S, t0: usize, lane0: usize) {
        let o = self.o;
        let mut acc = [simd.splat_f32s(0.0); N];
        for Stretch {
            patches,
            dy,
            positions,
        } in self.stretches
        {
            // In registers for the stretch (and no division to count its positions).
            let offsets: [usize; N] = std::array::from_fn(|t| patches.offsets[t0 + t]);
            for r in 0..*positions {
                let g = load::<S>(&dy[r * o + lane0..]);
                let values = &patches.values[r * patches.step..];
                for (acc, &offset) in acc.iter_mut().zip(&offsets) {
                    *acc = simd.mul_add_e_f32s(simd.splat_f32s(values[offset]), g, *acc);
                }
            }
        }
        for (t, acc) in acc.into_iter().enumerate() {
            add_to(simd, &mut self.dw[(t0 + t) * o + lane0..], acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "[{i}]: {a} vs {b}");
        }
    }

    /// Both kernels under one instruction set against the sums written out (the forward
    /// block over existing values, the gradient on top of them), with 53 filters (with
    /// AVX-512, a pair of vectors, one vector and a tail of 5); patches of 27, 9, 31,
    /// 32, 13, 12, 4 and 1 (gradient blocks of 9+9+9, 9, 11+10+10, 11+11+10, 7+6, 12, 4
    /// and 1 taps); 300 positions (blocks of 8 and a tail of 4; the gradient over
    /// stretches of 100, 1 and 199) and 21 (a tail of 5; stretches of 7, 1 and 13).
    /// Then ResNet's stem patch (147) with 116 filters: with AVX-512, blocks of 6
    /// positions giving each value to four vectors, then a pair, one vector and a tail
    /// of 4. Patches read in place are pinned in `conv::tests`.
    fn check_kernels<S: Simd>(simd: S) {
        let shapes = [(300, 27), (21, 9), (21, 31), (21, 32), (21, 13), (21, 12)];
        for (positions, patch) in shapes.into_iter().chain([(21, 4), (21, 1)]) {
            check_shape(simd, positions, patch, 53);
        }
        check_shape(simd, 21, 147, 116);
    }

    fn check_shape<S: Simd>(simd: S, positions: usize, patch: usize, o: usize) {
        let (columns, filters, dy) = (
            values(positions * patch, 1),
            values(patch * o, 2),
            values(positions * o, 3),
        );
        let (mut y, mut dw) = (vec![0.5; positions * o], vec![0.25; patch * o]);
        // The blocks write their sums over whatever `y` held; `dw` adds to its start.
        let (mut want_y, mut want_dw) = (vec![0.0; positions * o], dw.clone());
        for p in 0..positions {
            for t in 0..patch {
                for j in 0..o {
                    want_y[p * o + j] += columns[p * patch + t] * filters[t * o + j];
                    want_dw[t * o + j] += columns[p * patch + t] * dy[p * o + j];
                }
            }
        }
        let unrolled: Vec<usize> = (0..patch).collect();
        let patches_from = |first: usize| Patches {
            values: &columns[first * patch..],
            step: patch,
            offsets: &unrolled,
        };
        let rows = match takes_four_vectors::<S>(o) {
            true => QUAD_ROWS,
            false => ROWS,
        };
        for (first, y) in (0..positions).step_by(rows).zip(y.chunks_mut(rows * o)) {
            let block = Block {
                patches: patches_from(first),
                filters: &filters,
                y,
                o,
            };
            block.write_rows(simd, rows.min(positions - first));
        }
        let third = positions / 3;
        let bounds = [0, third, third + 1, positions];
        let stretches: Vec<Stretch> = bounds
            .windows(2)
            .map(|w| Stretch {
                patches: patches_from(w[0]),
                dy: &dy[w[0] * o..w[1] * o],
                positions: w[1] - w[0],
            })
            .collect();
        Gradients {
            stretches: &stretches,
            dw: &mut dw,
            patch,
            o,
        }
        .with_simd(simd);
        assert_close(&y, &want_y);
        assert_close(&dw, &want_dw);
    }

    #[test]
    fn near_equal_blocks_cover_the_range_in_the_fewest_blocks() {
        for most in 1..14 {
            for len in 0..60 {
                let blocks: Vec<_> = near_equal_blocks(len, most).collect();
                assert_eq!(blocks.len(), len.div_ceil(most), "{len} by {most}");
                assert!(blocks.windows(2).all(|w| w[0].end == w[1].start));
                assert_eq!(blocks.first().map_or(0, |b| b.start), 0);
                assert_eq!(blocks.last().map_or(0, |b| b.end), len);
                let sizes: Vec<usize> = blocks.iter().map(|b| b.len()).collect();
                assert!(sizes.iter().all(|&n| 0 < n && n <= most), "{sizes:?}");
                assert!(sizes.windows(2).all(|w| w[0] == w[1] || w[0] == w[1] + 1));
            }
        }
    }

    #[test]
    fn every_instruction_set_computes_the_same_products() {
        check_kernels(pulp::Scalar);
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(v3) = pulp::x86::V3::try_new() {
                check_kernels(v3);
            }
            if let Some(v4) = pulp::x86::V4::try_new() {
                check_kernels(v4);
            }
        }
    }
}
