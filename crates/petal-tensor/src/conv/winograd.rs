//! 3x3 convolutions with stride 1 by Winograd's minimal filtering F(m x m, 3x3) (Lavin
//! and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), for the two
//! tilings m = 2 ([`F2x2`]) and m = 4 ([`F4x4`]).
//!
//! The output is cut into m x m tiles. Each tile reads an n x n input tile `d`
//! (`n = m + 2`); with the filter `g` transformed once to `U = G g Gᵀ` and the tile to
//! `V = Bᵀ d B`, the tile's outputs are `Aᵀ (U ⊙ V) A`, summed over the input channels.
//! The product `U ⊙ V` summed over channels is, for each of the n² positions of the
//! transformed tile, a GEMM `(tiles, c) x (c, o)` (the tiles of a group of images, see
//! [`images_per_group`], of a band of one large image, see [`tiles_per_band`], or of
//! the whole batch, see [`whole_batch`]): n² multiplies
//! per m² outputs where
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
use std::mem::MaybeUninit;

use super::batch::{map_image_groups, map_image_groups_written, sum_over_image_groups, Output};
use super::ConvShape;
use crate::error::Result;
use crate::gemm::bf16::{gemm_pairs, round_to_pairs, PackedRight};
use crate::gemm::{gemm, gemm_in, MatMut, MatRef};
use crate::parallel::{gemm_needs_threads, images_per_task};
use crate::simd::{load, store, write_new};
use crate::window::AxisGeometry;
use crate::Precision;
use pulp::bytemuck::cast_slice_mut;
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// Fewer channels or filters than this leave too little work per tile for the
/// transforms to pay (a round number below the lecture networks' 32, not tuned: at 32
/// channels F(2x2) already beats im2col, see `choice.rs`).
const MIN_CHANNELS: usize = 16;

/// Tiles a group of images should give the transform-domain GEMMs (see
/// [`images_per_group`]).
const GROUP_TILES: usize = 128;
/// Bytes of transformed tiles a group may take: about a core's L2.
const GROUP_SCRATCH: usize = 1 << 20;
/// The fewest tiles a band of one image takes (see [`tiles_per_band`]): a floor, not
/// tuned, for layers of many channels, since GEMMs of few rows run below their peak.
const MIN_BAND_TILES: usize = 16;
/// Bytes of transformed filters from which a convolution runs on the whole batch (see
/// [`whole_batch`]).
const WHOLE_BATCH_FILTERS: usize = 16 << 20;
/// The same for the filter gradient, whose groups also add to sums as large.
const WHOLE_BATCH_FILTER_SUMS: usize = 8 << 20;

/// The two kinds of pass over a batch's tiles: a convolution (the output, or the input
/// gradient), and the filter gradient.
#[derive(Clone, Copy)]
enum Pass {
    Convolve,
    FilterGradient,
}

/// A Winograd tiling F(M x M, 3x3): output tiles of `M x M` computed from input tiles
/// of `N x N` (`N = M + 2`), and its transforms.
///
/// The filter transforms run once per convolution, from the matrices. The per-tile
/// transforms run for every tile and vector of channels, so each tiling writes out
/// the product of one line of a tile with its matrix (`*_line`): straight-line adds,
/// subtracts and multiplies by literals, no zero terms, no multiplies by ±1. The tile
/// transforms apply the line along each row, then down each column.
pub(super) trait Tiling<const M: usize, const N: usize> {
    /// Which tiling this is.
    const TILE: Tile;
    /// `Bᵀ` (N x N): an input tile `d` becomes `V = Bᵀ d B` (`input_line` written out;
    /// the tests check it against this).
    #[cfg(test)]
    const B_T: [[f32; N]; N];
    /// `G` (N x 3): a filter `g` becomes `U = G g Gᵀ`.
    const G: [[f32; 3]; N];
    /// `Aᵀ` (M x N): the product `U ⊙ V` becomes the output tile `Aᵀ (U ⊙ V) A`
    /// (`output_line` and `gradient_line` written out; the tests check them against it).
    #[cfg(test)]
    const A_T: [[f32; N]; M];

    /// `Bᵀ d` for one line `d` of an input tile.
    fn input_line<S: Simd>(simd: S, d: [S::f32s; N]) -> [S::f32s; N];
    /// `Aᵀ m` for one line `m` of a transformed product.
    fn output_line<S: Simd>(simd: S, m: [S::f32s; N]) -> [S::f32s; M];
    /// `A y` for one line `y` of an output-gradient tile (`A` is `Aᵀ` transposed).
    fn gradient_line<S: Simd>(simd: S, y: [S::f32s; M]) -> [S::f32s; N];

    /// `V = Bᵀ d B` for the N x N tile with values `d(i, j)`, each value `(a, b)`
    /// handed to `out(a, b, value)`.
    #[inline(always)]
    fn input_tile<S: Simd>(
        simd: S,
        d: impl Fn(usize, usize) -> S::f32s,
        out: impl FnMut(usize, usize, S::f32s),
    ) {
        sandwich(
            simd,
            d,
            #[inline(always)]
            |line| Self::input_line(simd, line),
            out,
        );
    }

    /// The M x M output tile `Aᵀ m A` of the N x N product `m(r, s)`, each value
    /// `(i, j)` handed to `out(i, j, value)`.
    #[inline(always)]
    fn output_tile<S: Simd>(
        simd: S,
        m: impl Fn(usize, usize) -> S::f32s,
        out: impl FnMut(usize, usize, S::f32s),
    ) {
        sandwich(
            simd,
            m,
            #[inline(always)]
            |line| Self::output_line(simd, line),
            out,
        );
    }

    /// `Ŷ = A y Aᵀ` (N x N) for the M x M output-gradient tile `y(i, j)`, each value
    /// `(r, s)` handed to `out(r, s, value)`.
    #[inline(always)]
    fn gradient_tile<S: Simd>(
        simd: S,
        y: impl Fn(usize, usize) -> S::f32s,
        out: impl FnMut(usize, usize, S::f32s),
    ) {
        sandwich(
            simd,
            y,
            #[inline(always)]
            |line| Self::gradient_line(simd, line),
            out,
        );
    }
}

