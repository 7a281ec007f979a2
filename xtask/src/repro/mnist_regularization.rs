//! `repro mnist-regularization`: the regularization notebook. The MNIST CNN as a
//! baseline, then each technique on its own (the augmentation variants of the lecture
//! included: Cutout, MixUp, CutMix), and an ensemble of three baselines. Each row is
//! trained with three seeds and reports their mean and spread.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use petal_data::augment::{
    AffineConfig, Augmentation, CutMix, Cutout, FillMode, MixUp, RandomAffine,
};
use petal_train::ensemble::ensemble_evaluate;
use petal_train::History;
use petal_zoo::BipyramidalConfig;
use serde::Serialize;

use super::figures::Figures;
use super::mnist::MnistSplits;
use super::training::{print_table, train_seeds, weights_checksum, RunResult, RunSpec};
use super::{write_metrics, Experiment, ReproOptions, RunInfo};

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    info: RunInfo,
    runs: &'a [RunResult],
}

/// The rows of the comparison, each the baseline with one technique.
pub(super) fn runs(options: &ReproOptions) -> anyhow::Result<Vec<RunSpec>> {
    // Ten epochs: every row's validation accuracy has flattened by then (CutMix's
    // validation loss still falls slowly).
    let epochs = options.epochs_or(10);
    let base = BipyramidalConfig::mnist();
    let baseline = |name, network| RunSpec::new(name, network, epochs, options.seed);
    // Small random rotations (up to ~11 degrees), shifts and zooms (up to 10%), black fill.
    let affine = AffineConfig {
        rotation: (-0.03, 0.03),
        zoom_height: (-0.1, 0.1),
        translate_height: (-0.1, 0.1),
        translate_width: (-0.1, 0.1),
        fill: FillMode::Constant(0.0),
        ..AffineConfig::default()
    };
    let augmentation: Arc<dyn Augmentation> = Arc::new(RandomAffine::new(affine)?);
    Ok(vec![
        baseline("baseline", base.clone()),
        baseline(
            "+ dropout (0.25 / 0.5)",
            BipyramidalConfig {
                block_dropout: Some(0.25),
                head_dropout: Some(0.5),
                ..base.clone()
            },
        ),
        baseline(
            "+ L2 (1e-4)",
            BipyramidalConfig {
                l2: Some(1e-4),
                ..base.clone()
            },
        ),
        baseline(
            "+ batch norm",
            BipyramidalConfig {
                batch_norm: true,
                ..base.clone()
            },
        ),
        RunSpec {
            augmentation: Some(augmentation),
            ..baseline("+ augmentation (rotate/shift/zoom)", base.clone())
        },
        RunSpec {
            augmentation: Some(Arc::new(Cutout::new(14)?)),
            ..baseline("+ Cutout (14 x 14)", base.clone())
        },
        RunSpec {
            batch_mix: Some(Arc::new(MixUp::new(0.2)?)),
            ..baseline("+ MixUp (alpha 0.2)", base.clone())
        },
        RunSpec {
            batch_mix: Some(Arc::new(CutMix::new(1.0)?)),
            ..baseline("+ CutMix (alpha 1)", base.clone())
        },
        RunSpec {
            label_smoothing: 0.1,
            ..baseline("+ label smoothing (0.1)", base.clone())
        },
        RunSpec {
            early_stopping: Some(2),
            epochs: if options.quick { 1 } else { epochs * 3 },
            ..baseline("+ early stopping (patience 2)", base.clone())
        },
    ])
}

pub fn run(options: &ReproOptions, output: &Path) -> anyhow::Result<()> {
    let data = MnistSplits::load(options.quick)?;
    let runs = runs(options)?;
    let baseline = &runs[0];
    let checkpoints = options.checkpoints(Experiment::MnistRegularization);
    // Three seeds per row, so that a difference can be set against the seed spread.
    let seeds = options.seeds_or(3);
    let mut results = Vec::new();
    for run in &runs {
        results.push(train_seeds(seeds, run, |r| {
            data.train_run(r, &checkpoints)
        })?);
    }

    // An ensemble of three baselines that differ only in their seed.
    let started = Instant::now();
    let mut members = Vec::new();
    for k in 0..3 {
        let name = [
            "ensemble member 1",
            "ensemble member 2",
            "ensemble member 3",
        ][k];
        let run = RunSpec {
            name,
            seed: options.seed + 1 + k as u64,
            ..baseline.clone()
        };
        members.push(data.train_run(&run, &checkpoints)?);
    }
    let models: Vec<_> = members.iter().filter_map(|m| m.model.as_ref()).collect();
    let ensemble = ensemble_evaluate(&models, data.test(), 500)?;
    let checksums: Vec<String> = models.iter().map(|m| weights_checksum(m)).collect();
    let mean = |f: fn(&RunResult) -> f64| members.iter().map(f).sum::<f64>() / members.len() as f64;
    results.push(RunResult {
        name: "ensemble of 3 baselines",
        epochs: members.iter().map(|m| m.epochs).sum(),
        seconds: started.elapsed().as_secs_f64(),
        images_per_second: mean(|m| m.images_per_second),
        train_accuracy: mean(|m| m.train_accuracy),
        val_accuracy: mean(|m| m.val_accuracy),
        test_accuracy: ensemble.accuracy,
        test_loss: ensemble.loss,
        test_accuracy_std: None,
        seed_test_accuracies: Vec::new(),
        weights_sha256: checksums.join(","),
        history: Default::default(),
        model: None,
        test_labels: ensemble.labels,
        test_predicted: ensemble.predicted,
    });
    print_table(&results);
    let mut figures = Figures::new(output);
    let runs: Vec<(&str, &History)> = results.iter().map(|r| (r.name, &r.history)).collect();
    figures.curves(&Experiment::MnistRegularization.curves_title(None), &runs)?;
    write_metrics(
        output,
        &Report {
            info: RunInfo::new(Experiment::MnistRegularization, options)?,
            runs: &results,
        },
        &figures,
    )
}
