//! 3x3 convolutions with stride 1 by Winograd's minimal filtering F(m x m, 3x3) (Lavin
//! and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), for the two
//! tilings m = 2 ([`F2x2`]) and m = 4 ([`F4x4`]).
//!
//! The output is cut into m x m tiles. Each tile reads an n x n input tile `d`
//! (`n = m + 2`); with the filter `g` transformed once to `U = G g Gᵀ` and the tile to
//! `V = Bᵀ d B`, the tile's outputs are `Aᵀ (U ⊙ V) A`, summed over the input channels.
//! The product `U ⊙ V` summed over channels is, for each of the n² positions of the
//! transformed tile, a GEMM `(tiles, c) x (c, o)`: n² multiplies per m² outputs where
//! the direct convolution does 9 m², so 2.25x fewer for F(2x2) (16 for 4 outputs) and
//! 4x fewer for F(4x4) (36 for 16). The transforms are sums with small constant
//! weights along the channels, which vectorize in NHWC; F(4x4)'s larger weights (up to
//! 8 in `Aᵀ`, 5 in `Bᵀ`, 1/24 in `G`) cost accuracy (the study in
//! `tests/winograd_accuracy.rs`).
//!
//! The input gradient of a stride-1 3x3 convolution is itself one: the output gradient
//! convolved with the filter turned by 180 degrees, input and output channels swapped,
//! and padding `2 - p` in front of each axis (see [`backward_input`]). The filter
//! gradient runs the algorithm backwards (see [`backward_filter`]).

use std::array::from_fn;
use std::marker::PhantomData;

use super::batch::{map_images, sum_over_images, Output};
use super::ConvShape;
use crate::error::Result;
use crate::gemm::{gemm, MatMut, MatRef};
use crate::parallel::gemm_needs_threads;
use crate::simd::{add_to, load, store, vectorized};
use crate::window::AxisGeometry;
use pulp::{Arch, Simd, WithSimd};

/// Fewer channels or filters than this leave too little work per tile for the
/// transforms to pay (a round number below the lecture networks' 32, not tuned).
const MIN_CHANNELS: usize = 16;

/// A Winograd tiling F(M x M, 3x3): output tiles of `M x M` computed from input tiles
/// of `N x N` (`N = M + 2`), and its transforms.
pub(super) trait Tiling<const M: usize, const N: usize> {
    /// `Bᵀ` (N x N): an input tile `d` becomes `V = Bᵀ d B`.
    const B_T: [[f32; N]; N];
    /// `G` (N x 3): a filter `g` becomes `U = G g Gᵀ`.
    const G: [[f32; 3]; N];
    /// `Aᵀ` (M x N): the product `U ⊙ V` becomes the output tile `Aᵀ (U ⊙ V) A`.
    const A_T: [[f32; N]; M];
    /// `A` (N x M), for the filter gradient's `A dY Aᵀ`.
    const A: [[f32; M]; N] = transpose(Self::A_T);
}

/// F(2x2, 3x3), interpolation points 0, ±1 and ∞: 16 multiplies per 4 outputs.
pub(super) struct F2x2;