/// `L X Lᵀ` for the K x K tile `X` whose value `(i, j)` is `x(i, j)`, `line` being the
/// product of one line with `L` (R x K): along each row, then down each column, each
/// value `(a, b)` handed to `out`. (Plain locals and indexed stores: arrays built by
/// closures were copied through memory, not registers.)
#[inline(always)]
fn sandwich<S: Simd, const K: usize, const R: usize>(
    simd: S,
    x: impl Fn(usize, usize) -> S::f32s,
    line: impl Fn([S::f32s; K]) -> [S::f32s; R],
    mut out: impl FnMut(usize, usize, S::f32s),
) {
    let zero = simd.splat_f32s(0.0);
    // Row `i` of `X Lᵀ`.
    let mut t = [[zero; R]; K];
    for (i, row) in t.iter_mut().enumerate() {
        let mut d = [zero; K];
        for (j, value) in d.iter_mut().enumerate() {
            *value = x(i, j);
        }
        *row = line(d);
    }
    let mut column = [zero; K];
    for b in 0..R {
        for (value, row) in column.iter_mut().zip(&t) {
            *value = row[b];
        }
        for (a, value) in line(column).into_iter().enumerate() {
            out(a, b, value);
        }
    }
}

/// F(2x2, 3x3), interpolation points 0, ±1 and ∞: 16 multiplies per 4 outputs.
pub(super) struct F2x2;

impl Tiling<2, 4> for F2x2 {
    const TILE: Tile = Tile::F2;
    #[cfg(test)]
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
    #[cfg(test)]
    const A_T: [[f32; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];

    #[inline(always)]
    fn input_line<S: Simd>(simd: S, [d0, d1, d2, d3]: [S::f32s; 4]) -> [S::f32s; 4] {
        let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
        [sub(d0, d2), add(d1, d2), sub(d2, d1), sub(d1, d3)]
    }

    #[inline(always)]
    fn output_line<S: Simd>(simd: S, [m0, m1, m2, m3]: [S::f32s; 4]) -> [S::f32s; 2] {
        let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
        [add(add(m0, m1), m2), sub(sub(m1, m2), m3)]
    }

    #[inline(always)]
    fn gradient_line<S: Simd>(simd: S, [y0, y1]: [S::f32s; 2]) -> [S::f32s; 4] {
        let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
        [y0, add(y0, y1), sub(y0, y1), sub(simd.splat_f32s(0.0), y1)]
    }
}

/// F(4x4, 3x3), interpolation points 0, ±1, ±2 and ∞: 36 multiplies per 16 outputs.
pub(super) struct F4x4;

impl Tiling<4, 6> for F4x4 {
    const TILE: Tile = Tile::F4;
    #[cfg(test)]
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
    #[cfg(test)]
    const A_T: [[f32; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];

    /// Rows 1 to 4 of `Bᵀ` share sums: `(d3 + d4) - 4 (d1 + d2)`, `(d4 - d3) + 4 (d1 -
    /// d2)` and `(d4 - d2) ± 2 (d3 - d1)`.
    #[inline(always)]
    fn input_line<S: Simd>(simd: S, [d0, d1, d2, d3, d4, d5]: [S::f32s; 6]) -> [S::f32s; 6] {
        let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
        let times = |w: f32, v| simd.mul_f32s(simd.splat_f32s(w), v);
        let (d4_2, d3_1) = (sub(d4, d2), times(2.0, sub(d3, d1)));
        [
            add(sub(times(4.0, d0), times(5.0, d2)), d4),
            sub(add(d3, d4), times(4.0, add(d1, d2))),
            add(sub(d4, d3), times(4.0, sub(d1, d2))),
            add(d4_2, d3_1),
            sub(d4_2, d3_1),
            add(sub(times(4.0, d1), times(5.0, d3)), d5),
        ]
    }

    /// The rows of `Aᵀ` share `m1 ± m2` and `m3 ± m4`.
    #[inline(always)]
    fn output_line<S: Simd>(simd: S, [m0, m1, m2, m3, m4, m5]: [S::f32s; 6]) -> [S::f32s; 4] {
        let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
        let times = |w: f32, v| simd.mul_f32s(simd.splat_f32s(w), v);
        let (m12, m1_2) = (add(m1, m2), sub(m1, m2));
        let (m34, m3_4) = (add(m3, m4), sub(m3, m4));
        [
            add(add(m0, m12), m34),
            add(m1_2, times(2.0, m3_4)),
            add(m12, times(4.0, m34)),
            add(add(m1_2, times(8.0, m3_4)), m5),
        ]
    }

    /// The columns of `Aᵀ` in pairs: `(y0 + y2) ± (y1 + y3)` and `(y0 + 4 y2) ± (2 y1 +
    /// 8 y3)`.
    #[inline(always)]
    fn gradient_line<S: Simd>(simd: S, [y0, y1, y2, y3]: [S::f32s; 4]) -> [S::f32s; 6] {
        let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
        let times = |w: f32, v| simd.mul_f32s(simd.splat_f32s(w), v);
        let (even, odd) = (add(y0, y2), add(y1, y3));
        let (even4, odd4) = (add(y0, times(4.0, y2)), add(times(2.0, y1), times(8.0, y3)));
        [
            y0,
            add(even, odd),
            sub(even, odd),
            add(even4, odd4),
            sub(even4, odd4),
            y3,
        ]
    }
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
    /// The input gradient's convolution (see [`backward_input`]): from the output
    /// gradient to the input, padding `2 - p`, channels and filters swapped.
    fn turned(s: &ConvShape) -> Self {
        Self {
            input: [s.rows.output, s.cols.output],
            output: [s.rows.input, s.cols.input],
            pad: [2 - s.rows.pad_before, 2 - s.cols.pad_before],
            channels: s.filters,
            filters: s.channels,
        }
    }
}

/// The forward pass with `tile`, multiplying by `prepared`'s matrices when they are
/// this tiling's in this precision, else by the filter `f` transformed now.
pub(super) fn forward(
    tile: Tile,
    s: &ConvShape,
    x: &[f32],
    f: &[f32],
    prepared: Option<&Transformed>,
    output: Output<'_>,
) -> Result<Vec<f32>> {
    let p = Plane::of(s);
    let transformed_now;
    let t = match prepared {
        Some(t) if t.fits(tile, s.precision) => t,
        _ => {
            transformed_now = Transformed::of(tile, s, f)?;
            &transformed_now
        }
    };
    match tile {
        Tile::F2 => convolve::<F2x2, 2, 4>(&p, s.batch, x, &t.u, output),
        Tile::F4 => convolve::<F4x4, 4, 6>(&p, s.batch, x, &t.u, output),
    }
}

/// A filter's transformed matrices `U` for one tiling, in the precision of the
/// element-wise stage: what the forward pass derives from the filter alone, kept by a
/// [`PreparedFilter`](super::PreparedFilter) for many passes.
pub(super) struct Transformed {
    tile: Tile,
    u: StageFilters,
}

impl Transformed {
    /// Whether these are the matrices of `tile` for products in `precision`.
    pub(super) fn fits(&self, tile: Tile, precision: Precision) -> bool {
        self.tile == tile && self.u.precision() == stage_precision(tile, precision)
    }

