//! The training loop end to end on small generated problems, and each callback.

mod common;

use common::{model, quadrants};

use petal_data::InMemoryDataset;
use petal_nn::layers::{DenseConfig, FlattenConfig};
use petal_nn::{Loss, Model, Sequential};
use petal_optim::{Adam, AdamConfig, CosineDecay, Optimizer, Sgd, SgdConfig};
use petal_tensor::Tensor;
use petal_train::callbacks::{
    Callback, Control, CsvLogger, EarlyStopping, ModelCheckpoint, Monitor, ReduceLrOnPlateau,
};
use petal_train::ensemble::{ensemble_evaluate, ensemble_probabilities, evaluate_with_flips};
use petal_train::metrics::{F1Score, Metric, Precision, Recall, TopKAccuracy};
use petal_train::{evaluate, predict, FitConfig, History, Trainer, Validation};

/// Trains `model` on `data` without validation.
fn fit(
    model: &mut Model,
    optimizer: impl Optimizer,
    data: &InMemoryDataset,
    config: &FitConfig,
) -> History {
    Trainer::new(model, optimizer)
        .loss(Loss::SparseCategoricalCrossentropy)
        .fit(data, Validation::None, config)
        .unwrap()
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
        let adam = Adam::new(AdamConfig::new(0.01));
        let config = FitConfig {
            prefetch,
            shuffle_seed: Some(9),
            ..quiet(3)
        };
        let history = fit(&mut m, adam, &data, &config);
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
    let adam = Adam::new(AdamConfig::new(0.01));
    let history = Trainer::new(&mut m, adam)
        .fit(&train, Validation::Split(0.25), &quiet(20))
        .unwrap();
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
        let adam = Adam::new(AdamConfig::new(0.01));
        let config = FitConfig {
            shuffle_seed: Some(seed),
            seed,
            ..quiet(3)
        };
        fit(&mut m, adam, &data, &config);
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
    let frozen = Sgd::new(SgdConfig::new(0.0));
    let mut stop = EarlyStopping::new(Monitor::new("loss"), 2, false);
    let history = Trainer::new(&mut m, frozen)
        .callback(&mut stop)
        .fit(&data, Validation::None, &quiet(10))
        .unwrap();
    assert_eq!(history.epochs.len(), 3);
    assert_eq!(stop.stopped_epoch(), Some(2));
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
    fit(&mut m, Sgd::new(SgdConfig::new(0.5)), &data, &quiet(1));
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
    Trainer::new(&mut m, Adam::new(AdamConfig::new(0.01)))
        .callback(&mut logger)
        .fit(&quadrants(32, 1), Validation::None, &quiet(3))
        .unwrap();
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
    let mut trainer = Trainer::new(&mut m, Adam::new(AdamConfig::new(0.01)));
    assert!(trainer
        .fit(
            &data,
            Validation::None,
            &FitConfig {
                batch_size: 0,
                ..quiet(1)
            }
        )
        .is_err());
    for split in [1.0, -0.1, f32::NAN] {
        let error = trainer
            .fit(&data, Validation::Split(split), &quiet(1))
            .unwrap_err();
        assert!(error.to_string().contains("validation split"), "{error}");
    }
    // Two metrics logged under one name.
    let error = Trainer::new(&mut m, Adam::new(AdamConfig::new(0.01)))
        .metric(Precision)
        .metric(Precision)
        .fit(&data, Validation::Data(&data), &quiet(1))
        .unwrap_err();
    assert!(error.to_string().contains("val_precision"), "{error}");
}

#[test]
fn validation_comes_from_a_split_a_dataset_or_nowhere() {
    let data = quadrants(40, 2);
    let run = |validation: Validation<'_>| {
        let mut m = model(0, 0.0);
        let history = Trainer::new(&mut m, Sgd::new(SgdConfig::new(0.1)))
            .fit(&data, validation, &quiet(1))
            .unwrap();
        (history.last("val_loss"), history.last("images_per_second"))
    };
    assert_eq!(run(Validation::None).0, None);
    assert_eq!(run(Validation::Split(0.0)).0, None);
    assert!(run(Validation::Split(0.25)).0.is_some());
    let other = quadrants(10, 3);
    assert!(run(Validation::Data(&other)).0.is_some());
}

#[test]
fn metrics_are_logged_on_the_validation_data_at_each_epoch_end() {
    let (train, val) = (quadrants(128, 1), quadrants(64, 2));
    let mut m = model(0, 0.1);
    let history = Trainer::new(&mut m, Adam::new(AdamConfig::new(0.01)))
        .metric(Precision)
        .metric(Recall)
        .metric(F1Score)
        .metric(TopKAccuracy(2))
        .fit(&train, Validation::Data(&val), &quiet(3))
        .unwrap();
    for name in [
        "val_precision",
        "val_recall",
        "val_f1_score",
        "val_top2_accuracy",
    ] {
        assert_eq!(history.metric(name).len(), 3, "{name}");
    }
    // The last epoch's figures are those of the trained model on the validation data.
    let (scores, labels) = predict(&m, &val, 64).unwrap();
    assert_eq!(
        history.last("val_precision"),
        Some(Precision.compute(&scores, &labels))
    );
    assert_eq!(
        history.last("val_f1_score"),
        Some(F1Score.compute(&scores, &labels))
    );
    let eval = evaluate(&m, Loss::SparseCategoricalCrossentropy, &val, 64).unwrap();
    let per_class = eval.per_class_accuracy(4);
    assert_eq!(per_class.len(), 4);
    assert_eq!(
        history.last("val_recall"),
        Some(per_class.iter().sum::<f64>() / 4.0)
    );
}

#[test]
fn a_cosine_schedule_over_training_reaches_its_floor_exactly_at_the_last_step() {
    // 75 training samples in batches of 16: 5 steps per epoch, which no one computes.
    let data = quadrants(100, 6);
    let mut m = model(0, 0.0);
    let history = Trainer::new(&mut m, Sgd::new(SgdConfig::new(1.0)))
        .schedule(CosineDecay::over_training(0.5, 0.2))
        .fit(&data, Validation::Split(0.25), &quiet(3))
        .unwrap();
    let rates = history.metric("lr");
    let floor = (f64::from(0.5f32) * f64::from(0.2f32)) as f32;
    assert_eq!(
        rates[2],
        f64::from(floor),
        "the last step trains at the floor"
    );
    // Step 4 of 0..=14 (the first epoch's last): 0.5 * (0.8 * (1 + cos(4 pi / 14)) / 2 + 0.2).
    let expected = 0.5 * (0.8 * 0.5 * (1.0 + (4.0 * std::f64::consts::PI / 14.0).cos()) + 0.2);
    assert!((rates[0] - expected).abs() < 1e-6, "{rates:?}");
    assert!(rates[1] > rates[2] && rates[0] > rates[1], "{rates:?}");
}