impl Tiling<2, 4> for F2x2 {
    const B_T: [[f32; 4]; 4] = [
        [1.0, 0.0, -1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, -1.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, -1.0],
    ];
    const G: [[f32; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    const A_T: [[f32; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
}

/// F(4x4, 3x3), interpolation points 0, ±1, ±2 and ∞: 36 multiplies per 16 outputs.
pub(super) struct F4x4;

impl Tiling<4, 6> for F4x4 {
    const B_T: [[f32; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f32; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const A_T: [[f32; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];
}

const fn transpose<const R: usize, const C: usize>(m: [[f32; C]; R]) -> [[f32; R]; C] {
    let mut t = [[0.0; R]; C];
    let mut r = 0;
    while r < R {
        let mut c = 0;
        while c < C {
            t[c][r] = m[r][c];
            c += 1;
        }
        r += 1;
    }
    t
}

/// Which tiling a Winograd convolution runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tile {
    /// [`F2x2`].
    F2,
    /// [`F4x4`].
    F4,
}

/// Whether the Winograd path computes this convolution's output and filter gradient
/// (the input gradient also needs [`applies_to_input_gradient`]).
pub(super) fn applies(s: &ConvShape) -> bool {
    let dense_3x3 = |a: &AxisGeometry| a.kernel == 3 && a.stride == 1 && a.dilation == 1;
    s.groups == 1
        && dense_3x3(&s.rows)
        && dense_3x3(&s.cols)
        && s.channels >= MIN_CHANNELS
        && s.filters >= MIN_CHANNELS
}

/// Whether the input gradient can run as a Winograd convolution too: the padding in
/// front of each axis must be at most 2 (what a 3x3 window can reach).
pub(super) fn applies_to_input_gradient(s: &ConvShape) -> bool {
    applies(s) && s.rows.pad_before <= 2 && s.cols.pad_before <= 2
}

/// One stride-1 3x3 convolution of a batch of images: `input` rows x columns, zeros
/// outside, `pad` rows and columns of them in front, `output` rows x columns.
struct Plane {
    input: [usize; 2],
    output: [usize; 2],
    pad: [usize; 2],
    channels: usize,
    filters: usize,
}

impl Plane {
    /// Rows and columns of `side x side` output tiles (the last may hang over the edge).
    fn tiles(&self, side: usize) -> [usize; 2] {
        self.output.map(|len| len.div_ceil(side))
    }
    fn tile_count(&self, side: usize) -> usize {
        self.tiles(side)[0] * self.tiles(side)[1]
    }
    fn image_len(&self) -> usize {
        self.input[0] * self.input[1] * self.channels
    }
    fn output_image_len(&self) -> usize {
        self.output[0] * self.output[1] * self.filters
    }
    /// The first output row and column of tile `tile` (tiles numbered row by row).
    fn tile_origin(&self, tile: usize, side: usize) -> (usize, usize) {
        let tiles_x = self.tiles(side)[1];
        (side * (tile / tiles_x), side * (tile % tiles_x))
    }
    fn of(s: &ConvShape) -> Self {
        Self {
            input: [s.rows.input, s.cols.input],
            output: [s.rows.output, s.cols.output],
            pad: [s.rows.pad_before, s.cols.pad_before],
            channels: s.channels,
            filters: s.filters,
        }
    }
}

pub(super) fn forward(
    tile: Tile,
    s: &ConvShape,
    x: &[f32],
    f: &[f32],
    output: Output<'_>,
) -> Result<Vec<f32>> {
    let p = Plane::of(s);
    match tile {
        Tile::F2 => convolve::<F2x2, 2, 4>(&p, s.batch, x, f, output),
        Tile::F4 => convolve::<F4x4, 4, 6>(&p, s.batch, x, f, output),
    }
}

/// The filter gradient, by the same algorithm run backwards: with `Ŷ = A dY Aᵀ` for each
/// M x M tile of the output gradient (N x N), `dU = Σ V ⊙ Ŷ` over tiles and images (N²
/// GEMMs `(c, tiles) x (tiles, o)`), and `dW = Gᵀ dU G`.
pub(super) fn backward_filter(
    tile: Tile,
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
) -> Result<Vec<f32>> {
    match tile {
        Tile::F2 => filter_gradient::<F2x2, 2, 4>(s, x, dy),
        Tile::F4 => filter_gradient::<F4x4, 4, 6>(s, x, dy),
    }
}

fn filter_gradient<T: Tiling<M, N>, const M: usize, const N: usize>(
    s: &ConvShape,
    x: &[f32],
    dy: &[f32],
) -> Result<Vec<f32>> {
    let p = Plane::of(s);
    let (c, o, tiles, positions) = (p.channels, p.filters, p.tile_count(M), N * N);
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (v_len, g_len) = (positions * tiles * c, positions * tiles * o);
    let accumulate = |du: &mut [f32], scratch: &mut [f32], xi: &[f32], dyi: &[f32]| {
        let (v, rest) = scratch.split_at_mut(v_len);
        let (g, patch) = rest.split_at_mut(g_len);
        Arch::new().dispatch(InputTiles::<T, M, N> {
            p: &p,
            image: xi,
            patch: &mut patch[..positions * c],
            v,
            tiling: PhantomData,
        });
        Arch::new().dispatch(GradientTiles::<T, M, N> {
            p: &p,
            dy: dyi,
            corners: &mut patch[..M * M * o],
            g,
            tiling: PhantomData,
        });
        for e in 0..positions {
            gemm(
                MatRef::new(&v[e * c..], tiles, c, positions * c, 1)?.t(),
                MatRef::new(&g[e * o..], tiles, o, positions * o, 1)?,
                MatMut::row_major(&mut du[e * c * o..][..c * o], c, o)?,
                true,
                threaded_gemm,
            )?;
        }
        Ok(())
    };
    let du = sum_over_images(
        x,
        p.image_len(),
        dy,
        p.output_image_len(),
        positions * c * o,
        v_len + g_len + positions * c.max(o),
        accumulate,
    )?;
    Ok(untransform_filters::<T, M, N>(&du, c, o))
}

/// `dx += conv(dy, rot180(f)ᵀ)` with padding `2 - p`: tap `k` of output `o` reads input
/// `o + k - p`, so input `i` collects output `i + p - k = i + k' - (2 - p)` for the
/// turned tap `k' = 2 - k`.
pub(super) fn backward_input(tile: Tile, s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    let (c, o) = (s.channels, s.filters);
    let mut turned = vec![0.0; f.len()];
    for tap in 0..9 {
        for ci in 0..c {
            for fo in 0..o {
                turned[((8 - tap) * o + fo) * c + ci] = f[(tap * c + ci) * o + fo];
            }
        }
    }
    let plane = Plane {
        input: [s.rows.output, s.cols.output],
        output: [s.rows.input, s.cols.input],
        pad: [2 - s.rows.pad_before, 2 - s.cols.pad_before],
        channels: o,
        filters: c,
    };
    let zeros = Output::zeros();
    match tile {
        Tile::F2 => convolve::<F2x2, 2, 4>(&plane, s.batch, dy, &turned, zeros),
        Tile::F4 => convolve::<F4x4, 4, 6>(&plane, s.batch, dy, &turned, zeros),
    }
}

/// `conv(x, f)` over the batch, started and finished as `output` says; `f` is HWIO
/// `(3, 3, channels, filters)`.
fn convolve<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    batch: usize,
    x: &[f32],
    f: &[f32],
    output: Output<'_>,
) -> Result<Vec<f32>> {
    let (c, o, tiles, positions) = (p.channels, p.filters, p.tile_count(M), N * N);
    let u = transform_filters::<T, M, N>(f, c, o);
    let threaded_gemm = gemm_needs_threads(batch);
    let (v_len, m_len) = (positions * tiles * c, positions * tiles * o);
    map_images(
        output,
        batch,
        p.output_image_len(),
        x,
        p.image_len(),
        v_len + m_len + positions * c,
        |yi, scratch, xi| {
            let (v, rest) = scratch.split_at_mut(v_len);
            let (m, patch) = rest.split_at_mut(m_len);
            Arch::new().dispatch(InputTiles::<T, M, N> {
                p,
                image: xi,
                patch,
                v,
                tiling: PhantomData,
            });
            for e in 0..positions {
                gemm(
                    MatRef::new(&v[e * c..], tiles, c, positions * c, 1)?,
                    MatRef::row_major(&u[e * c * o..][..c * o], c, o)?,
                    MatMut::new(&mut m[e * o..], tiles, o, positions * o)?,
                    false,
                    threaded_gemm,
                )?;
            }
            Arch::new().dispatch(OutputTiles::<T, M, N> {
                p,
                m,
                y: yi,
                tiling: PhantomData,
            });
            Ok(())
        },
    )
}

/// `U = G g Gᵀ` for every (channel, filter): N² matrices `(c, o)`, one per position of
/// the N x N transformed tile, from the HWIO filter `(3, 3, c, o)`.
fn transform_filters<T: Tiling<M, N>, const M: usize, const N: usize>(
    f: &[f32],
    c: usize,
    o: usize,
) -> Vec<f32> {
    mix(f, N * N, c * o, |uv, tap| {
        T::G[uv / N][tap / 3] * T::G[uv % N][tap % 3]
    })
}

/// `dW = Gᵀ dU G`: the N² matrices `(c, o)` of a transformed-tile gradient back to the
/// HWIO filter `(3, 3, c, o)`.
fn untransform_filters<T: Tiling<M, N>, const M: usize, const N: usize>(
    du: &[f32],
    c: usize,
    o: usize,
) -> Vec<f32> {
    mix(du, 9, c * o, |tap, uv| {
        T::G[uv / N][tap / 3] * T::G[uv % N][tap % 3]
    })
}

/// `outputs` matrices of `len` values, matrix `i` the sum over the matrices `j` of
/// `from` of `weight(i, j) * from[j]`, a block of values at a time (in the cache).
fn mix(from: &[f32], outputs: usize, len: usize, weight: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    const BLOCK: usize = 1024;
    let inputs = from.len() / len.max(1);
    let weights: Vec<f32> = (0..outputs * inputs)
        .map(|ij| weight(ij / inputs, ij % inputs))
        .collect();
    let mut to = vec![0.0; outputs * len];
    vectorized(|| {
        for start in (0..len).step_by(BLOCK) {
            let end = len.min(start + BLOCK);
            for (i, out) in to.chunks_exact_mut(len).enumerate() {
                for (j, input) in from.chunks_exact(len).enumerate() {
                    let w = weights[i * inputs + j];
                    if w != 0.0 {
                        for (t, x) in out[start..end].iter_mut().zip(&input[start..end]) {
                            *t += w * x;
                        }
                    }
                }
            }
        }
    });
    to
}

/// `Σ weights[k] · values[k]`: the positive terms first, then the negative ones
/// subtracted, zero weights skipped and weights of ±1 without a multiply. The weights
/// are a tiling's constants, so this unrolls into just the operations they need.
#[inline(always)]
fn weighted_sum<S: Simd, const K: usize>(
    simd: S,
    weights: &[f32; K],
    values: &[S::f32s; K],
) -> S::f32s {
    let mut sum = None;
    for negative in [false, true] {
        for (&w, &v) in weights.iter().zip(values) {
            if w == 0.0 || (w < 0.0) != negative {
                continue;
            }
            let scaled = |w: f32| match w {
                1.0 => v,
                _ => simd.mul_f32s(simd.splat_f32s(w), v),
            };
            sum = Some(match sum {
                None => scaled(w),
                Some(s) if negative => simd.sub_f32s(s, scaled(-w)),
                Some(s) => simd.add_f32s(s, scaled(w)),
            });
        }
    }
    sum.unwrap_or(simd.splat_f32s(0.0))
}

/// `Ŷ = A dY Aᵀ` for every M x M tile of one output gradient: tile-major like `V`, N²
/// rows of `o` values per tile. Outputs past the edge count as zeros (`corners` holds
/// a hanging tile's pixels).
struct GradientTiles<'a, T, const M: usize, const N: usize> {
    p: &'a Plane,
    dy: &'a [f32],
    corners: &'a mut [f32],
    g: &'a mut [f32],
    tiling: PhantomData<T>,
}

impl<T: Tiling<M, N>, const M: usize, const N: usize> WithSimd for GradientTiles<'_, T, M, N> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            p, dy, corners, g, ..
        } = self;
        let (o, [rows, cols]) = (p.filters, p.output);
        let vector_filters = o / S::F32_LANES * S::F32_LANES;
        for (tile, out) in g.chunks_exact_mut(N * N * o).enumerate() {
            let (oy, ox) = p.tile_origin(tile, M);
            let (source, offsets): (&[f32], [[usize; M]; M]) = if oy + M <= rows && ox + M <= cols {
                (dy, from_fn(|i| from_fn(|j| ((oy + i) * cols + ox + j) * o)))
            } else {
                let pixel = |ij: usize| {
                    let (y, x) = (oy + ij / M, ox + ij % M);
                    (y < rows && x < cols).then(|| (y * cols + x) * o)
                };
                gather_pixels(dy, (0..M * M).map(pixel), o, corners);
                (corners, from_fn(|i| from_fn(|j| (i * M + j) * o)))
            };
            for k in (0..vector_filters).step_by(S::F32_LANES) {
                transform_tile(simd, &T::A, (source, &offsets), k, o, out);
            }
            for k in vector_filters..o {
                transform_tile(pulp::Scalar, &T::A, (source, &offsets), k, o, out);
            }
        }
    }
}

/// `V = Bᵀ d B` for every tile of one image: tile-major, N² rows of `c` values per
/// tile (one per position of the transformed tile). `patch` holds one gathered N x N
/// tile.
struct InputTiles<'a, T, const M: usize, const N: usize> {
    p: &'a Plane,
    image: &'a [f32],
    patch: &'a mut [f32],
    v: &'a mut [f32],
    tiling: PhantomData<T>,
}