    /// `U` of the HWIO filter `f` of `s`, for `tile` and the precision of `s`.
    pub(super) fn of(tile: Tile, s: &ConvShape, f: &[f32]) -> Result<Self> {
        let (c, o) = (s.channels, s.filters);
        let u = match tile {
            Tile::F2 => FilterMatrices::of::<F2x2, 2, 4>(f, c, o),
            Tile::F4 => FilterMatrices::of::<F4x4, 4, 6>(f, c, o),
        };
        let u = StageFilters::new(u, &Plane::of(s), stage_precision(tile, s.precision))?;
        Ok(Self { tile, u })
    }
}

/// The filter gradient, by the same algorithm run backwards: with `Ŷ = A dY Aᵀ` for each
/// M x M tile of the output gradient (N x N), `dU = Σ V ⊙ Ŷ` over tiles and images (N²
/// GEMMs `(c, tiles) x (tiles, o)` per group of images), and `dW = Gᵀ dU G`.
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
    let precision = stage_precision(T::TILE, s.precision);
    let Some(group) = images_per_gemm::<M, N>(Pass::FilterGradient, &p, s.batch) else {
        return filter_gradient_whole_batch::<T, M, N>(&p, s.batch, x, dy, precision);
    };
    let (c, o, tiles, positions) = (p.channels, p.filters, p.tile_count(M), N * N);
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (v_len, g_len) = (positions * tiles * c, positions * tiles * o);
    // For a group of images: their transformed tiles one image after another, so that
    // the tiles of the whole group are the inner dimension of each GEMM.
    let accumulate = |du: &mut [f32], scratch: &mut [f32], xs: &[f32], dys: &[f32]| {
        let count = xs.len() / p.image_len().max(1);
        let (v, rest) = scratch.split_at_mut(group * v_len);
        let (g, patch) = rest.split_at_mut(group * g_len);
        group_input_tiles::<T, M, N>(&p, xs, &mut patch[..positions * c], v, v_len);
        let grads_out = dys.chunks_exact(p.output_image_len());
        for (dyi, g) in grads_out.zip(g.chunks_exact_mut(g_len)) {
            gradient_tiles::<T, M, N>(&p, dyi, &mut patch[..M * M * o], g);
        }
        let product = Product::<N>::of(&p, count * tiles);
        product.filter_sums(v, g, du, true, precision, threaded_gemm)
    };
    let du = sum_over_image_groups(
        (x, p.image_len(), dy, p.output_image_len()),
        group,
        positions * c * o,
        group * (v_len + g_len) + positions * c.max(o),
        accumulate,
    )?;
    Ok(untransform_filters::<T, M, N>(&du, c, o))
}

/// `dx += conv(dy, rot180(f)ᵀ)` with padding `2 - p`: tap `k` of output `o` reads input
/// `o + k - p`, so input `i` collects output `i + p - k = i + k' - (2 - p)` for the
/// turned tap `k' = 2 - k`.
pub(super) fn backward_input(tile: Tile, s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    let p = Plane::turned(s);
    let zeros = Output::zeros();
    let precision = stage_precision(tile, s.precision);
    match tile {
        Tile::F2 => {
            let u = StageFilters::new(FilterMatrices::turned::<F2x2, 2, 4>(f, s), &p, precision)?;
            convolve::<F2x2, 2, 4>(&p, s.batch, dy, &u, zeros)
        }
        Tile::F4 => {
            let u = StageFilters::new(FilterMatrices::turned::<F4x4, 4, 6>(f, s), &p, precision)?;
            convolve::<F4x4, 4, 6>(&p, s.batch, dy, &u, zeros)
        }
    }
}

/// The N² transformed filter matrices `U` a convolution multiplies its tiles with,
/// matrix `e` taking the plane's `c` channels to its `o` filters, row-major.
struct FilterMatrices(Vec<f32>);

impl FilterMatrices {
    /// `U` of the HWIO filter `f` `(3, 3, c, o)`.
    fn of<T: Tiling<M, N>, const M: usize, const N: usize>(f: &[f32], c: usize, o: usize) -> Self {
        Self(transform_filters::<T, M, N>(f, c, o))
    }

    /// `U` of the forward filter `f` of `s` turned by 180 degrees, channels and filters
    /// swapped: the input gradient's.
    fn turned<T: Tiling<M, N>, const M: usize, const N: usize>(f: &[f32], s: &ConvShape) -> Self {
        let (c, o) = (s.channels, s.filters);
        let mut turned = vec![0.0; f.len()];
        for (tap, to) in f
            .chunks_exact(c * o)
            .rev()
            .zip(turned.chunks_exact_mut(c * o))
        {
            transpose(tap, c, o, to);
        }
        Self::of::<T, M, N>(&turned, o, c)
    }

    /// Matrix `e` as `(c, o)`.
    fn position(&self, e: usize, c: usize, o: usize) -> Result<MatRef<'_>> {
        MatRef::row_major(&self.0[e * c * o..][..c * o], c, o)
    }
}

/// The precision of the element-wise stage of `tile` (every pass's) for products in
/// `precision`: bf16 only for F(2x2). F(4x4)'s stage stays f32 in every precision: its
/// transforms' weights (up to 8 in `Aᵀ` and `A`) carry bf16's rounding into errors of up
/// to a quarter of the result's RMS (4.7% for the filter gradient), against 1.6% for
/// F(2x2) and 1.0% for im2col in bf16
/// (`cargo test -p petal-tensor --release --test winograd_accuracy -- --nocapture`).
fn stage_precision(tile: Tile, precision: Precision) -> Precision {
    match tile {
        Tile::F2 => precision,
        Tile::F4 => Precision::F32,
    }
}

/// The filter matrices of a convolution's element-wise stage in its precision: `U`
/// itself in f32, or each position's matrix packed once as bf16 pairs (the tiles are
/// then rounded to bf16 pairs group by group, see [`Product::multiply`]).
enum StageFilters {
    F32(FilterMatrices),
    Bf16(Vec<PackedRight>),
}

