//! The training loop end to end on small generated problems, and each callback.

mod common;

use common::{model, quadrants};

use petal_data::InMemoryDataset;
use petal_nn::layers::{DenseConfig, FlattenConfig};
use petal_nn::{Loss, Model, Sequential};
use petal_optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use petal_tensor::Tensor;
use petal_train::callbacks::{
    Callback, Control, CsvLogger, EarlyStopping, ModelCheckpoint, Monitor, ReduceLrOnPlateau,
};
use petal_train::ensemble::{ensemble_evaluate, ensemble_probabilities, evaluate_with_flips};
use petal_train::{evaluate, FitConfig, History, Trainer};

fn fit<'a>(
    model: &'a mut Model,
    optimizer: &'a mut dyn Optimizer,
    data: &InMemoryDataset,
    config: &FitConfig,
    callbacks: Vec<&'a mut dyn Callback>,
) -> History {
    let mut trainer = Trainer {
        model,
        optimizer,
        loss: Loss::SparseCategoricalCrossentropy,
        schedule: None,
        callbacks,
    };
    trainer.fit(data, None, config).unwrap()
}

fn quiet(epochs: usize) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 16,
        verbose: false,
        ..FitConfig::default()
    }
}

fn weights(model: &Model) -> Vec<f32> {
    model
        .store()
        .iter()
        .flat_map(|(_, p)| p.value.to_vec())
        .collect()
}

#[test]
fn prefetching_batches_trains_the_same_weights() {
    let data = quadrants(200, 4);
    let train = |prefetch: usize| {
        let mut m = model(3, 0.2);
        let mut adam = Adam::new(AdamConfig::new(0.01));
        let config = FitConfig {
            prefetch,
            shuffle_seed: Some(9),
            ..quiet(3)
        };
        let history = fit(&mut m, &mut adam, &data, &config, vec![]);
        (weights(&m), history.metric("loss"))
    };
    let loaded_on_demand = train(0);
    assert_eq!(train(1), loaded_on_demand);
    assert_eq!(train(4), loaded_on_demand);
}

#[test]
fn fit_learns_and_reports_validation_figures() {
    let (train, test) = (quadrants(512, 1), quadrants(256, 2));
    let mut m = model(0, 0.1);
    let mut adam = Adam::new(AdamConfig::new(0.01));
    let config = FitConfig {
        validation_split: 0.25,
        ..quiet(20)
    };
    let history = fit(&mut m, &mut adam, &train, &config, vec![]);
    let loss = history.metric("loss");
    assert_eq!(loss.len(), 20);
    assert!(loss[19] < loss[0] / 2.0, "loss {loss:?}");
    assert!(
        history.last("val_accuracy").unwrap() > 0.9,
        "{:?}",
        history.epochs.last()
    );
    let eval = evaluate(&m, Loss::SparseCategoricalCrossentropy, &test, 64).unwrap();
    assert!(eval.accuracy > 0.9, "test accuracy {}", eval.accuracy);
    let confusion = eval.confusion_matrix(4);
    assert_eq!(confusion.counts.iter().flatten().sum::<usize>(), 256);
    assert_eq!(eval.top5_accuracy, 1.0);
}

#[test]
fn the_same_seed_gives_bit_identical_weights() {
    let data = quadrants(200, 3);
    let run = |seed: u64| {
        let mut m = model(7, 0.3);
        let mut adam = Adam::new(AdamConfig::new(0.01));
        let config = FitConfig {
            shuffle_seed: Some(seed),
            seed,
            ..quiet(3)
        };
        fit(&mut m, &mut adam, &data, &config, vec![]);
        weights(&m)
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn early_stopping_stops_and_restores_the_best_weights_even_without_stopping() {
    let data = quadrants(64, 4);
    // A learning rate of 0 never improves anything after the first epoch.
    let mut m = model(1, 0.0);
    let mut frozen = Sgd::new(SgdConfig::new(0.0));
    let mut stop = EarlyStopping::new(Monitor::new("loss"), 2, false);
    let history = fit(&mut m, &mut frozen, &data, &quiet(10), vec![&mut stop]);
    assert_eq!(history.epochs.len(), 3);
    assert!(history
        .stop_reason
        .as_deref()
        .unwrap()
        .contains("early stopping"));

    // Restoring: best epoch's weights come back at the end of a run that never stops.
    let mut m = model(1, 0.0);
    let mut stop = EarlyStopping::new(Monitor::new("val_loss"), 100, true);
    let mut sgd = Sgd::new(SgdConfig::new(0.5));
    let mut history = History::default();
    history.epochs.push([("val_loss".to_string(), 1.0)].into());
    assert_eq!(
        stop.on_epoch_end(0, &history, &mut m, &mut sgd).unwrap(),
        Control::Continue
    );
    let best = weights(&m);
    fit(&mut m, &mut sgd, &data, &quiet(1), vec![]);
    assert_ne!(weights(&m), best);
    history.epochs.push([("val_loss".to_string(), 2.0)].into());
    stop.on_epoch_end(1, &history, &mut m, &mut sgd).unwrap();
    stop.on_train_end(&history, &mut m).unwrap();
    assert_eq!(weights(&m), best);
    assert_eq!(stop.best_epoch(), Some(0));
}

#[test]
fn checkpoints_save_only_improvements_under_templated_names() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir
        .path()
        .join("w-{epoch:02}-{val_accuracy:.2}.safetensors");
    let mut checkpoint = ModelCheckpoint::new(
        template.to_string_lossy(),
        Monitor::new("val_accuracy"),
        true,
    );
    let mut m = model(0, 0.0);
    let mut sgd = Sgd::new(SgdConfig::new(0.1));
    let mut history = History::default();
    for (epoch, acc) in [0.5, 0.4, 0.7].into_iter().enumerate() {
        history
            .epochs
            .push([("val_accuracy".to_string(), acc)].into());
        checkpoint
            .on_epoch_end(epoch, &history, &mut m, &mut sgd)
            .unwrap();
    }
    let names: Vec<String> = checkpoint
        .saved()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["w-01-0.50.safetensors", "w-03-0.70.safetensors"]);
    assert!(checkpoint.saved().iter().all(|p| p.exists()));
}

