//! The CPU's multiply-add ceilings, measured rather than looked up: independent chains
//! of vector multiply-adds that stay in registers, so that nothing but the multiply-add
//! units limits them. f32 chains run `vfmadd` on the widest vectors the CPU has
//! (AVX-512, AVX2+FMA or portable); bf16 chains run `vdpbf16ps`, which adds two bf16
//! products to each f32 lane.
//!
//! Whether bf16 can make products faster depends on that instruction's cost, which
//! differs from CPU to CPU more than the feature flag says. An Intel Xeon with
//! AVX512-BF16 and no AMX measured one `vdpbf16ps` every two cycles against two f32
//! FMAs a cycle: half as many multiply-adds a second in bf16, so every bf16 product was
//! slower than its f32 twin there. [`bf16_speed_vs_f32`] measures the ratio once per
//! process and [`bf16_speed_warning`] turns a low one into a message for the user.
//!
//! ```
//! use petal_tensor::{peak, Precision};
//! let flops = peak::multiply_add_flops(Precision::F32, 1000)?;
//! // Two operations per multiply-add, on vectors of 4 (portable), 8 or 16 lanes.
//! let lanes = flops / (2.0 * 1000.0 * peak::CHAINS as f64);
//! assert!([4.0, 8.0, 16.0].contains(&lanes));
//! match peak::bf16_speed_vs_f32() {
//!     Some(ratio) => assert!(ratio > 0.0 && ratio.is_finite()),
//!     None => assert!(!Precision::bf16_available()),
//! }
//! # Ok::<(), petal_tensor::TensorError>(())
//! ```

use std::sync::OnceLock;
use std::time::Instant;

use pulp::{Arch, Simd, WithSimd};

use crate::error::{invalid, Result};
use crate::{cpu_model, Precision};

/// Independent accumulator chains of each call: enough to cover the multiply-add
/// latency on every pipe (4-6 cycles, two pipes). On the Xeon above, 24 chains of
/// `vdpbf16ps` ran at the rate of 12, so 12 measure its throughput, not its latency.
pub const CHAINS: usize = 12;

/// Rounds per chain of one probe call in [`bf16_speed_vs_f32`]: about 0.1 ms of f32
/// multiply-adds on one AVX-512 core, 0.2-0.4 ms of bf16 ones.
const PROBE_ROUNDS: usize = 1 << 15;

/// Timed probe calls per precision, alternating after an untimed one each, of which the
/// fastest counts: 3.0-3.3 ms in all on the Xeon above (five processes timed), once per
/// process.
const PROBE_TRIES: usize = 7;

/// Below this ratio of bf16 to f32 multiply-adds a second, [`bf16_speed_warning`]
/// speaks: bf16 products also pay for rounding and packing their factors, so they need
/// a clearly faster instruction to win.
pub const BF16_WORTHWHILE: f64 = 1.2;

/// Floating-point operations (two per multiply-add) done by `rounds` rounds of
/// [`CHAINS`] vector multiply-adds in `precision` on the calling thread. bf16 on a CPU
/// without AVX512-BF16 is an error naming the CPU.
pub fn multiply_add_flops(precision: Precision, rounds: usize) -> Result<f64> {
    let (flops, sum) = match precision {
        Precision::F32 => Arch::new().dispatch(F32Chains { rounds }),
        Precision::Bf16 => bf16_chains(rounds)?,
    };
    match sum.is_finite() {
        true => Ok(flops),
        false => Err(invalid("multiply_add_flops", "the chains overflowed")),
    }
}

/// How many multiply-adds a second this CPU does in bf16 (`vdpbf16ps`) for each one in
/// f32 (`vfmadd`), one thread, measured once per process (a few milliseconds, on the
/// first call); `None` without AVX512-BF16.
pub fn bf16_speed_vs_f32() -> Option<f64> {
    static RATIO: OnceLock<Option<f64>> = OnceLock::new();
    *RATIO.get_or_init(|| {
        if !Precision::bf16_available() {
            return None;
        }
        let precisions = [Precision::F32, Precision::Bf16];
        // Untimed first: the vector units may start slow.
        for precision in precisions {
            multiply_add_flops(precision, PROBE_ROUNDS).ok()?;
        }
        let mut fastest = [0.0f64; 2];
        for _ in 0..PROBE_TRIES {
            for (precision, rate) in precisions.into_iter().zip(&mut fastest) {
                let started = Instant::now();
                let flops = multiply_add_flops(precision, PROBE_ROUNDS).ok()?;
                *rate = rate.max(flops / started.elapsed().as_secs_f64().max(1e-9));
            }
        }
        Some(fastest[1] / fastest[0])
    })
}

/// A message for a user who asked for bf16 on a CPU where [`bf16_speed_vs_f32`] says it
/// cannot pay (`None` where it can, or where bf16 does not run at all: asking for it
/// there is an error of its own).
///
/// ```
/// if let Some(warning) = petal_tensor::peak::bf16_speed_warning() {
///     assert!(warning.contains("f32 is the faster choice"));
/// }
/// ```
pub fn bf16_speed_warning() -> Option<String> {
    speed_warning(&cpu_model(), bf16_speed_vs_f32()?)
}

