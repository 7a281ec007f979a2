//! Time to accuracy: the Keras MNIST CNN (workload 1: Adam 1e-3, batch 128, shuffled
//! every epoch) trains on the 60,000 MNIST digits until its accuracy on the 10,000 test
//! digits, measured after every epoch, reaches 99.0%. The time is the wall time of the
//! whole run, those evaluations included; PyTorch's side does the same.

use std::path::PathBuf;
use std::time::Instant;

use petal_data::download::fetch_dataset;
use petal_data::mnist::{load_mnist_folder, MnistData};
use petal_data::Manifest;
use petal_nn::{Loss, Model};
use petal_optim::{Adam, AdamConfig, Optimizer};
use petal_train::callbacks::{Callback, Control};
use petal_train::{FitConfig, History, Trainer, Validation};

use super::{BenchOptions, Measurement, Workload};
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
pub fn mnist_folder() -> anyhow::Result<PathBuf> {
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

/// Petal's seconds to 99.0% test accuracy (median and best over [`runs`]) and the
/// median number of epochs.
pub fn measure(options: &BenchOptions) -> anyhow::Result<Measurement> {
    let MnistData { train, test } = load_mnist_folder(mnist_folder()?)?;
    let mut seconds = Vec::new();
    let mut epochs = Vec::new();
    for seed in 0..runs(options) as u64 {
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
            .fit(&train, Validation::Data(&test), &config)?;
        let elapsed = started.elapsed().as_secs_f64();
        let accuracy = history.last("val_accuracy").unwrap_or(0.0);
        anyhow::ensure!(
            accuracy >= TARGET_ACCURACY,
            "seed {seed}: test accuracy {accuracy:.4} after {MAX_EPOCHS} epochs, below {TARGET_ACCURACY}"
        );
        println!(
            "  petal seed {seed}: {:.4} after {} epochs, {elapsed:.1} s",
            accuracy,
            history.epochs.len()
        );
        seconds.push(elapsed);
        epochs.push(history.epochs.len() as f64);
    }
    Ok(Measurement {
        median: median(&seconds),
        best: seconds.iter().copied().fold(f64::INFINITY, f64::min),
        epochs: Some(median(&epochs)),
        peak_rss_mb: None,
    })
}

/// The median of `values` (the upper one of an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
