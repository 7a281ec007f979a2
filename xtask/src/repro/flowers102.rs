//! `repro flowers102` (CNN_from_scratch_flowers_102): all 102 Oxford flowers from
//! scratch on the official split, (a) the lecture's network without regularization,
//! (b) batch norm, global average pooling, dropout, strong augmentation, label
//! smoothing and cosine decay.

use std::path::Path;
use std::sync::Arc;

use petal_data::augment::{
    AffineConfig, Augmentation, FillMode, Pipeline, RandomAffine, RandomBrightness, RandomContrast,
    RandomResizedCrop,
};
use petal_data::flowers::Flowers102;
use petal_data::{ImageDataset, ImageOptions, Split};
use petal_zoo::BipyramidalConfig;

use super::flowers::{keep, network, plain_run, run_all, scaled, FlowerSplits};
use super::training::RunSpec;
use super::{Experiment, ReproOptions};
use crate::paths::data_config;

/// Random crops of 30-100% of the photo (resized back), then the flips, rotations,
/// zooms and shifts of [`flower_augmentation`], brightness and contrast: 1,020 photos
/// of 102 classes need more variety than the 3 classes' 900.
fn strong_flower_augmentation() -> anyhow::Result<Arc<dyn Augmentation>> {
    Ok(Arc::new(Pipeline(vec![
        Box::new(RandomResizedCrop::new((0.3, 1.0), (3.0 / 4.0, 4.0 / 3.0))?),
        Box::new(RandomAffine::new(AffineConfig {
            horizontal_flip: true,
            rotation: (-0.1, 0.1),
            fill: FillMode::Reflect,
            ..AffineConfig::default()
        })?),
        Box::new(RandomBrightness::new(0.1)?),
        Box::new(RandomContrast::new(0.2)?),
    ])))
}

/// flowers102's runs: (a), then (b) regularized the way a small dataset of many
/// classes needs: batch norm, global average pooling into a dropout + linear head (a
/// 102-way dense layer on flattened maps alone would hold 1.7M weights for 1,020
/// photos), strong augmentation, label smoothing and a cosine-decayed learning rate.
/// `--epochs` sets (a)'s 30 epochs; (b) gets 3 times as many (the whole repro stays
/// under an hour).
pub(super) fn runs(options: &ReproOptions) -> Vec<RunSpec> {
    let epochs = options.epochs.unwrap_or(30);
    let regularized = BipyramidalConfig {
        blocks: 5,
        batch_norm: true,
        global_pooling: true,
        dense: vec![],
        head_dropout: Some(0.5),
        ..network(options.image_size, 102)
    };
    vec![
        plain_run(options, 102, epochs),
        RunSpec {
            batch_size: 32,
            augmentation: Some(
                strong_flower_augmentation().expect("a valid constant configuration"),
            ),
            label_smoothing: 0.1,
            cosine_decay: true,
            ..RunSpec::new(
                "(b) augmentation + batch norm + dropout, GAP head",
                regularized,
                scaled(options, epochs, 3),
                options.seed,
            )
        },
    ]
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
    let runs = runs(options);
    let classes = petal_data::flowers::CLASS_NAMES.to_vec();
    run_all(
        Experiment::Flowers102,
        options,
        output,
        &splits,
        classes,
        runs,
        // One seed: the two runs already take about an hour.
        1,
    )
}
