//! Timing Petal on a workload: random data in memory, warm-up excluded, median of rounds.

use std::time::Instant;

use petal_nn::Loss;
use petal_nn::Model;
use petal_optim::{Adam, AdamConfig};
use petal_tensor::gemm::{gemm, MatMut, MatRef};
use petal_tensor::Tensor;
use petal_train::distributed::Distributed;
use petal_train::{FitConfig, Trainer};

use super::{BenchOptions, Measurement, Workload};

/// A tensor of `shape` filled with fixed values in [0, 1).
pub fn random(shape: &[usize]) -> Tensor {
    let len: usize = shape.iter().product();
    let values = (0..len as u64)
        .map(|i| ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1000) as f32 / 1000.0)
        .collect();
    Tensor::from_vec(shape, values).expect("length from the shape")
}

/// What runs before each of Petal's timed rounds: the other library's round, when the
/// two alternate round by round.
pub type BeforeRound<'a> = &'a mut dyn FnMut() -> anyhow::Result<()>;

/// Times `step` (which processes `units` images or FLOPs) and returns units per second.
pub fn time_rounds(
    options: &BenchOptions,
    units: f64,
    step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Measurement> {
    time_rounds_agreeing(options, units, step, Ok, &mut || Ok(()))
}

/// [`time_rounds`] where `agree` turns this process's "calibrated" verdict into the
/// one every process uses, so that the ranks of a group make the same number of steps
/// (each step calls collectives), and `before_round` runs before each timed round.
fn time_rounds_agreeing(
    options: &BenchOptions,
    units: f64,
    mut step: impl FnMut() -> anyhow::Result<()>,
    agree: impl Fn(bool) -> anyhow::Result<bool>,
    before_round: BeforeRound<'_>,
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
        if agree(started.elapsed().as_secs_f64() >= options.min_seconds / 4.0)? {
            break;
        }
        calls *= 2;
    }
    let mut rates = Vec::with_capacity(options.repeats);
    for _ in 0..options.repeats.max(1) {
        before_round()?;
        let started = Instant::now();
        for _ in 0..calls {
            step()?;
        }
        rates.push(units * calls as f64 / started.elapsed().as_secs_f64());
    }
    Ok(Measurement::of_rates(rates, None))
}

/// Petal's images/s (or GFLOP/s for GEMM) on `workload`, its products in the precision
/// [`petal_tensor::with_precision`] set around the call, `before_round` running before
/// each timed round.
pub fn measure(
    workload: Workload,
    options: &BenchOptions,
    before_round: BeforeRound<'_>,
) -> anyhow::Result<Measurement> {
    let Some((mut model, batch, train)) = workload.network(0) else {
        let n = 2048;
        let (a, b) = (random(&[n, n]), random(&[n, n]));
        let mut c = vec![0.0; n * n];
        let flops = 2.0 * (n as f64).powi(3) / 1e9;
        let product = || {
            gemm(
                MatRef::row_major(a.as_slice(), n, n)?,
                MatRef::row_major(b.as_slice(), n, n)?,
                MatMut::row_major(&mut c, n, n)?,
                false,
                true,
            )?;
            Ok(())
        };
        return time_rounds_agreeing(options, flops, product, Ok, before_round);
    };
    let input: Vec<usize> = std::iter::once(batch)
        .chain(model.input_shape().iter().copied())
        .collect();
    let x = random(&input);
    if !train {
        // Inference runs the model with its batch norms folded into the convolutions.
        let model = model.fold_for_inference();
        let predict = || Ok(model.predict(&x).map(drop)?);
        return time_rounds_agreeing(options, batch as f64, predict, Ok, before_round);
    }
    train_rate(&mut model, x, options, None, before_round)
}

