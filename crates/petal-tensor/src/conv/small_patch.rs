//! Convolutions whose patch (`kh * kw * c`) is small, like a network's first layer on
//! grey or RGB images. The two products run in register-blocked kernels made for this
//! shape: with an inner dimension of 9 or 27 a general GEMM spends its time packing,
//! and a loop per tap (this module's first version) spent it on loop overhead. Vectors
//! run along the filters, one register at a time (16 with AVX-512); `pulp` compiles the
//! kernels for AVX-512, AVX2 + FMA and portable code and picks one at run time.
//!
//! The forward pass reads a block's patches in place from the image where it can
//! ([`Windows`]) and unrolls only the blocks that touch the padding or wrap to the next
//! output row. Unrolling every patch, as im2col does, took a third of the forward time
//! on Keras MNIST's first layer; in place, one thread's forward pass went from
//! 3.07 / 2.87 / 3.09 ms to 1.92 / 2.00 / 1.98 ms (128x28x28x1 -> 32, valid) and from
//! 33.6 / 38.7 / 36.5 ms to 21.4 / 20.7 / 21.3 ms (32x128x128x3 -> 32, same): three
//! alternating runs of a timing program, medians of 300 and 40 calls. The filter
//! gradient still unrolls each image's patches; the input gradient takes the im2col
//! path (a first layer's input rarely needs one).

use pulp::{Arch, Simd, WithSimd};

use super::batch::{map_images, sum_filter_gradient, Output};
use super::im2col::fill_columns;
use super::ConvShape;
use crate::error::Result;
use crate::simd::{add_to, load};

/// Patches up to this long take the direct path.
pub(super) const MAX_PATCH: usize = 32;

/// Output pixels per block of the forward kernel (one accumulator register each).
const ROWS: usize = 8;
/// Patch entries per block of the filter-gradient kernel (one accumulator each).
const TAPS: usize = 8;
/// Positions per block of the filter-gradient kernel: 128 positions of a 27-value
/// patch and of 32 filters' gradients are 30 KB, within L1.
const GRADIENT_POSITIONS: usize = 128;
// `PatchGradients::add` has a kernel for each remainder below 8 taps, and
// `Block::add_rows` one for each count of rows up to 8.
const _: () = assert!(TAPS == 8 && ROWS == 8);

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    let windows = Windows::new(s);
    map_images(
        output,
        s.batch,
        s.output_image_len(),
        x,
        s.image_len(),
        ROWS * s.patch_len(),
        |yi, columns, xi| {
            Arch::new().dispatch(PatchProducts {
                windows: &windows,
                image: xi,
                columns,
                filters: f,
                y: yi,
            });
            Ok(())
        },
    )
}

/// Where the patches of a block of [`ROWS`] output positions are, inside the image:
/// when the positions lie in one output row and their windows inside the image, patch
/// row `r`, entry `t` is the image value at `start + r * step + offsets[t]`, where
/// `start` is [`Windows::block_start`], so the kernel reads it there and nothing is
/// unrolled. Blocks that touch the padding or wrap to the next output row are unrolled
/// into a small buffer first (`fill_columns`).
struct Windows<'a> {
    shape: &'a ConvShape,
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
            offsets,
            unrolled: (0..s.patch_len()).collect(),
            step: c.stride * channels,
        }
    }

    /// The image offset of the first window of the [`ROWS`] positions from `first`,
    /// when they lie in one output row and their windows inside the image.
    fn block_start(&self, first: usize) -> Option<usize> {
        let (r, c) = (&self.shape.rows, &self.shape.cols);
        let (oy, ox) = (first / c.output, first % c.output);
        let last_ox = ox + ROWS - 1;
        let (iy, ix) = (
            (oy * r.stride).checked_sub(r.pad_before)?,
            (ox * c.stride).checked_sub(c.pad_before)?,
        );
        let inside = last_ox < c.output
            && iy + (r.kernel - 1) * r.dilation < r.input
            && last_ox * c.stride - c.pad_before + (c.kernel - 1) * c.dilation < c.input;
        inside.then_some((iy * c.input + ix) * self.shape.channels)
    }
}

