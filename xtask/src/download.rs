//! `cargo xtask download <dataset>` and `download weights [model]`, with a progress bar
//! per file.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use petal_data::download::fetch_dataset;
use petal_data::flowers::Flowers102;
use petal_data::{Manifest, ManifestFile};
use petal_interop::fetch_weights;
use petal_zoo::pretrained::{weights_named, CATALOG};

use crate::paths::{data_config, weights_folder};

/// A dataset `download` knows.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DatasetName {
    /// The MNIST digits (4 IDX files).
    Mnist,
    /// Oxford 102 Flowers (the photo archive, extracted once, and the two .mat files).
    Flowers102,
    /// Pretrained weights and their class names (every catalog entry, or the one named);
    /// torchvision checkpoints are converted once to safetensors.
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
        DatasetName::Weights => {
            let entries = match model {
                Some(name) => vec![weights_named(name)?],
                None => CATALOG.iter().collect(),
            };
            fetch_weights(&weights_folder(), &entries, Some(&progress))?
        }
    };
    bar.finish_and_clear();
    Ok(folder)
}

/// Options of `cargo xtask photo-folder`.
#[derive(Clone, Debug, clap::Args)]
pub struct PhotoFolderOptions {
    /// Where to write `train/<class>/` and `test/<class>/`.
    pub out: PathBuf,
    /// The most frequent flower classes to take.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Training photos per class.
    #[arg(long, default_value_t = 40)]
    pub train: usize,
    /// Test photos per class.
    #[arg(long, default_value_t = 20)]
    pub test: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Writes a photo folder of Oxford flowers, the layout of a user's own photos.
pub fn photo_folder(options: &PhotoFolderOptions) -> anyhow::Result<()> {
    let flowers = Flowers102::fetch(&data_config(), None)?;
    flowers
        .most_frequent_classes(options.classes)?
        .write_image_folder(
            &flowers,
            &options.out,
            options.train,
            options.test,
            options.seed,
        )?;
    println!("{}", options.out.display());
    Ok(())
}
