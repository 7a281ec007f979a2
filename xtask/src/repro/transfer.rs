//! `repro flowers3-transfer` and `repro flowers102-transfer`
//! (CNN_transfer_learning_flowers_3 / _102): an ImageNet-pretrained EfficientNet-Lite0
//! adapted to the flowers by
//! (a) static feature extraction + a small dense classifier, (b) a frozen base with a new
//! head trained with augmentation and dropout, (c) fine-tuning the top blocks with a 10x
//! smaller learning rate, (d) that fine-tuning on train + val for the epochs (c) chose.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use petal_data::augment::{AffineConfig, Augmentation, FillMode, RandomAffine};
use petal_data::flowers::Flowers102;
use petal_data::{Concatenated, Dataset, ImageDataset, Split};
use petal_nn::{Loss, Model, Summary};
use petal_optim::{Adam, AdamConfig};
use petal_train::callbacks::{EarlyStopping, Monitor};
use petal_train::ensemble::evaluate_with_flips;
use petal_train::{evaluate, FitConfig, History, Trainer, Validation};
use petal_zoo::pretrained::PretrainedWeights;
use petal_zoo::transfer::{unfreeze_top, FeatureExtractor, Head};
use petal_zoo::{Options, Pooling};
use serde::Serialize;

use super::figures::{ConfusedPair, Figures, RecordedConfusion};
use super::{write_metrics, Checkpoints, Experiment, ReproOptions, RunInfo};
use crate::paths::{data_config, weights_folder};

/// The three ways of transferring, as named in the report (and their checkpoints).
const STATIC: &str = "(a) static features + dense classifier";
const FROZEN: &str = "(b) frozen base + head from (a), augmentation";
const RETRAINED: &str = "(d) (c) on train + val, (c)'s best epochs";

/// The flowers' train / val / test photos, either the 3 most frequent classes (a
/// stratified 70/15/15 split) or all 102 on the official split, prepared as `entry`'s
/// weights expect (train and val kept in memory), and the class names.
fn flower_splits(
    all_classes: bool,
    options: &ReproOptions,
    entry: &PretrainedWeights,
) -> anyhow::Result<([ImageDataset; 3], Vec<&'static str>)> {
    let flowers = Flowers102::fetch(&data_config(), None)?;
    let images = entry.preprocessing.image_options();
    let keep = |v: &[usize]| -> Vec<usize> {
        let n = if options.quick { 16 } else { v.len() };
        v.iter().copied().take(n).collect()
    };
    if all_classes {
        let part = |s| flowers.dataset(&keep(flowers.split(s)), images);
        let splits = [
            part(Split::Train)?.cached(),
            part(Split::Val)?.cached(),
            part(Split::Test)?,
        ];
        return Ok((splits, petal_data::flowers::CLASS_NAMES.to_vec()));
    }
    let subset = flowers.most_frequent_classes(3)?;
    let split = subset.random_split([0.7, 0.15, 0.15], options.seed)?;
    let part = |s| subset.dataset(&flowers, &keep(split.get(s)), images);
    let splits = [
        part(Split::Train)?.cached(),
        part(Split::Val)?.cached(),
        part(Split::Test)?,
    ];
    Ok((splits, subset.names.clone()))
}

/// The pretrained base without its classifier, global-average pooled to a feature
/// vector (1280 features for EfficientNet-Lite0).
fn base_options() -> Options {
    Options {
        include_top: false,
        pooling: Pooling::Avg,
        ..Options::default()
    }
}

/// The base with its pretrained weights.
fn base(entry: &PretrainedWeights) -> anyhow::Result<Model> {
    Ok(weights_folder().load(entry, &base_options())?)
}

/// The name of row (c), which fine-tunes from `entry`'s top stages.
fn tuned_name(entry: &PretrainedWeights) -> String {
    format!(
        "(c) fine-tune {}.. with lr 1e-4",
        entry.arch.fine_tune_from()
    )
}

/// The summaries of the rows' networks for `classes` flowers: (a) the head on the
/// base's features, (b) the head on the frozen base, (c) and (d) with its top stages
/// unfrozen.
pub(super) fn networks(
    entry: &PretrainedWeights,
    classes: usize,
    options: &ReproOptions,
) -> anyhow::Result<Vec<(String, Summary)>> {
    let base = entry.arch.build(&base_options())?;
    let head = Head::new(classes);
    let on_features = head.on_features(base.output_shape(), options.seed)?;
    let mut model = head.on_base(base, None)?;
    let frozen = model.summary();
    unfreeze_top(&mut model, entry.arch.fine_tune_from())?;
    let tuned = model.summary();
    Ok(vec![
        (STATIC.to_string(), on_features.summary()),
        (FROZEN.to_string(), frozen),
        (tuned_name(entry), tuned.clone()),
        (RETRAINED.to_string(), tuned),
    ])
}

