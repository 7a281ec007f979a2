//! The vectors of [`LANES`] channels the depthwise kernels compute on: AVX-512 registers
//! when the CPU has them, arrays the compiler vectorizes otherwise. [`Isa::detect`] is
//! the one place the choice is made.

/// Channels in one vector: one AVX-512 register of `f32`.
pub(super) const LANES: usize = 16;

/// The vector code a depthwise kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::conv) enum Isa {
    /// AVX-512F intrinsics, with fused multiply-adds and masked loads for channel tails.
    /// Only [`Isa::detect`] can make it (it holds an [`Avx512Found`]).
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512Found),
    /// Arrays of [`LANES`] values, vectorized by the compiler for the CPU's widest
    /// instructions (a `pulp::WithSimd` op, see `crate::simd`).
    Portable,
}

/// Proof that this CPU has AVX-512F: built only by [`Isa::detect`], so an
/// [`Isa::Avx512`] cannot be written by hand where the CPU lacks the instructions.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::conv) struct Avx512Found(());

impl Isa {
    /// The fastest code this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512(Avx512Found(()));
        }
        Isa::Portable
    }

    /// Every code this CPU runs, fastest first (tests run each of them).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        let mut all = vec![Self::detect()];
        if all[0] != Isa::Portable {
            all.push(Isa::Portable);
        }
        all
    }
}

/// A vector of [`LANES`] `f32` channels. The operations take a [`Lanes::Width`]: the
/// first `n` channels they touch (`1..=LANES`, fewer than `LANES` in a channel tail;
/// 0 for a column in the padding, which loads zeros and reads nothing).
pub(super) trait Lanes: Copy {
    /// How many channels a load or store touches.
    type Width: Copy;
    /// The width of `n` channels, `0..=LANES`.
    fn width(n: usize) -> Self::Width;
    /// The `n` of [`Lanes::width`].
    fn count(width: Self::Width) -> usize;
    fn zero() -> Self;
    /// `self + a * b`.
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn add(self, other: Self) -> Self;
    /// Each lane limited to `low..=high`; NaN stays NaN (as [`crate::elementwise::Unary`]'s
    /// ReLU and ReLU6 keep it).
    fn clamp(self, low: f32, high: f32) -> Self;
    /// The `width` values at `values`, zeros in the other lanes.
    ///
    /// # Safety
    /// The `count(width)` values from `values` on must be readable.
    unsafe fn load_ptr(values: *const f32, width: Self::Width) -> Self;
    /// Writes the first `width` lanes from `values` on.
    ///
    /// # Safety
    /// The `count(width)` values from `values` on must be writable.
    unsafe fn store_ptr(self, values: *mut f32, width: Self::Width);

    /// `B` vectors of `width` values each, the `i`-th from `values[first + i * step..]`
    /// (one bounds check for all of them).
    #[inline(always)]
    fn load_strided<const B: usize>(
        values: &[f32],
        first: usize,
        step: usize,
        width: Self::Width,
    ) -> [Self; B] {
        check_span::<Self>(values.len(), first, step, B, width);
        let mut vectors = [Self::zero(); B];
        for (i, v) in vectors.iter_mut().enumerate() {
            // SAFETY: `check_span`: every vector's values lie inside `values`.
            *v = unsafe { Self::load_ptr(values.as_ptr().add(first + i * step), width) };
        }
        vectors
    }

    /// Writes `vectors` where [`Lanes::load_strided`] reads them.
    #[inline(always)]
    fn store_strided<const B: usize>(
        vectors: [Self; B],
        values: &mut [f32],
        first: usize,
        step: usize,
        width: Self::Width,
    ) {
        check_span::<Self>(values.len(), first, step, B, width);
        for (i, v) in vectors.into_iter().enumerate() {
            // SAFETY: `check_span`: every vector's values lie inside `values`.
            unsafe { v.store_ptr(values.as_mut_ptr().add(first + i * step), width) }
        }
    }

    /// One vector from `values[first..]`.
    #[inline(always)]
    fn load(values: &[f32], first: usize, width: Self::Width) -> Self {
        Self::load_strided::<1>(values, first, 0, width)[0]
    }

    /// Writes one vector over `values[first..]`.
    #[inline(always)]
    fn store(self, values: &mut [f32], first: usize, width: Self::Width) {
        Self::store_strided([self], values, first, 0, width)
    }
}

/// Panics unless `vectors` vectors (at least one) of `width` values `step` apart from
/// `first` on fit in `len` values.
#[inline(always)]
pub(super) fn check_span<V: Lanes>(
    len: usize,
    first: usize,
    step: usize,
    vectors: usize,
    width: V::Width,
) {
    let end = step
        .checked_mul(vectors - 1)
        .and_then(|span| span.checked_add(first))
        .and_then(|last| last.checked_add(V::count(width)));
    assert!(
        end.is_some_and(|end| end <= len),
        "depthwise: {vectors} vectors from {first} step {step} overrun {len} values"
    );
}