/// The warning for a CPU named `model` whose bf16 multiply-adds run at `ratio` times
/// the f32 rate, if that is too slow to pay.
fn speed_warning(model: &str, ratio: f64) -> Option<String> {
    (ratio < BF16_WORTHWHILE).then(|| {
        format!(
            "bf16 on this CPU ({model}): its bf16 multiply-adds (vdpbf16ps) run at {ratio:.2}x \
             the rate of its f32 ones (measured); below {BF16_WORTHWHILE}x, bf16 products \
             do not pay for rounding and packing their factors, so f32 is the faster \
             choice on this machine"
        )
    })
}

/// [`CHAINS`] chains of `rounds` f32 multiply-adds on the widest vectors.
struct F32Chains {
    rounds: usize,
}

impl WithSimd for F32Chains {
    /// Floating-point operations done, and a sum that keeps the work from being dropped.
    type Output = (f64, f32);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (f64, f32) {
        let (scale, shift) = (simd.splat_f32s(0.999_999), simd.splat_f32s(1e-7));
        // Each chain from a value of its own, so that no two can be merged.
        let mut chains: [S::f32s; CHAINS] =
            std::array::from_fn(|i| simd.splat_f32s(std::hint::black_box(1.0 + i as f32)));
        for _ in 0..self.rounds {
            for chain in &mut chains {
                *chain = simd.mul_add_f32s(*chain, scale, shift);
            }
        }
        let sum = chains
            .into_iter()
            .fold(simd.splat_f32s(0.0), |a, b| simd.add_f32s(a, b));
        let flops = 2.0 * (self.rounds * CHAINS * S::F32_LANES) as f64;
        (flops, simd.reduce_sum_f32s(sum))
    }
}

/// [`CHAINS`] chains of `rounds` `vdpbf16ps` (two products a lane each); an error on a
/// CPU without AVX512-BF16.
#[cfg(target_arch = "x86_64")]
fn bf16_chains(rounds: usize) -> Result<(f64, f32)> {
    Precision::Bf16.supported()?;
    // SAFETY: `supported` just found AVX-512F and AVX512-BF16.
    Ok(unsafe { bf16_chains_avx512(rounds) })
}

#[cfg(not(target_arch = "x86_64"))]
fn bf16_chains(_rounds: usize) -> Result<(f64, f32)> {
    Err(invalid("multiply_add_flops", "bf16 chains need x86-64"))
}

/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_chains_avx512(rounds: usize) -> (f64, f32) {
    use std::arch::x86_64::*;
    // Each round adds 2 x 2^-10 x 2^-10 to every lane: 2 after a million rounds.
    let small = _mm512_set1_ps(1.0 / 1024.0);
    let pairs = std::hint::black_box(_mm512_cvtne2ps_pbh(small, small));
    // Each chain from a value of its own, so that no two can be merged.
    let mut chains: [__m512; CHAINS] =
        std::array::from_fn(|i| _mm512_set1_ps(std::hint::black_box(i as f32)));
    for _ in 0..rounds {
        for chain in &mut chains {
            *chain = _mm512_dpbf16_ps(*chain, pairs, pairs);
        }
    }
    let sum = chains
        .into_iter()
        .fold(_mm512_setzero_ps(), |a, b| _mm512_add_ps(a, b));
    let flops = 2.0 * (rounds * CHAINS * 32) as f64;
    (flops, _mm512_reduce_add_ps(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_chains_count_two_operations_per_multiply_add_and_lane() {
        let lanes = multiply_add_flops(Precision::F32, 10).unwrap() / (2.0 * 10.0 * CHAINS as f64);
        assert!([4.0, 8.0, 16.0].contains(&lanes), "{lanes} lanes");
    }

    #[test]
    fn bf16_chains_run_where_the_cpu_has_bf16_and_are_refused_elsewhere() {
        match multiply_add_flops(Precision::Bf16, 10) {
            Ok(flops) => assert_eq!(flops, 2.0 * 10.0 * (CHAINS * 32) as f64),
            Err(e) => {
                assert!(!Precision::bf16_available());
                assert!(e.to_string().contains(&cpu_model()), "{e}");
            }
        }
        match bf16_speed_vs_f32() {
            // A CPU's bf16 instruction does between a quarter of its f32 rate and 4x.
            Some(ratio) => assert!((0.25..4.0).contains(&ratio), "{ratio}"),
            None => assert!(!Precision::bf16_available()),
        }
    }

    #[test]
    fn a_slow_bf16_instruction_is_a_warning_naming_the_cpu_and_the_ratio() {
        let warning = speed_warning("Xeon X", 0.5).unwrap();
        assert!(warning.contains("Xeon X"), "{warning}");
        assert!(warning.contains("0.50x"), "{warning}");
        assert!(warning.contains("f32 is the faster choice"), "{warning}");
        assert!(speed_warning("Xeon X", 1.1).is_some());
        assert_eq!(speed_warning("EPYC Y", BF16_WORTHWHILE), None);
        assert_eq!(speed_warning("EPYC Y", 2.0), None);
    }
}