/// `y += patches * filters` for one image: `filters (patch, o)`, `y (positions, o)`
/// row-major, the patches read in place from `image` or unrolled into `columns`.
struct PatchProducts<'a> {
    windows: &'a Windows<'a>,
    image: &'a [f32],
    columns: &'a mut [f32],
    filters: &'a [f32],
    y: &'a mut [f32],
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
            y,
        } = self;
        let s = windows.shape;
        let (patch, o, positions) = (s.patch_len(), s.filters, s.positions());
        for first in (0..positions).step_by(ROWS) {
            let rows = ROWS.min(positions - first);
            // Patch row `r`, entry `t` is `values[r * step + offsets[t]]`.
            let (values, step, offsets) = match windows.block_start(first) {
                Some(start) => (&image[start..], windows.step, &windows.offsets),
                None => {
                    fill_columns(
                        s,
                        image,
                        0,
                        first..first + rows,
                        &mut columns[..rows * patch],
                    );
                    (&columns[..], patch, &windows.unrolled)
                }
            };
            Block {
                values,
                step,
                offsets,
                filters,
                y: &mut y[first * o..(first + rows) * o],
                o,
            }
            .add_rows(simd, rows);
        }
    }
}

/// One block of output positions: patch row `r`, entry `t` is
/// `values[r * step + offsets[t]]`; `y` holds the block's outputs, `(rows, o)`.
struct Block<'a> {
    values: &'a [f32],
    step: usize,
    offsets: &'a [usize],
    filters: &'a [f32],
    y: &'a mut [f32],
    o: usize,
}

impl Block<'_> {
    /// [`Block::add`] for `rows` rows, 1 to [`ROWS`].
    #[inline(always)]
    fn add_rows<S: Simd>(self, simd: S, rows: usize) {
        match rows {
            ROWS => self.add::<S, ROWS>(simd),
            1 => self.add::<S, 1>(simd),
            2 => self.add::<S, 2>(simd),
            3 => self.add::<S, 3>(simd),
            4 => self.add::<S, 4>(simd),
            5 => self.add::<S, 5>(simd),
            6 => self.add::<S, 6>(simd),
            _ => self.add::<S, 7>(simd),
        }
    }

    /// `y += patches * filters` for a block of `R` rows: rows outside, filters inside,
    /// so the block's patches stay in L1 for every vector of filters; filters past the
    /// last full vector one value at a time.
    #[inline(always)]
    fn add<S: Simd, const R: usize>(self, simd: S) {
        let Self {
            values,
            step,
            offsets,
            filters,
            y,
            o,
        } = self;
        let lanes = S::F32_LANES;
        let vector_filters = o / lanes * lanes;
        for lane0 in (0..vector_filters).step_by(lanes) {
            let mut acc = [simd.splat_f32s(0.0); R];
            for (t, &offset) in offsets.iter().enumerate() {
                let w = load::<S>(&filters[t * o + lane0..]);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let v = simd.splat_f32s(values[r * step + offset]);
                    *acc = simd.mul_add_e_f32s(v, w, *acc);
                }
            }
            for (r, acc) in acc.into_iter().enumerate() {
                add_to(simd, &mut y[r * o + lane0..], acc);
            }
        }
        if vector_filters == o {
            return;
        }
        for r in 0..R {
            for (t, &offset) in offsets.iter().enumerate() {
                let v = values[r * step + offset];
                for j in vector_filters..o {
                    y[r * o + j] += v * filters[t * o + j];
                }
            }
        }
    }
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let (patch, o) = (s.patch_len(), s.filters);
    let accumulate = |dw: &mut [f32], columns: &mut [f32], xi: &[f32], dyi: &[f32]| {
        fill_columns(s, xi, 0, 0..s.positions(), columns);
        add_patch_gradients(columns, dyi, dw, patch, o);
        Ok(())
    };
    sum_filter_gradient(s, x, dy, s.positions() * patch, accumulate)
}

/// `dw += columnsᵀ * dy` for row-major `columns (positions, patch)`,
/// `dy (positions, o)` and `dw (patch, o)`.
fn add_patch_gradients(columns: &[f32], dy: &[f32], dw: &mut [f32], patch: usize, o: usize) {
    Arch::new().dispatch(PatchGradients {
        columns,
        dy,
        dw,
        patch,
        o,
    });
}

struct PatchGradients<'a> {
    columns: &'a [f32],
    dy: &'a [f32],
    dw: &'a mut [f32],
    patch: usize,
    o: usize,
}

impl WithSimd for PatchGradients<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            columns,
            dy,
            dw,
            patch,
            o,
        } = self;
        // A block of positions at a time, its patches and output gradients in L1 for
        // every filter and block of taps (the whole image is megabytes).
        let positions = columns.len() / patch.max(1);
        for p0 in (0..positions).step_by(GRADIENT_POSITIONS) {
            let p1 = positions.min(p0 + GRADIENT_POSITIONS);
            let block = PatchGradients {
                columns: &columns[p0 * patch..p1 * patch],
                dy: &dy[p0 * o..p1 * o],
                dw: &mut *dw,
                patch,
                o,
            };
            block.add(simd);
        }
    }
}

