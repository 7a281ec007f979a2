//! Training on mixed batches (MixUp, CutMix): the loss `fit` computes against the
//! hand-computed mixed cross-entropy, determinism, unmixed validation, bad settings.

mod common;

use std::sync::Arc;

use common::{model, quadrants};

use petal_data::augment::{batch_rng, BatchMix, CutMix, MixUp};
use petal_data::InMemoryDataset;
use petal_nn::layers::{Conv2dConfig, DenseConfig, FlattenConfig};
use petal_nn::{Loss, Model, Sequential};
use petal_optim::{Sgd, SgdConfig};
use petal_tensor::loss::one_hot;
use petal_tensor::Tensor;
use petal_train::{evaluate, FitConfig, History, TrainError, Trainer, Validation};

fn config(mix: Option<Arc<dyn BatchMix>>, seed: u64) -> FitConfig {
    FitConfig {
        epochs: 3,
        batch_size: 16,
        seed,
        verbose: false,
        batch_mix: mix,
        ..FitConfig::default()
    }
}

fn mixing(mix: impl BatchMix + 'static, seed: u64) -> FitConfig {
    config(Some(Arc::new(mix)), seed)
}

fn weights(model: &Model) -> Vec<f32> {
    model
        .store()
        .iter()
        .flat_map(|(_, p)| p.value.to_vec())
        .collect()
}

/// Four 2 x 2 grey images with distinct pixels, of the four classes.
fn tiny_batch() -> (Tensor, Vec<usize>) {
    let pixels = (0..16).map(|v| (v as f32 * 0.37).sin()).collect();
    (
        Tensor::from_vec(&[4, 2, 2, 1], pixels).unwrap(),
        vec![0, 1, 2, 3],
    )
}

/// A dense layer of 4 outputs on flattened `side x side` images.
fn linear_classifier(side: usize, seed: u64) -> Model {
    Sequential::new(&[side, side, 1], seed)
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap()
}

/// For each sample of a batch with labels `0..n` mixed into `targets`: its partner
/// (the other class with weight, itself if none) and its own weight `lambda`.
fn partners(targets: &Tensor) -> Vec<(usize, f64)> {
    let n = targets.shape()[0];
    (0..n)
        .map(|i| {
            let row = &targets.as_slice()[i * n..(i + 1) * n];
            let j = (0..n).find(|&k| k != i && row[k] > 0.0).unwrap_or(i);
            (j, f64::from(row[i]))
        })
        .collect()
}

/// `-ln softmax(row)[class]`, in f64.
fn cross_entropy(row: &[f32], class: usize) -> f64 {
    let max = row.iter().copied().fold(f32::MIN, f32::max) as f64;
    let log_sum = row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    log_sum - row[class] as f64
}

#[test]
fn the_step_loss_on_a_mixed_batch_is_the_hand_computed_mixed_cross_entropy() {
    let (images, labels) = tiny_batch();
    let seed = 11;
    // The batch the first step sees: mixed with batch_rng(seed, step 0).
    let mut mixed = images.clone();
    let mut targets = one_hot(&labels, 4).unwrap();
    MixUp::new(0.4)
        .unwrap()
        .mix(&mut mixed, &mut targets, &mut batch_rng(seed, 0))
        .unwrap();
    let pairs = partners(&targets);
    for (i, &(j, lambda)) in pairs.iter().enumerate() {
        for p in 0..4 {
            let expected = lambda * f64::from(images.as_slice()[i * 4 + p])
                + (1.0 - lambda) * f64::from(images.as_slice()[j * 4 + p]);
            assert!((f64::from(mixed.as_slice()[i * 4 + p]) - expected).abs() < 1e-5);
        }
    }
    let truly_mixed = pairs
        .iter()
        .enumerate()
        .filter(|&(i, &(j, lambda))| j != i && (0.05..0.95).contains(&lambda))
        .count();
    assert!(truly_mixed >= 2, "the seed must mix the batch: {pairs:?}");

    for loss in [
        Loss::SparseCategoricalCrossentropy,
        Loss::CategoricalCrossentropy {
            label_smoothing: 0.0,
        },
    ] {
        let mut model = linear_classifier(2, 5);
        let logits = model.predict(&mixed).unwrap();
        let rows: Vec<&[f32]> = logits.as_slice().chunks(4).collect();
        // lambda * CE(own label) + (1 - lambda) * CE(partner's label), averaged.
        let by_hand = pairs
            .iter()
            .enumerate()
            .map(|(i, &(j, lambda))| {
                lambda * cross_entropy(rows[i], i) + (1.0 - lambda) * cross_entropy(rows[i], j)
            })
            .sum::<f64>()
            / 4.0;
        // The training accuracy counts the dominant label of each mixed sample.
        let dominant: Vec<usize> = pairs
            .iter()
            .enumerate()
            .map(
                |(i, &(j, lambda))| match lambda.partial_cmp(&0.5).unwrap() {
                    std::cmp::Ordering::Greater => i,
                    std::cmp::Ordering::Less => j,
                    std::cmp::Ordering::Equal => i.min(j),
                },
            )
            .collect();
        let predicted: Vec<usize> = rows
            .iter()
            .map(|r| (0..4).fold(0, |b, k| if r[k] > r[b] { k } else { b }))
            .collect();
        let expected_accuracy = predicted
            .iter()
            .zip(&dominant)
            .filter(|(p, d)| p == d)
            .count() as f64
            / 4.0;

        let config = mixing(MixUp::new(0.4).unwrap(), seed);
        let mut trainer = Trainer::new(&mut model, Sgd::new(SgdConfig::new(0.1))).loss(loss);
        let (step_loss, step_accuracy) = trainer
            .train_step(images.clone(), &labels, &config)
            .unwrap();
        assert!(
            (f64::from(step_loss) - by_hand).abs() < 1e-5,
            "{loss:?}: fit's loss {step_loss}, by hand {by_hand}"
        );
        assert_eq!(step_accuracy, expected_accuracy);
    }
}

