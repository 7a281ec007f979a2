//! Convolutions whose patch (`kh * kw * c`) is small, like a network's first layer on
//! grey or RGB images. Each image's patches are unrolled as for im2col, but the two
//! products run in register-blocked kernels made for this shape: with an inner
//! dimension of 9 or 27 a general GEMM spends its time packing, and a loop per tap
//! (this module's first version) spent it on loop overhead. Vectors run along the
//! filters, one register at a time (16 with AVX-512); `pulp` compiles the kernels for
//! AVX-512, AVX2 + FMA and portable code and picks one at run time. The input gradient
//! takes the im2col path (a first layer's input rarely needs one).

use pulp::{Arch, Simd, WithSimd};

use super::batch::{map_images, sum_over_images, Output};
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
// `PatchGradients::add` has a kernel for each remainder below 8 taps.
const _: () = assert!(TAPS == 8);

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    let (patch, o) = (s.patch_len(), s.filters);
    map_images(
        output,
        s.batch,
        s.output_image_len(),
        x,
        s.image_len(),
        s.positions() * patch,
        |yi, columns, xi| {
            fill_columns(s, xi, 0, 0..s.positions(), columns);
            add_patch_products(columns, f, yi, patch, o);
            Ok(())
        },
    )
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let (patch, o) = (s.patch_len(), s.filters);
    let accumulate = |dw: &mut [f32], columns: &mut [f32], xi: &[f32], dyi: &[f32]| {
        fill_columns(s, xi, 0, 0..s.positions(), columns);
        add_patch_gradients(columns, dyi, dw, patch, o);
        Ok(())
    };
    sum_over_images(
        x,
        s.image_len(),
        dy,
        s.output_image_len(),
        s.filter_len(),
        s.positions() * patch,
        accumulate,
    )
}

/// `y += columns * filters` for row-major `columns (positions, patch)`,
/// `filters (patch, o)` and `y (positions, o)`.
fn add_patch_products(columns: &[f32], filters: &[f32], y: &mut [f32], patch: usize, o: usize) {
    Arch::new().dispatch(PatchProducts {
        columns,
        filters,
        y,
        patch,
        o,
    });
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

struct PatchProducts<'a> {
    columns: &'a [f32],
    filters: &'a [f32],
    y: &'a mut [f32],
    patch: usize,
    o: usize,
}

impl WithSimd for PatchProducts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            columns,
            filters,
            y,
            patch,
            o,
        } = self;
        let lanes = S::F32_LANES;
        let positions = y.len() / o;
        let (vector_filters, blocked_rows) = (o / lanes * lanes, positions / ROWS * ROWS);
        // Rows outside, filters inside: a block's patches are read from memory once and
        // stay in L1 for every vector of filters.
        for row0 in (0..blocked_rows).step_by(ROWS) {
            let rows = &columns[row0 * patch..(row0 + ROWS) * patch];
            for lane0 in (0..vector_filters).step_by(lanes) {
                let mut acc = [simd.splat_f32s(0.0); ROWS];
                for t in 0..patch {
                    let w = load::<S>(&filters[t * o + lane0..]);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = simd.mul_add_e_f32s(simd.splat_f32s(rows[r * patch + t]), w, *acc);
                    }
                }
                for (r, acc) in acc.into_iter().enumerate() {
                    add_to(simd, &mut y[(row0 + r) * o + lane0..], acc);
                }
            }
        }
        // The rest one value at a time: filters past the last full vector, and every
        // filter of the last positions that did not fill a block.
        for p in 0..positions {
            let first = if p < blocked_rows { vector_filters } else { 0 };
            for t in 0..patch {
                let v = columns[p * patch + t];
                for j in first..o {
                    y[p * o + j] += v * filters[t * o + j];
                }
            }
        }
    }
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
    /// (blocks of 8 and a tail of 4; gradient blocks of 128 and a tail of 44) and 21.
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
        PatchProducts {
            columns: &columns,
            filters: &filters,
            y: &mut y,
            patch,
            o,
        }
        .with_simd(simd);
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