impl<T: Tiling<M, N>, const M: usize, const N: usize> WithSimd for InputTiles<'_, T, M, N> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            p, image, patch, v, ..
        } = self;
        let c = p.channels;
        let vector_channels = c / S::F32_LANES * S::F32_LANES;
        for (tile, out) in v.chunks_exact_mut(N * N * c).enumerate() {
            let (oy, ox) = p.tile_origin(tile, M);
            // A tile inside the image is read where it is; one over the edge is first
            // copied with its zeros into `patch`.
            let inside = (oy.checked_sub(p.pad[0]), ox.checked_sub(p.pad[1]));
            let (source, offsets): (&[f32], [[usize; N]; N]) = match inside {
                (Some(iy), Some(ix)) if iy + N <= p.input[0] && ix + N <= p.input[1] => (
                    image,
                    from_fn(|i| from_fn(|j| ((iy + i) * p.input[1] + ix + j) * c)),
                ),
                _ => {
                    gather_tile::<N>(p, image, oy, ox, patch);
                    (patch, from_fn(|i| from_fn(|j| (i * N + j) * c)))
                }
            };
            for ch in (0..vector_channels).step_by(S::F32_LANES) {
                transform_tile(simd, &T::B_T, (source, &offsets), ch, c, out);
            }
            for ch in vector_channels..c {
                transform_tile(pulp::Scalar, &T::B_T, (source, &offsets), ch, c, out);
            }
        }
    }
}

