//! `cargo xtask classify`: a pretrained ImageNet model's top classes for photos.

use std::path::PathBuf;

use petal_zoo::pretrained::{weights_named, Classifier};
use serde::Serialize;

use crate::paths::weights_folder;

/// Options of `cargo xtask classify`.
#[derive(Clone, Debug, clap::Args)]
pub struct ClassifyOptions {
    /// Which pretrained model (see the catalog in petal-zoo).
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// The weights file (default: `<PETAL_WEIGHTS>/<file>`, PETAL_WEIGHTS defaulting to datasets/cache/weights).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print JSON (with the full logits) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The photos.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    image: String,
    top: Vec<(usize, &'a str, f32)>,
    logits: Vec<f32>,
}

/// Runs `classify`.
pub fn run(options: &ClassifyOptions) -> anyhow::Result<()> {
    let classifier = Classifier::load(
        weights_named(&options.model)?,
        &weights_folder(),
        options.weights.as_deref(),
    )?;
    for path in &options.images {
        let (logits, best) = classifier.classify(path, options.top)?;
        let logits = logits.to_vec();
        if options.json {
            let top = best
                .iter()
                .map(|p| (p.class, p.name.as_str(), p.probability))
                .collect();
            println!(
                "{}",
                serde_json::to_string(&JsonResult {
                    image: path.display().to_string(),
                    top,
                    logits
                })?
            );
        } else {
            println!("{}", path.display());
            for (rank, p) in best.iter().enumerate() {
                println!(
                    "  {}. {:<40} {:>6.2}%  (class {})",
                    rank + 1,
                    p.name,
                    p.probability * 100.0,
                    p.class
                );
            }
        }
    }
    Ok(())
}
