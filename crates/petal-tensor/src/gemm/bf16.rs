//! Matrix product with bfloat16 factors and f32 sums, on AVX512-BF16.
//!
//! [`gemm_bf16`] computes `c (+)= a * b` as
//!
//! ```text
//! c[i][j] (+)= Σ_k bf16(a[i][k]) · bf16(b[k][j])      (products exact, sums in f32)
//! ```
//!
//! where `bf16(x)` is `x` rounded to 8 significant bits, to nearest with ties to even
//! ([`round_bf16`]; subnormals become zero, as the instruction does). That rounding,
//! a relative error of at most 2^-8 per factor, happens once, while packing; each
//! `vdpbf16ps` then adds two products (exact in f32) to an f32 accumulator, and the
//! tile is added to `c` in f32. Only the order of the f32 sums differs from [`gemm`] on
//! the rounded inputs.
//!
//! **Packed layout.** A pair is a `u32` holding the bf16 of `x[2p]` (low half) and
//! `x[2p + 1]` (high half) along k; an odd k ends with a zero high half.
//! - B is packed once per call into column panels of `NR = 64` columns (the last one
//!   as wide as needed, a multiple of 16): panel-major, then pair-major, then column,
//!   so a panel's pair `p` is 64 consecutive `u32`, four zmm loads.
//! - A is packed per block of `MC` rows and `KC` pairs, row-major (`[row][pair]`) when
//!   `a` has unit column stride, else pair-major (`[pair][row]`), whichever the source
//!   converts 32 or 16 values per instruction into; the kernel takes either by strides.
//!
//! **Blocking.** The output splits into blocks of `MC = 144` rows by `NC = 512` columns,
//! one rayon task each when the product is large and `parallel` (else the same blocks in
//! turn). A task walks k in equal blocks of at most `KC = 256` pairs; in each it packs
//! its A block (`MC x KC`, in L2; row-major A six rows at a time, just before their first
//! use, while the kernel prefetches the next six rows' source lines) and, for each
//! 64-column panel (its `KC x 64` slice read from L2), runs the micro-kernel down the
//! block's rows: `MR = 6` rows by 64 columns, 24 zmm accumulators, one broadcast A pair
//! and four B loads per pair. Every element of `c` is summed by one task in the same
//! order (k blocks in turn), so the result does not depend on the thread count.
//!
//! ```
//! use petal_tensor::gemm::{gemm_bf16, MatMut, MatRef};
//! use petal_tensor::Precision;
//! # fn main() -> petal_tensor::Result<()> {
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
//! let b = [1.0, 0.5, 0.25]; // 3x1
//! let mut c = [0.0; 2];
//! let product = gemm_bf16(MatRef::row_major(&a, 2, 3)?, MatRef::row_major(&b, 3, 1)?, MatMut::row_major(&mut c, 2, 1)?, false, false);
//! if Precision::bf16_available() {
//!     product?;
//!     assert_eq!(c, [2.75, 8.0]); // these values are exact in bf16
//! } else {
//!     assert!(product.unwrap_err().to_string().contains("AVX512-BF16"));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`gemm`]: super::gemm

use super::{product_shape, splits_over_threads, MatMut, MatRef};
use crate::error::{invalid, Result};
use crate::Precision;

#[cfg(target_arch = "x86_64")]
mod driver;
#[cfg(target_arch = "x86_64")]
mod kernel;
#[cfg(target_arch = "x86_64")]
mod pack;
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;

/// `c = a * b` (or `c += a * b` when `accumulate`) with `a` and `b` rounded to bfloat16
/// and the sums in f32, for `a: m x k`, `b: k x n`, `c: m x n` (see the [module
/// docs](self) for the arithmetic).
///
/// The contract of [`gemm`](super::gemm): the same views and shape errors, and with
/// `parallel` a large product splits over the current rayon pool. On a CPU without
/// AVX512-BF16 it is an error naming the CPU (see [`Precision::supported`]), checked
/// before anything else.
pub fn gemm_bf16(
    a: MatRef<'_>,
    b: MatRef<'_>,
    mut c: MatMut<'_>,
    accumulate: bool,
    parallel: bool,
) -> Result<()> {
    Precision::Bf16.supported()?;
    let b_shape = [b.rows, b.cols];
    let Some((m, k, n)) = product_shape("gemm_bf16", &a, b_shape, &mut c, accumulate)? else {
        return Ok(());
    };
    // SAFETY: `Precision::Bf16.supported()` above found AVX-512F and AVX512-BF16.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        driver::product(a, b, c, accumulate, splits_over_threads(parallel, m, n, k))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, b, c, m, k, n, parallel); // unreachable: `supported` refused bf16 above
    Ok(())
}