impl PatchGradients<'_> {
    /// Adds the gradients of every patch entry for every filter over the positions of
    /// `self`: for each vector of filters, blocks of [`TAPS`] entries, then one block of
    /// the rest; the filters past the last vector one value at a time.
    #[inline(always)]
    fn add<S: Simd>(mut self, simd: S) {
        let vector_filters = self.o / S::F32_LANES * S::F32_LANES;
        let blocked_taps = self.patch / TAPS * TAPS;
        for lane0 in (0..vector_filters).step_by(S::F32_LANES) {
            for t0 in (0..blocked_taps).step_by(TAPS) {
                self.tap_block::<S, TAPS>(simd, t0, lane0);
            }
            let t0 = blocked_taps;
            match self.patch - blocked_taps {
                0 => {}
                1 => self.tap_block::<S, 1>(simd, t0, lane0),
                2 => self.tap_block::<S, 2>(simd, t0, lane0),
                3 => self.tap_block::<S, 3>(simd, t0, lane0),
                4 => self.tap_block::<S, 4>(simd, t0, lane0),
                5 => self.tap_block::<S, 5>(simd, t0, lane0),
                6 => self.tap_block::<S, 6>(simd, t0, lane0),
                _ => self.tap_block::<S, 7>(simd, t0, lane0),
            }
        }
        let (patch, o) = (self.patch, self.o);
        for (p, taps) in self.columns.chunks_exact(patch).enumerate() {
            for (t, &v) in taps.iter().enumerate() {
                for j in vector_filters..o {
                    self.dw[t * o + j] += v * self.dy[p * o + j];
                }
            }
        }
    }

    /// Gradients of patch entries `t0..t0 + N` for the vector of filters from `lane0`,
    /// summed over every position.
    #[inline(always)]
    fn tap_block<S: Simd, const N: usize>(&mut self, simd: S, t0: usize, lane0: usize) {
        let (patch, o) = (self.patch, self.o);
        let mut acc = [simd.splat_f32s(0.0); N];
        for (p, taps) in self.columns.chunks_exact(patch).enumerate() {
            let g = load::<S>(&self.dy[p * o + lane0..]);
            for (acc, &v) in acc.iter_mut().zip(&taps[t0..t0 + N]) {
                *acc = simd.mul_add_e_f32s(simd.splat_f32s(v), g, *acc);
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

    /// Both kernels under one instruction set against the sums written out, on top of
    /// existing values, with a filter tail (37 = 2 x 16 + 5); patches of 27, 9, 31, 32, 4
    /// and 6 (8-tap blocks and the rest: 3, 1, 7, none, 4 and 6 taps); 300 positions
    /// (blocks of 8 and a tail of 4; gradient blocks of 128 and a tail of 44) and 21
    /// (a tail of 5). Patches read in place are pinned in `conv::tests`.
    fn check_kernels<S: Simd>(simd: S) {
        for (positions, patch) in [(300, 27), (21, 9), (21, 31), (21, 32), (21, 4), (21, 6)] {
            check_shape(simd, positions, patch, 37);
        }
    }

    fn check_shape<S: Simd>(simd: S, positions: usize, patch: usize, o: usize) {
        let (columns, filters, dy) = (
            values(positions * patch, 1),
            values(patch * o, 2),
            values(positions * o, 3),
        );
        let (mut y, mut dw) = (vec![0.5; positions * o], vec![0.25; patch * o]);
        let (mut want_y, mut want_dw) = (y.clone(), dw.clone());
        for p in 0..positions {
            for t in 0..patch {
                for j in 0..o {
                    want_y[p * o + j] += columns[p * patch + t] * filters[t * o + j];
                    want_dw[t * o + j] += columns[p * patch + t] * dy[p * o + j];
                }
            }
        }
        let unrolled: Vec<usize> = (0..patch).collect();
        for (first, y) in (0..positions).step_by(ROWS).zip(y.chunks_mut(ROWS * o)) {
            let block = Block {
                values: &columns[first * patch..],
                step: patch,
                offsets: &unrolled,
                filters: &filters,
                y,
                o,
            };
            block.add_rows(simd, ROWS.min(positions - first));
        }
        PatchGradients {
            columns: &columns,
            dy: &dy,
            dw: &mut dw,
            patch,
            o,
        }
        .with_simd(simd);
        assert_close(&y, &want_y);
        assert_close(&dw, &want_dw);
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