/// Images/s of training steps of `model` on the batch `x` (with `group`, this rank's
/// part of a global batch as large as `x` times the world size; the rate is the global
/// batch's), `before_round` running before each timed round.
pub fn train_rate(
    model: &mut Model,
    x: Tensor,
    options: &BenchOptions,
    group: Option<&Distributed>,
    before_round: BeforeRound<'_>,
) -> anyhow::Result<Measurement> {
    let classes = model.output_shape()[0];
    let labels: Vec<usize> = (0..x.shape()[0]).map(|i| i % classes).collect();
    let config = FitConfig {
        distributed: group.cloned(),
        ..FitConfig::default()
    };
    let global_batch = labels.len() * group.map_or(1, Distributed::world_size);
    let mut trainer = Trainer::new(model, Adam::new(AdamConfig::new(1e-3)))
        .loss(Loss::SparseCategoricalCrossentropy);
    time_rounds_agreeing(
        options,
        global_batch as f64,
        || Ok(trainer.train_step(x.clone(), &labels, &config).map(drop)?),
        |calibrated| leaders_verdict(group, calibrated),
        before_round,
    )
}

/// Rank 0's `verdict` on every rank of `group`; `verdict` itself alone.
fn leaders_verdict(group: Option<&Distributed>, verdict: bool) -> anyhow::Result<bool> {
    Ok(match group {
        Some(group) => group.communicator.allgather_u64(u64::from(verdict))?[0] == 1,
        None => verdict,
    })
}

/// What a training workload does on the ranks of a group.
pub struct GroupTraining {
    /// Images/s of the global batch.
    pub rate: Measurement,
    /// The global batch.
    pub batch: usize,
    /// Seconds of one allreduce of the gradients, timed alone.
    pub allreduce_seconds: f64,
}

/// [`GroupTraining`] of `workload`, its batch being the global batch split evenly over
/// the ranks of `group`; `None` for a workload that trains no network.
pub fn measure_in_group(
    workload: Workload,
    options: &BenchOptions,
    group: &Distributed,
) -> anyhow::Result<Option<GroupTraining>> {
    let Some((mut model, batch, true)) = workload.network(0) else {
        return Ok(None);
    };
    let world = group.world_size();
    anyhow::ensure!(
        batch.is_multiple_of(world),
        "{}: the batch of {batch} does not split evenly over {world} ranks",
        workload.name()
    );
    let input: Vec<usize> = std::iter::once(batch / world)
        .chain(model.input_shape().iter().copied())
        .collect();
    let gradients: usize = model.store().iter().map(|(_, p)| p.value.len()).sum();
    let rate = train_rate(
        &mut model,
        random(&input),
        options,
        Some(group),
        &mut || Ok(()),
    )?;
    let mut buffer = vec![0.0f32; gradients];
    let allreduces = time_rounds_agreeing(
        options,
        1.0,
        || Ok(group.communicator.allreduce_sum(&mut buffer)?),
        |calibrated| leaders_verdict(Some(group), calibrated),
        &mut || Ok(()),
    )?;
    Ok(Some(GroupTraining {
        rate,
        batch,
        allreduce_seconds: 1.0 / allreduces.median,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use petal_train::distributed::local_group;

    use super::*;

    /// The ranks make the same number of steps whatever their own clocks say (rank 0
    /// decides when timing is calibrated), so the collectives pair up and both finish.
    #[test]
    fn ranks_time_the_same_steps_and_report_the_global_batch() {
        let options = BenchOptions {
            only: vec![],
            threads: 1,
            repeats: 2,
            min_seconds: 0.01,
            distributed: true,
            cost_curves: false,
            precisions: vec![petal_tensor::Precision::F32],
        };
        let results: Vec<_> = std::thread::scope(|scope| {
            let ranks: Vec<_> = local_group(2, Duration::from_secs(60))
                .into_iter()
                .map(|comm| {
                    let options = &options;
                    scope.spawn(move || {
                        let group = Distributed::new(Arc::new(comm));
                        let inference =
                            measure_in_group(Workload::KerasMnistInfer, options, &group).unwrap();
                        assert!(inference.is_none(), "inference trains nothing");
                        measure_in_group(Workload::KerasMnistTrain, options, &group)
                            .unwrap()
                            .unwrap()
                    })
                })
                .collect();
            ranks.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for figures in results {
            assert_eq!(figures.batch, 128);
            assert!(figures.rate.median > 0.0 && figures.rate.best >= figures.rate.median);
            assert!(figures.allreduce_seconds > 0.0);
        }
    }
}
