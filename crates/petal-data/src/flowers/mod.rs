//! Oxford 102 Flowers: 8189 photos of 102 flower classes, with the official labels
//! (`imagelabels.mat`) and train/validation/test split (`setid.mat`, 1020/1020/6149).
//!
//! [`Flowers102::fetch`] makes the three files present and verified in the cache (from
//! `PETAL_MIRROR`'s `flowers102/` folder or the official URLs), extracts the archive once
//! into `<cache>/flowers102/102flowers/jpg/`, and reads the labels and the split.
//! Labels are 0-based here (official label - 1), image indices too (`image_00001.jpg` is
//! index 0).
//!
//! ```no_run
//! use petal_data::download::DataConfig;
//! use petal_data::flowers::Flowers102;
//! use petal_data::{ImageOptions, Split};
//! let flowers = Flowers102::fetch(&DataConfig::from_env("datasets/cache"), None)?;
//! let three = flowers.most_frequent_classes(3)?;
//! let split = three.random_split([0.7, 0.15, 0.15], 42)?;
//! let train = three.dataset(&flowers, &split.train, ImageOptions::new(128))?.cached();
//! let test102 = flowers.dataset(flowers.split(Split::Test), ImageOptions::new(128))?;
//! # Ok::<(), petal_data::DataError>(())
//! ```

mod folder;
mod names;

use std::path::{Path, PathBuf};

pub use names::CLASS_NAMES;

use crate::download::{fetch_dataset, DataConfig, DatasetProgress};
use crate::error::{DataError, Result};
use crate::extract::extract_tgz;
use crate::images::{ImageDataset, ImageOptions};
use crate::manifest::Manifest;
use crate::mat::{read_mat, MatArray, MatFile};
use crate::split::{stratified_split, Split, SplitIndices};

/// The number of classes.
pub const NUM_CLASSES: usize = 102;

/// The folder, inside the dataset's cache folder, the archive is extracted into.
pub const IMAGES_DIR: &str = "102flowers";

/// Oxford 102 Flowers: where the photos are, their labels and the official split.
#[derive(Clone, Debug)]
pub struct Flowers102 {
    image_root: PathBuf,
    labels: Vec<usize>,
    official: SplitIndices,
}

impl Flowers102 {
    /// Fetches and verifies the dataset's files into the cache (see
    /// [`crate::download::fetch_dataset`]), extracts the archive once (see
    /// [`crate::extract::extract_tgz`]) and opens it.
    pub fn fetch(config: &DataConfig, progress: Option<DatasetProgress>) -> Result<Self> {
        Self::fetch_with(config, &Manifest::flowers102(), progress)
    }

    /// [`Flowers102::fetch`] with another manifest naming the same three files (e.g. a
    /// private copy with its own checksums).
    pub fn fetch_with(
        config: &DataConfig,
        manifest: &Manifest,
        progress: Option<DatasetProgress>,
    ) -> Result<Self> {
        let dir = fetch_dataset(config, manifest, progress)?;
        let image_root = dir.join(IMAGES_DIR);
        extract_tgz(&dir.join("102flowers.tgz"), &image_root)?;
        Self::open(
            image_root,
            dir.join("imagelabels.mat"),
            dir.join("setid.mat"),
        )
    }

    /// Reads the labels and the split; `image_root` is the folder holding `jpg/` (its
    /// photos are opened only when loaded).
    pub fn open(
        image_root: impl Into<PathBuf>,
        labels_mat: impl AsRef<Path>,
        setid_mat: impl AsRef<Path>,
    ) -> Result<Self> {
        let image_root = image_root.into();
        let jpg = image_root.join("jpg");
        if !jpg.is_dir() {
            return Err(DataError::Missing {
                path: jpg,
                reason: "the extracted Oxford 102 Flowers photos belong here".into(),
            });
        }
        let labels = read_labels(&read_mat(labels_mat)?)?;
        let official = read_official_split(&read_mat(setid_mat)?, labels.len())?;
        Ok(Self {
            image_root,
            labels,
            official,
        })
    }

    /// The number of photos.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` when there are no photos.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 0-based label of every photo, by image index.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The file of image `index` (0-based): `<root>/jpg/image_{index + 1:05}.jpg`.
    pub fn image_path(&self, index: usize) -> PathBuf {
        self.image_root
            .join("jpg")
            .join(format!("image_{:05}.jpg", index + 1))
    }

    /// The image indices of one part of the official split.
    pub fn split(&self, part: Split) -> &[usize] {
        self.official.get(part)
    }

    /// The official split.
    pub fn official_split(&self) -> &SplitIndices {
        &self.official
    }

    /// A seeded split stratified by class, see [`stratified_split`].
    pub fn random_split(&self, fractions: [f64; 3], seed: u64) -> Result<SplitIndices> {
        stratified_split(&self.labels, fractions, seed)
    }

    /// The number of photos of each of the 102 classes.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; NUM_CLASSES];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }

