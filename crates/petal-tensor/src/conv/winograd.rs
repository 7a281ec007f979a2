//! 3x3 convolutions with stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin and
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! The output is cut into 2x2 tiles. Each tile reads a 4x4 input tile `d`; with the
//! filter `g` transformed once to `U = G g Gᵀ` and the tile to `V = Bᵀ d B`, the tile's
//! outputs are `Aᵀ (U ⊙ V) A`, summed over the input channels. The product `U ⊙ V`
//! summed over channels is, for each of the 16 positions of the 4x4 transformed tile, a
//! GEMM `(tiles, c) x (c, o)`: 16 multiplies per 2x2 outputs where the direct
//! convolution does 36, so 2.25x fewer. The transforms only add and halve, along the
//! channels, which vectorizes in NHWC.
//!
//! The input gradient of a stride-1 3x3 convolution is itself one: the output gradient
//! convolved with the filter turned by 180 degrees, input and output channels swapped,
//! and padding `2 - p` in front of each axis (see [`backward_input`]). The filter
//! gradient runs the algorithm backwards (see [`backward_filter`]).

use super::batch::{map_images, sum_over_images, Output};
use super::ConvShape;
use crate::error::Result;
use crate::gemm::{gemm, MatMut, MatRef};
use crate::parallel::gemm_needs_threads;
use crate::simd::{add_to, load, store};
use crate::window::AxisGeometry;
use pulp::{Arch, Simd, WithSimd};

/// Values in a transformed tile (4x4).
const TILE: usize = 16;
/// Fewer channels or filters than this leave too little work per tile for the
/// transforms to pay (a round number below the lecture networks' 32, not tuned).
const MIN_CHANNELS: usize = 16;

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
    fn tiles(&self) -> [usize; 2] {
        [self.output[0].div_ceil(2), self.output[1].div_ceil(2)]
    }
    fn tile_count(&self) -> usize {
        self.tiles()[0] * self.tiles()[1]
    }
    fn image_len(&self) -> usize {
        self.input[0] * self.input[1] * self.channels
    }
    fn output_image_len(&self) -> usize {
        self.output[0] * self.output[1] * self.filters
    }
    /// The first output row and column of tile `tile` (tiles numbered row by row).
    fn tile_origin(&self, tile: usize) -> (usize, usize) {
        let tiles_x = self.tiles()[1];
        (2 * (tile / tiles_x), 2 * (tile % tiles_x))
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

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    convolve(&Plane::of(s), s.batch, x, f, output)
}

/// The filter gradient, by the same algorithm run backwards: with `Ŷ = A dY Aᵀ` for each
/// 2x2 tile of the output gradient (4x4), `dU = Σ V ⊙ Ŷ` over tiles and images (16
/// GEMMs `(c, tiles) x (tiles, o)`), and `dW = Gᵀ dU G`.
pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let p = Plane::of(s);
    let (c, o, tiles) = (p.channels, p.filters, p.tile_count());
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (v_len, g_len) = (TILE * tiles * c, TILE * tiles * o);
    let accumulate = |du: &mut [f32], scratch: &mut [f32], xi: &[f32], dyi: &[f32]| {
        let (v, rest) = scratch.split_at_mut(v_len);
        let (g, patch) = rest.split_at_mut(g_len);
        Arch::new().dispatch(InputTiles {
            p: &p,
            image: xi,
            patch: &mut patch[..TILE * c],
            v,
        });
        Arch::new().dispatch(GradientTiles {
            p: &p,
            dy: dyi,
            corners: &mut patch[..4 * o],
            g,
        });
        for e in 0..TILE {
            gemm(
                MatRef::new(&v[e * c..], tiles, c, TILE * c, 1)?.t(),
                MatRef::new(&g[e * o..], tiles, o, TILE * o, 1)?,
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
        TILE * c * o,
        v_len + g_len + TILE * c.max(o),
        accumulate,
    )?;
    Ok(untransform_filters(&du, c, o))
}

/// `dx += conv(dy, rot180(f)ᵀ)` with padding `2 - p`: tap `k` of output `o` reads input
/// `o + k - p`, so input `i` collects output `i + p - k = i + k' - (2 - p)` for the
/// turned tap `k' = 2 - k`.
pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
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
    convolve(&plane, s.batch, dy, &turned, Output::zeros())
}