impl StageFilters {
    /// `u` of the plane `p` for a stage in `precision`.
    fn new(u: FilterMatrices, p: &Plane, precision: Precision) -> Result<Self> {
        let (c, o) = (p.channels, p.filters);
        Ok(match precision {
            Precision::F32 => Self::F32(u),
            Precision::Bf16 => Self::Bf16(
                (0..u.0.len() / (c * o).max(1))
                    .map(|e| PackedRight::new(u.position(e, c, o)?))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    fn precision(&self) -> Precision {
        match self {
            Self::F32(_) => Precision::F32,
            Self::Bf16(_) => Precision::Bf16,
        }
    }

    /// The `u32` pairs of rounded tiles the products of `rows` tiles need (none in f32).
    fn pairs_for(&self, rows: usize, positions: usize, channels: usize) -> usize {
        match self {
            Self::F32(_) => 0,
            Self::Bf16(_) => rows * positions * channels.div_ceil(2),
        }
    }
}

/// `to` `(cols, rows)` = the transpose of `from` `(rows, cols)`, both row-major, in
/// square blocks (a plain loop would write or read a cache line per value).
fn transpose(from: &[f32], rows: usize, cols: usize, to: &mut [f32]) {
    const BLOCK: usize = 16;
    for r0 in (0..rows).step_by(BLOCK) {
        for c0 in (0..cols).step_by(BLOCK) {
            for r in r0..rows.min(r0 + BLOCK) {
                for c in c0..cols.min(c0 + BLOCK) {
                    to[c * rows + r] = from[r * cols + c];
                }
            }
        }
    }
}

/// The convolution of `x` with the filters `u` over the batch, started and finished
/// as `output` says.
fn convolve<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    batch: usize,
    x: &[f32],
    u: &StageFilters,
    output: Output<'_>,
) -> Result<Vec<f32>> {
    let Some(group) = images_per_gemm::<M, N>(Pass::Convolve, p, batch) else {
        return convolve_whole_batch::<T, M, N>(p, batch, x, u, output);
    };
    let (c, o, tiles, positions) = (p.channels, p.filters, p.tile_count(M), N * N);
    let threaded_gemm = gemm_needs_threads(batch);
    let (v_len, m_len) = (positions * tiles * c, positions * tiles * o);
    let band = tiles_per_band(group, tiles, positions * (c + o));
    // Tiles one pass transforms and multiplies: a band of one image, or the group's.
    let rows = band.unwrap_or(group * tiles);
    let pairs_len = u.pairs_for(rows, positions, c);
    let (in_len, out_len) = (p.image_len(), p.output_image_len());
    let start = output.start.per_channel(o);
    let kernel = |ys: &mut [MaybeUninit<f32>], scratch: &mut [f32], xs: &[f32]| {
        let (v, rest) = scratch.split_at_mut(rows * positions * c);
        let (m, rest) = rest.split_at_mut(rows * positions * o);
        let (pairs, patch) = rest.split_at_mut(pairs_len);
        let Some(band) = band else {
            // A group of images: their transformed tiles one image after another, so
            // that the tiles of the whole group are the rows of each GEMM.
            let count = xs.len() / in_len;
            group_input_tiles::<T, M, N>(p, xs, patch, v, v_len);
            let product = Product::<N>::of(p, count * tiles);
            product.multiply(v, cast_slice_mut(pairs), u, m, threaded_gemm)?;
            for (yi, m) in ys.chunks_exact_mut(out_len).zip(m.chunks_exact(m_len)) {
                output_tiles::<T, M, N>(p, 0, m, start, yi);
            }
            return Ok(());
        };
        for first in (0..tiles).step_by(band) {
            let len = band.min(tiles - first);
            let (v, m) = (&mut v[..len * positions * c], &mut m[..len * positions * o]);
            input_tiles::<T, M, N>(p, first, xs, patch, v);
            let product = Product::<N>::of(p, len);
            product.multiply(v, cast_slice_mut(pairs), u, m, threaded_gemm)?;
            output_tiles::<T, M, N>(p, first, m, start, ys);
        }
        Ok(())
    };
    let scratch = rows * positions * (c + o) + pairs_len + positions * c;
    // SAFETY: `output_tiles` writes every output of each image (the tiles cover the
    // output plane; in bands, every band of it), for each of the group's images (`m`
    // holds `group` of them); after an error the outputs are zeroed by the caller.
    unsafe { map_image_groups_written(output, batch, out_len, (x, in_len), group, scratch, kernel) }
}

/// Tiles a band of one image takes through the three stages when that image alone
/// would overflow [`GROUP_SCRATCH`] with its transformed tiles and products
/// (`values_per_tile` of them a tile), or `None` (the whole group at once): as many as
/// fit in it, at least [`MIN_BAND_TILES`]. At 56x56x64 one image's tiles and products
/// took 3.6 MB, more than L2, so each stage read the last one's output from L3. F(4x4),
/// batch 16, 2 threads, the ways alternating in one process, medians of 12 rounds, ms,
/// whole image -> bands: 16x56x56x64 9.36 / 8.04 / 9.93 / 9.60 -> 7.77 / 8.05 / 9.25 /
/// 8.30 (bands of 56 tiles); 16x28x28x128 6.19 / 6.25 / 7.76 / 6.69 -> 5.90 / 5.88 /
/// 6.01 / 6.10 (28); ResNet18's `predict` 130.8 -> 133.8 and 124.4 -> 129.0 images/s.
fn tiles_per_band(group: usize, tiles: usize, values_per_tile: usize) -> Option<usize> {
    let tile_bytes = values_per_tile.max(1) * std::mem::size_of::<f32>();
    let band = (GROUP_SCRATCH / tile_bytes).max(MIN_BAND_TILES);
    (group == 1 && band < tiles).then_some(band)
}

/// How many images a task transforms before the N² GEMMs run on all their tiles at
/// once: enough for about [`GROUP_TILES`] tiles, within [`GROUP_SCRATCH`] of
/// transformed tiles (`scratch_per_image` values each), at most a task's share of the
/// `batch` (the scratch is sized for the group). One thread's GEMM of the
/// Keras MNIST CNN's second layer, `(tiles, 32) x (32, 64)`, ran at 92 GFLOP/s with one
/// image's 9 tiles, 139 with 36 and 149 with 144; the layer's three passes took 15-18%
/// less time in groups (`cargo bench -p petal-tensor --bench conv -- kernel3x3`).
fn images_per_group(tiles: usize, scratch_per_image: usize, batch: usize) -> usize {
    let for_tiles = GROUP_TILES.div_ceil(tiles.max(1));
    let fit = GROUP_SCRATCH / (scratch_per_image.max(1) * std::mem::size_of::<f32>());
    for_tiles.min(fit).min(images_per_task(batch)).max(1)
}

/// Whether a pass runs on the whole batch's tiles at once rather than on groups of
/// images: when the groups are too small to give the GEMMs [`GROUP_TILES`] rows and
/// the transformed filters (`filter_values`) are too large for the cache, so that
/// every group would stream them (and the filter gradient its sums) from memory. The
/// whole batch is transformed in parallel over the images, then each GEMM is split
/// over the threads.
///
/// Measured F(4x4) at batch 16 on 2 threads (ms, forward / filter gradient, groups →
/// whole batch, in separate runs of a timing program; the host varied by about ±25%):
///
/// | layer | transformed filters | forward | filter gradient |
/// |---|---|---|---|
/// | ResNet18's 7x7, 512 -> 512 | 36 MiB | 16-25 → 11-13 | 39-51 → 12 |
/// | VGG16's 14x14, 512 -> 512 | 36 MiB | 27-42 → 24-26 | 51-64 → 22-23 |
/// | ResNet18's 14x14, 256 -> 256 | 9 MiB | 4.4-4.8 → 5.7-6.9 | 15-16 → 6.8-7.1 |
/// | ResNet18's 28x28, 128 -> 128 | 2.3 MiB | 3.7 → 4.9-5.7 | 3.5 → 5.3-6.4 |
/// | flowers 16x16, 128 -> 256 (batch 32) | 4.5 MiB | 4.0-4.6 → 5.7-6.1 | 4.6-7.4 → 6.6-6.8 |
/// | 56x56, 256 -> 256 (196 tiles an image) | 9 MiB | 54 → 59-63 | 68-69 → 68-78 |
///
/// Hence a limit between 9 and 36 MiB for the convolutions, and between 4.5 and 9 MiB
/// for the filter gradient.
fn whole_batch(pass: Pass, group_tiles: usize, filter_values: usize) -> bool {
    let limit = match pass {
        Pass::Convolve => WHOLE_BATCH_FILTERS,
        Pass::FilterGradient => WHOLE_BATCH_FILTER_SUMS,
    };
    group_tiles < GROUP_TILES && filter_values * std::mem::size_of::<f32>() > limit
}

/// How many images of the plane `p` a pass transforms before its GEMMs run, or `None`
/// for the whole batch at once: [`images_per_group`] unless [`whole_batch`] says
/// otherwise.
fn images_per_gemm<const M: usize, const N: usize>(
    pass: Pass,
    p: &Plane,
    batch: usize,
) -> Option<usize> {
    let (tiles, positions) = (p.tile_count(M), N * N);
    let scratch_per_image = positions * tiles * (p.channels + p.filters);
    let group = images_per_group(tiles, scratch_per_image, batch);
    let filter_values = positions * p.channels * p.filters;
    (!whole_batch(pass, group * tiles, filter_values)).then_some(group)
}

/// `V` of each image of `images` (`image_len` values each) into `v`, one image's
/// `v_len` values after another, so that the group's tiles are uniformly strided rows.
fn group_input_tiles<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    images: &[f32],
    patch: &mut [f32],
    v: &mut [f32],
    v_len: usize,
) {
    for (xi, v) in images
        .chunks_exact(p.image_len())
        .zip(v.chunks_exact_mut(v_len))
    {
        input_tiles::<T, M, N>(p, 0, xi, patch, v);
    }
}

/// `V` of the tiles of `image` from `first_tile` on, as many as `v` holds.
fn input_tiles<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    first_tile: usize,
    image: &[f32],
    patch: &mut [f32],
    v: &mut [f32],
) {
    Arch::new().dispatch(InputTiles::<T, M, N> {
        p,
        first_tile,
        image,
        patch,
        v,
        tiling: PhantomData,
    });
}

/// `V` of every image of the batch `x`, one image's `v_len` values after another,
/// the images in parallel.
fn batch_input_tiles<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    batch: usize,
    x: &[f32],
) -> Result<Vec<f32>> {
    let v_len = N * N * p.tile_count(M) * p.channels;
    map_image_groups(
        Output::zeros(),
        batch,
        v_len,
        (x, p.image_len()),
        1,
        N * N * p.channels,
        |v, patch, xi| {
            group_input_tiles::<T, M, N>(p, xi, patch, v, v_len);
            Ok(())
        },
    )
}