    /// The `k` most frequent classes (ties broken by the lower class index) and their
    /// photos, relabelled `0..k` in that order.
    pub fn most_frequent_classes(&self, k: usize) -> Result<ClassSubset> {
        if k == 0 || k > NUM_CLASSES {
            return Err(DataError::invalid(
                "Flowers102::most_frequent_classes",
                format!("k = {k} must be in 1..={NUM_CLASSES}"),
            ));
        }
        let counts = self.class_counts();
        let mut classes: Vec<usize> = (0..NUM_CLASSES).collect();
        classes.sort_by_key(|&c| (std::cmp::Reverse(counts[c]), c));
        classes.truncate(k);
        let mut new_label = vec![None; NUM_CLASSES];
        for (new, &old) in classes.iter().enumerate() {
            new_label[old] = Some(new);
        }
        let (indices, labels) = self
            .labels
            .iter()
            .enumerate()
            .filter_map(|(index, &label)| Some((index, new_label[label]?)))
            .unzip();
        Ok(ClassSubset {
            names: classes.iter().map(|&c| CLASS_NAMES[c]).collect(),
            classes,
            indices,
            labels,
        })
    }

    /// The photos `indices` with their 102-class labels as an image dataset.
    pub fn dataset(&self, indices: &[usize], options: ImageOptions) -> Result<ImageDataset> {
        let labels = self.labels_of(indices)?;
        let paths = indices.iter().map(|&i| self.image_path(i)).collect();
        ImageDataset::new(paths, labels, NUM_CLASSES, options)
    }

    fn labels_of(&self, indices: &[usize]) -> Result<Vec<usize>> {
        indices
            .iter()
            .map(|&i| {
                self.labels
                    .get(i)
                    .copied()
                    .ok_or(DataError::IndexOutOfRange {
                        index: i,
                        len: self.len(),
                    })
            })
            .collect()
    }
}

/// Some classes of Oxford 102 Flowers relabelled `0..k`, from
/// [`Flowers102::most_frequent_classes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassSubset {
    /// The original 0-based classes; new label `i` is `classes[i]`.
    pub classes: Vec<usize>,
    /// Their names, new label order.
    pub names: Vec<&'static str>,
    /// The image indices of the subset's photos, ascending.
    pub indices: Vec<usize>,
    /// The new label of each photo, parallel to `indices`.
    pub labels: Vec<usize>,
}

impl ClassSubset {
    /// A seeded stratified split of the subset; its values are positions into
    /// [`ClassSubset::indices`].
    pub fn random_split(&self, fractions: [f64; 3], seed: u64) -> Result<SplitIndices> {
        stratified_split(&self.labels, fractions, seed)
    }

    /// The photos at `positions` (into [`ClassSubset::indices`]) with their new labels.
    pub fn dataset(
        &self,
        flowers: &Flowers102,
        positions: &[usize],
        options: ImageOptions,
    ) -> Result<ImageDataset> {
        let mut paths = Vec::with_capacity(positions.len());
        let mut labels = Vec::with_capacity(positions.len());
        for &p in positions {
            let index = *self.indices.get(p).ok_or(DataError::IndexOutOfRange {
                index: p,
                len: self.indices.len(),
            })?;
            paths.push(flowers.image_path(index));
            labels.push(self.labels[p]);
        }
        ImageDataset::new(paths, labels, self.classes.len(), options)
    }
}

/// A row or column vector's values; a matrix is refused.
fn vector<'a>(file: &'a MatFile, name: &str) -> Result<&'a MatArray> {
    let array = file.variable(name)?;
    if array.dims.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(DataError::format(
            file.path(),
            format!("`{name}` must be a vector, has dimensions {:?}", array.dims),
        ));
    }
    Ok(array)
}

/// Whole numbers in `1..=max` from variable `name`, made 0-based.
fn one_based(file: &MatFile, name: &str, max: usize, what: &str) -> Result<Vec<usize>> {
    vector(file, name)?
        .values
        .iter()
        .enumerate()
        .map(|(position, &v)| {
            if v.fract() == 0.0 && v >= 1.0 && v <= max as f64 {
                Ok(v as usize - 1)
            } else {
                Err(DataError::format(
                    file.path(),
                    format!(
                        "`{name}`[{position}] = {v} is not a {what} in 1..={max} (0-based \
                         position {position})"
                    ),
                ))
            }
        })
        .collect()
}

/// The `labels` variable, 1..=102, made 0-based.
fn read_labels(file: &MatFile) -> Result<Vec<usize>> {
    one_based(file, "labels", NUM_CLASSES, "class label")
}

/// `trnid`, `valid` and `tstid`: 1-based image ids below `images`, none repeated.
fn read_official_split(file: &MatFile, images: usize) -> Result<SplitIndices> {
    let split = SplitIndices {
        train: one_based(file, "trnid", images, "image id")?,
        val: one_based(file, "valid", images, "image id")?,
        test: one_based(file, "tstid", images, "image id")?,
    };
    let mut seen = vec![false; images];
    for (name, part) in [
        ("trnid", &split.train),
        ("valid", &split.val),
        ("tstid", &split.test),
    ] {
        for &index in part {
            if std::mem::replace(&mut seen[index], true) {
                return Err(DataError::format(
                    file.path(),
                    format!("image id {} appears twice (again in `{name}`)", index + 1),
                ));
            }
        }
    }
    Ok(split)
}