/// `conv(x, f)` over the batch, started and finished as `output` says; `f` is HWIO
/// `(3, 3, channels, filters)`.
fn convolve(p: &Plane, batch: usize, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    let (c, o, tiles) = (p.channels, p.filters, p.tile_count());
    let u = transform_filters(f, c, o);
    let threaded_gemm = gemm_needs_threads(batch);
    let (v_len, m_len) = (TILE * tiles * c, TILE * tiles * o);
    map_images(
        output,
        batch,
        p.output_image_len(),
        x,
        p.image_len(),
        v_len + m_len + TILE * c,
        |yi, scratch, xi| {
            let (v, rest) = scratch.split_at_mut(v_len);
            let (m, patch) = rest.split_at_mut(m_len);
            Arch::new().dispatch(InputTiles {
                p,
                image: xi,
                patch,
                v,
            });
            for e in 0..TILE {
                gemm(
                    MatRef::new(&v[e * c..], tiles, c, TILE * c, 1)?,
                    MatRef::row_major(&u[e * c * o..][..c * o], c, o)?,
                    MatMut::new(&mut m[e * o..], tiles, o, TILE * o)?,
                    false,
                    threaded_gemm,
                )?;
            }
            Arch::new().dispatch(OutputTiles { p, m, y: yi });
            Ok(())
        },
    )
}

/// `U = G g Gᵀ` for every (channel, filter): 16 matrices `(c, o)`, one per position of
/// the 4x4 transformed tile. `G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]`.
fn transform_filters(f: &[f32], c: usize, o: usize) -> Vec<f32> {
    let mut u = vec![0.0; TILE * c * o];
    let g = |ky: usize, kx: usize, i: usize| f[(ky * 3 + kx) * c * o + i];
    for i in 0..c * o {
        // Rows first: t = G g (4x3), then U = t Gᵀ (4x4).
        let column = |kx: usize| {
            let (g0, g1, g2) = (g(0, kx, i), g(1, kx, i), g(2, kx, i));
            [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
        };
        let columns = [column(0), column(1), column(2)];
        let t: [[f32; 3]; 4] = std::array::from_fn(|r| columns.map(|col| col[r]));
        for (r, [t0, t1, t2]) in t.into_iter().enumerate() {
            let row = [t0, 0.5 * (t0 + t1 + t2), 0.5 * (t0 - t1 + t2), t2];
            for (s, value) in row.into_iter().enumerate() {
                u[(r * 4 + s) * c * o + i] = value;
            }
        }
    }
    u
}

/// `dW = Gᵀ dU G`: the 16 matrices `(c, o)` of a transformed-tile gradient back to the
/// HWIO filter `(3, 3, c, o)`. `Gᵀ = [1 ½ ½ 0; 0 ½ -½ 0; 0 ½ ½ 1]`.
fn untransform_filters(du: &[f32], c: usize, o: usize) -> Vec<f32> {
    const G_T: [[f32; 4]; 3] = [
        [1.0, 0.5, 0.5, 0.0],
        [0.0, 0.5, -0.5, 0.0],
        [0.0, 0.5, 0.5, 1.0],
    ];
    let mut dw = vec![0.0; 9 * c * o];
    for i in 0..c * o {
        let at = |r: usize, s: usize| du[(r * 4 + s) * c * o + i];
        for (ky, gy) in G_T.iter().enumerate() {
            for (kx, gx) in G_T.iter().enumerate() {
                let mut sum = 0.0;
                for (r, wy) in gy.iter().enumerate() {
                    for (s, wx) in gx.iter().enumerate() {
                        sum += wy * at(r, s) * wx;
                    }
                }
                dw[(ky * 3 + kx) * c * o + i] = sum;
            }
        }
    }
    dw
}

/// `Ŷ = A dY Aᵀ` for every 2x2 tile of one output gradient, `A = [1 0; 1 1; 1 -1;
/// 0 -1]`: tile-major like `V`, 16 rows of `o` values per tile. Outputs past the edge
/// count as zeros (`corners` holds a hanging tile's four pixels).
struct GradientTiles<'a> {
    p: &'a Plane,
    dy: &'a [f32],
    corners: &'a mut [f32],
    g: &'a mut [f32],
}

impl WithSimd for GradientTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self { p, dy, corners, g } = self;
        let (o, [rows, cols]) = (p.filters, p.output);
        let vector_filters = o / S::F32_LANES * S::F32_LANES;
        for (tile, out) in g.chunks_exact_mut(TILE * o).enumerate() {
            let (oy, ox) = p.tile_origin(tile);
            let pixel = |i: usize| {
                let (y, x) = (oy + i / 2, ox + i % 2);
                (y < rows && x < cols).then(|| (y * cols + x) * o)
            };
            let (source, offsets): (&[f32], [usize; 4]) = match [0, 1, 2, 3].map(pixel) {
                [Some(a), Some(b), Some(c), Some(d)] => (dy, [a, b, c, d]),
                hanging => {
                    gather_pixels(dy, hanging, o, corners);
                    (corners, [0, o, 2 * o, 3 * o])
                }
            };
            for k in (0..vector_filters).step_by(S::F32_LANES) {
                transform_gradient(simd, source, &offsets, k, o, out);
            }
            for k in vector_filters..o {
                transform_gradient(pulp::Scalar, source, &offsets, k, o, out);
            }
        }
    }
}

