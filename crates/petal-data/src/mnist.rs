//! MNIST and any dataset in its format (Fashion-MNIST, KMNIST, …) from a folder of IDX files.

use std::path::{Path, PathBuf};

use petal_tensor::Tensor;
use rayon::prelude::*;

use crate::dataset::InMemoryDataset;
use crate::download::{fetch_dataset, DataConfig};
use crate::error::{DataError, Result};
use crate::idx::read_idx;
use crate::manifest::Manifest;

/// The number of classes of MNIST-format datasets.
pub const MNIST_CLASSES: usize = 10;

/// The official training and test splits.
#[derive(Clone, Debug)]
pub struct MnistData {
    /// The training split, 60000 samples for MNIST.
    pub train: InMemoryDataset,
    /// The test split, 10000 samples for MNIST.
    pub test: InMemoryDataset,
}

/// Loads an MNIST-format dataset from `dir`.
///
/// `dir` holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each raw or gzip-compressed
/// with a `.gz` suffix. Images become `(n, rows, cols, 1)` tensors with pixels scaled to
/// `[0, 1]`; labels must be below 10 and as many as the images.
pub fn load_mnist_folder(dir: impl AsRef<Path>) -> Result<MnistData> {
    let dir = dir.as_ref();
    Ok(MnistData {
        train: load_split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        test: load_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    })
}

/// MNIST fetched into the cache (from the mirror or the official URLs, verified) and
/// loaded, Keras' `mnist.load_data()`.
///
/// ```no_run
/// use petal_data::download::DataConfig;
/// use petal_data::mnist::fetch_mnist;
/// use petal_data::Dataset;
/// let mnist = fetch_mnist(&DataConfig::from_env("datasets/cache"))?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
/// # Ok::<(), petal_data::DataError>(())
/// ```
pub fn fetch_mnist(config: &DataConfig) -> Result<MnistData> {
    load_mnist_folder(fetch_dataset(config, &Manifest::mnist(), None)?)
}

/// Finds `<dir>/<stem>` or `<dir>/<stem>.gz`.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let raw = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    if raw.is_file() {
        return Ok(raw);
    }
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::Missing {
        reason: format!("neither {} nor {} exists", raw.display(), gz.display()),
        path: raw,
    })
}

/// Loads one split from its image and label files.
fn load_split(dir: &Path, images_stem: &str, labels_stem: &str) -> Result<InMemoryDataset> {
    let images_path = find_file(dir, images_stem)?;
    let labels_path = find_file(dir, labels_stem)?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    let &[n, rows, cols] = images.dims.as_slice() else {
        return Err(DataError::format(
            &images_path,
            format!(
                "expected 3 dimensions (images, rows, columns), found {:?}",
                images.dims
            ),
        ));
    };
    if labels.dims.len() != 1 {
        return Err(DataError::format(
            &labels_path,
            format!("expected 1 dimension (labels), found {:?}", labels.dims),
        ));
    }
    if labels.dims[0] != n {
        return Err(DataError::format(
            &images_path,
            format!(
                "holds {n} images but {} holds {} labels",
                labels_path.display(),
                labels.dims[0]
            ),
        ));
    }
    if let Some((position, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &label)| usize::from(label) >= MNIST_CLASSES)
    {
        return Err(DataError::format(
            &labels_path,
            format!("label {label} at position {position} is out of range 0..=9"),
        ));
    }
    let pixels: Vec<f32> = images
        .data
        .par_iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let images = Tensor::from_vec(&[n, rows, cols, 1], pixels)
        .map_err(|e| DataError::format(&images_path, e.to_string()))?;
    let labels = labels.data.iter().map(|&l| usize::from(l)).collect();
    InMemoryDataset::new(images, labels, MNIST_CLASSES)
}