/// Asks for the cache lines of `values[range]` (clipped to `values`) to be loaded into
/// the L1 cache; no effect off x86-64.
#[inline(always)]
pub(super) fn prefetch(values: &[f32], range: std::ops::Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let end = range.end.min(values.len());
        for i in (range.start..end).step_by(LINE) {
            // SAFETY: SSE is part of x86-64; `i` is inside `values`, and a prefetch
            // reads nothing the program sees.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(values.as_ptr().add(i).cast()) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (values, range);
}

/// `f32` values in a 64-byte cache line.
const LINE: usize = 16;

/// [`LANES`] values in an array; plain loops the compiler vectorizes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Portable([f32; LANES]);

impl Lanes for Portable {
    type Width = usize;

    #[inline(always)]
    fn width(n: usize) -> usize {
        n
    }
    #[inline(always)]
    fn count(width: usize) -> usize {
        width
    }
    #[inline(always)]
    fn zero() -> Self {
        Self([0.0; LANES])
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + a.0[i] * b.0[i]))
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + other.0[i]))
    }
    #[inline(always)]
    fn clamp(self, low: f32, high: f32) -> Self {
        Self(self.0.map(|x| x.clamp(low, high)))
    }
    #[inline(always)]
    unsafe fn load_ptr(values: *const f32, width: usize) -> Self {
        let mut lanes = [0.0; LANES];
        // SAFETY: the caller's contract; `width <= LANES`.
        unsafe {
            if width == LANES {
                lanes = values.cast::<[f32; LANES]>().read_unaligned();
            } else {
                std::ptr::copy_nonoverlapping(values, lanes.as_mut_ptr(), width.min(LANES));
            }
        }
        Self(lanes)
    }
    #[inline(always)]
    unsafe fn store_ptr(self, values: *mut f32, width: usize) {
        // SAFETY: the caller's contract; `width <= LANES`.
        unsafe {
            if width == LANES {
                values.cast::<[f32; LANES]>().write_unaligned(self.0);
            } else {
                std::ptr::copy_nonoverlapping(self.0.as_ptr(), values, width.min(LANES));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use self::avx512::Avx512;

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };

    use super::{Lanes, LANES};

    /// One AVX-512 register.
    ///
    /// Its operations are only ever called from code compiled for AVX-512F
    /// (`Walk::image_avx512`), which runs only after `Isa::detect` found the feature:
    /// that is what makes the intrinsics below sound.
    #[derive(Clone, Copy, Debug)]
    pub(in super::super) struct Avx512(__m512);

    /// A lane count and the mask of its lanes.
    #[derive(Clone, Copy, Debug)]
    pub(in super::super) struct Width {
        count: usize,
        mask: __mmask16,
    }

    impl Lanes for Avx512 {
        type Width = Width;

        #[inline(always)]
        fn width(n: usize) -> Width {
            debug_assert!(n <= LANES);
            Width {
                count: n,
                mask: ((1u32 << n) - 1) as __mmask16,
            }
        }
        #[inline(always)]
        fn count(width: Width) -> usize {
            width.count
        }
        #[inline(always)]
        fn zero() -> Self {
            // SAFETY: AVX-512F is present (see the type's documentation).
            Self(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn load_ptr(values: *const f32, width: Width) -> Self {
            // SAFETY: AVX-512F is present; the mask reads only the `count` lanes, which
            // the caller vouches for.
            Self(unsafe { _mm512_maskz_loadu_ps(width.mask, values) })
        }
        #[inline(always)]
        unsafe fn store_ptr(self, values: *mut f32, width: Width) {
            // SAFETY: AVX-512F is present; the mask writes only the `count` lanes,
            // which the caller vouches for.
            unsafe { _mm512_mask_storeu_ps(values, width.mask, self.0) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F is present.
            Self(unsafe { _mm512_fmadd_ps(a.0, b.0, self.0) })
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            // SAFETY: AVX-512F is present.
            Self(unsafe { _mm512_add_ps(self.0, other.0) })
        }
        #[inline(always)]
        fn clamp(self, low: f32, high: f32) -> Self {
            // `max`/`min` return their second operand when either is NaN: the value's.
            // SAFETY: AVX-512F is present.
            Self(unsafe {
                let at_least = _mm512_max_ps(_mm512_set1_ps(low), self.0);
                _mm512_min_ps(_mm512_set1_ps(high), at_least)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clamp` on every code this CPU runs, full vectors and a tail: values below,
    /// inside and above the bounds, infinities, and NaN, which stays NaN (as ReLU keeps
    /// it).
    #[test]
    fn clamp_limits_every_lane_and_keeps_nan() {
        let values = [
            -7.0,
            -0.5,
            0.0,
            0.25,
            5.5,
            6.0,
            8.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        let want = |x: f32| crate::elementwise::Unary::Relu6.apply(x);
        let check = |got: &[f32], width: usize| {
            for (i, (&x, &g)) in values.iter().zip(got).take(width).enumerate() {
                let w = want(x);
                assert!(
                    g == w || (g.is_nan() && w.is_nan()),
                    "lane {i}: {x} -> {g}, not {w}"
                );
            }
        };
        let mut input = [0.0; LANES];
        input[..values.len()].copy_from_slice(&values);
        for width in [LANES, values.len()] {
            let mut got = [0.0; LANES];
            let v = Portable::load(&input, 0, Portable::width(width));
            v.clamp(0.0, 6.0).store(&mut got, 0, Portable::width(width));
            check(&got, width);
            #[cfg(target_arch = "x86_64")]
            if let Isa::Avx512(_) = Isa::detect() {
                // SAFETY: AVX-512F was found just above.
                unsafe { clamp_avx512(&input, &mut got, width) };
                check(&got, width);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn clamp_avx512(input: &[f32], got: &mut [f32], width: usize) {
        let v = Avx512::load(input, 0, Avx512::width(width));
        v.clamp(0.0, 6.0).store(got, 0, Avx512::width(width));
    }
}