#[test]
fn reduce_lr_on_plateau_lowers_the_rate_after_patience() {
    let mut reduce = ReduceLrOnPlateau::new(Monitor::new("val_loss"), 0.5, 2, 0, 0.01);
    let mut m = model(0, 0.0);
    let mut sgd = Sgd::new(SgdConfig::new(0.1));
    let mut history = History::default();
    let mut rates = Vec::new();
    for (epoch, loss) in [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
        .into_iter()
        .enumerate()
    {
        history.epochs.push([("val_loss".to_string(), loss)].into());
        reduce
            .on_epoch_end(epoch, &history, &mut m, &mut sgd)
            .unwrap();
        rates.push(sgd.learning_rate());
    }
    assert_eq!(
        rates,
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.01]
    );
}

#[test]
fn csv_logger_writes_a_header_and_one_row_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.csv");
    let mut logger = CsvLogger::new(&path);
    let mut m = model(0, 0.0);
    let mut adam = Adam::new(AdamConfig::new(0.01));
    fit(
        &mut m,
        &mut adam,
        &quadrants(32, 1),
        &quiet(3),
        vec![&mut logger],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("accuracy,data_wait_share,epoch,images_per_second,loss,lr"),
        "{}",
        lines[0]
    );
    assert!(lines[3].split(',').nth(2) == Some("3"), "{}", lines[3]);
}

#[test]
fn an_ensemble_averages_probabilities() {
    let data = quadrants(40, 9);
    let (a, b) = (model(1, 0.0), model(2, 0.0));
    let (pa, _) = ensemble_probabilities(&[&a], &data, 16).unwrap();
    let (pb, _) = ensemble_probabilities(&[&b], &data, 16).unwrap();
    let (both, labels) = ensemble_probabilities(&[&a, &b], &data, 16).unwrap();
    for ((x, y), m) in pa.as_slice().iter().zip(pb.as_slice()).zip(both.as_slice()) {
        assert!(((x + y) / 2.0 - m).abs() < 1e-6);
    }
    assert_eq!(labels.len(), 40);
    let eval = ensemble_evaluate(&[&a, &b], &data, 16).unwrap();
    assert!(eval.loss.is_finite() && (0.0..=1.0).contains(&eval.accuracy));
}

#[test]
fn flip_averaging_averages_each_image_and_its_mirror() {
    // The quadrant points as 1x2 one-channel images: the mirror image swaps x and y.
    let points = quadrants(40, 5);
    let as_images = |mirrored: bool| {
        let mut values = points.images().as_slice().to_vec();
        if mirrored {
            values.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
        }
        let images = Tensor::from_vec(&[40, 1, 2, 1], values).unwrap();
        InMemoryDataset::new(images, points.labels().to_vec(), 4).unwrap()
    };
    let (plain, mirrored) = (as_images(false), as_images(true));
    let m = Sequential::new(&[1, 2, 1], 3)
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap();
    let (p, labels) = ensemble_probabilities(&[&m], &plain, 16).unwrap();
    let (q, _) = ensemble_probabilities(&[&m], &mirrored, 16).unwrap();
    let mean: Vec<f32> = p
        .as_slice()
        .iter()
        .zip(q.as_slice())
        .map(|(a, b)| (a + b) / 2.0)
        .collect();
    let nll = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| -f64::from(mean[i * 4 + l]).ln())
        .sum::<f64>()
        / 40.0;
    let (as_is, eval) = evaluate_with_flips(&m, &plain, 16).unwrap();
    let expected = ensemble_evaluate(&[&m], &plain, 16).unwrap();
    assert_eq!(
        (as_is.loss, &as_is.predicted),
        (expected.loss, &expected.predicted)
    );
    assert!((eval.loss - nll).abs() < 1e-6, "{} vs {nll}", eval.loss);
    let argmax = |row: &[f32]| (0..4).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
    let predicted: Vec<usize> = mean.chunks_exact(4).map(argmax).collect();
    assert_eq!(eval.predicted, predicted);
    assert_ne!(
        p.as_slice(),
        q.as_slice(),
        "the mirror must change what the model sees"
    );
}

#[test]
fn bad_fit_arguments_are_errors() {
    let data = quadrants(8, 1);
    let mut m = model(0, 0.0);
    let mut adam = Adam::new(AdamConfig::new(0.01));
    let mut trainer = Trainer {
        model: &mut m,
        optimizer: &mut adam,
        loss: Loss::SparseCategoricalCrossentropy,
        schedule: None,
        callbacks: vec![],
    };
    assert!(trainer
        .fit(
            &data,
            None,
            &FitConfig {
                batch_size: 0,
                ..quiet(1)
            }
        )
        .is_err());
    assert!(trainer
        .fit(
            &data,
            None,
            &FitConfig {
                validation_split: 1.0,
                ..quiet(1)
            }
        )
        .is_err());
}
