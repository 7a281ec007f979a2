//! `cargo xtask download <dataset>` and `download weights [model]`, with a progress bar
//! per file.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use petal_data::download::{fetch_dataset, fetch_file, DataConfig};
use petal_data::flowers::Flowers102;
use petal_data::{Manifest, ManifestFile};
use petal_zoo::pretrained::{PretrainedWeights, CATALOG};

use crate::paths::data_config;

/// A dataset `download` knows.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DatasetName {
    /// The MNIST digits (4 IDX files).
    Mnist,
    /// Oxford 102 Flowers (the photo archive, extracted once, and the two .mat files).
    Flowers102,
    /// Pretrained weights and their class names (every catalog entry, or the one named).
    Weights,
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:32} [{bar:30}] {bytes}/{total_bytes}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Fetches (or verifies the cached copy of) a dataset, or the pretrained weights called
/// `model` (all of them when `None`); returns the folder holding them.
pub fn run(dataset: DatasetName, model: Option<&str>) -> anyhow::Result<PathBuf> {
    let config = data_config();
    let bar = progress_bar();
    let progress = |file: &ManifestFile, done: u64, total: Option<u64>| {
        bar.set_message(file.name.clone());
        bar.set_length(total.unwrap_or(done));
        bar.set_position(done);
    };
    anyhow::ensure!(
        model.is_none() || matches!(dataset, DatasetName::Weights),
        "only `download weights` takes a model name"
    );
    let folder = match dataset {
        DatasetName::Mnist => fetch_dataset(&config, &Manifest::mnist(), Some(&progress))?,
        DatasetName::Flowers102 => {
            Flowers102::fetch(&config, Some(&progress))?;
            config.dataset_dir(&Manifest::flowers102())
        }
        DatasetName::Weights => fetch_weights(&config, model, &progress)?,
    };
    bar.finish_and_clear();
    Ok(folder)
}

/// The catalog's weights as a dataset called `weights`: each weights file and its
/// class-name file, verified by sha256 like any dataset file.
fn weights_manifest(entries: &[&PretrainedWeights]) -> Manifest {
    let mut files: Vec<ManifestFile> = Vec::new();
    for entry in entries {
        let (classes_sha256, classes_size) = entry.classes_sha256;
        let pairs = [
            (entry.file_name, entry.sha256, entry.size, entry.url),
            (entry.classes_file, classes_sha256, classes_size, None),
        ];
        for (name, sha256, size, url) in pairs {
            if files.iter().all(|f| f.name != name) {
                files.push(ManifestFile {
                    name: name.to_string(),
                    url: url.unwrap_or_default().to_string(),
                    sha256: sha256.to_string(),
                    size,
                    note: Some(entry.source.to_string()),
                    also_accept: Vec::new(),
                });
            }
        }
    }
    Manifest {
        dataset: "weights".into(),
        files,
    }
}

/// Fetches weights into `<cache>/weights/`. The mirror is `<PETAL_MIRROR>/weights/`, or
/// the `weights` folder beside the mirror (`../shared` keeps `datasets/` and `weights/`
/// side by side). Files no URL serves need a mirror; saying so is the error otherwise.
fn fetch_weights(
    config: &DataConfig,
    model: Option<&str>,
    progress: &dyn Fn(&ManifestFile, u64, Option<u64>),
) -> anyhow::Result<PathBuf> {
    let entries: Vec<&PretrainedWeights> = match model {
        Some(name) => vec![PretrainedWeights::named(name).ok_or_else(|| {
            let known: Vec<&str> = CATALOG.iter().map(|w| w.name).collect();
            anyhow::anyhow!(
                "no pretrained weights called {name:?}; known: {}",
                known.join(", ")
            )
        })?],
        None => CATALOG.iter().collect(),
    };
    let manifest = weights_manifest(&entries);
    let mut config = config.clone();
    config.mirror = config.mirror.map(|mirror| match mirror.parent() {
        Some(parent) if !mirror.join("weights").is_dir() && parent.join("weights").is_dir() => {
            parent.to_path_buf()
        }
        _ => mirror,
    });
    for file in &manifest.files {
        if config.mirror.is_none() && file.url.is_empty() {
            anyhow::bail!(
                "{}: no public URL serves this file ({}); put it in <PETAL_MIRROR>/weights/ \
                 and run again, or point PETAL_WEIGHTS at a folder holding it",
                file.name,
                file.note.as_deref().unwrap_or("no source recorded")
            );
        }
        let report = |done, total| progress(file, done, total);
        fetch_file(&config, &manifest, file, Some(&report))?;
    }
    Ok(config.dataset_dir(&manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_mirror(mirror: &std::path::Path, cache: &std::path::Path) -> DataConfig {
        DataConfig {
            mirror: Some(mirror.to_path_buf()),
            ..DataConfig::new(cache)
        }
    }

    #[test]
    fn a_wrong_mirror_copy_of_the_weights_is_refused_and_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror");
        std::fs::create_dir_all(mirror.join("weights")).unwrap();
        std::fs::write(
            mirror.join("weights/efficientnet_lite0.safetensors"),
            b"not weights",
        )
        .unwrap();
        let cache = dir.path().join("cache");
        let error = fetch_weights(
            &config_with_mirror(&mirror, &cache),
            Some("efficientnet-lite0"),
            &|_, _, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("efficientnet_lite0.safetensors"), "{error}");
        assert!(!cache
            .join("weights/efficientnet_lite0.safetensors")
            .exists());
    }

    #[test]
    fn unknown_models_and_missing_sources_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let offline = DataConfig::new(dir.path());
        let error = fetch_weights(&offline, Some("resnet1000"), &|_, _, _| {}).unwrap_err();
        assert!(error.to_string().contains("efficientnet-lite0"), "{error}");
        let error = fetch_weights(&offline, None, &|_, _, _| {}).unwrap_err();
        assert!(error.to_string().contains("PETAL_MIRROR"), "{error}");
    }

    #[test]
    fn the_shared_weights_verify_through_the_mirror_beside_the_datasets() {
        let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
        if !shared
            .join("weights/efficientnet_lite0.safetensors")
            .exists()
        {
            println!("skipped: {} has no weights", shared.display());
            return;
        }
        let cache = tempfile::tempdir().unwrap();
        let config = config_with_mirror(&shared.join("datasets"), cache.path());
        let folder = fetch_weights(&config, None, &|_, _, _| {}).unwrap();
        assert!(folder.join("efficientnet_lite0.safetensors").is_file());
        assert!(folder.join("imagenet_classes.txt").is_file());
    }
}
