//! Training one bipyramidal CNN the way every from-scratch experiment does (Adam, batch
//! size, validation, optional augmentation or batch mixing, early stopping, cosine
//! decay), and the table and checksum the reports share.

use std::sync::Arc;

use petal_data::augment::{Augmentation, BatchMix};
use petal_data::Dataset;
use petal_nn::{Loss, Model};
use petal_optim::{Adam, AdamConfig, CosineDecay};
use petal_train::callbacks::{EarlyStopping, Monitor};
use petal_train::{evaluate, FitConfig, History, Trainer, Validation};
use petal_zoo::{bipyramidal, BipyramidalConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Checkpoints;

/// One training run of an experiment.
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
        checkpoint: Some(checkpoints.for_run(run.name)),
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
    let test = evaluate(&model, Loss::SparseCategoricalCrossentropy, test, 100)?;
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
        weights_sha256: weights_checksum(&model),
        history,
        model: Some(model),
        test_labels: test.labels,
        test_predicted: test.predicted,
    })
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
