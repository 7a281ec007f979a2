//! `cargo xtask download <dataset>` with a progress bar per file.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use petal_data::download::fetch_dataset;
use petal_data::flowers::Flowers102;
use petal_data::{Manifest, ManifestFile};

use crate::paths::data_config;

/// A dataset `download` knows.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DatasetName {
    /// The MNIST digits (4 IDX files).
    Mnist,
    /// Oxford 102 Flowers (the photo archive, extracted once, and the two .mat files).
    Flowers102,
}

/// Fetches (or verifies the cached copy of) a dataset; returns its folder.
pub fn run(dataset: DatasetName) -> anyhow::Result<PathBuf> {
    let manifest = match dataset {
        DatasetName::Mnist => Manifest::mnist(),
        DatasetName::Flowers102 => Manifest::flowers102(),
    };
    let config = data_config();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:32} [{bar:30}] {bytes}/{total_bytes}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let progress = |file: &ManifestFile, done: u64, total: Option<u64>| {
        bar.set_message(file.name.clone());
        bar.set_length(total.unwrap_or(done));
        bar.set_position(done);
    };
    let folder = match dataset {
        DatasetName::Mnist => fetch_dataset(&config, &manifest, Some(&progress))?,
        DatasetName::Flowers102 => {
            Flowers102::fetch(&config, Some(&progress))?;
            config.dataset_dir(&manifest)
        }
    };
    bar.finish_and_clear();
    Ok(folder)
}
