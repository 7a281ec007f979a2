//! The blocked product: B packed once, the output split into row x column blocks (the
//! parallel tasks), each walking k in cache blocks through the micro-kernel.

use rayon::prelude::*;

use super::kernel::{tile_of_width, Prefetch, Tile, LANES, MR};
use super::pack::pack_pairs;
use crate::gemm::{MatMut, MatRef};

/// Columns of a B panel: four zmm accumulators per tile row.
const NR: usize = 4 * LANES;
/// Pairs (k values halved) per cache block: a panel's `KC x NR` slice is 64 KiB (L2).
/// Against 128 (32 KiB, in L1), `cargo bench -p petal-tensor --bench gemm --
/// gemm_precision` on 2 threads gave 389 vs 353 GFLOP/s for 2048^3 and 317 vs 267 for
/// the Keras MNIST conv2 products per image (k = 288 is then one block, not two).
const KC: usize = 256;
/// Rows per output block (a multiple of `MR`): its A block is `MC x KC` pairs, 144 KiB.
const MC: usize = 24 * MR;
/// Columns per output block (a multiple of `NR`).
const NC: usize = 8 * NR;

/// `c (+)= a * b` in bf16 for shapes already checked (`m, k, n >= 1`), on the current
/// rayon pool when `parallel`.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16 ([`Precision::supported`](crate::Precision::supported)).
pub(super) unsafe fn product(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: MatMut<'_>,
    accumulate: bool,
    parallel: bool,
) {
    // SAFETY: the caller checked the CPU features.
    unsafe { product_by_packed(a, &PackedB::new(b, parallel), c, accumulate, parallel) }
}

/// [`product`] with B already packed.
///
/// # Safety
/// As for [`product`]; `packed_b` is `k x n`.
pub(super) unsafe fn product_by_packed(
    a: MatRef<'_>,
    packed_b: &PackedB,
    c: MatMut<'_>,
    accumulate: bool,
    parallel: bool,
) {
    let out = Out {
        data: c.data.as_mut_ptr(),
        row_stride: c.row_stride,
    };
    let blocks: Vec<(usize, usize)> = (0..c.rows)
        .step_by(MC)
        .flat_map(|row| (0..c.cols).step_by(NC).map(move |col| (row, col)))
        .collect();
    let run = |scratch: &mut Aligned, (row, col): (usize, usize)| {
        block(a, packed_b, &out, (row, col), accumulate, scratch)
    };
    if parallel {
        blocks.into_par_iter().for_each_init(Aligned::default, run);
    } else {
        let mut scratch = Aligned::default();
        blocks.into_iter().for_each(|b| run(&mut scratch, b));
    }
}

/// `c = a * b` on this thread for an A already in pairs: row `i`'s pair `p` is
/// `a[i * a_rs + p]` for the `c.rows` rows and `b.pairs` pairs. Each 64-column panel of
/// `b` (in L1 for the short k of Winograd's products) runs down all the rows; a last
/// tile of fewer than `MR` rows is copied out first when `a` ends before its `MR`th.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16.
pub(super) unsafe fn product_of_pairs(a: &[u32], a_rs: usize, b: &PackedB, c: MatMut<'_>) {
    let (rows, pairs) = (c.rows, b.pairs);
    let out = Out {
        data: c.data.as_mut_ptr(),
        row_stride: c.row_stride,
    };
    // Whether the `MR` rows of the tile from row `first` lie inside `a`.
    let inside = |first: usize| (first + MR - 1) * a_rs + pairs <= a.len();
    // Made only for a last tile that ends past `a` (this runs per position and group).
    let mut last_tile = Vec::new();
    for panel in 0..b.cols.div_ceil(NR) {
        let (panel_b, width) = b.panel(panel);
        for tile_row in (0..rows).step_by(MR) {
            let tile_rows = MR.min(rows - tile_row);
            let (tile_a, tile_rs) = if inside(tile_row) {
                (&a[tile_row * a_rs..], a_rs)
            } else {
                last_tile.resize(MR * pairs, 0);
                for (i, row) in last_tile
                    .chunks_exact_mut(pairs)
                    .take(tile_rows)
                    .enumerate()
                {
                    row.copy_from_slice(&a[(tile_row + i) * a_rs..][..pairs]);
                }
                (&last_tile[..], pairs)
            };
            let t = Tile {
                a: tile_a,
                a_rs: tile_rs,
                a_ps: 1,
                b: panel_b,
                pairs,
                c: out.at(tile_row, panel * NR),
                c_rs: out.row_stride,
                rows: tile_rows,
                cols: NR.min(b.cols - panel * NR),
                accumulate: false,
                prefetch: Prefetch::NONE,
            };
            // SAFETY: CPU features as above; the tile's `MR` rows of pairs are inside
            // `tile_a` (checked by `inside`, else copied out), the panel
            // holds `pairs x width` values, and the tile is inside `c`.
            unsafe { tile_of_width(t, width) }
        }
    }
}

