//! Writing a new layer: a learnable per-channel scale `y = x * gamma[c]` (the
//! "LayerScale" of vision transformers), its gradient checked against finite
//! differences, then trained inside a small CNN.
//!
//! ```sh
//! cargo run --release --example custom_layer
//! ```
//! A layer is two parts: a config (what the user writes in `Sequential::add`) whose
//! `init` creates the parameters, and the layer itself, whose `forward` is written with
//! `Var` operations, so the tape differentiates it with no backward code of its own.

use petal::nn::layers::{Context, Layer, LayerConfig, LayerKind};
use petal::nn::{check_gradients, NnError, ParamId, ParamStore};
use petal::prelude::*;
use rand_chacha::ChaCha8Rng;

/// The config: the initial scale of every channel.
struct ChannelScaleConfig {
    initial: f32,
}

impl LayerConfig for ChannelScaleConfig {
    fn stem(&self) -> &'static str {
        "channel_scale"
    }

    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        _rng: &mut ChaCha8Rng,
    ) -> petal::nn::Result<Box<dyn Layer>> {
        let channels = *inputs[0].last().ok_or_else(|| NnError::Layer {
            layer: name.into(),
            reason: "needs an input with channels".into(),
        })?;
        let gamma = store.add(
            format!("{name}/gamma"),
            Tensor::full(&[channels], self.initial),
            true,
        )?;
        Ok(Box::new(ChannelScale {
            name: name.into(),
            gamma,
        }))
    }
}

/// The layer: one learnable factor per channel, broadcast over the other axes.
struct ChannelScale {
    name: String,
    gamma: ParamId,
}

impl Layer for ChannelScale {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Custom("ChannelScale")
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> petal::nn::Result<Vec<usize>> {
        Ok(inputs[0].to_vec())
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> petal::nn::Result<Var> {
        inputs[0].mul(&ctx.param(self.gamma))
    }
    fn params(&self) -> Vec<ParamId> {
        vec![self.gamma]
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The gradient with respect to both the input and gamma, against central
    //    differences (the same check every built-in op passes).
    let x = Tensor::from_vec(
        &[2, 2, 2, 3],
        (0..24).map(|i| (i as f32 * 0.37).sin()).collect(),
    )?;
    let gamma = Tensor::from_vec(&[3], vec![0.5, -1.5, 2.0])?;
    let report = check_gradients(|v| v[0].mul(&v[1]), &[x, gamma], 1e-2, 1e-2)?;
    println!(
        "gradient check passed on {} values, worst error {:.1e}",
        report.checked, report.worst_error
    );

    // 2. The layer inside a model: the bright pixel left or right.
    let mut model = Sequential::new(&[4, 4, 1], 7)
        .add(Conv2dConfig {
            padding: Padding::Same,
            activation: Activation::Relu,
            ..Conv2dConfig::new(4, 3)
        })?
        .add(ChannelScaleConfig { initial: 1.0 })?
        .add(FlattenConfig::default())?
        .add(DenseConfig::new(2))?
        .build()?;
    println!("{}", model.summary());
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for i in 0..64 {
        let mut image = vec![0.0; 16];
        image[(i % 4) * 4 + (i / 4) % 4] = 1.0;
        images.extend(image);
        labels.push(usize::from((i / 4) % 4 >= 2));
    }
    let data = InMemoryDataset::new(Tensor::from_vec(&[64, 4, 4, 1], images)?, labels, 2)?;
    let config = FitConfig {
        epochs: 30,
        batch_size: 16,
        verbose: false,
        ..FitConfig::default()
    };
    Trainer::new(&mut model, Adam::new(AdamConfig::new(0.05))).fit(
        &data,
        Validation::None,
        &config,
    )?;
    let scores = evaluate(&model, Loss::SparseCategoricalCrossentropy, &data, 64)?;
    let gamma = model.store().value(
        model
            .store()
            .id("channel_scale/gamma")
            .expect("the layer's parameter"),
    );
    println!("learned gamma {:?}", gamma.as_slice());
    println!("training accuracy {:.4}", scores.accuracy);
    Ok(())
}