/// A row of the transfer table.
#[derive(Serialize)]
struct Row {
    name: String,
    epochs: usize,
    seconds: f64,
    val_accuracy: f64,
    test_accuracy: f64,
    test_top5_accuracy: f64,
    /// Test accuracy of each photo's probabilities averaged with its mirror image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    test_accuracy_flip_averaged: Option<f64>,
    history: History,
    #[serde(skip)]
    test_labels: Vec<usize>,
    #[serde(skip)]
    test_predicted: Vec<usize>,
}

/// Trains with Adam; with validation data, stops early on its loss (patience 3) and
/// keeps the best weights.
fn fit(
    model: &mut Model,
    learning_rate: f32,
    train: &dyn Dataset,
    val: Option<&dyn Dataset>,
    config: &FitConfig,
) -> anyhow::Result<History> {
    let mut trainer = Trainer::new(model, Adam::new(AdamConfig::new(learning_rate)))
        .loss(Loss::SparseCategoricalCrossentropy);
    let validation = match val {
        Some(data) => {
            trainer = trainer.callback(EarlyStopping::new(Monitor::new("val_loss"), 3, true));
            Validation::Data(data)
        }
        None => Validation::None,
    };
    let config = FitConfig {
        distributed: super::group(),
        ..config.clone()
    };
    Ok(trainer.fit(train, validation, &config)?)
}

/// The row of a trained model: its test figures, and with `flips` also the accuracy of
/// the probabilities averaged with those of the mirrored photo.
fn row(
    name: String,
    history: History,
    model: &Model,
    test: &dyn Dataset,
    flips: bool,
) -> anyhow::Result<Row> {
    let (eval, flip_averaged) = if flips {
        let (eval, averaged) = evaluate_with_flips(model, test, 32)?;
        (eval, Some(averaged.accuracy))
    } else {
        let eval = evaluate(model, Loss::SparseCategoricalCrossentropy, test, 32)?;
        (eval, None)
    };
    println!(
        "{name}: test accuracy {:.4} (top-5 {:.4}){}",
        eval.accuracy,
        eval.top5_accuracy,
        flip_averaged.map_or(String::new(), |a| format!(
            ", averaged with the mirrored photos {a:.4}"
        ))
    );
    Ok(Row {
        name,
        epochs: history.epochs.len(),
        // Training time summed over the epochs, so that a resumed run reports all of it.
        seconds: history.metric("seconds").iter().sum(),
        val_accuracy: history.last("val_accuracy").unwrap_or(f64::NAN),
        test_accuracy: eval.accuracy,
        test_top5_accuracy: eval.top5_accuracy,
        test_accuracy_flip_averaged: flip_averaged,
        history,
        test_labels: eval.labels,
        test_predicted: eval.predicted,
    })
}

/// (a): the base runs once over every photo; a dense classifier learns on the features.
fn feature_extraction(
    entry: &PretrainedWeights,
    splits: &[ImageDataset; 3],
    options: &ReproOptions,
    checkpoints: &Checkpoints,
) -> anyhow::Result<(Row, Model)> {
    let started = Instant::now();
    let base = base(entry)?.fold_for_inference();
    let extractor =
        FeatureExtractor::new(&base).cache_in(data_config().cache_root.join("features"));
    let [train, val, test] =
        [&splits[0], &splits[1], &splits[2]].map(|photos| extractor.extract(photos, 32, None));
    let (train, val, test) = (train?, val?, test?);
    println!(
        "features of {} photos extracted in {:.0} s",
        train.len() + val.len() + test.len(),
        started.elapsed().as_secs_f64()
    );
    let mut head =
        Head::new(splits[0].num_classes()).on_features(train.sample_shape(), options.seed)?;
    let config = FitConfig {
        epochs: options.epochs_or(60),
        batch_size: 32,
        seed: options.seed,
        shuffle_seed: Some(options.seed),
        checkpoint: Some(checkpoints.for_run(STATIC)),
        ..FitConfig::default()
    };
    let history = fit(&mut head, 1e-3, &train, Some(&val), &config)?;
    let row = row(STATIC.into(), history, &head, &test, false)?;
    Ok((row, head))
}

fn augmentation() -> anyhow::Result<Arc<dyn Augmentation>> {
    Ok(Arc::new(RandomAffine::new(AffineConfig {
        horizontal_flip: true,
        rotation: (-0.05, 0.05),
        zoom_height: (-0.1, 0.1),
        fill: FillMode::Reflect,
        ..AffineConfig::default()
    })?))
}

