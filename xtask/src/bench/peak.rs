//! The machine's multiply-add ceiling, measured (see [`petal_tensor::peak`]): every
//! thread of the pool runs independent chains of vector multiply-adds that stay in
//! registers, in the precision of the scope (f32 `vfmadd`, or bf16 `vdpbf16ps`). The
//! GEMM row is judged against the f32 figure ("≥ 80% of the ceiling").

use petal_tensor::{peak, Precision};
use rayon::prelude::*;

use super::petal_side::time_rounds;
use super::{BenchOptions, Measurement};

/// Multiply-add rounds per chain and call.
const ROUNDS: usize = 1 << 20;

/// GFLOP/s of multiply-adds on all threads of the current pool at once.
pub fn measure(options: &BenchOptions) -> anyhow::Result<Measurement> {
    let (threads, precision) = (rayon::current_num_threads(), Precision::scoped());
    let all_threads = || -> anyhow::Result<f64> {
        let flops = (0..threads)
            .into_par_iter()
            .map(|_| peak::multiply_add_flops(precision, ROUNDS))
            .collect::<petal_tensor::Result<Vec<f64>>>()?;
        Ok(flops.iter().sum())
    };
    let gflop_per_call = all_threads()? / 1e9;
    time_rounds(options, gflop_per_call, || all_threads().map(drop))
}