/// `A dY Aᵀ` for the filters from `k` (one vector of them); the tile's output `i`
/// (row-major 2x2) starts at `source[offsets[i]]`.
#[inline(always)]
fn transform_gradient<S: Simd>(
    simd: S,
    source: &[f32],
    offsets: &[usize; 4],
    k: usize,
    o: usize,
    out: &mut [f32],
) {
    let d = |i: usize| load::<S>(&source[offsets[i] + k..]);
    let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
    let zero = simd.splat_f32s(0.0);
    let (y00, y01, y10, y11) = (d(0), d(1), d(2), d(3));
    // Down each column by A, then along each row by Aᵀ.
    let left = [y00, add(y00, y10), sub(y00, y10), sub(zero, y10)];
    let right = [y01, add(y01, y11), sub(y01, y11), sub(zero, y11)];
    for r in 0..4 {
        let (p0, p1) = (left[r], right[r]);
        store::<S>(&mut out[(r * 4) * o + k..], p0);
        store::<S>(&mut out[(r * 4 + 1) * o + k..], add(p0, p1));
        store::<S>(&mut out[(r * 4 + 2) * o + k..], sub(p0, p1));
        store::<S>(&mut out[(r * 4 + 3) * o + k..], sub(zero, p1));
    }
}

/// `V = Bᵀ d B` for every tile of one image, `Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0;
/// 0 1 0 -1]`: tile-major, 16 rows of `c` values per tile (one per position of the
/// transformed tile). `patch` holds one gathered 4x4 tile.
struct InputTiles<'a> {
    p: &'a Plane,
    image: &'a [f32],
    patch: &'a mut [f32],
    v: &'a mut [f32],
}

impl WithSimd for InputTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self { p, image, patch, v } = self;
        let c = p.channels;
        let vector_channels = c / S::F32_LANES * S::F32_LANES;
        for (tile, out) in v.chunks_exact_mut(TILE * c).enumerate() {
            let (oy, ox) = p.tile_origin(tile);
            // A tile inside the image is read where it is; one over the edge is first
            // copied with its zeros into `patch`.
            let inside = (oy.checked_sub(p.pad[0]), ox.checked_sub(p.pad[1]));
            let (source, offsets): (&[f32], [usize; TILE]) = match inside {
                (Some(iy), Some(ix)) if iy + 4 <= p.input[0] && ix + 4 <= p.input[1] => (
                    image,
                    std::array::from_fn(|i| ((iy + i / 4) * p.input[1] + ix + i % 4) * c),
                ),
                _ => {
                    gather_tile(p, image, oy, ox, patch);
                    (patch, std::array::from_fn(|i| i * c))
                }
            };
            for ch in (0..vector_channels).step_by(S::F32_LANES) {
                transform_input(simd, source, &offsets, ch, c, out);
            }
            for ch in vector_channels..c {
                transform_input(pulp::Scalar, source, &offsets, ch, c, out);
            }
        }
    }
}

/// `Bᵀ d B` for the channels from `ch` (one vector of them); the tile's pixel `i`
/// starts at `source[offsets[i]]`.
#[inline(always)]
fn transform_input<S: Simd>(
    simd: S,
    source: &[f32],
    offsets: &[usize; TILE],
    ch: usize,
    c: usize,
    out: &mut [f32],
) {
    let d = |i: usize| load::<S>(&source[offsets[i] + ch..]);
    let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
    // Within each row by B, then down each column by Bᵀ. (Plain locals and indexed
    // stores: arrays built by closures were copied through memory, not registers.)
    let mut t = [simd.splat_f32s(0.0); TILE];
    for row in [0, 4, 8, 12] {
        let (d0, d1, d2, d3) = (d(row), d(row + 1), d(row + 2), d(row + 3));
        t[row] = sub(d0, d2);
        t[row + 1] = add(d1, d2);
        t[row + 2] = sub(d2, d1);
        t[row + 3] = sub(d1, d3);
    }
    for xx in 0..4 {
        let (r0, r1, r2, r3) = (t[xx], t[4 + xx], t[8 + xx], t[12 + xx]);
        store::<S>(&mut out[xx * c + ch..], sub(r0, r2));
        store::<S>(&mut out[(4 + xx) * c + ch..], add(r1, r2));
        store::<S>(&mut out[(8 + xx) * c + ch..], sub(r2, r1));
        store::<S>(&mut out[(12 + xx) * c + ch..], sub(r1, r3));
    }
}

