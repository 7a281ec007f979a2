//! Training one bipyramidal CNN the way every from-scratch experiment does (Adam, batch
//! size, validation, optional augmentation or batch mixing, early stopping, cosine
//! decay), and the table and checksum the reports share.

use std::sync::Arc;

use petal_data::augment::{Augmentation, BatchMix};
use petal_data::Dataset;
use petal_nn::{Loss, Model};
use petal_optim::{Adam, AdamConfig, CosineDecay};
use petal_train::callbacks::{EarlyStopping, Monitor};
use petal_train::distributed::{evaluate_sharded, Distributed};
use petal_train::{FitConfig, History, Trainer, Validation};
use petal_zoo::{bipyramidal, BipyramidalConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Checkpoints;

/// One training run of an experiment.
#[derive(Clone)]
pub struct RunSpec {
    /// Row name in the report.
    pub name: &'static str,
    /// The network.
    pub network: BipyramidalConfig,
    /// Maximum epochs.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Adam's (initial) learning rate.
    pub learning_rate: f32,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Early stopping patience on val_loss (restoring the best weights).
    pub early_stopping: Option<usize>,
    /// On-the-fly augmentation of the training samples.
    pub augmentation: Option<Arc<dyn Augmentation>>,
    /// Mixing of each training batch with its soft targets (MixUp, CutMix).
    pub batch_mix: Option<Arc<dyn BatchMix>>,
    /// Cosine decay of the learning rate over the whole run (else constant).
    pub cosine_decay: bool,
    /// Initialization, shuffling and augmentation seed.
    pub seed: u64,
    /// Which of several seeds of the same row this run is: 0 for the first (its
    /// checkpoint keeps the row's name), k for the k-th repeat.
    pub replica: usize,
}

impl RunSpec {
    /// A plain run: Adam 1e-3, batch 128, no regularization.
    pub fn new(name: &'static str, network: BipyramidalConfig, epochs: usize, seed: u64) -> Self {
        Self {
            name,
            network,
            epochs,
            batch_size: 128,
            learning_rate: 1e-3,
            label_smoothing: 0.0,
            early_stopping: None,
            augmentation: None,
            batch_mix: None,
            cosine_decay: false,
            seed,
            replica: 0,
        }
    }
}

/// What one run measured.
#[derive(Serialize)]
pub struct RunResult {
    pub name: &'static str,
    pub epochs: usize,
    pub seconds: f64,
    pub images_per_second: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    pub test_accuracy: f64,
    pub test_loss: f64,
    /// Over several seeds ([`over_seeds`]): the sample standard deviation of the test
    /// accuracy, and each seed's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy_std: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seed_test_accuracies: Vec<f64>,
    pub weights_sha256: String,
    pub history: History,
    #[serde(skip)]
    pub model: Option<Model>,
    /// The true class of each test sample.
    #[serde(skip)]
    pub test_labels: Vec<usize>,
    /// The predicted class of each test sample.
    #[serde(skip)]
    pub test_predicted: Vec<usize>,
}

/// SHA-256 of every parameter's bytes in store order: equal weights, equal checksum.
pub fn weights_checksum(model: &Model) -> String {
    let mut hasher = Sha256::new();
    for (_, p) in model.store().iter() {
        hasher.update(p.name.as_bytes());
        p.value
            .as_slice()
            .iter()
            .for_each(|v| hasher.update(v.to_le_bytes()));
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Trains one bipyramidal CNN with Adam as `run` says, checkpointed in `checkpoints`, and
/// evaluates it on `test`.
pub fn train_run(
    train: &dyn Dataset,
    validation: Validation<'_>,
    test: &dyn Dataset,
    run: &RunSpec,
    checkpoints: &Checkpoints,
) -> anyhow::Result<RunResult> {
    let mut model = bipyramidal(&run.network, run.seed)?;
    let config = FitConfig {
        epochs: run.epochs,
        batch_size: run.batch_size,
        shuffle_seed: Some(run.seed),
        seed: run.seed,
        augmentation: run.augmentation.clone(),
        batch_mix: run.batch_mix.clone(),
        checkpoint: Some(checkpoints.for_run(&match run.replica {
            0 => run.name.to_string(),
            k => format!("{} repeat {k}", run.name),
        })),
        distributed: super::group(),
        ..FitConfig::default()
    };
    println!("== {} ==", run.name);
    let mut trainer = Trainer::new(&mut model, Adam::new(AdamConfig::new(run.learning_rate))).loss(
        Loss::CategoricalCrossentropy {
            label_smoothing: run.label_smoothing,
        },
    );
    if run.cosine_decay {
        trainer = trainer.schedule(CosineDecay::over_training(run.learning_rate, 0.0));
    }
    if let Some(patience) = run.early_stopping {
        trainer = trainer.callback(EarlyStopping::new(Monitor::new("val_loss"), patience, true));
    }
    let history = trainer.fit(train, validation, &config)?;
    // Summed over the epochs, so a resumed run counts the epochs of earlier invocations.
    let seconds = history.metric("seconds").iter().sum();
    let loss = Loss::SparseCategoricalCrossentropy;
    let group = super::group();
    let test = evaluate_sharded(
        &model,
        loss,
        test,
        100,
        Distributed::communicator_of(group.as_ref()),
    )?;
    let mean = |name: &str| {
        let v = history.metric(name);
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    Ok(RunResult {
        name: run.name,
        epochs: history.epochs.len(),
        seconds,
        images_per_second: mean("images_per_second"),
        train_accuracy: history.last("accuracy").unwrap_or(f64::NAN),
        val_accuracy: history.last("val_accuracy").unwrap_or(f64::NAN),
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        test_accuracy_std: None,
        seed_test_accuracies: Vec::new(),
        weights_sha256: weights_checksum(&model),
        history,
        model: Some(model),
        test_labels: test.labels,
        test_predicted: test.predicted,
    })
}

/// Trains `run` once per seed (`run.seed`, `run.seed + 1`, ...) with `train`, and
/// reports them as one row ([`over_seeds`]).
pub fn train_seeds(
    seeds: usize,
    run: &RunSpec,
    mut train: impl FnMut(&RunSpec) -> anyhow::Result<RunResult>,
) -> anyhow::Result<RunResult> {
    let runs = (0..seeds.max(1))
        .map(|k| {
            train(&RunSpec {
                seed: run.seed + k as u64,
                replica: k,
                ..run.clone()
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(over_seeds(runs))
}

/// The runs of one row over several seeds as one result: accuracies and test loss
/// averaged, seconds summed, the test accuracy's spread across seeds recorded; the
/// curves, weights and test predictions are the first seed's. One run is returned as is.
pub fn over_seeds(mut runs: Vec<RunResult>) -> RunResult {
    if runs.len() < 2 {
        return runs.remove(0);
    }
    let n = runs.len() as f64;
    let mean = |f: fn(&RunResult) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let test_accuracy = mean(|r| r.test_accuracy);
    let accuracies: Vec<f64> = runs.iter().map(|r| r.test_accuracy).collect();
    let variance = accuracies
        .iter()
        .map(|a| (a - test_accuracy).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    let (train_accuracy, val_accuracy, test_loss) = (
        mean(|r| r.train_accuracy),
        mean(|r| r.val_accuracy),
        mean(|r| r.test_loss),
    );
    let images_per_second = mean(|r| r.images_per_second);
    let seconds = runs.iter().map(|r| r.seconds).sum();
    let first = runs.remove(0);
    RunResult {
        seconds,
        images_per_second,
        train_accuracy,
        val_accuracy,
        test_accuracy,
        test_loss,
        test_accuracy_std: Some(variance.sqrt()),
        seed_test_accuracies: accuracies,
        ..first
    }
}

/// Prints the runs as one table.
pub fn print_table(results: &[RunResult]) {
    let width = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(3);
    println!(
        "\n{:<width$} {:>6} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "run", "epochs", "time (s)", "img/s", "train acc", "val acc", "test acc"
    );
    for r in results {
        println!(
            "{:<width$} {:>6} {:>9.1} {:>8.0} {:>9.4} {:>9.4} {:>9.4}",
            r.name,
            r.epochs,
            r.seconds,
            r.images_per_second,
            r.train_accuracy,
            r.val_accuracy,
            r.test_accuracy
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(test_accuracy: f64, seconds: f64) -> RunResult {
        RunResult {
            name: "row",
            epochs: 3,
            seconds,
            images_per_second: 100.0,
            train_accuracy: test_accuracy,
            val_accuracy: test_accuracy,
            test_accuracy,
            test_loss: 1.0 - test_accuracy,
            test_accuracy_std: None,
            seed_test_accuracies: Vec::new(),
            weights_sha256: format!("{test_accuracy}"),
            history: History::default(),
            model: None,
            test_labels: Vec::new(),
            test_predicted: Vec::new(),
        }
    }

    #[test]
    fn seeds_are_averaged_with_their_sample_spread() {
        let row = over_seeds(vec![
            result(0.98, 1.0),
            result(0.99, 2.0),
            result(0.97, 3.0),
        ]);
        assert!((row.test_accuracy - 0.98).abs() < 1e-12);
        // Sample standard deviation of 0.98, 0.99, 0.97: 0.01.
        assert!((row.test_accuracy_std.unwrap() - 0.01).abs() < 1e-12);
        assert_eq!(row.seed_test_accuracies, [0.98, 0.99, 0.97]);
        assert_eq!((row.seconds, row.weights_sha256.as_str()), (6.0, "0.98"));
        let single = over_seeds(vec![result(0.5, 1.0)]);
        assert_eq!(
            (single.test_accuracy_std, single.test_accuracy),
            (None, 0.5)
        );
    }
}