/// `L X Lᵀ` (R x R) for the K x K tile `X` at `source[offsets[i][j] + at]` (one vector
/// of channels from `at`), `L` being R x K, stored at `out[(a * R + b) * stride + at]`.
#[inline(always)]
fn transform_tile<S: Simd, const K: usize, const R: usize>(
    simd: S,
    l: &[[f32; K]; R],
    (source, offsets): (&[f32], &[[usize; K]; K]),
    at: usize,
    stride: usize,
    out: &mut [f32],
) {
    let x = |i: usize, j: usize| load::<S>(&source[offsets[i][j] + at..]);
    for (a, row) in sandwich(simd, l, x).iter().enumerate() {
        for (b, &value) in row.iter().enumerate() {
            store::<S>(&mut out[(a * R + b) * stride + at..], value);
        }
    }
}

/// `L X Lᵀ` (R x R) for the K x K tile `X` whose value `(i, j)` is `x(i, j)`, `L`
/// being R x K: along each row, then down each column. (Plain locals and indexed
/// stores: arrays built by closures were copied through memory, not registers.)
#[inline(always)]
fn sandwich<S: Simd, const K: usize, const R: usize>(
    simd: S,
    l: &[[f32; K]; R],
    x: impl Fn(usize, usize) -> S::f32s,
) -> [[S::f32s; R]; R] {
    let zero = simd.splat_f32s(0.0);
    let mut t = [[zero; R]; K];
    for (i, row) in t.iter_mut().enumerate() {
        let mut d = [zero; K];
        for (j, value) in d.iter_mut().enumerate() {
            *value = x(i, j);
        }
        for (value, weights) in row.iter_mut().zip(l) {
            *value = weighted_sum(simd, weights, &d);
        }
    }
    let mut out = [[zero; R]; R];
    let mut column = [zero; K];
    for b in 0..R {
        for (value, row) in column.iter_mut().zip(&t) {
            *value = row[b];
        }
        for (out_row, weights) in out.iter_mut().zip(l) {
            out_row[b] = weighted_sum(simd, weights, &column);
        }
    }
    out
}

