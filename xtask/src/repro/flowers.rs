//! `repro flowers3` and `repro flowers102`: CNNs trained from scratch on Oxford 102
//! Flowers (CNN_from_scratch_flowers and _102), first without regularization, then with
//! augmentation, dropout, early stopping (and batch norm).

use std::path::Path;
use std::sync::Arc;

use petal_data::augment::{AffineConfig, Augmentation, FillMode, RandomAffine};
use petal_data::flowers::Flowers102;
use petal_data::{ImageDataset, ImageOptions, Split};
use petal_tensor::Padding;
use petal_zoo::BipyramidalConfig;
use serde::Serialize;

use super::training::{print_table, train_run, RunResult, RunSpec, Validation};
use super::{write_metrics, Experiment, ReproOptions, RunInfo};
use crate::paths::data_config;

/// Images per split kept by `--quick`.
const QUICK_IMAGES: usize = 24;

/// The lecture's flowers network: four conv/pool blocks (32, 64, 128, 256 filters),
/// 'same' 3x3 convolutions, a 128-unit dense layer.
fn network(size: usize, classes: usize) -> BipyramidalConfig {
    BipyramidalConfig {
        input_shape: [size, size, 3],
        blocks: 4,
        base_filters: 32,
        convs_per_block: 1,
        kernel: 3,
        padding: Padding::Same,
        batch_norm: false,
        block_dropout: None,
        dense: vec![128],
        head_dropout: None,
        classes,
        l2: None,
    }
}

/// Random horizontal flips, rotations up to ~36 degrees, zooms and shifts up to 10%.
pub(crate) fn flower_augmentation() -> anyhow::Result<Arc<dyn Augmentation>> {
    Ok(Arc::new(RandomAffine::new(AffineConfig {
        horizontal_flip: true,
        rotation: (-0.1, 0.1),
        zoom_height: (-0.1, 0.1),
        translate_height: (-0.1, 0.1),
        translate_width: (-0.1, 0.1),
        fill: FillMode::Reflect,
        ..AffineConfig::default()
    })?))
}

/// The three splits as cached image datasets (`--quick` keeps a few photos of each).
struct FlowerSplits {
    train: ImageDataset,
    val: ImageDataset,
    test: ImageDataset,
}

/// Which runs an experiment makes besides the unregularized one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Regularized {
    /// (b) augmentation + dropout + early stopping, and (c) the same plus batch norm.
    WithAndWithoutBatchNorm,
    /// Only (b): augmentation + dropout + early stopping.
    WithoutBatchNorm,
}

/// The without / with regularization runs of a flower experiment.
fn runs(
    options: &ReproOptions,
    size: usize,
    classes: usize,
    epochs: usize,
    which: Regularized,
) -> Vec<RunSpec> {
    // `--epochs` sets the unregularized run's epochs; the regularized runs may take three
    // times as many, stopped early after half as many without improvement.
    let epochs = options.epochs.unwrap_or(epochs);
    let plain = network(size, classes);
    let regularized = BipyramidalConfig {
        block_dropout: Some(0.1),
        head_dropout: Some(0.5),
        ..plain.clone()
    };
    let max_epochs = if options.quick { 1 } else { epochs * 3 };
    let with = |name, network| RunSpec {
        batch_size: 32,
        augmentation: Some(flower_augmentation().expect("a valid constant configuration")),
        early_stopping: Some(if options.quick { 1 } else { epochs / 2 }),
        ..RunSpec::new(name, network, max_epochs, options.seed)
    };
    let plain_run = RunSpec {
        batch_size: 32,
        ..RunSpec::new(
            "(a) no regularization",
            plain,
            options.epochs_or(epochs),
            options.seed,
        )
    };
    match which {
        Regularized::WithAndWithoutBatchNorm => vec![
            plain_run,
            with(
                "(b) augmentation + dropout + early stopping",
                regularized.clone(),
            ),
            with(
                "(c) (b) + batch norm",
                BipyramidalConfig {
                    batch_norm: true,
                    ..regularized
                },
            ),
        ],
        Regularized::WithoutBatchNorm => vec![
            plain_run,
            with("(b) augmentation + dropout + early stopping", regularized),
        ],
    }
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    info: RunInfo,
    image_size: usize,
    classes: Vec<&'a str>,
    split_sizes: [usize; 3],
    runs: &'a [RunResult],
}

fn run_all(
    experiment: Experiment,
    options: &ReproOptions,
    output: &Path,
    splits: &FlowerSplits,
    classes: Vec<&str>,
    runs: Vec<RunSpec>,
) -> anyhow::Result<()> {
    let split_sizes = [
        splits.train.paths().len(),
        splits.val.paths().len(),
        splits.test.paths().len(),
    ];
    println!("train / val / test photos: {split_sizes:?}");
    let checkpoints = options.checkpoints(experiment);
    let mut results = Vec::new();
    for run in &runs {
        results.push(train_run(
            &splits.train,
            Validation::Data(&splits.val),
            &splits.test,
            run,
            &checkpoints,
        )?);
    }
    print_table(&results);
    let info = RunInfo::new(experiment, options);
    write_metrics(
        output,
        &Report {
            info,
            image_size: options.image_size,
            classes,
            split_sizes,
            runs: &results,
        },
    )
}

fn keep(indices: &[usize], quick: bool) -> Vec<usize> {
    indices
        .iter()
        .copied()
        .take(if quick { QUICK_IMAGES } else { usize::MAX })
        .collect()
}

/// `repro flowers3`: the 3 most frequent classes, a stratified 70/15/15 split.
pub fn run_flowers3(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    println!("fetching Oxford 102 Flowers (verifying, extracting once)...");
    let flowers = Flowers102::fetch(&data_config(), None)?;
    let subset = flowers.most_frequent_classes(3)?;
    let split = subset.random_split([0.7, 0.15, 0.15], options.seed)?;
    let images = ImageOptions::new(options.image_size as u32);
    let part = |s: Split| -> anyhow::Result<ImageDataset> {
        Ok(subset
            .dataset(&flowers, &keep(split.get(s), options.quick), images)?
            .cached())
    };
    let splits = FlowerSplits {
        train: part(Split::Train)?,
        val: part(Split::Val)?,
        test: part(Split::Test)?,
    };
    let runs = runs(
        options,
        options.image_size,
        3,
        30,
        Regularized::WithAndWithoutBatchNorm,
    );
    run_all(
        Experiment::Flowers3,
        options,
        output,
        &splits,
        subset.names.clone(),
        runs,
    )
}

/// `repro flowers102`: all 102 classes on the official split (1020 / 1020 / 6149).
pub fn run_flowers102(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    println!("fetching Oxford 102 Flowers (verifying, extracting once)...");
    let flowers = Flowers102::fetch(&data_config(), None)?;
    let images = ImageOptions::new(options.image_size as u32);
    let part = |s: Split| -> anyhow::Result<ImageDataset> {
        Ok(flowers
            .dataset(&keep(flowers.split(s), options.quick), images)?
            .cached())
    };
    let splits = FlowerSplits {
        train: part(Split::Train)?,
        val: part(Split::Val)?,
        test: part(Split::Test)?,
    };
    let runs = runs(
        options,
        options.image_size,
        102,
        30,
        Regularized::WithoutBatchNorm,
    );
    let classes = petal_data::flowers::CLASS_NAMES.to_vec();
    run_all(
        Experiment::Flowers102,
        options,
        output,
        &splits,
        classes,
        runs,
    )
}
