//! Where pretrained weights live on this machine, how they get there, and how a catalog
//! entry becomes a model with its verified weights.
//!
//! Weights are read from one folder ([`WeightsFolder`]: `PETAL_WEIGHTS`, else
//! `<cache>/weights/`), or from `<cache>/weights/` when only fetched there. [`WeightsFolder::fetch`] brings files into the cache through
//! petal-data's verified downloader, exactly like a dataset called `weights`: from the
//! mirror (`<PETAL_MIRROR>/weights/`, or the `weights/` folder beside the mirror) or the
//! file's official URL, checked against the catalog's SHA-256 (or the prefix torchvision
//! publishes), written atomically. A torchvision `.pth` is then converted once to
//! safetensors by petal-interop (`petal_interop::fetch_weights`), which records the
//! checkpoint's sha256 in the converted file ([`PretrainedWeights::provenance`]); that
//! record is what verifies the converted file later.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use petal_data::download::{
    fetch_file, is_cached, remove_cached, verified_sha256, verify_copy, DataConfig, DatasetProgress,
};
use petal_data::{Manifest, ManifestFile};
use petal_nn::weights::{read_metadata, read_tensor_file};
use petal_nn::Model;

use super::catalog::{
    read_class_names, PretrainedWeights, WeightsFormat, CATALOG, IMAGENET_CLASSES,
};
use super::{assign_pretrained, is_counter};
use crate::{Options, ZooError};

/// The metadata key of a converted checkpoint's file name.
const SOURCE_FILE: &str = "petal.source_file";
/// The metadata key of a converted checkpoint's sha256 (all 64 digits).
const SOURCE_SHA256: &str = "petal.source_sha256";

/// The folder pretrained weights are read from, and the data configuration (cache and
/// mirror) they are fetched with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightsFolder {
    /// Where weights files and their class-name files are read.
    pub folder: PathBuf,
    /// The cache (weights land in `<cache_root>/weights/`) and mirror to fetch from.
    pub data: DataConfig,
}

