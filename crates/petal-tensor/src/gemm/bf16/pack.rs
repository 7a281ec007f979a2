//! Rounding f32 to bfloat16 and packing matrix blocks as bf16 pairs.
//!
//! A pair is one `u32`: the bf16 of an even-indexed value along k in the low half, the
//! next value's in the high half (zero past the last one), the operand layout of
//! `vdpbf16ps`. `pack_pairs` writes `dst[r * rs + p * ps]`, which covers both the A
//! blocks (row-major or pair-major) and the B panels (pair-major).

use std::arch::x86_64::*;

use super::bf16_bits;
use crate::gemm::MatRef;

/// The pair of `even` and `odd` (rounded to bf16) as `vdpbf16ps` reads it.
fn pair(even: f32, odd: f32) -> u32 {
    u32::from(bf16_bits(even)) | (u32::from(bf16_bits(odd)) << 16)
}

/// Writes `dst[r * rs + p * ps]` = the pair `(src[r][2p], src[r][2p + 1])` for every row
/// `r` and pair `p` of `src`, a zero high half completing an odd number of columns.
///
/// Rows with unit column stride written to consecutive pairs (`ps == 1`), and columns
/// with unit row stride written to consecutive rows (`rs == 1`), convert 16 or 32 values
/// per instruction; other layouts go value by value (same rounding).
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn pack_pairs(src: MatRef<'_>, dst: &mut [u32], rs: usize, ps: usize) {
    let (rows, cols) = (src.rows, src.cols);
    let pairs = cols.div_ceil(2);
    let (row_stride, col_stride) = (src.row_stride, src.col_stride);
    if col_stride == 1 && ps == 1 {
        for r in 0..rows {
            let values = &src.data[r * row_stride..][..cols];
            // SAFETY: the caller guarantees the CPU features.
            unsafe { pairs_of_run(values, &mut dst[r * rs..][..pairs]) };
        }
    } else if row_stride == 1 && rs == 1 {
        for p in 0..pairs {
            let even = &src.data[2 * p * col_stride..][..rows];
            let odd = (2 * p + 1 < cols).then(|| &src.data[(2 * p + 1) * col_stride..][..rows]);
            // SAFETY: the caller guarantees the CPU features.
            unsafe { interleave(even, odd, &mut dst[p * ps..][..rows]) };
        }
    } else {
        let at = |r: usize, c: usize| src.data[r * row_stride + c * col_stride];
        for r in 0..rows {
            for p in 0..pairs {
                let odd = if 2 * p + 1 < cols {
                    at(r, 2 * p + 1)
                } else {
                    0.0
                };
                dst[r * rs + p * ps] = pair(at(r, 2 * p), odd);
            }
        }
    }
}

/// `dst[p]` = the pair `(values[2p], values[2p + 1])`; `dst` holds `values.len()`
/// halved, rounded up.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_of_run(values: &[f32], dst: &mut [u32]) {
    debug_assert_eq!(dst.len(), values.len().div_ceil(2));
    let whole = values.len() / 32;
    for (chunk, out) in values.chunks_exact(32).zip(dst.chunks_exact_mut(16)) {
        // SAFETY: 32 values read, 16 written, all inside the chunks.
        unsafe {
            let lo = _mm512_loadu_ps(chunk.as_ptr());
            let hi = _mm512_loadu_ps(chunk.as_ptr().add(16));
            _mm512_storeu_si512(out.as_mut_ptr().cast(), bf16_pairs(lo, hi));
        }
    }
    let (rest, out) = (&values[32 * whole..], &mut dst[16 * whole..]);
    if rest.is_empty() {
        return;
    }
    let (lo_mask, hi_mask) = (
        lane_mask(rest.len().min(16)),
        lane_mask(rest.len().saturating_sub(16)),
    );
    // SAFETY: the masks let the loads touch only `rest` (a masked-off lane is never read,
    // and the `hi` load starts inside `rest` whenever its mask is non-zero), and the store
    // only `out`'s `rest.len().div_ceil(2)` values.
    unsafe {
        let lo = _mm512_maskz_loadu_ps(lo_mask, rest.as_ptr());
        let hi = if hi_mask == 0 {
            _mm512_setzero_ps()
        } else {
            _mm512_maskz_loadu_ps(hi_mask, rest.as_ptr().add(16))
        };
        _mm512_mask_storeu_epi32(
            out.as_mut_ptr().cast(),
            lane_mask(out.len()),
            bf16_pairs(lo, hi),
        );
    }
}

/// The 32 values of `lo` then `hi` rounded to bf16, as 16 pairs.
#[target_feature(enable = "avx512f,avx512bf16")]
fn bf16_pairs(lo: __m512, hi: __m512) -> __m512i {
    // SAFETY: a bit-for-bit reinterpretation between two 64-byte vector types.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo)) }
}

/// `dst[i]` = the pair `(even[i], odd[i])` (odd zero when absent), for consecutive rows.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn interleave(even: &[f32], odd: Option<&[f32]>, dst: &mut [u32]) {
    // The masked loads below rely on it: checked in release builds too.
    assert!(even.len() == dst.len() && odd.is_none_or(|o| o.len() == dst.len()));
    for (start, out) in (0..dst.len()).step_by(16).zip(dst.chunks_mut(16)) {
        let mask = lane_mask(out.len());
        // SAFETY: `mask` limits the loads to `out.len()` values from `start`, all inside
        // `even` and `odd` (as long as `dst`), and the store to `out`.
        unsafe {
            let widen = |v: &[f32]| {
                let b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, v.as_ptr().add(start)));
                _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(b))
            };
            let low = widen(even);
            let packed = match odd {
                Some(odd) => _mm512_or_si512(low, _mm512_slli_epi32::<16>(widen(odd))),
                None => low,
            };
            _mm512_mask_storeu_epi32(out.as_mut_ptr().cast(), mask, packed);
        }
    }
}

/// A mask of the first `n` (at most 16) lanes.
fn lane_mask(n: usize) -> __mmask16 {
    debug_assert!(n <= 16);
    ((1u32 << n) - 1) as __mmask16
}