/// Computes the output block whose first element is `(row, col)`: at most `MC` rows by
/// `NC` columns.
fn block(
    a: MatRef<'_>,
    b: &PackedB,
    out: &Out,
    (row, col): (usize, usize),
    accumulate: bool,
    scratch: &mut Aligned,
) {
    let (rows, cols) = (MC.min(a.rows - row), NC.min(b.cols - col));
    let padded_rows = rows.next_multiple_of(MR);
    // k in equal blocks of at most KC pairs (a few more blocks than needed would each
    // cost a pass over the block's output).
    let k_block = b.pairs.div_ceil(b.pairs.div_ceil(KC));
    for first_pair in (0..b.pairs).step_by(k_block) {
        let pairs = k_block.min(b.pairs - first_pair);
        let k_cols = (2 * pairs).min(a.cols - 2 * first_pair);
        // Pairs along a row when the row is contiguous, else rows along a pair.
        let (a_rs, a_ps) = if a.col_stride == 1 {
            (pairs, 1)
        } else {
            (1, padded_rows)
        };
        let packed_a = scratch.zeroed(padded_rows * pairs);
        // Rows along k are packed tile by tile just before their first use, so that
        // reading `a` alternates with computing (the prefetcher runs ahead meanwhile);
        // pair-major blocks at once, 16 rows per instruction.
        let pack = |packed_a: &mut [u32], first: usize, rows: usize| {
            let source = a.block(row + first, 2 * first_pair, rows, k_cols);
            // SAFETY: the caller checked the CPU features; from `first * a_rs` on,
            // `packed_a` holds these rows' pairs at these strides.
            unsafe { pack_pairs(source, &mut packed_a[first * a_rs..], a_rs, a_ps) };
        };
        let by_tile = a_ps == 1;
        if !by_tile {
            pack(packed_a, 0, rows);
        }
        for panel in col / NR..(col + cols).div_ceil(NR) {
            let (panel_b, width) = b.panel(panel);
            for tile_row in (0..rows).step_by(MR) {
                let tile_rows = MR.min(rows - tile_row);
                let mut prefetch = Prefetch::NONE;
                if by_tile && panel == col / NR {
                    pack(packed_a, tile_row, tile_rows);
                    let next = tile_row + MR;
                    if next < rows {
                        prefetch = Prefetch {
                            first: a.block(row + next, 2 * first_pair, 1, k_cols).data.as_ptr(),
                            rows: MR.min(rows - next),
                            lines: k_cols.div_ceil(LANES),
                            stride: a.row_stride,
                        };
                    }
                }
                let t = Tile {
                    a: &packed_a[tile_row * a_rs..],
                    a_rs,
                    a_ps,
                    b: &panel_b[first_pair * width..],
                    pairs,
                    c: out.at(row + tile_row, panel * NR),
                    c_rs: out.row_stride,
                    rows: tile_rows,
                    cols: NR.min(b.cols - panel * NR),
                    accumulate: accumulate || first_pair > 0,
                    prefetch,
                };
                // SAFETY: CPU features as above; `Tile`'s layout holds by construction
                // (A padded to whole tiles, panels `width = 16 * NV` wide); the tile is
                // inside `c` and only this block's task writes it.
                unsafe { tile_of_width(t, width) }
            }
        }
    }
}

/// B as bf16 pairs in column panels: panel `j` holds columns `j*NR..` (`NR` wide, the
/// last one rounded up to whole vectors), pair-major.
pub(super) struct PackedB {
    data: Aligned,
    pub(super) rows: usize,
    pub(super) pairs: usize,
    pub(super) cols: usize,
}

impl PackedB {
    /// `b` packed, its panels in parallel when `parallel`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX512-BF16.
    pub(super) unsafe fn new(b: MatRef<'_>, parallel: bool) -> Self {
        let (pairs, cols) = (b.rows.div_ceil(2), b.cols);
        let mut data = Aligned::default();
        let full = data.zeroed(pairs * cols.next_multiple_of(LANES));
        let pack = |(panel, dst): (usize, &mut [u32])| {
            let first = panel * NR;
            let width = dst.len() / pairs;
            // Column j of B is row j of its transpose: pairs run along k.
            let columns = b.block(0, first, b.rows, NR.min(cols - first)).t();
            // SAFETY: the caller checked the CPU features; `dst` holds `pairs` rows of
            // `width` values.
            unsafe { pack_pairs(columns, dst, 1, width) };
        };
        // A `b` of no rows or no columns leaves nothing to pack (and no panel size).
        let panel_len = (pairs * NR).max(1);
        if parallel {
            full.par_chunks_mut(panel_len).enumerate().for_each(pack);
        } else {
            full.chunks_mut(panel_len).enumerate().for_each(pack);
        }
        Self {
            data,
            rows: b.rows,
            pairs,
            cols,
        }
    }

    /// Panel `j`'s pairs and its width.
    fn panel(&self, j: usize) -> (&[u32], usize) {
        let width = NR.min(self.cols - j * NR).next_multiple_of(LANES);
        (
            &self.data.slice()[j * NR * self.pairs..][..width * self.pairs],
            width,
        )
    }
}

/// Where the tasks write `c`: disjoint blocks of one strided matrix.
struct Out {
    data: *mut f32,
    row_stride: usize,
}

// SAFETY: the tasks sharing an `Out` write disjoint blocks of `c` (see `product`), which
// the caller borrows mutably for the whole call.
unsafe impl Sync for Out {}

impl Out {
    /// The address of element `(row, col)`, inside `c` for the callers' arguments.
    fn at(&self, row: usize, col: usize) -> *mut f32 {
        self.data.wrapping_add(row * self.row_stride + col)
    }
}

/// A reusable `u32` buffer whose used part starts on a 64-byte line, so that every
/// 16-value row of a packed panel is one aligned zmm load.
#[derive(Default)]
struct Aligned {
    buf: Vec<u32>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// The first `len` values, zeroed, on a 64-byte boundary.
    fn zeroed(&mut self, len: usize) -> &mut [u32] {
        if self.buf.len() < len + LANES {
            self.buf = vec![0; len + LANES];
        } else {
            self.buf.fill(0);
        }
        self.start = self.buf.as_ptr().align_offset(64).min(LANES);
        self.len = len;
        &mut self.buf[self.start..][..len]
    }

    fn slice(&self) -> &[u32] {
        &self.buf[self.start..][..self.len]
    }
}
