//! Getting started: the lecture's MNIST CNN (conv32, pool, conv64, pool, dense128,
//! dense10) trained and tested in a few lines, as in Keras.
//!
//! ```sh
//! cargo run --release --example train_mnist -- [--epochs 3] [--limit 5000]
//! ```
//! MNIST is fetched into `PETAL_DATA` (default `datasets/cache`), from `PETAL_MIRROR`
//! on a machine without internet.

use clap::Parser;
use petal::data::download::DataConfig;
use petal::data::mnist::fetch_mnist;
use petal::prelude::*;

#[derive(Parser)]
struct Args {
    /// Passes over the training digits.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Train on the first N digits only (a quick try).
    #[arg(long)]
    limit: Option<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mnist = fetch_mnist(&DataConfig::from_env("datasets/cache"))?;
    let count = args
        .limit
        .unwrap_or(mnist.train.len())
        .min(mnist.train.len());
    let train = Subset::new(&mnist.train, (0..count).collect())?;

    let relu = |filters| Conv2dConfig {
        activation: Activation::Relu,
        ..Conv2dConfig::new(filters, 3)
    };
    let mut model = Sequential::new(&[28, 28, 1], 42)
        .add(relu(32))?
        .add(Pool2dConfig::max(2))?
        .add(relu(64))?
        .add(Pool2dConfig::max(2))?
        .add(FlattenConfig::default())?
        .add(DenseConfig {
            activation: Activation::Relu,
            ..DenseConfig::new(128)
        })?
        .add(DenseConfig::new(10))?
        .build()?;
    println!("{}", model.summary());

    let config = FitConfig {
        epochs: args.epochs,
        batch_size: 128,
        ..FitConfig::default()
    };
    Trainer::new(&mut model, Adam::new(AdamConfig::new(1e-3)))
        .loss(Loss::SparseCategoricalCrossentropy)
        .fit(&train, Validation::Split(0.1), &config)?;

    let test = evaluate(
        &model,
        Loss::SparseCategoricalCrossentropy,
        &mnist.test,
        256,
    )?;
    println!("test accuracy {:.4}", test.accuracy);
    Ok(())
}