/// (b), (c), (d): frozen base + new head with augmentation; then the top blocks unfrozen
/// and trained on with a 10x smaller learning rate; then that fine-tuning again from the
/// same start on train + val for the epochs (c) found best.
fn frozen_then_fine_tuned(
    entry: &PretrainedWeights,
    splits: &[ImageDataset; 3],
    options: &ReproOptions,
    trained_head: &Model,
    checkpoints: &Checkpoints,
) -> anyhow::Result<[Row; 3]> {
    let head = Head::new(splits[0].num_classes());
    let mut model = head.on_base(base(entry)?, Some(trained_head))?;
    let config = FitConfig {
        epochs: options.epochs_or(8),
        batch_size: 32,
        seed: options.seed,
        shuffle_seed: Some(options.seed),
        augmentation: Some(augmentation()?),
        checkpoint: Some(checkpoints.for_run(FROZEN)),
        ..FitConfig::default()
    };
    let history = fit(&mut model, 1e-3, &splits[0], Some(&splits[1]), &config)?;
    let frozen = row(FROZEN.into(), history, &model, &splits[2], false)?;

    // Unfreeze the top stages (EfficientNet-Lite0's last three, from block5a).
    let tuned_name = tuned_name(entry);
    unfreeze_top(&mut model, entry.arch.fine_tune_from())?;
    let config = FitConfig {
        epochs: options.epochs_or(8),
        checkpoint: Some(checkpoints.for_run(&tuned_name)),
        ..config
    };
    let after_frozen = model.store().clone();
    let history = fit(&mut model, 1e-4, &splits[0], Some(&splits[1]), &config)?;
    let best_epochs = history.best_epoch("val_accuracy", true).unwrap_or(1);
    let tuned = row(tuned_name, history, &model, &splits[2], false)?;

    // (d): the validation photos only chose the epochs; the same fine-tuning from the
    // same start then learns from train and val together, as the published Flowers-102
    // figures do (train + val, evaluated on test).
    for (id, param) in after_frozen.iter() {
        model.store_mut().set_value(id, param.value.clone())?;
    }
    let config = FitConfig {
        epochs: best_epochs,
        checkpoint: Some(checkpoints.for_run(RETRAINED)),
        ..config
    };
    let train_and_val = Concatenated::new(&splits[0], &splits[1])?;
    let history = fit(&mut model, 1e-4, &train_and_val, None, &config)?;
    let retrained = row(RETRAINED.into(), history, &model, &splits[2], true)?;
    Ok([frozen, tuned, retrained])
}

#[derive(Serialize)]
struct TransferReport<'a> {
    #[serde(flatten)]
    info: RunInfo,
    model: &'static str,
    split_sizes: [usize; 3],
    rows: &'a [Row],
    /// The test confusion matrix of the last row.
    confusion: RecordedConfusion,
    /// Its most confused class pairs, when the matrix is too large to draw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    confused_pairs: Vec<ConfusedPair>,
}

fn run_transfer(
    experiment: Experiment,
    all_classes: bool,
    options: &ReproOptions,
    output: &Path,
) -> anyhow::Result<()> {
    let entry = options.pretrained()?;
    let (splits, classes) = flower_splits(all_classes, options, entry)?;
    let split_sizes = [splits[0].len(), splits[1].len(), splits[2].len()];
    println!("train / val / test photos: {split_sizes:?}");
    let checkpoints = options.checkpoints(experiment);
    let (features_row, trained_head) = feature_extraction(entry, &splits, options, &checkpoints)?;
    let mut rows = vec![features_row];
    rows.extend(frozen_then_fine_tuned(
        entry,
        &splits,
        options,
        &trained_head,
        &checkpoints,
    )?);
    println!(
        "\n{:<44} {:>6} {:>9} {:>9} {:>9}",
        "run", "epochs", "time (s)", "val acc", "test acc"
    );
    for r in &rows {
        println!(
            "{:<44} {:>6} {:>9.0} {:>9.4} {:>9.4}",
            r.name, r.epochs, r.seconds, r.val_accuracy, r.test_accuracy
        );
    }
    let mut figures = Figures::new(output);
    let runs: Vec<(&str, &History)> = rows.iter().map(|r| (r.name.as_str(), &r.history)).collect();
    figures.curves(&experiment.curves_title(Some(entry.name)), &runs)?;
    let last = rows.last().expect("four rows");
    let (confusion, confused_pairs) = figures.test_confusion(
        &last.name,
        &splits[2],
        &classes,
        &last.test_labels,
        &last.test_predicted,
    )?;
    write_metrics(
        output,
        &TransferReport {
            info: RunInfo::new(experiment, options)?,
            model: entry.name,
            split_sizes,
            rows: &rows,
            confusion,
            confused_pairs,
        },
        &figures,
    )
}

/// `repro flowers3-transfer`.
pub fn run_flowers3(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    run_transfer(Experiment::Flowers3Transfer, false, options, output)
}

/// `repro flowers102-transfer`.
pub fn run_flowers102(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    run_transfer(Experiment::Flowers102Transfer, true, options, output)
}