/// Copies the N x N input tile whose top-left output is `(oy, ox)` into `patch`
/// (pixel-major, `c` values each), zeros where it falls outside the image.
#[inline(always)]
fn gather_tile<const N: usize>(p: &Plane, image: &[f32], oy: usize, ox: usize, patch: &mut [f32]) {
    let (c, [rows, cols]) = (p.channels, p.input);
    let pixel = |ij: usize| {
        let iy = (oy + ij / N)
            .checked_sub(p.pad[0])
            .filter(|&iy| iy < rows)?;
        let ix = (ox + ij % N)
            .checked_sub(p.pad[1])
            .filter(|&ix| ix < cols)?;
        Some((iy * cols + ix) * c)
    };
    gather_pixels(image, (0..N * N).map(pixel), c, patch);
}

/// Copies `len` values from each `pixels` offset of `source` one after another into
/// `buffer`; a `None` pixel (outside the image) becomes `len` zeros.
#[inline(always)]
fn gather_pixels(
    source: &[f32],
    pixels: impl IntoIterator<Item = Option<usize>>,
    len: usize,
    buffer: &mut [f32],
) {
    for (pixel, dst) in pixels.into_iter().zip(buffer.chunks_exact_mut(len)) {
        match pixel {
            Some(at) => dst.copy_from_slice(&source[at..at + len]),
            None => dst.fill(0.0),
        }
    }
}