/// [`convolve`] with all the batch's tiles as the rows of each GEMM, the GEMMs split
/// over the threads.
fn convolve_whole_batch<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    batch: usize,
    x: &[f32],
    u: &StageFilters,
    output: Output<'_>,
) -> Result<Vec<f32>> {
    let (rows, positions) = (batch * p.tile_count(M), N * N);
    let m_len = positions * p.tile_count(M) * p.filters;
    let v = batch_input_tiles::<T, M, N>(p, batch, x)?;
    let mut m = vec![0.0; batch * m_len];
    let mut pairs = vec![0; u.pairs_for(rows, positions, p.channels)];
    Product::<N>::of(p, rows).multiply(&v, &mut pairs, u, &mut m, true)?;
    let start = output.start.per_channel(p.filters);
    let kernel = |y: &mut [MaybeUninit<f32>], _: &mut [f32], m: &[f32]| {
        output_tiles::<T, M, N>(p, 0, m, start, y);
        Ok(())
    };
    let out_len = p.output_image_len();
    // SAFETY: `output_tiles` writes every output of each image (the tiles cover the
    // output plane).
    unsafe { map_image_groups_written(output, batch, out_len, (&m, m_len), 1, 0, kernel) }
}

/// [`filter_gradient`] with all the batch's tiles as the inner dimension of each GEMM,
/// the GEMMs split over the threads.
fn filter_gradient_whole_batch<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    batch: usize,
    x: &[f32],
    dy: &[f32],
    precision: Precision,
) -> Result<Vec<f32>> {
    let (c, o, tiles, positions) = (p.channels, p.filters, p.tile_count(M), N * N);
    let g_len = positions * tiles * o;
    let v = batch_input_tiles::<T, M, N>(p, batch, x)?;
    let g = map_image_groups(
        Output::zeros(),
        batch,
        g_len,
        (dy, p.output_image_len()),
        1,
        M * M * o,
        |g, corners, dy| {
            gradient_tiles::<T, M, N>(p, dy, corners, g);
            Ok(())
        },
    )?;
    let mut du = vec![0.0; positions * c * o];
    Product::<N>::of(p, batch * tiles).filter_sums(&v, &g, &mut du, false, precision, true)?;
    Ok(untransform_filters::<T, M, N>(&du, c, o))
}

/// The N² transform-domain GEMMs over `rows` tiles, one per position of the
/// transformed tile. The tiles are tile-major: `V` has `N² * c` values a tile (the
/// plane's channels), the products `N² * o` (its filters).
struct Product<const N: usize> {
    rows: usize,
    channels: usize,
    filters: usize,
}