/// `n` 4 x 4 grey images, each bright in one quadrant, labelled by that quadrant.
fn bright_quadrants(n: usize) -> InMemoryDataset {
    let mut pixels = Vec::with_capacity(n * 16);
    let labels: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % 4).collect();
    for (i, &label) in labels.iter().enumerate() {
        for p in 0..16 {
            let quadrant = (p / 8) * 2 + (p % 4) / 2;
            let noise = ((i * 16 + p) as f32 * 0.61).sin() * 0.1;
            pixels.push(if quadrant == label { 1.0 } else { 0.0 } + noise);
        }
    }
    InMemoryDataset::new(Tensor::from_vec(&[n, 4, 4, 1], pixels).unwrap(), labels, 4).unwrap()
}

fn fit_mixed(model: &mut Model, data: &InMemoryDataset, config: &FitConfig) -> History {
    Trainer::new(model, Sgd::new(SgdConfig::new(0.1)))
        .loss(Loss::CategoricalCrossentropy {
            label_smoothing: 0.0,
        })
        .fit(data, Validation::Data(data), config)
        .unwrap()
}

#[test]
fn a_seed_gives_the_same_mixes_and_weights_and_mixing_changes_training() {
    let data = bright_quadrants(64);
    let mixes: [(&str, Arc<dyn BatchMix>); 2] = [
        ("MixUp", Arc::new(MixUp::new(0.4).unwrap())),
        ("CutMix", Arc::new(CutMix::new(1.0).unwrap())),
    ];
    let train = |mix: Option<Arc<dyn BatchMix>>, seed: u64| {
        let mut model = linear_classifier(4, 2);
        let history = fit_mixed(&mut model, &data, &config(mix, seed));
        (weights(&model), history)
    };
    let (plain, _) = train(None, 3);
    for (name, mix) in mixes {
        let (a, history_a) = train(Some(Arc::clone(&mix)), 3);
        let (b, history_b) = train(Some(Arc::clone(&mix)), 3);
        assert_eq!(a, b, "{name}: same seed, same weights");
        assert_eq!(history_a.metric("loss"), history_b.metric("loss"));
        let (other_seed, _) = train(Some(mix), 4);
        assert_ne!(a, other_seed, "{name}: another seed mixes otherwise");
        assert_ne!(a, plain, "{name}: mixing changes what is learnt");
    }
}

#[test]
fn validation_is_measured_on_unmixed_data() {
    let data = bright_quadrants(64);
    let mut model = linear_classifier(4, 2);
    let config = FitConfig {
        epochs: 20,
        ..mixing(MixUp::new(1.0).unwrap(), 0)
    };
    let history = fit_mixed(&mut model, &data, &config);
    let loss = Loss::CategoricalCrossentropy {
        label_smoothing: 0.0,
    };
    let unmixed = evaluate(&model, loss, &data, 16).unwrap();
    assert_eq!(history.last("val_loss"), Some(unmixed.loss));
    assert_eq!(history.last("val_accuracy"), Some(unmixed.accuracy));
    // Training on mixes still learns the task.
    assert!(unmixed.accuracy > 0.9, "{}", unmixed.accuracy);
}

#[test]
fn bad_mix_settings_are_errors_not_panics() {
    for alpha in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = MixUp::new(alpha).unwrap_err().to_string();
        assert!(err.contains("alpha"), "{err}");
        let err = CutMix::new(alpha).unwrap_err().to_string();
        assert!(err.contains("alpha"), "{err}");
    }
    // A model without one score per class.
    let data = quadrants(8, 1);
    let mut per_pixel = Sequential::new(&[1, 1, 2], 0)
        .add(Conv2dConfig::new(4, 1))
        .unwrap()
        .build()
        .unwrap();
    let err = Trainer::new(&mut per_pixel, Sgd::new(SgdConfig::new(0.1)))
        .fit(
            &data,
            Validation::None,
            &mixing(MixUp::new(1.0).unwrap(), 0),
        )
        .unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("one score per class"), "{err}");
    // Samples that are not images.
    let mut flat = Sequential::new(&[2], 0)
        .add(DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap();
    let features = Tensor::from_vec(&[2, 2], vec![0.1, 0.2, 0.3, 0.4]).unwrap();
    let err = Trainer::new(&mut flat, Sgd::new(SgdConfig::new(0.1)))
        .train_step(features, &[0, 1], &mixing(MixUp::new(1.0).unwrap(), 0))
        .unwrap_err();
    assert!(
        err.to_string().contains("(b, height, width, channels)"),
        "{err}"
    );
    // A label outside the model's classes.
    let mut model = model(0, 0.0);
    let err = Trainer::new(&mut model, Sgd::new(SgdConfig::new(0.1)))
        .train_step(
            Tensor::zeros(&[2, 1, 1, 2]),
            &[0, 4],
            &mixing(MixUp::new(1.0).unwrap(), 0),
        )
        .unwrap_err();
    assert!(err.to_string().contains("label 4"), "{err}");
}