impl WeightsFolder {
    /// `PETAL_WEIGHTS` when set, else `<data.cache_root>/weights`.
    pub fn from_env(data: DataConfig) -> Self {
        let folder = std::env::var_os("PETAL_WEIGHTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| data.cache_root.join("weights"));
        Self { folder, data }
    }

    /// The folder that holds `entry`'s weights: this folder, else the cache that
    /// [`WeightsFolder::fetch`] fills (they differ when `PETAL_WEIGHTS` names a folder
    /// of its own); this folder when neither has them.
    fn holding(&self, entry: &PretrainedWeights) -> PathBuf {
        let cache = self.data.dataset_dir(&weights_manifest(&[entry]));
        if !entry.files_in(&self.folder).0.is_file() && entry.files_in(&cache).0.is_file() {
            cache
        } else {
            self.folder.clone()
        }
    }

    /// The weights file of `entry` in this folder (or, when fetched there, in the
    /// cache), or an error saying how to get it.
    pub fn weights_file(&self, entry: &PretrainedWeights) -> Result<PathBuf, ZooError> {
        let (file, _) = entry.files_in(&self.holding(entry));
        if file.is_file() {
            Ok(file)
        } else {
            Err(ZooError::MissingWeights {
                path: file,
                name: entry.name,
                file_name: entry.weights_file_name(),
            })
        }
    }

    /// The class names of `entry`, one per class, from its class-name file here.
    pub fn class_names(&self, entry: &PretrainedWeights) -> Result<Vec<String>, ZooError> {
        let (_, classes) = entry.files_in(&self.holding(entry));
        class_names_in(&classes)
    }

    /// The 1000 ImageNet-1k class names of the catalog's torchvision and EfficientNet
    /// entries, from their class-name file here (for ImageNet models from elsewhere).
    pub fn imagenet_class_names(&self) -> Result<Vec<String>, ZooError> {
        class_names_in(&self.folder.join(IMAGENET_CLASSES.0))
    }

    /// `entry`'s architecture built with `options`, with its weights from this folder,
    /// checked against the catalog's SHA-256 before loading. A model without its top
    /// (`include_top: false`) leaves the file's classifier unused.
    pub fn load(&self, entry: &PretrainedWeights, options: &Options) -> Result<Model, ZooError> {
        load_verified(entry, &self.weights_file(entry)?, options)
    }

    /// Fetches `entries` (each published weights file and its class-name file) into
    /// `<cache_root>/weights/` and returns that folder. Files that no URL serves need a
    /// mirror (unless already cached); without one the error says so.
    ///
    /// A published `.pth` lands as published, for petal-interop to convert
    /// (`petal_interop::fetch_weights`); it is not fetched again once its conversion is
    /// in the cache and verifies.
    pub fn fetch(
        &self,
        entries: &[&PretrainedWeights],
        progress: Option<DatasetProgress>,
    ) -> Result<PathBuf, ZooError> {
        let manifest = weights_manifest(entries);
        let mut config = self.data.clone();
        config.mirror = config.mirror.map(|mirror| match mirror.parent() {
            Some(parent) if !mirror.join("weights").is_dir() && parent.join("weights").is_dir() => {
                parent.to_path_buf()
            }
            _ => mirror,
        });
        let folder = config.dataset_dir(&manifest);
        let mut wanted = Vec::new();
        for file in &manifest.files {
            if is_converted(entries, &file.name, &folder)? {
                continue;
            }
            // Every source is checked before anything is downloaded.
            if config.mirror.is_none()
                && file.url.is_empty()
                && !is_cached(&config, &manifest, file)?
            {
                return Err(ZooError::NoSource {
                    file_name: file.name.clone(),
                    source_desc: file.note.clone().unwrap_or_default(),
                });
            }
            wanted.push(file);
        }
        for file in wanted {
            let report = |done, total| {
                if let Some(progress) = progress {
                    progress(file, done, total);
                }
            };
            fetch_file(&config, &manifest, file, Some(&report))?;
        }
        Ok(folder)
    }

    /// Removes `entry`'s published file from the cache (`<cache_root>/weights/`), once
    /// converted: the conversion is what Petal loads.
    pub fn remove_published(&self, entry: &PretrainedWeights) -> Result<(), ZooError> {
        let manifest = weights_manifest(&[entry]);
        Ok(remove_cached(&self.data, &manifest, &manifest.files[0])?)
    }
}

/// Whether `file_name` is the published `.pth` of one of `entries` whose conversion is
/// in `folder` and verifies.
fn is_converted(
    entries: &[&PretrainedWeights],
    file_name: &str,
    folder: &Path,
) -> Result<bool, ZooError> {
    for entry in entries {
        let (converted, _) = entry.files_in(folder);
        if entry.format == WeightsFormat::TorchvisionPth
            && entry.file_name == file_name
            && converted.is_file()
        {
            return entry.verify(&converted);
        }
    }
    Ok(false)
}

/// `entry`'s architecture built with `options`, with the weights at `path` (a
/// safetensors file) after checking them against the catalog: the file's SHA-256, or
/// for a converted `.pth` the checkpoint's sha256 its metadata records.
pub fn load_verified(
    entry: &PretrainedWeights,
    path: &Path,
    options: &Options,
) -> Result<Model, ZooError> {
    let tensors = match entry.format {
        WeightsFormat::Safetensors if !entry.verify(path)? => None,
        WeightsFormat::Safetensors => Some(read_tensor_file(path, is_counter)?.tensors),
        WeightsFormat::TorchvisionPth => {
            let file = read_tensor_file(path, is_counter)?;
            entry.is_conversion(&file.metadata).then_some(file.tensors)
        }
    };
    let tensors = tensors.ok_or_else(|| entry.wrong_weights(path))?;
    let mut model = entry.arch.build(options)?;
    assign_pretrained(&mut model, entry.arch, tensors, path)?;
    Ok(model)
}

impl PretrainedWeights {
    /// Whether the weights file at `path` (the one Petal loads, see
    /// [`PretrainedWeights::weights_file_name`]) holds exactly these weights: its SHA-256
    /// and size are the catalog's, or, for a `.pth` checkpoint, it is the conversion of a
    /// file with the catalog's sha256. An unreadable file is an error naming it.
    pub fn verify(&self, path: &Path) -> Result<bool, ZooError> {
        match self.format {
            WeightsFormat::Safetensors => self.verify_published(path),
            // The header alone: its metadata records what the file was converted from.
            WeightsFormat::TorchvisionPth => Ok(self.is_conversion(&read_metadata(path)?)),
        }
    }