impl<const N: usize> Product<N> {
    fn of(p: &Plane, rows: usize) -> Self {
        Self {
            rows,
            channels: p.channels,
            filters: p.filters,
        }
    }

    /// `m = V U` at every position (`threaded`: each GEMM split over the threads). With
    /// bf16 filters, `V` is first rounded into `pairs` (see [`StageFilters::pairs_for`]).
    fn multiply(
        &self,
        v: &[f32],
        pairs: &mut [u32],
        u: &StageFilters,
        m: &mut [f32],
        threaded: bool,
    ) -> Result<()> {
        let (rows, c, o, positions) = (self.rows, self.channels, self.filters, N * N);
        if rows == 0 {
            return Ok(()); // an empty batch: no tiles to view at each position
        }
        let u = match u {
            StageFilters::F32(u) => u,
            StageFilters::Bf16(u) => return self.multiply_in_bf16(v, pairs, u, m, threaded),
        };
        for e in 0..positions {
            gemm(
                MatRef::new(&v[e * c..], rows, c, positions * c, 1)?,
                u.position(e, c, o)?,
                MatMut::new(&mut m[e * o..], rows, o, positions * o)?,
                false,
                threaded,
            )?;
        }
        Ok(())
    }

    /// [`Product::multiply`] by the packed bf16 matrices `u`: `V` rounded into `pairs`,
    /// then each task (one, or one per thread if `threaded`) takes a block of tiles
    /// through every position's product.
    fn multiply_in_bf16(
        &self,
        v: &[f32],
        pairs: &mut [u32],
        u: &[PackedRight],
        m: &mut [f32],
        threaded: bool,
    ) -> Result<()> {
        let (rows, c, o, positions) = (self.rows, self.channels, self.filters, N * N);
        let (c_pairs, tile_outputs) = (c.div_ceil(2), positions * o);
        let tile_pairs = positions * c_pairs;
        let pairs = &mut pairs[..rows * tile_pairs];
        let v = MatRef::row_major(&v[..rows * positions * c], rows * positions, c)?;
        round_to_pairs(v, pairs)?;
        let rows_per_task = match threaded {
            true => rows.div_ceil(rayon::current_num_threads()).max(1),
            false => rows.max(1),
        };
        m[..rows * tile_outputs]
            .par_chunks_mut(rows_per_task * tile_outputs)
            .zip(pairs.par_chunks(rows_per_task * tile_pairs))
            .try_for_each(|(m, pairs)| {
                let rows = m.len() / tile_outputs;
                for (e, u) in u.iter().enumerate() {
                    let m = MatMut::new(&mut m[e * o..], rows, o, tile_outputs)?;
                    gemm_pairs(&pairs[e * c_pairs..], tile_pairs, u, m)?;
                }
                Ok(())
            })
    }

    /// `dU = Vᵀ Ŷ` at every position, the tiles summed (added to `du` if `accumulate`),
    /// the products in `precision` (see [`stage_precision`]).
    fn filter_sums(
        &self,
        v: &[f32],
        g: &[f32],
        du: &mut [f32],
        accumulate: bool,
        precision: Precision,
        threaded: bool,
    ) -> Result<()> {
        let (rows, c, o, positions) = (self.rows, self.channels, self.filters, N * N);
        if rows == 0 {
            return Ok(()); // an empty batch: the sums stay as they are
        }
        for e in 0..positions {
            gemm_in(
                precision,
                MatRef::new(&v[e * c..], rows, c, positions * c, 1)?.t(),
                MatRef::new(&g[e * o..], rows, o, positions * o, 1)?,
                MatMut::row_major(&mut du[e * c * o..][..c * o], c, o)?,
                accumulate,
                threaded,
            )?;
        }
        Ok(())
    }
}

/// `y = start + Aᵀ M A` for every tile of one new output image (see [`OutputTiles`]).
fn output_tiles<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    first_tile: usize,
    m: &[f32],
    start: Option<&[f32]>,
    y: &mut [MaybeUninit<f32>],
) {
    Arch::new().dispatch(OutputTiles::<T, M, N> {
        p,
        first_tile,
        m,
        start,
        y,
        tiling: PhantomData,
    });
}

/// `Ŷ = A dY Aᵀ` for every tile of one output gradient into `g` (see [`GradientTiles`]).
fn gradient_tiles<T: Tiling<M, N>, const M: usize, const N: usize>(
    p: &Plane,
    dy: &[f32],
    corners: &mut [f32],
    g: &mut [f32],
) {
    Arch::new().dispatch(GradientTiles::<T, M, N> {
        p,
        dy,
        corners,
        g,
        tiling: PhantomData,
    });
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
    let inputs = from.len() / len.max(1);
    let weights: Vec<f32> = (0..outputs * inputs)
        .map(|ij| weight(ij / inputs, ij % inputs))
        .collect();
    let mut to = vec![0.0; outputs * len];
    // The outputs split over the threads when there are enough values to pay for it.
    let per_task = match outputs * len >= PARALLEL_MIX {
        true => outputs.div_ceil(rayon::current_num_threads()),
        false => outputs,
    };
    to.par_chunks_mut(per_task * len)
        .zip(weights.par_chunks(per_task * inputs))
        .for_each(|(to, weights)| {
            Arch::new().dispatch(Mix {
                from,
                to,
                weights,
                inputs,
                len,
            })
        });
    to
}

/// Values of transformed (or untransformed) filters from which [`mix`] splits its
/// outputs over the threads: 256K, a 128 -> 128 layer's F(4x4) transform (590K) and
/// up; the lecture's smaller layers stay on one thread.
const PARALLEL_MIX: usize = 1 << 18;

/// The sums of [`mix`], `weights` row-major `(outputs, inputs)`: a [`WithSimd`] op, so
/// that its loop is compiled for (and vectorizes at) the CPU's widest vectors.
struct Mix<'a> {
    from: &'a [f32],
    to: &'a mut [f32],
    weights: &'a [f32],
    inputs: usize,
    len: usize,
}

impl WithSimd for Mix<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        const BLOCK: usize = 1024;
        let Self {
            from,
            to,
            weights,
            inputs,
            len,
        } = self;
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
    }
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
                gradient_tile::<T, S, M, N>(simd, (source, &offsets), k, o, out);
            }
            for k in vector_filters..o {
                gradient_tile::<T, _, M, N>(pulp::Scalar, (source, &offsets), k, o, out);
            }
        }
    }
}

