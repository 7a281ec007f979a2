//! The register-blocked micro-kernel: an `MR x 16·NV` tile of `c` from a packed A block
//! and a packed B panel, in `MR·NV` zmm accumulators.

use std::arch::x86_64::*;

/// Rows of a register tile.
pub(super) const MR: usize = 6;
/// f32 lanes (columns) of one accumulator.
pub(super) const LANES: usize = 16;

/// One tile's operands. `a[i * a_rs + p * a_ps]` is row `i`'s pair `p` (rows `0..MR`,
/// padding rows included); `b[p * 16·NV + j]` is column `j`'s pair `p`; `c` points at the
/// tile's first element, rows `c_rs` apart, of which `rows x cols` are written.
pub(super) struct Tile<'a> {
    pub a: &'a [u32],
    pub a_rs: usize,
    pub a_ps: usize,
    pub b: &'a [u32],
    pub pairs: usize,
    pub c: *mut f32,
    pub c_rs: usize,
    pub rows: usize,
    pub cols: usize,
    pub accumulate: bool,
    /// Source values to bring into the cache meanwhile (the next tile's rows).
    pub prefetch: Prefetch,
}

/// `rows` runs of `lines` 64-byte cache lines, the runs `stride` values apart, from
/// `first`: fetched one line per pair while a tile computes. A prefetch never faults,
/// so the addresses need not be valid (`rows == 0` fetches nothing).
#[derive(Clone, Copy)]
pub(super) struct Prefetch {
    pub first: *const f32,
    pub rows: usize,
    pub lines: usize,
    pub stride: usize,
}

impl Prefetch {
    pub const NONE: Self = Self {
        first: std::ptr::null(),
        rows: 0,
        lines: 0,
        stride: 0,
    };
}

/// `c (+)= a * b` over one tile, the sum in f32 (each `vdpbf16ps` adds two bf16
/// products, exact in f32, to the accumulator).
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16; `a` and `b` must hold the pairs described
/// on [`Tile`], `1 <= rows <= MR`, `16·(NV-1) < cols <= 16·NV`, and `c` must be valid
/// for reads and writes of `rows x cols` values and written by no one else meanwhile.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn tile<const NV: usize>(t: Tile<'_>) {
    let width = NV * LANES;
    assert!(
        t.pairs == 0
            || ((MR - 1) * t.a_rs + (t.pairs - 1) * t.a_ps < t.a.len()
                && t.pairs * width <= t.b.len())
    );
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let (mut row, mut line) = (0, 0);
    for p in 0..t.pairs {
        if row < t.prefetch.rows {
            let address = t
                .prefetch
                .first
                .wrapping_add(row * t.prefetch.stride + line * LANES);
            _mm_prefetch::<_MM_HINT_T0>(address.cast());
            line += 1;
            if line == t.prefetch.lines {
                (row, line) = (row + 1, 0);
            }
        }
        // SAFETY: the assert above bounds every index read in this loop.
        unsafe {
            let b_row = t.b.as_ptr().add(p * width);
            let b: [__m512bh; NV] = std::array::from_fn(|v| {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    b_row.add(v * LANES).cast(),
                ))
            });
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let pair = *t.a.as_ptr().add(i * t.a_rs + p * t.a_ps);
                let a = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair as i32));
                for (sum, &b) in acc_row.iter_mut().zip(&b) {
                    *sum = _mm512_dpbf16_ps(*sum, a, b);
                }
            }
        }
    }
    for (i, acc_row) in acc.iter().enumerate().take(t.rows) {
        for (v, &sum) in acc_row.iter().enumerate() {
            let mask = ((1u32 << (t.cols - v * LANES).min(LANES)) - 1) as __mmask16;
            // SAFETY: row `i < rows` and the masked lanes, columns below `cols`, are inside
            // `c`'s tile (vector `v` starts at a column below `cols` since `v < NV`).
            unsafe {
                let dst = t.c.add(i * t.c_rs + v * LANES);
                let value = if t.accumulate {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), sum)
                } else {
                    sum
                };
                _mm512_mask_storeu_ps(dst, mask, value);
            }
        }
    }
}

/// [`tile`] for a B panel `width` values wide (a multiple of 16, at most 64).
///
/// # Safety
/// As for [`tile`], with `NV = width / 16`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn tile_of_width(t: Tile<'_>, width: usize) {
    // SAFETY: the caller's guarantees for `tile` with this `NV`.
    unsafe {
        match width / LANES {
            1 => tile::<1>(t),
            2 => tile::<2>(t),
            3 => tile::<3>(t),
            _ => tile::<4>(t),
        }
    }
}