/// [`gemm_bf16`] by a right factor packed once ([`PackedRight`]), for many products by
/// the same `b` (a convolution's filter, block after block of the batch): the same
/// numbers, without packing `b` at every call.
pub(crate) fn gemm_bf16_packed(
    a: MatRef<'_>,
    b: &PackedRight,
    mut c: MatMut<'_>,
    accumulate: bool,
    parallel: bool,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        let b_shape = [b.packed.rows, b.packed.cols];
        let shape = product_shape("gemm_bf16", &a, b_shape, &mut c, accumulate)?;
        let Some((m, k, n)) = shape else {
            return Ok(());
        };
        let parallel = splits_over_threads(parallel, m, n, k);
        // SAFETY: `b` exists, so `PackedRight::new` found the CPU features.
        unsafe { driver::product_by_packed(a, &b.packed, c, accumulate, parallel) };
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no PackedRight exists off x86_64: {a:?} {c:?} {accumulate} {parallel}")
}

/// A right factor `b` (`k x n`) rounded to bf16 and packed once, for many products by
/// it ([`gemm_bf16_packed`], or [`gemm_pairs`] for a left factor already in pairs):
/// Winograd's element-wise stage multiplies every group of tiles by the same filter
/// matrices, im2col every block of patches by the same filter.
pub(crate) struct PackedRight {
    #[cfg(target_arch = "x86_64")]
    packed: driver::PackedB,
}

impl PackedRight {
    /// `b` packed, its panels over the current rayon pool (an error naming the CPU on
    /// one without AVX512-BF16).
    pub(crate) fn new(b: MatRef<'_>) -> Result<Self> {
        Precision::Bf16.supported()?;
        // SAFETY: `supported` above found AVX-512F and AVX512-BF16.
        #[cfg(target_arch = "x86_64")]
        return Ok(Self {
            packed: unsafe { driver::PackedB::new(b, true) },
        });
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("bf16 is supported only on x86_64, not with {b:?}")
    }
}

/// `rows x k` values rounded to bf16 pairs along each row: row `r`'s pair `p` (values
/// `2p` and `2p + 1`, a zero high half after an odd `k`) into `dst[r * k.div_ceil(2) + p]`,
/// the left factor of [`gemm_pairs`].
pub(crate) fn round_to_pairs(src: MatRef<'_>, dst: &mut [u32]) -> Result<()> {
    Precision::Bf16.supported()?;
    let pairs = src.cols.div_ceil(2);
    if dst.len() < src.rows * pairs {
        return Err(invalid(
            "round_to_pairs",
            format!(
                "{} pairs do not hold {} rows of {pairs}",
                dst.len(),
                src.rows
            ),
        ));
    }
    // SAFETY: `supported` above found AVX-512F and AVX512-BF16.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        pack::pack_pairs(src, dst, pairs, 1)
    };
    Ok(())
}

/// `c = a * b` on this thread, for `a` in bf16 pairs (row `i`'s pair `p` at
/// `a[i * a_row_stride + p]`, for `c.rows` rows and `b`'s pairs) and `b` packed.
pub(crate) fn gemm_pairs(
    a: &[u32],
    a_row_stride: usize,
    b: &PackedRight,
    c: MatMut<'_>,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        let (pairs, cols) = (b.packed.pairs, b.packed.cols);
        let needed = c.rows.saturating_sub(1) * a_row_stride + pairs;
        if c.cols != cols || (c.rows > 0 && (a.len() < needed || a_row_stride < pairs)) {
            return Err(invalid(
                "gemm_pairs",
                format!(
                    "{} rows of {pairs} pairs {a_row_stride} apart in {} values by \
                 {pairs} pairs x {cols} into {} x {}",
                    c.rows,
                    a.len(),
                    c.rows,
                    c.cols
                ),
            ));
        }
        // SAFETY: `b` exists, so `PackedRight::new` found the CPU features.
        unsafe { driver::product_of_pairs(a, a_row_stride, &b.packed, c) };
        Ok(())
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no PackedRight exists off x86_64: {a_row_stride} {c:?}")
}

/// `x` rounded to bfloat16 (8 significant bits; to nearest, ties to even, as
/// `vcvtne2ps2bf16`), given back as the f32 of the same value. A NaN stays NaN, a
/// subnormal becomes a zero of its sign, a value past bf16's largest (about 3.39e38)
/// becomes infinite.
///
/// ```
/// use petal_tensor::gemm::round_bf16;
/// assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0); // a tie goes to the even neighbour
/// assert_eq!(round_bf16(0.1), 0.10009765625);
/// ```
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits(u32::from(bf16_bits(x)) << 16)
}

/// The bfloat16 bits of `x`, rounded as [`round_bf16`] describes.
fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x0040) as u16;
    }
    if bits & 0x7f80_0000 == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    // Adding 0x7fff rounds the dropped half up past a half-way point; adding the kept
    // lowest bit too sends an exact tie to the even neighbour. No overflow: the largest
    // non-NaN pattern is 0xff80_0000.
    let rounded = bits + 0x7fff + ((bits >> 16) & 1);
    (rounded >> 16) as u16
}
