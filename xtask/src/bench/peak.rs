//! The machine's fp32 ceiling, measured: every thread of the pool runs independent
//! chains of vector multiply-adds that stay in registers, so nothing but the FMA units
//! limits them. The GEMM row is judged against this figure ("≥ 80% of the ceiling").

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::petal_side::time_rounds;
use super::{BenchOptions, Measurement};

/// Independent accumulator chains: enough to cover the FMA latency on every pipe.
const CHAINS: usize = 12;
/// Multiply-add rounds per chain and call.
const ROUNDS: usize = 1 << 20;

struct FmaChains;

impl WithSimd for FmaChains {
    /// Floating-point operations done, and a sum that keeps the work from being dropped.
    type Output = (f64, f32);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> (f64, f32) {
        let (scale, shift) = (simd.splat_f32s(0.999_999), simd.splat_f32s(1e-7));
        let mut chains = [simd.splat_f32s(1.0); CHAINS];
        for _ in 0..ROUNDS {
            for chain in &mut chains {
                *chain = simd.mul_add_f32s(*chain, scale, shift);
            }
        }
        let sum = chains
            .into_iter()
            .fold(simd.splat_f32s(0.0), |a, b| simd.add_f32s(a, b));
        let flops = 2.0 * (ROUNDS * CHAINS * S::F32_LANES) as f64;
        (flops, simd.reduce_sum_f32s(sum))
    }
}

/// GFLOP/s of multiply-adds on all threads of the current pool at once.
pub fn measure(options: &BenchOptions) -> anyhow::Result<Measurement> {
    let threads = rayon::current_num_threads();
    let all_threads = || -> anyhow::Result<f64> {
        let (flops, sums): (Vec<f64>, Vec<f32>) = (0..threads)
            .into_par_iter()
            .map(|_| Arch::new().dispatch(FmaChains))
            .unzip();
        anyhow::ensure!(
            sums.iter().all(|s| s.is_finite()),
            "the FMA chains overflowed"
        );
        Ok(flops.iter().sum())
    };
    let gflop_per_call = all_threads()? / 1e9;
    time_rounds(options, gflop_per_call, || all_threads().map(drop))
}
