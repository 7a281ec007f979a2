//! `repro flowers3` (CNN_from_scratch_flowers_3): the 3 most frequent Oxford flowers
//! from scratch, (a) without regularization, (b) with augmentation, dropout and early
//! stopping, (c) (b) with batch norm; and a plain MLP beside them (the lecture: the CNN
//! learns slowly compared to an MLP). Every row is trained with three seeds.

use std::path::Path;

use petal_data::flowers::Flowers102;
use petal_data::{ImageDataset, ImageOptions, Split};
use petal_zoo::BipyramidalConfig;

use super::flowers::{
    flower_augmentation, keep, network, plain_run, run_all, scaled, FlowerSplits,
};
use super::training::RunSpec;
use super::{Experiment, ReproOptions};
use crate::paths::data_config;

/// The seeds each row is trained with (one with `--quick`).
const SEEDS: usize = 3;

/// flowers3's runs: (a), then (b) augmentation + dropout + early stopping and (c) the
/// same with batch norm, and the MLP. `--epochs` sets (a)'s and the MLP's 20 epochs; (b)
/// and (c) may take twice as many, stopped early after half as many without improvement
/// (20 epochs reach 100% validation accuracy without regularization).
pub(super) fn runs(options: &ReproOptions) -> Vec<RunSpec> {
    let epochs = options.epochs.unwrap_or(20);
    let regularized = BipyramidalConfig {
        block_dropout: Some(0.1),
        head_dropout: Some(0.5),
        ..network(options.image_size, 3)
    };
    let with = |name, network| RunSpec {
        batch_size: 32,
        augmentation: Some(flower_augmentation().expect("a valid constant configuration")),
        early_stopping: Some(if options.quick { 1 } else { epochs / 2 }),
        ..RunSpec::new(name, network, scaled(options, epochs, 2), options.seed)
    };
    vec![
        plain_run(options, 3, epochs),
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
        mlp_run(options, epochs),
    ]
}

/// The MLP of the comparison: the flattened photo, one hidden layer of 256 ReLU units,
/// the 3 classes; no convolution. Trained like (a): batch 32, `epochs` epochs.
fn mlp_run(options: &ReproOptions, epochs: usize) -> RunSpec {
    RunSpec {
        batch_size: 32,
        ..RunSpec::new(
            "MLP: flatten + dense 256",
            BipyramidalConfig {
                blocks: 0,
                dense: vec![256],
                ..network(options.image_size, 3)
            },
            options.epochs_or(epochs),
            options.seed,
        )
    }
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
    let runs = runs(options);
    run_all(
        Experiment::Flowers3,
        options,
        output,
        &splits,
        subset.names.clone(),
        runs,
        options.seeds_or(SEEDS),
    )
}
