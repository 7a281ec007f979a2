//! Transfer learning on your own photo folder: an ImageNet-pretrained base computes
//! features of your photos once, a new classifier learns on them, and (with
//! `--fine-tune`) the base's top blocks are then trained on with a 10x smaller rate.
//!
//! ```sh
//! cargo run --release --example transfer_learning -- --data DIR [--model efficientnet-lite0] [--epochs 30] [--fine-tune LAYER]
//! ```
//! DIR holds `train/<class>/*.jpg` and `test/<class>/*.jpg`, and `val/<class>/` when
//! you have one (else 20% of train, per class, validates). Weights come from
//! `PETAL_WEIGHTS` (`cargo xtask download weights`).

use std::path::PathBuf;

use clap::Parser;
use petal::data::{download::DataConfig, stratified_split};
use petal::prelude::*;
use petal::zoo::pretrained::{weights_named, WeightsFolder};
use petal::zoo::transfer::{unfreeze_top, FeatureExtractor, Head};

#[derive(Parser)]
struct Args {
    /// The photo folder.
    #[arg(long)]
    data: PathBuf,
    /// The pretrained model (its catalog name).
    #[arg(long, default_value = "efficientnet-lite0")]
    model: String,
    /// Epochs of the new classifier on the features.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Then fine-tune the base from this layer up (e.g. block5a), on the photos.
    #[arg(long)]
    fine_tune: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let weights = weights_named(&args.model)?;
    let folder =
        |part: &str| ImageFolder::open(args.data.join(part), weights.preprocessing.image_options());
    let (train, test) = (folder("train")?.cached(), folder("test")?);
    let val = args
        .data
        .join("val")
        .is_dir()
        .then(|| folder("val"))
        .transpose()?;
    if test.class_names() != train.class_names() {
        return Err(format!(
            "test classes {:?} differ from train's {:?}",
            test.class_names(),
            train.class_names()
        )
        .into());
    }
    let pooled = Options {
        include_top: false,
        pooling: Pooling::Avg,
        ..Options::default()
    };
    let load_base =
        || WeightsFolder::from_env(DataConfig::from_env("datasets/cache")).load(weights, &pooled);

    // The base runs once over every photo; its features are cached on disk.
    let frozen_base = load_base()?.fold_for_inference();
    let extractor = FeatureExtractor::new(&frozen_base).cache_in("datasets/cache/features");
    let features = |f: &ImageFolder| extractor.extract(f.dataset(), 32, None);
    let (train_features, test_features) = (features(&train)?, features(&test)?);
    let val_features = val.as_ref().map(features).transpose()?;
    let all = |d: &InMemoryDataset| (0..d.len()).collect::<Vec<_>>();
    let (fit_part, held_out) = match &val_features {
        Some(v) => (
            Subset::new(&train_features, all(&train_features))?,
            Subset::new(v, all(v))?,
        ),
        None => {
            let split = stratified_split(train_features.labels(), [0.8, 0.2, 0.0], 7)?;
            (
                Subset::new(&train_features, split.train)?,
                Subset::new(&train_features, split.val)?,
            )
        }
    };

    let head = Head::new(train.class_names().len());
    let mut classifier = head.on_features(train_features.sample_shape(), 7)?;
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: 32,
        ..FitConfig::default()
    };
    Trainer::new(&mut classifier, Adam::new(AdamConfig::new(1e-3)))
        .callback(EarlyStopping::new(Monitor::new("val_loss"), 5, true))
        .fit(&fit_part, Validation::Data(&held_out), &config)?;
    let mut accuracy = evaluate(
        &classifier,
        Loss::SparseCategoricalCrossentropy,
        &test_features,
        64,
    )?
    .accuracy;

    if let Some(first_layer) = &args.fine_tune {
        let mut model = head.on_base(load_base()?, Some(&classifier))?;
        unfreeze_top(&mut model, first_layer)?;
        let config = FitConfig {
            epochs: 3,
            ..config
        };
        Trainer::new(&mut model, Adam::new(AdamConfig::new(1e-4))).fit(
            &train,
            Validation::None,
            &config,
        )?;
        accuracy = evaluate(&model, Loss::SparseCategoricalCrossentropy, &test, 32)?.accuracy;
    }
    println!("test accuracy {accuracy:.4}");
    Ok(())
}
