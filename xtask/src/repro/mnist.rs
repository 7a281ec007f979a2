//! `repro mnist`: the lecture's bipyramidal CNN (visualize_cnn_mnist) trained on MNIST,
//! and the MNIST data the MNIST experiments share.

use std::path::Path;
use std::time::Instant;

use petal_data::download::{fetch_dataset, DataConfig};
use petal_data::mnist::{load_mnist_folder, MnistData};
use petal_data::{Dataset, InMemoryDataset, Manifest, Subset};
use petal_zoo::{bipyramidal, BipyramidalConfig};
use serde::Serialize;

use super::figures::{sample, Figures, RecordedConfusion};
use petal_nn::layers::LayerKind;

use super::inspect::{self, layers_of_kind, Explained};
use super::training::{print_table, train_run, RunResult, RunSpec};
use super::{write_metrics, Checkpoints, Experiment, ReproOptions, RunInfo};
use crate::paths::{data_config, mnist_model_path};
use petal_tensor::Precision;
use petal_train::Validation;

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

    /// Trains a run with the last 10% of the training digits for validation.
    pub fn train_run(&self, run: &RunSpec, checkpoints: &Checkpoints) -> anyhow::Result<RunResult> {
        train_run(
            self.train.as_ref(),
            Validation::Split(0.1),
            self.test(),
            run,
            checkpoints,
        )
    }
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    info: RunInfo,
    runs: &'a [RunResult],
    /// The test confusion matrix.
    confusion: RecordedConfusion,
}

/// The network `repro mnist` trains (and `cargo xtask docs` explains).
pub fn network() -> BipyramidalConfig {
    BipyramidalConfig::mnist()
}

/// The one run of `repro mnist`: 12 epochs with a cosine-decayed learning rate.
pub(super) fn run_spec(options: &ReproOptions) -> RunSpec {
    RunSpec {
        cosine_decay: true,
        ..RunSpec::new(
            "bipyramidal CNN",
            network(),
            options.epochs_or(12),
            options.seed,
        )
    }
}

pub fn run(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    let data = MnistSplits::load(options.quick)?;
    let run = run_spec(options);
    println!("{}\n", bipyramidal(&run.network, run.seed)?.summary());
    let results = [data.train_run(&run, &options.checkpoints(Experiment::Mnist))?];
    print_table(&results);
    println!("weights sha256: {}", results[0].weights_sha256);
    // A bf16 run leaves the f32 weights that `cargo xtask docs` explains.
    if super::leads() && options.precision == Precision::F32 {
        save_model(&results[0], &mnist_model_path(options.quick))?;
    }
    let mut figures = Figures::new(output);
    let confusion = write_figures(&mut figures, &data, &results[0])?;
    write_metrics(
        output,
        &Report {
            info: RunInfo::new(Experiment::Mnist, options)?,
            runs: &results,
            confusion,
        },
        &figures,
    )
}

/// Writes the trained weights where `cargo xtask docs` looks for them.
fn save_model(result: &RunResult, path: &Path) -> anyhow::Result<()> {
    let model = result
        .model
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the run kept no model to save"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    model.save_weights(path)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Curves, filters, feature maps and saliency of the trained network, the confusion
/// matrix (returned for the report) and the mistakes.
fn write_figures(
    figures: &mut Figures,
    data: &MnistSplits,
    run: &RunResult,
) -> anyhow::Result<RecordedConfusion> {
    let started = Instant::now();
    figures.curves(
        &Experiment::Mnist.curves_title(None),
        &[(run.name, &run.history)],
    )?;
    let names = DIGITS;
    let (confusion, _) = figures.test_confusion(
        run.name,
        data.test(),
        &names,
        &run.test_labels,
        &run.test_predicted,
    )?;
    figures.misclassified(
        data.test(),
        &names,
        &run.test_labels,
        &run.test_predicted,
        32,
    )?;
    let model = run.model.as_ref().expect("a trained run keeps its model");
    let convs = layers_of_kind(model, &[LayerKind::Conv2d]);
    inspect::filters(figures, model, &convs)?;
    let (digit, label) = sample(data.test(), 0)?;
    let layers = layers_of_kind(model, &[LayerKind::Conv2d, LayerKind::MaxPool2d]);
    inspect::feature_maps(
        figures,
        model,
        &digit,
        &format!("the first test digit (a {label})"),
        &layers,
    )?;
    let explained = (0..4)
        .map(|i| {
            let (image, label) = sample(data.test(), i)?;
            Ok(Explained {
                image,
                caption: format!("test digit {i}: {label}"),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let last_conv = convs.last().expect("the CNN has conv layers");
    inspect::saliency(
        figures,
        "saliency.png",
        model,
        &explained,
        &names,
        last_conv,
        true,
    )?;
    println!(
        "{} figures written in {:.1} s",
        figures.list().len(),
        started.elapsed().as_secs_f64()
    );
    Ok(confusion)
}

/// MNIST's class names.
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

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
        let checkpoints = Checkpoints {
            dir: tempfile::tempdir().unwrap().keep(),
            resume: false,
        };
        let train = |seed| {
            let run = RunSpec::new("t", BipyramidalConfig::mnist(), 1, seed);
            let r = pool.install(|| data.train_run(&run, &checkpoints)).unwrap();
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
