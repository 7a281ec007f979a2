//! The few vector helpers the hand-written kernels share.
//!
//! The crate is built for baseline x86-64; its hot loops run compiled for AVX-512 or
//! AVX2 + FMA when the CPU has them, each as a `pulp::WithSimd` op whose `with_simd` is
//! `#[inline(always)]`, run through `pulp::Arch::new().dispatch(op)`: pulp compiles the
//! op once per instruction set, and plain loops inside it auto-vectorize at that width.
//! (A closure handed to `dispatch` instead is compiled once, for the baseline, whenever
//! the compiler does not inline it: its loops then run 4 lanes wide on any CPU.)
//! Results do not depend on the width: the compiler fuses no multiply-adds.

use std::mem::MaybeUninit;

use pulp::bytemuck::Pod;
use pulp::Simd;

/// The first `S::F32_LANES` values of `values` as one vector.
#[inline(always)]
pub(crate) fn load<S: Simd>(values: &[f32]) -> S::f32s {
    S::as_simd_f32s(&values[..S::F32_LANES]).0[0]
}

/// Writes `vector` over the first `S::F32_LANES` values of `values`.
#[inline(always)]
pub(crate) fn store<S: Simd>(values: &mut [f32], vector: S::f32s) {
    S::as_mut_simd_f32s(&mut values[..S::F32_LANES]).0[0] = vector;
}

/// Writes `vector` over the first values of `values` (as many as it holds, `f32`s or
/// `u32`s), memory not yet initialized (a new output).
#[inline(always)]
pub(crate) fn write_new<T: Pod, V: Pod>(values: &mut [MaybeUninit<T>], vector: V) {
    let target = &mut values[..size_of::<V>() / size_of::<T>()];
    // SAFETY: `target` holds the bytes of `vector` (the slicing above panics if not),
    // any bits are a valid `T` (`Pod`), and an unaligned write needs no alignment.
    unsafe { target.as_mut_ptr().cast::<V>().write_unaligned(vector) }
}

/// Adds `sum` to the first `S::F32_LANES` values of `values`.
#[inline(always)]
pub(crate) fn add_to<S: Simd>(simd: S, values: &mut [f32], sum: S::f32s) {
    let target = &mut S::as_mut_simd_f32s(&mut values[..S::F32_LANES]).0[0];
    *target = simd.add_f32s(*target, sum);
}

/// `[first, first + 1, …]`, one value per 32-bit lane.
#[inline(always)]
pub(crate) fn counting_from<S: Simd>(simd: S, first: u32) -> S::u32s {
    const COUNT: [u32; 64] = {
        let mut count = [0; 64];
        let mut i = 0;
        while i < 64 {
            count[i] = i as u32;
            i += 1;
        }
        count
    };
    let lanes = S::as_simd_u32s(&COUNT[..S::F32_LANES]).0[0];
    simd.add_u32s(lanes, simd.splat_u32s(first))
}
