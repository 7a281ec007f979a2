//! Time to accuracy: the Keras MNIST CNN (workload 1: Adam 1e-3, batch 128, shuffled
//! every epoch) trains on the 60,000 MNIST digits until its accuracy on the 10,000 test
//! digits, measured after every epoch, reaches 99.0%. The time is the wall time of the
//! whole run, those evaluations included; PyTorch's side does the same. The two sides
//! alternate seed by seed, and each reports its epochs and seconds per epoch apart from
//! its seconds, so that a ratio shows how much of it is convergence and how much speed.

use std::path::PathBuf;
use std::time::Instant;

use petal_data::download::fetch_dataset;
use petal_data::mnist::{load_mnist_folder, MnistData};
use petal_data::{InMemoryDataset, Manifest};
use petal_nn::{Loss, Model};
use petal_optim::{Adam, AdamConfig, Optimizer};
use petal_train::callbacks::{Callback, Control};
use petal_train::{FitConfig, History, Trainer, Validation};

use super::pytorch_side::PyTorch;
use super::{memory, BenchOptions, Measurement, Workload};
use crate::paths::data_config;

/// The test accuracy to reach.
pub const TARGET_ACCURACY: f64 = 0.99;

/// A run that has not reached the target after this many epochs fails.
pub const MAX_EPOCHS: usize = 30;

/// Training runs per library (seeds 0, 1, ...; the median is reported): the epochs
/// needed vary with the seed, and a run takes about a minute.
pub fn runs(options: &BenchOptions) -> usize {
    options.repeats.clamp(1, 3)
}

/// The folder holding the four MNIST IDX files (fetched into the cache if needed).
fn mnist_folder() -> anyhow::Result<PathBuf> {
    Ok(fetch_dataset(&data_config(), &Manifest::mnist(), None)?)
}

/// Stops training once the validation (here: test) accuracy reaches the target.
struct StopAtTarget;

impl Callback for StopAtTarget {
    fn on_epoch_end(
        &mut self,
        _epoch: usize,
        history: &History,
        _model: &mut Model,
        _optimizer: &mut dyn Optimizer,
    ) -> petal_train::Result<Control> {
        let reached = history
            .last("val_accuracy")
            .is_some_and(|a| a >= TARGET_ACCURACY);
        Ok(if reached {
            Control::Stop(format!("test accuracy reached {TARGET_ACCURACY}"))
        } else {
            Control::Continue
        })
    }
}

/// One training run to the target accuracy.
#[derive(Clone, Copy, Debug)]
pub struct SeedRun {
    /// Wall seconds, the evaluations after each epoch included.
    pub seconds: f64,
    /// Epochs until the target was reached.
    pub epochs: usize,
}

impl std::fmt::Display for SeedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} epochs, {:.1} s ({:.2} s per epoch)",
            self.epochs,
            self.seconds,
            self.seconds_per_epoch()
        )
    }
}

impl SeedRun {
    fn seconds_per_epoch(&self) -> f64 {
        self.seconds / self.epochs as f64
    }
}

/// Petal's and PyTorch's runs to 99.0% test accuracy, seed by seed: PyTorch's run with
/// a seed, then Petal's, so that a change in the machine's load falls on both. Each
/// side's figures are the median and best seconds, the median epochs and the median
/// seconds per epoch over the seeds; PyTorch's side is `None` without `python`.
pub fn measure(
    python: Option<&PyTorch>,
    options: &BenchOptions,
    pool: &rayon::ThreadPool,
) -> anyhow::Result<(Measurement, Option<Measurement>)> {
    let mnist = mnist_folder()?;
    let MnistData { train, test } = load_mnist_folder(&mnist)?;
    let (mut petal, mut pytorch, mut pytorch_peak) = (Vec::new(), Vec::new(), None);
    memory::reset_peak();
    for seed in 0..runs(options) as u64 {
        if let Some(python) = python {
            let (run, peak) = python.time_to_accuracy(seed, &mnist, options)?;
            println!("  pytorch seed {seed}: {run}");
            pytorch_peak = pytorch_peak.into_iter().chain(peak).reduce(f64::max);
            pytorch.push(run);
        }
        let run = pool.install(|| petal_run(seed, &train, &test))?;
        println!("  petal   seed {seed}: {run}");
        petal.push(run);
    }
    let pytorch = (!pytorch.is_empty()).then(|| summary(&pytorch, pytorch_peak));
    Ok((summary(&petal, memory::peak_mib()), pytorch))
}

/// Petal's run with `seed`: workload 1's network trained until the test accuracy
/// reaches the target.
fn petal_run(
    seed: u64,
    train: &InMemoryDataset,
    test: &InMemoryDataset,
) -> anyhow::Result<SeedRun> {
    let (mut model, batch_size, _) = Workload::KerasMnistTrain
        .network(seed)
        .expect("workload 1 is a network");
    let config = FitConfig {
        epochs: MAX_EPOCHS,
        batch_size,
        seed,
        shuffle_seed: Some(seed),
        verbose: false,
        ..FitConfig::default()
    };
    let started = Instant::now();
    let history = Trainer::new(&mut model, Adam::new(AdamConfig::new(1e-3)))
        .loss(Loss::SparseCategoricalCrossentropy)
        .callback(StopAtTarget)
        .fit(train, Validation::Data(test), &config)?;
    let seconds = started.elapsed().as_secs_f64();
    let accuracy = history.last("val_accuracy").unwrap_or(0.0);
    anyhow::ensure!(
        accuracy >= TARGET_ACCURACY,
        "seed {seed}: test accuracy {accuracy:.4} after {MAX_EPOCHS} epochs, below {TARGET_ACCURACY}"
    );
    Ok(SeedRun {
        seconds,
        epochs: history.epochs.len(),
    })
}

/// One side's figures over its runs.
fn summary(runs: &[SeedRun], peak_rss_mb: Option<f64>) -> Measurement {
    let seconds: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
    let epochs: Vec<f64> = runs.iter().map(|r| r.epochs as f64).collect();
    let per_epoch: Vec<f64> = runs.iter().map(SeedRun::seconds_per_epoch).collect();
    Measurement {
        median: median(&seconds),
        best: seconds.iter().copied().fold(f64::INFINITY, f64::min),
        epochs: Some(median(&epochs)),
        seconds_per_epoch: Some(median(&per_epoch)),
        peak_rss_mb,
    }
}

/// The median of `values` (the upper one of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_gives_its_epochs_and_seconds_per_epoch_apart_from_its_seconds() {
        let run = |seconds, epochs| SeedRun { seconds, epochs };
        let figures = summary(&[run(61.1, 10), run(35.5, 6), run(78.8, 10)], Some(410.0));
        assert_eq!(figures.median, 61.1);
        assert_eq!(figures.best, 35.5);
        assert_eq!(figures.epochs, Some(10.0));
        // 6.11, 5.92 and 7.88 s per epoch: the median is the seed-1 run's.
        let per_epoch = figures.seconds_per_epoch.unwrap();
        assert!((per_epoch - 6.11).abs() < 1e-9, "{per_epoch}");
        assert_eq!(figures.peak_rss_mb, Some(410.0));
    }
}