/// `y += Aᵀ M A` for every tile; `m` is tile-major like `V`. The last row or column of
/// tiles may hang over the output's edge: those add only the outputs that exist.
struct OutputTiles<'a, T, const M: usize, const N: usize> {
    p: &'a Plane,
    m: &'a [f32],
    y: &'a mut [f32],
    tiling: PhantomData<T>,
}

impl<T: Tiling<M, N>, const M: usize, const N: usize> WithSimd for OutputTiles<'_, T, M, N> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self { p, m, y, .. } = self;
        let o = p.filters;
        let vector_filters = o / S::F32_LANES * S::F32_LANES;
        for (tile, mt) in m.chunks_exact(N * N * o).enumerate() {
            let (oy, ox) = p.tile_origin(tile, M);
            for k in (0..vector_filters).step_by(S::F32_LANES) {
                add_output::<T, S, M, N>(simd, p, mt, k, (oy, ox), y);
            }
            for k in vector_filters..o {
                add_output::<T, _, M, N>(pulp::Scalar, p, mt, k, (oy, ox), y);
            }
        }
    }
}

/// Adds the outputs of the tile at `origin` that exist, `Aᵀ M A` for the filters from
/// `k` (one vector of them).
#[inline(always)]
fn add_output<T: Tiling<M, N>, S: Simd, const M: usize, const N: usize>(
    simd: S,
    p: &Plane,
    mt: &[f32],
    k: usize,
    (oy, ox): (usize, usize),
    y: &mut [f32],
) {
    let (o, [rows, cols]) = (p.filters, p.output);
    // The whole tile (fixed loop counts keep it in registers), then the outputs that
    // exist added.
    let x = |r: usize, s: usize| load::<S>(&mt[(r * N + s) * o + k..]);
    for (i, row) in sandwich(simd, &T::A_T, x).iter().enumerate() {
        for (j, &value) in row.iter().enumerate() {
            if oy + i < rows && ox + j < cols {
                add_to(simd, &mut y[((oy + i) * cols + ox + j) * o + k..], value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` in f64 from the tiling's f32 matrices.
    fn winograd_tile<T: Tiling<M, N>, const M: usize, const N: usize>(
        d: &[[f64; N]; N],
        g: &[[f64; 3]; 3],
    ) -> [[f64; M]; M] {
        let b = |i: usize, j: usize| f64::from(T::B_T[i][j]);
        let gm = |i: usize, j: usize| f64::from(T::G[i][j]);
        let a = |i: usize, j: usize| f64::from(T::A_T[i][j]);
        let u: [[f64; N]; N] = from_fn(|r| {
            from_fn(|s| {
                (0..9)
                    .map(|ab| gm(r, ab / 3) * g[ab / 3][ab % 3] * gm(s, ab % 3))
                    .sum()
            })
        });
        let v: [[f64; N]; N] = from_fn(|r| {
            from_fn(|s| {
                (0..N * N)
                    .map(|ij| b(r, ij / N) * d[ij / N][ij % N] * b(s, ij % N))
                    .sum()
            })
        });
        from_fn(|y| {
            from_fn(|x| {
                (0..N * N)
                    .map(|rs| a(y, rs / N) * u[rs / N][rs % N] * v[rs / N][rs % N] * a(x, rs % N))
                    .sum()
            })
        })
    }

    /// The transforms applied to a tile and a filter give the direct correlation
    /// `y[i][j] = Σ g[a][b] d[i + a][j + b]` (to the f32 rounding of the matrices'
    /// entries such as 1/6).
    fn check_tiling<T: Tiling<M, N>, const M: usize, const N: usize>() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        for _ in 0..20 {
            let d: [[f64; N]; N] = from_fn(|_| from_fn(|_| next()));
            let g: [[f64; 3]; 3] = from_fn(|_| from_fn(|_| next()));
            let fast = winograd_tile::<T, M, N>(&d, &g);
            for i in 0..M {
                for j in 0..M {
                    let direct: f64 = (0..9)
                        .map(|ab| g[ab / 3][ab % 3] * d[i + ab / 3][j + ab % 3])
                        .sum();
                    assert!(
                        (fast[i][j] - direct).abs() < 1e-5,
                        "F({M}x{M}) output ({i}, {j}): {} vs direct {direct}",
                        fast[i][j]
                    );
                }
            }
        }
        assert_eq!(N, M + 2);
    }

    #[test]
    fn the_transforms_compute_the_direct_correlation() {
        check_tiling::<F2x2, 2, 4>();
        check_tiling::<F4x4, 4, 6>();
    }
}