/// `V = Bᵀ d B` for every tile of one image: tile-major, N² rows of `c` values per
/// tile (one per position of the transformed tile). `patch` holds one gathered N x N
/// tile.
struct InputTiles<'a, T, const M: usize, const N: usize> {
    p: &'a Plane,
    first_tile: usize,
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
            p,
            first_tile,
            image,
            patch,
            v,
            ..
        } = self;
        let c = p.channels;
        let vector_channels = c / S::F32_LANES * S::F32_LANES;
        for (tile, out) in (first_tile..).zip(v.chunks_exact_mut(N * N * c)) {
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
                input_tile::<T, S, M, N>(simd, (source, &offsets), ch, c, out);
            }
            for ch in vector_channels..c {
                input_tile::<T, _, M, N>(pulp::Scalar, (source, &offsets), ch, c, out);
            }
        }
    }
}

/// `Ŷ = A dY Aᵀ` for the M x M tile of `dY` at `source[offsets[i][j] + at]` (one vector
/// of filters from `at`), stored at `out[(r * N + s) * stride + at]`.
#[inline(always)]
fn gradient_tile<T: Tiling<M, N>, S: Simd, const M: usize, const N: usize>(
    simd: S,
    (source, offsets): (&[f32], &[[usize; M]; M]),
    at: usize,
    stride: usize,
    out: &mut [f32],
) {
    T::gradient_tile(
        simd,
        #[inline(always)]
        |i, j| load::<S>(&source[offsets[i][j] + at..]),
        #[inline(always)]
        |r, s, value| store::<S>(&mut out[(r * N + s) * stride + at..], value),
    );
}

/// `V = Bᵀ d B` for the N x N tile `d` at `source[offsets[i][j] + at]` (one vector of
/// channels from `at`), stored at `out[(a * N + b) * stride + at]`.
#[inline(always)]
fn input_tile<T: Tiling<M, N>, S: Simd, const M: usize, const N: usize>(
    simd: S,
    (source, offsets): (&[f32], &[[usize; N]; N]),
    at: usize,
    stride: usize,
    out: &mut [f32],
) {
    T::input_tile(
        simd,
        #[inline(always)]
        |i, j| load::<S>(&source[offsets[i][j] + at..]),
        #[inline(always)]
        |a, b, value| store::<S>(&mut out[(a * N + b) * stride + at..], value),
    );
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

/// `y = start + Aᵀ M A` for every tile, written into the new output `y` (no pass writes
/// the start first); `m` is tile-major like `V`. The tiles cover the output plane, so
/// every output is written once; the last row or column of tiles may hang over the
/// output's edge, and writes only the outputs that exist.
struct OutputTiles<'a, T, const M: usize, const N: usize> {
    p: &'a Plane,
    first_tile: usize,
    m: &'a [f32],
    start: Option<&'a [f32]>,
    y: &'a mut [MaybeUninit<f32>],
    tiling: PhantomData<T>,
}

impl<T: Tiling<M, N>, const M: usize, const N: usize> WithSimd for OutputTiles<'_, T, M, N> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            p,
            first_tile,
            m,
            start,
            y,
            ..
        } = self;
        let o = p.filters;
        let vector_filters = o / S::F32_LANES * S::F32_LANES;
        let [rows, cols] = p.output;
        for (tile, mt) in (first_tile..).zip(m.chunks_exact(N * N * o)) {
            let (oy, ox) = p.tile_origin(tile, M);
            let whole = oy + M <= rows && ox + M <= cols;
            for k in (0..vector_filters).step_by(S::F32_LANES) {
                write_output::<T, S, M, N>(simd, p, (mt, start), k, (oy, ox, whole), y);
            }
            for k in vector_filters..o {
                write_output::<T, _, M, N>(pulp::Scalar, p, (mt, start), k, (oy, ox, whole), y);
            }
        }
    }
}