    /// The published weights file as the downloader knows it (name, URL, sha256 or its
    /// published prefix, size).
    fn published_file(&self) -> ManifestFile {
        weights_manifest(&[self]).files.remove(0)
    }

    /// Whether the file at `path` is the published file (e.g. a `.pth` downloaded by
    /// hand): its SHA-256 (or the published prefix) and size (when published) are the
    /// catalog's.
    pub fn verify_published(&self, path: &Path) -> Result<bool, ZooError> {
        Ok(verify_copy(path, &self.published_file())?)
    }

    /// The metadata to record in the safetensors conversion of the published file at
    /// `published`: its name and full sha256 (`petal.source_file`,
    /// `petal.source_sha256`). A file that is not the published one is an error.
    pub fn provenance(&self, published: &Path) -> Result<HashMap<String, String>, ZooError> {
        let sha256 = verified_sha256(published, &self.published_file())?
            .ok_or_else(|| self.wrong_weights(published))?;
        Ok(HashMap::from([
            (SOURCE_FILE.to_string(), self.file_name.to_string()),
            (SOURCE_SHA256.to_string(), sha256),
        ]))
    }

    /// Whether a file with this safetensors `metadata` is the conversion of this entry's
    /// published checkpoint.
    fn is_conversion(&self, metadata: &HashMap<String, String>) -> bool {
        metadata
            .get(SOURCE_SHA256)
            .is_some_and(|sha256| sha256.len() == 64 && sha256.starts_with(self.sha256))
    }

