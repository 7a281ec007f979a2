//! Timing Petal on a workload: random data in memory, warm-up excluded, median of rounds.

use std::time::Instant;

use petal_nn::Loss;
use petal_optim::{Adam, AdamConfig};
use petal_tensor::gemm::{gemm, MatMut, MatRef};
use petal_tensor::Tensor;
use petal_train::{FitConfig, Trainer};

use super::{BenchOptions, Measurement, Workload};

fn random(shape: &[usize]) -> Tensor {
    let len: usize = shape.iter().product();
    let values = (0..len as u64)
        .map(|i| ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1000) as f32 / 1000.0)
        .collect();
    Tensor::from_vec(shape, values).expect("length from the shape")
}

/// Times `step` (which processes `units` images or FLOPs) and returns units per second.
pub fn time_rounds(
    options: &BenchOptions,
    units: f64,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Measurement> {
    for _ in 0..3 {
        step()?;
    }
    let mut calls = 1;
    loop {
        let started = Instant::now();
        for _ in 0..calls {
            step()?;
        }
        if started.elapsed().as_secs_f64() >= options.min_seconds / 4.0 {
            break;
        }
        calls *= 2;
    }
    let mut rates = Vec::with_capacity(options.repeats);
    for _ in 0..options.repeats.max(1) {
        let started = Instant::now();
        for _ in 0..calls {
            step()?;
        }
        rates.push(units * calls as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(Measurement {
        median: rates[rates.len() / 2],
        best: rates[rates.len() - 1],
        epochs: None,
        peak_rss_mb: None,
    })
}

/// Petal's images/s (or GFLOP/s for GEMM) on `workload`.
pub fn measure(workload: Workload, options: &BenchOptions) -> anyhow::Result<Measurement> {
    let Some((mut model, batch, train)) = workload.network(0) else {
        let n = 2048;
        let (a, b) = (random(&[n, n]), random(&[n, n]));
        let mut c = vec![0.0; n * n];
        let flops = 2.0 * (n as f64).powi(3) / 1e9;
        return time_rounds(options, flops, || {
            gemm(
                MatRef::row_major(a.as_slice(), n, n)?,
                MatRef::row_major(b.as_slice(), n, n)?,
                MatMut::row_major(&mut c, n, n)?,
                false,
                true,
            )?;
            Ok(())
        });
    };
    let input: Vec<usize> = std::iter::once(batch)
        .chain(model.input_shape().iter().copied())
        .collect();
    let x = random(&input);
    if !train {
        // Inference runs the model with its batch norms folded into the convolutions.
        let model = model.fold_for_inference();
        return time_rounds(options, batch as f64, || Ok(model.predict(&x).map(drop)?));
    }
    let classes = model.output_shape()[0];
    let labels: Vec<usize> = (0..batch).map(|i| i % classes).collect();
    let config = FitConfig::default();
    let mut trainer = Trainer::new(&mut model, Adam::new(AdamConfig::new(1e-3)))
        .loss(Loss::SparseCategoricalCrossentropy);
    time_rounds(options, batch as f64, || {
        Ok(trainer.train_step(x.clone(), &labels, &config).map(drop)?)
    })
}
