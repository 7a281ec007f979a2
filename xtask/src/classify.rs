//! `cargo xtask classify`: a pretrained ImageNet model's top classes for photos.

use std::path::{Path, PathBuf};

use petal_nn::Model;
use petal_zoo::pretrained::{
    decode_predictions, load_pretrained, open_image, read_class_names, Prediction,
    PretrainedWeights,
};
use petal_zoo::Options;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::paths::data_config;

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

/// A loaded pretrained classifier with its class names.
pub struct Classifier {
    pub entry: &'static PretrainedWeights,
    pub model: Model,
    pub names: Vec<String>,
}

/// Where weights files live: `PETAL_WEIGHTS`, else `datasets/cache/weights`.
pub fn weights_folder() -> PathBuf {
    std::env::var_os("PETAL_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_config().cache_root.join("weights"))
}

/// The weights file of `entry` in `folder` (usually [`weights_folder`]), or an error
/// saying how to get it.
pub fn weights_file_in(folder: &Path, entry: &PretrainedWeights) -> anyhow::Result<PathBuf> {
    let (file, _) = entry.files_in(folder);
    anyhow::ensure!(
        file.is_file(),
        "{}: the {} weights are not there; run `cargo xtask download weights {}` \
         (with PETAL_MIRROR on an offline machine) or set PETAL_WEIGHTS to a folder holding {}",
        file.display(),
        entry.name,
        entry.name,
        entry.file_name
    );
    Ok(file)
}

/// The lowercase hex SHA-256 of the file at `path`.
pub(crate) fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl Classifier {
    /// Builds the catalog model `name` and loads its verified weights.
    pub fn load(name: &str, weights: Option<&Path>) -> anyhow::Result<Self> {
        let entry = PretrainedWeights::named(name)
            .ok_or_else(|| anyhow::anyhow!("no pretrained model called {name:?}"))?;
        let weights = match weights {
            Some(path) => path.to_path_buf(),
            None => weights_file_in(&weights_folder(), entry)?,
        };
        let (_, classes) = entry.files_in(&weights_folder());
        let actual = sha256_of(&weights)?;
        anyhow::ensure!(
            actual == entry.sha256,
            "{}: sha256 {actual} is not the {} weights' {}",
            weights.display(),
            entry.name,
            entry.sha256
        );
        let mut model = entry.arch.build(&Options::default())?;
        load_pretrained(&mut model, entry.arch, &weights)?;
        let names = read_class_names(&weights.with_file_name(entry.classes_file))
            .or_else(|_| read_class_names(&classes))
            .map_err(|e| anyhow::anyhow!("{}: {e}", classes.display()))?;
        Ok(Self {
            entry,
            model: model.fold_for_inference(),
            names,
        })
    }

    /// Logits and the `top` best classes of one photo.
    pub fn classify(&self, path: &Path, top: usize) -> anyhow::Result<(Vec<f32>, Vec<Prediction>)> {
        let image = open_image(path).map_err(anyhow::Error::msg)?;
        let logits = self
            .model
            .predict(&self.entry.preprocessing.apply(&image))?;
        let best = decode_predictions(&logits, &self.names, top)?.remove(0);
        Ok((logits.to_vec(), best))
    }
}

#[derive(Serialize)]
struct JsonResult<'a> {
    image: String,
    top: Vec<(usize, &'a str, f32)>,
    logits: Vec<f32>,
}

/// Runs `classify`.
pub fn run(options: &ClassifyOptions) -> anyhow::Result<()> {
    let classifier = Classifier::load(&options.model, options.weights.as_deref())?;
    for path in &options.images {
        let (logits, best) = classifier.classify(path, options.top)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_weights_name_the_file_and_the_download_command() {
        let folder = tempfile::tempdir().unwrap();
        let entry = PretrainedWeights::named("efficientnet-lite0").unwrap();
        let err = weights_file_in(folder.path(), entry)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "efficientnet_lite0.safetensors: the efficientnet-lite0 weights are not there"
            ),
            "{err}"
        );
        assert!(
            err.contains("cargo xtask download weights efficientnet-lite0"),
            "{err}"
        );
        std::fs::write(folder.path().join(entry.file_name), b"").unwrap();
        assert!(weights_file_in(folder.path(), entry).is_ok());
    }
}