/// Copies the 4x4 input tile whose top-left output is `(oy, ox)` into `patch`
/// (pixel-major, `c` values each), zeros where it falls outside the image.
#[inline(always)]
fn gather_tile(p: &Plane, image: &[f32], oy: usize, ox: usize, patch: &mut [f32]) {
    let (c, [rows, cols]) = (p.channels, p.input);
    let pixels: [Option<usize>; TILE] = std::array::from_fn(|i| {
        let iy = (oy + i / 4).checked_sub(p.pad[0]).filter(|&iy| iy < rows)?;
        let ix = (ox + i % 4).checked_sub(p.pad[1]).filter(|&ix| ix < cols)?;
        Some((iy * cols + ix) * c)
    });
    gather_pixels(image, pixels, c, patch);
}

/// Copies `len` values from each `pixels` offset of `source` one after another into
/// `buffer`; a `None` pixel (outside the image) becomes `len` zeros.
#[inline(always)]
fn gather_pixels<const N: usize>(
    source: &[f32],
    pixels: [Option<usize>; N],
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

/// `y += Aᵀ M A` for every tile, `Aᵀ = [1 1 1 0; 0 1 -1 -1]`; `m` is tile-major like
/// `V`. The last row or column of tiles may hang over the output's edge.
struct OutputTiles<'a> {
    p: &'a Plane,
    m: &'a [f32],
    y: &'a mut [f32],
}

impl WithSimd for OutputTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self { p, m, y } = self;
        let (o, [rows, cols]) = (p.filters, p.output);
        let vector_filters = o / S::F32_LANES * S::F32_LANES;
        for (tile, mt) in m.chunks_exact(TILE * o).enumerate() {
            let (oy, ox) = p.tile_origin(tile);
            if oy + 2 <= rows && ox + 2 <= cols {
                let (top, bottom) = y[(oy * cols + ox) * o..].split_at_mut(cols * o);
                for k in (0..vector_filters).step_by(S::F32_LANES) {
                    add_output(simd, mt, o, k, top, bottom);
                }
                for k in vector_filters..o {
                    add_output(pulp::Scalar, mt, o, k, top, bottom);
                }
            } else {
                // A tile over the edge: the outputs that exist, one value at a time.
                for k in 0..o {
                    let values = inverse_transform(pulp::Scalar, mt, o, k);
                    for (i, value) in values.into_iter().enumerate() {
                        let (y_at, x_at) = (oy + i / 2, ox + i % 2);
                        if y_at < rows && x_at < cols {
                            y[(y_at * cols + x_at) * o + k] += value;
                        }
                    }
                }
            }
        }
    }
}

/// Adds a whole tile's 2x2 outputs for the filters from `k` to the output rows that
/// start at the tile (`top`) and one below (`bottom`).
#[inline(always)]
fn add_output<S: Simd>(
    simd: S,
    mt: &[f32],
    o: usize,
    k: usize,
    top: &mut [f32],
    bottom: &mut [f32],
) {
    let [y00, y01, y10, y11] = inverse_transform(simd, mt, o, k);
    add_to(simd, &mut top[k..], y00);
    add_to(simd, &mut top[o + k..], y01);
    add_to(simd, &mut bottom[k..], y10);
    add_to(simd, &mut bottom[o + k..], y11);
}

/// The 2x2 outputs `[y00, y01, y10, y11]` for the filters from `k` (one vector of them).
#[inline(always)]
fn inverse_transform<S: Simd>(simd: S, mt: &[f32], o: usize, k: usize) -> [S::f32s; 4] {
    let m = |i: usize| load::<S>(&mt[i * o + k..]);
    let (add, sub) = (|a, b| simd.add_f32s(a, b), |a, b| simd.sub_f32s(a, b));
    let (mut top, mut bottom) = ([simd.splat_f32s(0.0); 4], [simd.splat_f32s(0.0); 4]);
    for xx in 0..4 {
        let (m0, m1, m2, m3) = (m(xx), m(4 + xx), m(8 + xx), m(12 + xx));
        top[xx] = add(add(m0, m1), m2);
        bottom[xx] = sub(sub(m1, m2), m3);
    }
    [
        add(add(top[0], top[1]), top[2]),
        sub(sub(top[1], top[2]), top[3]),
        add(add(bottom[0], bottom[1]), bottom[2]),
        sub(sub(bottom[1], bottom[2]), bottom[3]),
    ]
}
