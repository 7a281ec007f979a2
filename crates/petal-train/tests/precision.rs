//! Mixed-precision training and inference (`FitConfig::precision`, `with_precision`) on
//! a small generated problem, against the same run in f32.

use petal_data::InMemoryDataset;
use petal_nn::layers::{Activation, Conv2dConfig, DenseConfig, FlattenConfig};
use petal_nn::{Loss, Model, Sequential};
use petal_optim::{Adam, AdamConfig};
use petal_tensor::{with_precision, Precision, Tensor};
use petal_train::{evaluate, FitConfig, History, Trainer, Validation};

/// 8x8 images of 4 channels, noise plus a brighter quadrant; the label is the quadrant.
fn bright_quadrants(n: usize, seed: u32) -> InMemoryDataset {
    let (side, channels) = (8, 4);
    let mut values = Vec::with_capacity(n * side * side * channels);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let label = (i.wrapping_mul(2_654_435_761) ^ seed) as usize % 4;
        for j in 0..(side * side * channels) as u32 {
            let (row, col) = (j as usize / (side * channels), j as usize / channels % side);
            let quadrant = usize::from(row >= side / 2) * 2 + usize::from(col >= side / 2);
            let h = (i.wrapping_mul(40_503) ^ j.wrapping_mul(2_246_822_519) ^ seed)
                .wrapping_mul(2_654_435_761);
            let noise = (h >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            values.push(noise + if quadrant == label { 0.2 } else { 0.0 });
        }
        labels.push(label);
    }
    let shape = [n, side, side, channels];
    InMemoryDataset::new(Tensor::from_vec(&shape, values).unwrap(), labels, 4).unwrap()
}

/// A 3x3 convolution over 4 channels (36 taps: the im2col path), ReLU, and a dense layer.
fn cnn() -> Model {
    Sequential::new(&[8, 8, 4], 0)
        .add(Conv2dConfig {
            activation: Activation::Relu,
            ..Conv2dConfig::new(8, 3)
        })
        .unwrap()
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap()
}

fn train(data: &InMemoryDataset, precision: Precision) -> petal_train::Result<(Model, History)> {
    let mut model = cnn();
    let config = FitConfig {
        epochs: 8,
        batch_size: 16,
        verbose: false,
        precision: Some(precision),
        ..FitConfig::default()
    };
    let history = Trainer::new(&mut model, Adam::new(AdamConfig::new(0.003))).fit(
        data,
        Validation::None,
        &config,
    )?;
    Ok((model, history))
}

fn weights(model: &Model) -> Vec<f32> {
    model
        .store()
        .iter()
        .flat_map(|(_, p)| p.value.to_vec())
        .collect()
}

#[test]
fn bf16_training_lowers_the_loss_like_f32() {
    if let Err(e) = Precision::Bf16.supported() {
        println!("skipped: {e}");
        return;
    }
    let (train_data, test_data) = (bright_quadrants(256, 1), bright_quadrants(128, 2));
    let (f32_model, f32_history) = train(&train_data, Precision::F32).unwrap();
    let (bf16_model, bf16_history) = train(&train_data, Precision::Bf16).unwrap();
    assert_ne!(
        weights(&f32_model),
        weights(&bf16_model),
        "no bf16 rounding happened"
    );
    let (f32_loss, bf16_loss) = (f32_history.metric("loss"), bf16_history.metric("loss"));
    println!("loss per epoch: f32 {f32_loss:?}\nbf16 {bf16_loss:?}");
    for loss in [&f32_loss, &bf16_loss] {
        assert!(loss[loss.len() - 1] < loss[0] / 4.0, "{loss:?}");
    }
    // Like f32: the same loss curve up to a tenth, epoch by epoch.
    for (f, b) in f32_loss.iter().zip(&bf16_loss) {
        assert!(
            (f - b).abs() <= 0.1 * f,
            "f32 {f32_loss:?}\nbf16 {bf16_loss:?}"
        );
    }
    // Inference in each precision: the test accuracy of both models, both ways.
    let loss = Loss::SparseCategoricalCrossentropy;
    for model in [&f32_model, &bf16_model] {
        let f32_eval = evaluate(model, loss, &test_data, 64).unwrap();
        let bf16_eval =
            with_precision(Precision::Bf16, || evaluate(model, loss, &test_data, 64)).unwrap();
        println!(
            "test accuracy: f32 {} bf16 {}",
            f32_eval.accuracy, bf16_eval.accuracy
        );
        assert!(f32_eval.accuracy > 0.95, "{}", f32_eval.accuracy);
        assert!(bf16_eval.accuracy > 0.95, "{}", bf16_eval.accuracy);
        assert_ne!(
            f32_eval.loss, bf16_eval.loss,
            "no bf16 rounding in inference"
        );
    }
}
