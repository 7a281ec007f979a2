//! What the from-scratch flower recipes (`flowers3.rs`, `flowers102.rs`) share: the
//! lecture's network, the augmentation, the splits, training every run and writing the
//! report with its figures.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use petal_data::augment::{sample_rng, AffineConfig, Augmentation, FillMode, RandomAffine};
use petal_data::{Dataset, ImageDataset};
use petal_tensor::{Padding, Tensor};
use petal_train::History;
use petal_viz::{tensor_image, Scaling, Tile};
use petal_zoo::BipyramidalConfig;
use serde::Serialize;

use super::figures::{sample, short, ConfusedPair, Figures, RecordedConfusion};
use petal_nn::layers::LayerKind;

use super::inspect::{self, layers_of_kind, Explained};
use super::training::{print_table, train_run, train_seeds, RunResult, RunSpec};
use super::{write_metrics, Experiment, ReproOptions, RunInfo};
use petal_train::Validation;

/// Images per split kept by `--quick`.
const QUICK_IMAGES: usize = 24;

/// The lecture's flowers network: four conv/pool blocks (32, 64, 128, 256 filters),
/// 'same' 3x3 convolutions, a 128-unit dense layer.
pub(super) fn network(size: usize, classes: usize) -> BipyramidalConfig {
    BipyramidalConfig {
        input_shape: [size, size, 3],
        blocks: 4,
        base_filters: 32,
        convs_per_block: 1,
        kernel: 3,
        padding: Padding::Same,
        batch_norm: false,
        block_dropout: None,
        global_pooling: false,
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
pub(super) struct FlowerSplits {
    pub(super) train: ImageDataset,
    pub(super) val: ImageDataset,
    pub(super) test: ImageDataset,
}

/// The unregularized run (a): the lecture's network, batch 32, `epochs` epochs.
pub(super) fn plain_run(options: &ReproOptions, classes: usize, epochs: usize) -> RunSpec {
    RunSpec {
        batch_size: 32,
        ..RunSpec::new(
            "(a) no regularization",
            network(options.image_size, classes),
            options.epochs_or(epochs),
            options.seed,
        )
    }
}

/// `factor` times `epochs`, or 1 with `--quick`.
pub(super) fn scaled(options: &ReproOptions, epochs: usize, factor: usize) -> usize {
    if options.quick {
        1
    } else {
        factor * epochs
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
    /// The test confusion matrix of the run the figures inspect.
    confusion: RecordedConfusion,
    /// Its most confused class pairs, when the matrix is too large to draw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    confused_pairs: Vec<ConfusedPair>,
}

/// Trains every run `seeds` times (rows report the mean and spread over the seeds, the
/// curves and figures are the first seed's), draws the figures and writes the report.
pub(super) fn run_all(
    experiment: Experiment,
    options: &ReproOptions,
    output: &Path,
    splits: &FlowerSplits,
    classes: Vec<&str>,
    specs: Vec<RunSpec>,
    seeds: usize,
) -> anyhow::Result<()> {
    let split_sizes = [
        splits.train.paths().len(),
        splits.val.paths().len(),
        splits.test.paths().len(),
    ];
    println!("train / val / test photos: {split_sizes:?}");
    let checkpoints = options.checkpoints(experiment);
    let mut results = Vec::new();
    for run in &specs {
        results.push(train_seeds(seeds, run, |run| {
            train_run(
                &splits.train,
                Validation::Data(&splits.val),
                &splits.test,
                run,
                &checkpoints,
            )
        })?);
    }
    print_table(&results);
    let mut figures = Figures::new(output);
    let started = Instant::now();
    let runs: Vec<(&str, &History)> = results.iter().map(|r| (r.name, &r.history)).collect();
    figures.curves(&experiment.curves_title(None), &runs)?;
    // The first CNN against the MLPs (networks without conv blocks), if any.
    let mlps: Vec<(&str, &History)> = specs
        .iter()
        .zip(&runs)
        .filter(|(spec, _)| !is_cnn(spec))
        .map(|(_, run)| *run)
        .collect();
    if let (Some(cnn), false) = (runs.first(), mlps.is_empty()) {
        let compared: Vec<(&str, &History)> = std::iter::once(*cnn).chain(mlps).collect();
        figures.per_epoch_and_second(
            "mlp_vs_cnn.png",
            "The CNN (a) and the MLP: training (solid) and validation (dashed) accuracy per epoch and per second of training (first seed)",
            &format!("{}: CNN vs MLP", experiment.slug()),
            &compared,
        )?;
    }
    let best = best_cnn(&specs, &results)?;
    let (confusion, confused_pairs) = figures.test_confusion(
        best.name,
        &splits.test,
        &classes,
        &best.test_labels,
        &best.test_predicted,
    )?;
    match experiment {
        Experiment::Flowers3 => inspect_best(&mut figures, splits, &classes, best, options.seed)?,
        _ => sample_grid(&mut figures, &splits.train, &classes)?,
    }
    println!(
        "{} figures written in {:.1} s",
        figures.list().len(),
        started.elapsed().as_secs_f64()
    );
    let info = RunInfo::new(experiment, options)?;
    write_metrics(
        output,
        &Report {
            info,
            image_size: options.image_size,
            classes,
            split_sizes,
            runs: &results,
            confusion,
            confused_pairs,
        },
        &figures,
    )
}

/// Whether `spec` trains a convolutional network (an MLP has no conv blocks).
fn is_cnn(spec: &RunSpec) -> bool {
    spec.network.blocks > 0
}

/// The convolutional run (of `specs`, trained into `results`) with the best validation
/// accuracy that kept its model (the MLP has no filters or feature maps to show).
fn best_cnn<'a>(specs: &[RunSpec], results: &'a [RunResult]) -> anyhow::Result<&'a RunResult> {
    specs
        .iter()
        .zip(results)
        .filter(|(spec, r)| is_cnn(spec) && r.model.is_some())
        .map(|(_, r)| r)
        .max_by(|a, b| a.val_accuracy.total_cmp(&b.val_accuracy))
        .ok_or_else(|| anyhow::anyhow!("no convolutional run kept its model"))
}

/// The best run's mistakes, first layer filters, feature maps and saliency of test
/// photos; and an augmentation preview.
fn inspect_best(
    figures: &mut Figures,
    splits: &FlowerSplits,
    classes: &[&str],
    best: &RunResult,
    seed: u64,
) -> anyhow::Result<()> {
    let model = best.model.as_ref().expect("best_cnn keeps a model");
    println!("figures of the best run on validation: {}", best.name);
    let test = &splits.test;
    figures.misclassified(test, classes, &best.test_labels, &best.test_predicted, 16)?;
    let convs = layers_of_kind(model, &[LayerKind::Conv2d]);
    inspect::filters(figures, model, &convs[..1])?;
    // The first test photo of each class.
    let firsts: Vec<usize> = (0..classes.len())
        .filter_map(|c| test.labels().iter().position(|&l| l == c))
        .collect();
    let Some(&first) = firsts.first() else {
        anyhow::bail!("no test photos to show the network's feature maps on");
    };
    let (photo, label) = sample(test, first)?;
    inspect::feature_maps(
        figures,
        model,
        &photo,
        &format!("a test photo of {}", classes[label]),
        &convs,
    )?;
    let explained = firsts
        .iter()
        .map(|&i| {
            let (image, label) = sample(test, i)?;
            Ok(Explained {
                image,
                caption: format!("true: {}", short(classes[label])),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let last_conv = convs.last().expect("the CNN has conv layers");
    inspect::saliency(
        figures,
        "saliency.png",
        model,
        &explained,
        classes,
        last_conv,
        true,
    )?;
    augmentation_preview(figures, &splits.train, seed)
}

/// Four training photos, each followed by five random augmentations of it.
fn augmentation_preview(
    figures: &mut Figures,
    train: &ImageDataset,
    seed: u64,
) -> anyhow::Result<()> {
    let augmentation = flower_augmentation()?;
    let mut tiles = Vec::new();
    for index in 0..train.len().min(4) {
        let (photo, _) = sample(train, index)?;
        tiles.push(Tile::new(
            tensor_image(&photo, Scaling::Range(0.0, 1.0))?,
            "original",
        ));
        for epoch in 0..5 {
            let mut values = photo.to_vec();
            augmentation.apply(
                &mut values,
                photo.shape(),
                &mut sample_rng(seed, epoch, index),
            )?;
            let augmented = Tensor::from_vec(photo.shape(), values)?;
            tiles.push(Tile::new(
                tensor_image(&augmented, Scaling::Range(0.0, 1.0))?,
                format!("epoch {}", epoch + 1),
            ));
        }
    }
    figures.tile_grid(
        "augmentation.png",
        "Training photos and five random augmentations of each (flip, rotation, zoom, shift; reflected borders)",
        &tiles,
        6,
        96,
    )
}

/// Sixteen training photos with their class names.
fn sample_grid(
    figures: &mut Figures,
    train: &ImageDataset,
    classes: &[&str],
) -> anyhow::Result<()> {
    let step = (train.len() / 16).max(1);
    let tiles = (0..train.len())
        .step_by(step)
        .take(16)
        .map(|i| {
            let (photo, label) = sample(train, i)?;
            Ok(Tile::new(
                tensor_image(&photo, Scaling::Range(0.0, 1.0))?,
                short(classes[label]),
            ))
        })
        .collect::<anyhow::Result<Vec<Tile>>>()?;
    figures.tile_grid(
        "samples.png",
        "Training photos with their class names",
        &tiles,
        8,
        96,
    )
}

pub(super) fn keep(indices: &[usize], quick: bool) -> Vec<usize> {
    indices
        .iter()
        .copied()
        .take(if quick { QUICK_IMAGES } else { usize::MAX })
        .collect()
}
