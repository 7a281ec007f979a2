//! [`ImageFolder`]: a dataset laid out as one sub-folder of images per class.

use std::fs;
use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::images::{ImageDataset, ImageOptions};

/// A file left out of an [`ImageFolder`] and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was left out, e.g. the decoder's complaint about its header.
    pub reason: String,
}

/// `root/<class>/<image>`: the sorted sub-folder names are the classes (index = position),
/// the files inside are that class's images (sorted by name).
///
/// Opening reads every image's header (not its pixels): files that cannot be opened or
/// whose header does not decode are left out and listed in [`ImageFolder::skipped`];
/// class folders without a usable image keep their index and are listed in
/// [`ImageFolder::empty_classes`]. Hidden files (`.name`) are ignored.
#[derive(Debug)]
pub struct ImageFolder {
    dataset: ImageDataset,
    class_names: Vec<String>,
    skipped: Vec<SkippedFile>,
    empty_classes: Vec<String>,
}

impl ImageFolder {
    /// Scans `root` and builds the dataset; samples are decoded per `options` when loaded.
    pub fn open(root: impl AsRef<Path>, options: ImageOptions) -> Result<Self> {
        let root = root.as_ref();
        let class_names: Vec<String> = sorted_entries(root)?
            .into_iter()
            .filter(|path| path.is_dir())
            .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect();
        if class_names.is_empty() {
            return Err(DataError::format(root, "no class sub-folders"));
        }
        let mut paths = Vec::new();
        let mut labels = Vec::new();
        let mut skipped = Vec::new();
        let mut empty_classes = Vec::new();
        for (label, class) in class_names.iter().enumerate() {
            let before = paths.len();
            for path in sorted_entries(&root.join(class))? {
                if !path.is_file() {
                    continue;
                }
                match read_header(&path) {
                    Ok(()) => {
                        paths.push(path);
                        labels.push(label);
                    }
                    Err(reason) => skipped.push(SkippedFile { path, reason }),
                }
            }
            if paths.len() == before {
                empty_classes.push(class.clone());
            }
        }
        let dataset = ImageDataset::new(paths, labels, class_names.len(), options)?;
        Ok(Self {
            dataset,
            class_names,
            skipped,
            empty_classes,
        })
    }

    /// This folder keeping decoded samples in memory (see [`ImageDataset::cached`]).
    pub fn cached(self) -> Self {
        Self {
            dataset: self.dataset.cached(),
            ..self
        }
    }

    /// The class names, index = label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The files left out, with the reason.
    pub fn skipped(&self) -> &[SkippedFile] {
        &self.skipped
    }

    /// The classes whose folder holds no usable image.
    pub fn empty_classes(&self) -> &[String] {
        &self.empty_classes
    }

    /// The underlying dataset (paths and labels).
    pub fn dataset(&self) -> &ImageDataset {
        &self.dataset
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.dataset.len()
    }
    fn sample_shape(&self) -> &[usize] {
        self.dataset.sample_shape()
    }
    fn num_classes(&self) -> usize {
        self.dataset.num_classes()
    }
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        self.dataset.load(index, out)
    }
}

/// The non-hidden entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| DataError::io(dir, "listing", e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "listing", e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Reads the image header of `path`: its format and dimensions.
fn read_header(path: &Path) -> Result<(), String> {
    let (width, height) = image::ImageReader::open(path)
        .and_then(|reader| reader.with_guessed_format())
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())?;
    if width == 0 || height == 0 {
        return Err(format!("empty image ({width}x{height})"));
    }
    Ok(())
}