    /// The error for a file at `path` that holds other weights than these.
    pub fn wrong_weights(&self, path: &Path) -> ZooError {
        ZooError::WrongWeights {
            path: path.to_path_buf(),
            name: self.name,
            expected: self.sha256,
        }
    }
}

/// The catalog entry called `name`, or an error listing the known names.
pub fn weights_named(name: &str) -> Result<&'static PretrainedWeights, ZooError> {
    PretrainedWeights::named(name).ok_or_else(|| ZooError::UnknownWeights {
        name: name.to_string(),
        known: CATALOG
            .iter()
            .map(|w| w.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The catalog's weights as a dataset called `weights`: each weights file and its
/// class-name file (once, when entries share it), verified by SHA-256 like any dataset
/// file.
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

/// The class names in the file `classes`, one per line.
fn class_names_in(classes: &Path) -> Result<Vec<String>, ZooError> {
    read_class_names(classes).map_err(|source| {
        ZooError::Data(petal_data::DataError::Io {
            path: classes.to_path_buf(),
            action: "reading the class names",
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with_mirror(mirror: &Path, cache: &Path) -> WeightsFolder {
        let data = DataConfig {
            mirror: Some(mirror.to_path_buf()),
            ..DataConfig::new(cache)
        };
        WeightsFolder {
            folder: cache.join("weights"),
            data,
        }
    }

    fn lite0() -> &'static PretrainedWeights {
        weights_named("efficientnet-lite0").unwrap()
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
        let error = folder_with_mirror(&mirror, &cache)
            .fetch(&[lite0()], None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("efficientnet_lite0.safetensors"), "{error}");
        assert!(!cache
            .join("weights/efficientnet_lite0.safetensors")
            .exists());
    }

    /// With `PETAL_WEIGHTS` naming its own folder, weights fetched into the cache are
    /// still found there; the folder's own copy comes first.
    #[test]
    fn weights_fetched_into_the_cache_are_found_beside_the_weights_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = WeightsFolder {
            folder: dir.path().join("mine"),
            data: DataConfig::new(dir.path().join("cache")),
        };
        let entry = lite0();
        let error = folder.weights_file(entry).unwrap_err().to_string();
        assert!(error.contains("mine"), "{error}");
        let (cached, classes) = entry.files_in(&dir.path().join("cache/weights"));
        std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
        std::fs::write(&cached, b"weights").unwrap();
        std::fs::write(&classes, "tench\ngoldfish\n").unwrap();
        assert_eq!(folder.weights_file(entry).unwrap(), cached);
        assert_eq!(folder.class_names(entry).unwrap(), ["tench", "goldfish"]);
        let (own, _) = entry.files_in(&folder.folder);
        std::fs::create_dir_all(&folder.folder).unwrap();
        std::fs::write(&own, b"weights").unwrap();
        assert_eq!(folder.weights_file(entry).unwrap(), own);
    }

    #[test]
    fn unknown_models_and_missing_sources_are_named() {
        let error = weights_named("resnet1000").unwrap_err().to_string();
        assert!(
            error.contains("resnet1000") && error.contains("efficientnet-lite0"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let offline = WeightsFolder {
            folder: dir.path().join("weights"),
            data: DataConfig::new(dir.path()),
        };
        let error = offline.fetch(&[lite0()], None).unwrap_err().to_string();
        assert!(error.contains("PETAL_MIRROR"), "{error}");
        // resnet18's checkpoint has a URL but its class names have none: refused before
        // downloading anything.
        let resnet18 = weights_named("resnet18").unwrap();
        let error = offline.fetch(&[resnet18], None).unwrap_err().to_string();
        assert!(
            error.contains("imagenet_classes.txt: no public URL serves this file"),
            "{error}"
        );
        assert!(!dir.path().join("weights").exists());
    }

    #[test]
    fn missing_and_wrong_weights_name_the_file_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let folder = WeightsFolder {
            folder: dir.path().to_path_buf(),
            data: DataConfig::new(dir.path()),
        };
        let error = folder.weights_file(lite0()).unwrap_err().to_string();
        assert!(
            error.contains(
                "efficientnet_lite0.safetensors: the efficientnet-lite0 weights are not there"
            ),
            "{error}"
        );
        assert!(
            error.contains("cargo xtask download weights efficientnet-lite0"),
            "{error}"
        );
        let path = dir.path().join(lite0().file_name);
        std::fs::write(&path, b"other bytes").unwrap();
        assert_eq!(folder.weights_file(lite0()).unwrap(), path);
        let Err(error) = folder.load(lite0(), &Options::default()) else {
            panic!("other bytes loaded as weights");
        };
        let error = error.to_string();
        assert!(
            error.contains("efficientnet_lite0.safetensors")
                && error.contains("not the efficientnet-lite0 weights"),
            "{error}"
        );
    }

    #[test]
    fn the_shared_weights_verify_through_the_mirror_beside_the_datasets() {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
        if !shared
            .join("weights/efficientnet_lite0.safetensors")
            .exists()
        {
            println!("skipped: {} has no weights", shared.display());
            return;
        }
        let cache = tempfile::tempdir().unwrap();
        let weights = folder_with_mirror(&shared.join("datasets"), cache.path());
        let folder = weights.fetch(&[lite0()], None).unwrap();
        assert!(folder.join("efficientnet_lite0.safetensors").is_file());
        assert!(folder.join("imagenet_classes.txt").is_file());
        // The mirror has none of torchvision's checkpoints: the error names the file.
        let error = weights
            .fetch(&[weights_named("resnet18").unwrap()], None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("has no copy of resnet18-f37072fd.pth"),
            "{error}"
        );
    }
}