/// Writes `start + Aᵀ M A` for the filters from `k` (one vector of them) to the outputs
/// of the tile at `(oy, ox)`: all of them if the tile is `whole`ly inside the output,
/// else those that exist. Without a bias, +0.0 is added rather than the value written,
/// so that a -0.0 comes out as a zeroed output plus the value would give it.
#[inline(always)]
fn write_output<T: Tiling<M, N>, S: Simd, const M: usize, const N: usize>(
    simd: S,
    p: &Plane,
    (mt, start): (&[f32], Option<&[f32]>),
    k: usize,
    (oy, ox, whole): (usize, usize, bool),
    y: &mut [MaybeUninit<f32>],
) {
    let (o, [rows, cols]) = (p.filters, p.output);
    let m = |r: usize, s: usize| load::<S>(&mt[(r * N + s) * o + k..]);
    let at = |i: usize, j: usize| ((oy + i) * cols + ox + j) * o + k;
    let first = start.map_or(simd.splat_f32s(0.0), |b| load::<S>(&b[k..]));
    if whole {
        T::output_tile(
            simd,
            m,
            #[inline(always)]
            |i, j, value| write_new(&mut y[at(i, j)..], simd.add_f32s(first, value)),
        );
    } else {
        T::output_tile(
            simd,
            m,
            #[inline(always)]
            |i, j, value| {
                if oy + i < rows && ox + j < cols {
                    write_new(&mut y[at(i, j)..], simd.add_f32s(first, value));
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::Scalar;

    /// The group sizes the groups test in `conv/tests.rs` relies on, and the Keras MNIST
    /// CNN's 11x11 layer (9 tiles, 32 -> 64): enough tiles, within the scratch.
    #[test]
    fn groups_give_the_gemms_enough_tiles_within_the_scratch() {
        let scratch = |tiles: usize, c: usize, o: usize| 36 * tiles * (c + o);
        // On one thread, so that a task holds the whole batch of 128.
        let one = crate::parallel::pool_of(1);
        let group =
            |tiles, c, o| one.install(|| images_per_group(tiles, scratch(tiles, c, o), 128));
        assert_eq!(group(49, 16, 16), 3);
        assert_eq!(group(64, 16, 16), 2);
        assert_eq!(group(9, 32, 64), 8);
        // A large image: one at a time, even with a scratch past the budget.
        assert_eq!(group(256, 32, 64), 1);
        // Never more than a task's images: batch 1 allocates for one.
        assert_eq!(images_per_group(9, scratch(9, 32, 64), 1), 1);
    }

    /// Which passes run on the whole batch: ResNet18's and VGG16's layers of 512
    /// filters, the filter gradient of their 256-filter layers, the whole-batch test in
    /// `conv/tests.rs` (344 -> 344, 4 tiles an image); not the lecture's smaller layers,
    /// nor large images, whose groups give the GEMMs enough rows.
    /// One image that overflows the group's scratch goes in bands of tiles: 56 of 18 KiB
    /// (F(4x4), 64 channels and filters) or 28 of 36 KiB (128), at least 16; not when
    /// the image fits, nor in groups of several images.
    #[test]
    fn images_too_large_for_the_scratch_go_in_bands_of_tiles() {
        let per_tile = |channels: usize| 36 * 2 * channels;
        assert_eq!(tiles_per_band(1, 100, per_tile(64)), Some(56));
        assert_eq!(tiles_per_band(1, 196, per_tile(64)), Some(56));
        assert_eq!(tiles_per_band(1, 49, per_tile(128)), Some(28));
        assert_eq!(tiles_per_band(1, 196, per_tile(1024)), Some(16));
        assert_eq!(tiles_per_band(1, 56, per_tile(64)), None);
        assert_eq!(tiles_per_band(3, 100, per_tile(64)), None);
    }

    #[test]
    fn the_whole_batch_is_taken_for_large_filters_and_few_tiles() {
        let filters = |c: usize, o: usize| 36 * c * o;
        let passes = |group_tiles, c, o| {
            [Pass::Convolve, Pass::FilterGradient]
                .map(|pass| whole_batch(pass, group_tiles, filters(c, o)))
        };
        assert_eq!(passes(4, 512, 512), [true, true]);
        assert_eq!(passes(49, 512, 512), [true, true]);
        assert_eq!(passes(16, 256, 256), [false, true]);
        assert_eq!(passes(16, 128, 256), [false, false]);
        assert_eq!(passes(72, 32, 64), [false, false]);
        assert_eq!(passes(196, 256, 256), [false, false]);
        // The test's shape in groups of 1 or 2 images, as the thread count gives.
        assert_eq!(passes(4, 344, 344), [true, true]);
        assert_eq!(passes(8, 344, 344), [true, true]);
        // The same choice as the passes make it, on the shapes of the conv tests: the
        // whole-batch test's three passes take the whole batch, the groups test's none.
        let choices = |input: [usize; 4], filter: [usize; 4]| {
            let s = ConvShape::new(&input, &filter, &crate::Conv2dSpec::default()).unwrap();
            let (forward, turned) = (Plane::of(&s), Plane::turned(&s));
            [
                images_per_gemm::<4, 6>(Pass::Convolve, &forward, s.batch),
                images_per_gemm::<4, 6>(Pass::Convolve, &turned, s.batch),
                images_per_gemm::<4, 6>(Pass::FilterGradient, &forward, s.batch),
            ]
        };
        assert_eq!(choices([3, 8, 8, 344], [3, 3, 344, 344]), [None; 3]);
        assert!(choices([7, 30, 30, 16], [3, 3, 16, 16])
            .iter()
            .all(Option::is_some));
    }

    #[test]
    fn transpose_swaps_rows_and_columns_past_the_blocks() {
        let (rows, cols) = (17, 35);
        let from: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let mut to = vec![0.0; rows * cols];
        transpose(&from, rows, cols, &mut to);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(to[c * rows + r], from[r * cols + c], "({r}, {c})");
            }
        }
    }

    /// `L X Lᵀ` in f64, `l(a, i)` being `L`'s entries (R x K).
    fn sandwich_f64<const K: usize, const R: usize>(
        l: impl Fn(usize, usize) -> f32,
        x: &[[f64; K]; K],
    ) -> [[f64; R]; R] {
        from_fn(|a| {
            from_fn(|b| {
                (0..K * K)
                    .map(|ij| f64::from(l(a, ij / K)) * x[ij / K][ij % K] * f64::from(l(b, ij % K)))
                    .sum()
            })
        })
    }

    fn widen<const K: usize>(x: &[[f32; K]; K]) -> [[f64; K]; K] {
        x.map(|row| row.map(f64::from))
    }

    fn assert_close<const R: usize>(fast: &[[f32; R]; R], exact: &[[f64; R]; R], what: &str) {
        for (i, (f, e)) in fast
            .iter()
            .flatten()
            .zip(exact.iter().flatten())
            .enumerate()
        {
            assert!(
                (f64::from(*f) - e).abs() < 1e-4 * e.abs().max(1.0),
                "{what} ({}, {}): {f} vs {e}",
                i / R,
                i % R
            );
        }
    }

    /// The straight-line tile transforms compute the products with the tiling's
    /// matrices, and together with `U = G g Gᵀ` give the direct correlation
    /// `y[i][j] = Σ g[a][b] d[i + a][j + b]` (to f32 rounding).
    fn check_tiling<T: Tiling<M, N>, const M: usize, const N: usize>() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        };
        for _ in 0..20 {
            let d: [[f32; N]; N] = from_fn(|_| from_fn(|_| next()));
            let g: [[f32; 3]; 3] = from_fn(|_| from_fn(|_| next()));
            let dy: [[f32; M]; M] = from_fn(|_| from_fn(|_| next()));

            let mut v = [[0.0; N]; N];
            T::input_tile(Scalar, |i, j| d[i][j], |a, b, x| v[a][b] = x);
            assert_close(&v, &sandwich_f64(|a, i| T::B_T[a][i], &widen(&d)), "Bᵀ d B");

            let mut gradient = [[0.0; N]; N];
            T::gradient_tile(Scalar, |i, j| dy[i][j], |r, s, x| gradient[r][s] = x);
            let exact = sandwich_f64(|r, i| T::A_T[i][r], &widen(&dy));
            assert_close(&gradient, &exact, "A dY Aᵀ");

            let u: [[f64; N]; N] = sandwich_f64(|r, i| T::G[r][i], &widen(&g));
            let m: [[f32; N]; N] = from_fn(|r| from_fn(|s| (u[r][s] * f64::from(v[r][s])) as f32));
            let mut y = [[0.0; M]; M];
            T::output_tile(Scalar, |r, s| m[r][s], |i, j, x| y[i][j] = x);
            assert_close(&y, &sandwich_f64(|i, r| T::A_T[i][r], &widen(&m)), "Aᵀ M A");

            let direct: [[f64; M]; M] = from_fn(|i| {
                from_fn(|j| {
                    (0..9)
                        .map(|ab| {
                            f64::from(g[ab / 3][ab % 3]) * f64::from(d[i + ab / 3][j + ab % 3])
                        })
                        .sum()
                })
            });
            assert_close(
                &y,
                &direct,
                &format!("F({M}x{M}) against the direct correlation"),
            );
        }
        assert_eq!(N, M + 2);
    }

    #[test]
    fn the_transforms_compute_the_direct_correlation() {
        check_tiling::<F2x2, 2, 4>();
        check_tiling::<F4x4, 4, 6>();
    }
}
