//! `repro mnist`: the lecture's bipyramidal CNN (visualize_cnn_mnist) trained on MNIST,
//! and the training routine the MNIST experiments share.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use petal_data::augment::Augmentation;
use petal_data::download::{fetch_dataset, DataConfig};
use petal_data::mnist::{load_mnist_folder, MnistData};
use petal_data::{Dataset, InMemoryDataset, Manifest, Subset};
use petal_nn::{Loss, Model};
use petal_optim::{Adam, AdamConfig, CosineDecay, LrSchedule};
use petal_train::callbacks::{Callback, EarlyStopping, Monitor};
use petal_train::{evaluate, FitConfig, History, Trainer};
use petal_zoo::{bipyramidal, BipyramidalConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{write_metrics, Experiment, ReproOptions, RunInfo};
use crate::paths::data_config;

/// Samples kept by `--quick`.
const QUICK_TRAIN: usize = 2000;
const QUICK_TEST: usize = 1000;

/// MNIST from the cache (fetched through `PETAL_MIRROR` or the official URLs).
pub struct MnistSplits {
    train: Box<dyn Dataset>,
    test: Box<dyn Dataset>,
}

impl MnistSplits {
    /// Loads MNIST through the environment's cache and mirror; `quick` keeps the first
    /// samples only.
    pub fn load(quick: bool) -> anyhow::Result<Self> {
        Self::load_from(&data_config(), quick)
    }

    fn load_from(config: &DataConfig, quick: bool) -> anyhow::Result<Self> {
        let folder = fetch_dataset(config, &Manifest::mnist(), None)?;
        let MnistData { train, test } = load_mnist_folder(folder)?;
        let head = |data: InMemoryDataset, n: usize| -> anyhow::Result<Box<dyn Dataset>> {
            Ok(if quick {
                Box::new(Subset::new(data, (0..n).collect())?)
            } else {
                Box::new(data)
            })
        };
        Ok(Self {
            train: head(train, QUICK_TRAIN)?,
            test: head(test, QUICK_TEST)?,
        })
    }

    /// The test split.
    pub fn test(&self) -> &dyn Dataset {
        self.test.as_ref()
    }
}

/// One training run of an MNIST experiment.
pub struct MnistRun {
    /// Row name in the report.
    pub name: &'static str,
    /// The network.
    pub network: BipyramidalConfig,
    /// Maximum epochs.
    pub epochs: usize,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Early stopping patience on val_loss (restoring the best weights).
    pub early_stopping: Option<usize>,
    /// On-the-fly augmentation of the training digits.
    pub augmentation: Option<Arc<dyn Augmentation>>,
    /// Cosine decay of the learning rate over the whole run (else a constant 1e-3).
    pub cosine_decay: bool,
    /// Initialization and shuffling seed.
    pub seed: u64,
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

/// Trains one model with Adam (1e-3, optionally decayed), batch 128, 10% of the training
/// data held out for validation, and evaluates it on the test set.
pub fn train_run(data: &MnistSplits, run: &MnistRun) -> anyhow::Result<RunResult> {
    let mut model = bipyramidal(&run.network, run.seed)?;
    let mut adam = Adam::new(AdamConfig::new(1e-3));
    let mut early = run
        .early_stopping
        .map(|patience| EarlyStopping::new(Monitor::new("val_loss"), patience, true));
    let callbacks: Vec<&mut dyn Callback> =
        early.iter_mut().map(|e| e as &mut dyn Callback).collect();
    let loss = Loss::CategoricalCrossentropy {
        label_smoothing: run.label_smoothing,
    };
    let config = FitConfig {
        epochs: run.epochs,
        batch_size: 128,
        shuffle_seed: Some(run.seed),
        seed: run.seed,
        validation_split: 0.1,
        augmentation: run.augmentation.clone(),
        ..FitConfig::default()
    };
    println!("== {} ==", run.name);
    let started = Instant::now();
    let steps_per_epoch = (data.train.len() as f64 * 0.9 / 128.0).ceil() as u64;
    let cosine = CosineDecay {
        initial: 1e-3,
        decay_steps: steps_per_epoch * run.epochs as u64,
        alpha: 0.0,
    };
    let schedule = run.cosine_decay.then_some(&cosine as &dyn LrSchedule);
    let history = Trainer {
        model: &mut model,
        optimizer: &mut adam,
        loss,
        schedule,
        callbacks,
    }
    .fit(data.train.as_ref(), None, &config)?;
    let seconds = started.elapsed().as_secs_f64();
    let test = evaluate(
        &model,
        Loss::SparseCategoricalCrossentropy,
        data.test(),
        500,
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
        weights_sha256: weights_checksum(&model),
        history,
        model: Some(model),
    })
}

/// Prints the runs as one table.
pub fn print_table(results: &[RunResult]) {
    println!(
        "\n{:<28} {:>6} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "run", "epochs", "time (s)", "img/s", "train acc", "val acc", "test acc"
    );
    for r in results {
        println!(
            "{:<28} {:>6} {:>9.1} {:>8.0} {:>9.4} {:>9.4} {:>9.4}",
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

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    info: RunInfo,
    summary: String,
    runs: &'a [RunResult],
}

pub fn run(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    let data = MnistSplits::load(options.quick)?;
    let run = MnistRun {
        name: "bipyramidal CNN",
        network: BipyramidalConfig::mnist(),
        epochs: options.epochs_or(12),
        label_smoothing: 0.0,
        early_stopping: None,
        augmentation: None,
        cosine_decay: true,
        seed: options.seed,
    };
    let summary = bipyramidal(&run.network, run.seed)?.summary().to_string();
    println!("{summary}\n");
    let results = [train_run(&data, &run)?];
    print_table(&results);
    println!("weights sha256: {}", results[0].weights_sha256);
    write_metrics(
        output,
        &Report {
            info: RunInfo::new(Experiment::Mnist, options),
            summary,
            runs: &results,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::workspace_root;

    /// MNIST through the shared mirror beside the checkout, if it is there.
    fn shared_mnist() -> Option<MnistSplits> {
        let mirror = workspace_root().join("../shared/datasets");
        if !mirror.join("mnist").is_dir() {
            eprintln!("skipped: no MNIST mirror at {}", mirror.display());
            return None;
        }
        let cache = tempfile::tempdir().unwrap().keep();
        let config = DataConfig {
            cache_root: cache,
            mirror: Some(mirror),
        };
        Some(MnistSplits::load_from(&config, true).unwrap())
    }

    #[test]
    fn the_same_seed_and_threads_give_the_same_weights_and_accuracy() {
        let Some(data) = shared_mnist() else { return };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let train = |seed| {
            let run = MnistRun {
                name: "t",
                network: BipyramidalConfig::mnist(),
                epochs: 1,
                label_smoothing: 0.0,
                early_stopping: None,
                augmentation: None,
                cosine_decay: false,
                seed,
            };
            let r = pool.install(|| train_run(&data, &run)).unwrap();
            (r.weights_sha256, r.test_accuracy)
        };
        let (first, again, other) = (train(1), train(1), train(2));
        assert_eq!(first, again);
        assert_ne!(first.0, other.0);
        assert!(
            first.1 > 0.5,
            "one epoch on 2000 digits reaches {}",
            first.1
        );
    }
}
