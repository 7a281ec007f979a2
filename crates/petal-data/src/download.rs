//! Fetching a dataset's files into the local cache, from a mirror folder or the official
//! URLs, verified against the manifest.
//!
//! A file lands at `<cache_root>/<dataset>/<name>` only after the sha256 and size of its
//! decompressed payload match the manifest (or one of the entry's accepted other
//! versions, see [`crate::manifest::AcceptedVersion`]): bytes go to `<name>.part` first (an HTTP
//! download resumes it with `Range`), are verified, fsynced and renamed. A mismatch
//! removes the `.part` file; an existing valid cached file is never touched. A process
//! fetching a file holds the lock file `.<name>.lock` beside it, so a second process
//! fetching the same file waits, then finds it cached, instead of writing the same
//! `.part` file at once.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
pub use crate::http::Progress;
use crate::http::{copy_with_progress, download};
use crate::lock::{lock_path, CacheLock};
use crate::manifest::{Manifest, ManifestFile};
use crate::verify::{
    cached_file_is_valid, describe_alternatives, matches, payload_of, stamp_path, write_stamp,
};

/// A callback told which file is being fetched, its bytes done and its total when known.
pub type DatasetProgress<'a> = &'a dyn Fn(&ManifestFile, u64, Option<u64>);

/// Where datasets are cached and, optionally, a local mirror to read them from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataConfig {
    /// The cache root: dataset `d` lives in `<cache_root>/<d>/`.
    pub cache_root: PathBuf,
    /// A folder holding `<dataset>/<file name>` copies of the official files; when set,
    /// files are read from it instead of the network.
    pub mirror: Option<PathBuf>,
}

impl DataConfig {
    /// A cache at `cache_root`, downloading from the official URLs.
    pub fn new(cache_root: impl Into<PathBuf>) -> Self {
        Self {
            cache_root: cache_root.into(),
            mirror: None,
        }
    }

    /// Reads `PETAL_DATA` (the cache root, else `default_cache_root`) and `PETAL_MIRROR`
    /// (the mirror folder). Empty variables count as unset.
    pub fn from_env(default_cache_root: impl Into<PathBuf>) -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            cache_root: var("PETAL_DATA").unwrap_or_else(|| default_cache_root.into()),
            mirror: var("PETAL_MIRROR"),
        }
    }

    /// The folder a dataset's files are cached in, `<cache_root>/<dataset>`.
    pub fn dataset_dir(&self, manifest: &Manifest) -> PathBuf {
        self.cache_root.join(&manifest.dataset)
    }
}

/// Makes `file` of `manifest` present and verified in the cache; returns its path.
///
/// A cached copy that verifies is returned as is. Otherwise the file is copied from
/// `<mirror>/<dataset>/<name>` when a mirror is configured (a missing mirror file is an
/// error), else downloaded from its URL, resuming a `.part` file left by an earlier
/// attempt. `progress` is told the bytes done and the total when known.
pub fn fetch_file(
    config: &DataConfig,
    manifest: &Manifest,
    file: &ManifestFile,
    progress: Option<Progress>,
) -> Result<PathBuf> {
    let dir = config.dataset_dir(manifest);
    let target = dir.join(&file.name);
    if cached_file_is_valid(&target, file)? {
        return Ok(target);
    }
    let mirror_copy = match &config.mirror {
        Some(mirror) => {
            let source = mirror.join(&manifest.dataset).join(&file.name);
            if !source.is_file() {
                return Err(DataError::Missing {
                    path: source,
                    reason: format!(
                        "the mirror {} has no copy of {}",
                        mirror.display(),
                        file.name
                    ),
                });
            }
            Some(source)
        }
        None => None,
    };
    let _lock = CacheLock::acquire(&lock_path(&target))?;
    // Another process may have fetched the file while this one waited for the lock.
    if cached_file_is_valid(&target, file)? {
        return Ok(target);
    }
    let part = dir.join(format!("{}.part", file.name));
    let source = match mirror_copy {
        Some(source) => {
            copy_file(&source, &part, progress)?;
            source.display().to_string()
        }
        None => {
            download(&file.url, &part, progress)?;
            file.url.clone()
        }
    };
    let payload = match payload_of(&part, file) {
        Ok(payload) => payload,
        Err(e) => {
            let _ = fs::remove_file(&part);
            return Err(DataError::format(
                &target,
                format!("the copy from {source} is unreadable ({e}); the partial file was removed"),
            ));
        }
    };
    if !matches(&payload, file) {
        fs::remove_file(&part).map_err(|e| DataError::io(&part, "removing", e))?;
        let also_accepted = describe_alternatives(&payload, file);
        return Err(DataError::Checksum {
            name: file.name.clone(),
            source_desc: source,
            expected_sha256: file.sha256.clone(),
            actual_sha256: payload.sha256,
            expected_size: file.size,
            actual_size: payload.size,
            also_accepted: also_accepted.map(Box::new),
        });
    }
    fs::rename(&part, &target)
        .map_err(|e| DataError::io(&target, "moving the verified .part file into place", e))?;
    // Make the rename durable too; a failure only costs a re-fetch after a crash.
    let _ = File::open(&dir).and_then(|d| d.sync_all());
    write_stamp(&target, file)?;
    Ok(target)
}

/// `true` when `file` of `manifest` is in the cache and verifies; a file unchanged since
/// it last verified is not hashed again.
pub fn is_cached(config: &DataConfig, manifest: &Manifest, file: &ManifestFile) -> Result<bool> {
    cached_file_is_valid(&config.dataset_dir(manifest).join(&file.name), file)
}

/// Removes `file` of `manifest` from the cache, with its verification stamp: for a
/// download that was turned into another file (a `.pth` converted to safetensors). A
/// file that is not there is no error.
pub fn remove_cached(config: &DataConfig, manifest: &Manifest, file: &ManifestFile) -> Result<()> {
    let target = config.dataset_dir(manifest).join(&file.name);
    for path in [stamp_path(&target), target] {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(DataError::io(&path, "removing", e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `true` when the copy at `path` (e.g. in a mirror) holds `file`'s payload; hashes the
/// whole file and writes nothing. An unreadable copy is an error naming it.
pub fn verify_copy(path: &Path, file: &ManifestFile) -> Result<bool> {
    Ok(verified_sha256(path, file)?.is_some())
}

/// The full sha256 of the payload at `path` when it is `file`'s (as [`verify_copy`]
/// judges, a published prefix included), else `None`: what a file derived from it can
/// record of its source. Hashes the whole file and writes nothing.
pub fn verified_sha256(path: &Path, file: &ManifestFile) -> Result<Option<String>> {
    let payload = payload_of(path, file)?;
    Ok(matches(&payload, file).then_some(payload.sha256))
}

/// Fetches every file of `manifest` (see [`fetch_file`]) and returns the dataset's
/// cache folder. `progress` is told the file, the bytes done and the total when known.
///
/// ```no_run
/// use petal_data::{download::{fetch_dataset, DataConfig}, mnist::load_mnist_folder, Manifest};
/// let config = DataConfig::from_env("datasets/cache");
/// let folder = fetch_dataset(&config, &Manifest::mnist(), None)?;
/// let mnist = load_mnist_folder(folder)?;
/// # Ok::<(), petal_data::DataError>(())
/// ```
pub fn fetch_dataset(
    config: &DataConfig,
    manifest: &Manifest,
    progress: Option<DatasetProgress>,
) -> Result<PathBuf> {
    for file in &manifest.files {
        let per_file = |done, total| {
            if let Some(report) = progress {
                report(file, done, total);
            }
        };
        fetch_file(config, manifest, file, Some(&per_file))?;
    }
    Ok(config.dataset_dir(manifest))
}

/// Copies `source` over `part` and fsyncs it.
fn copy_file(source: &Path, part: &Path, progress: Option<Progress>) -> Result<()> {
    let mut from = File::open(source).map_err(|e| DataError::io(source, "opening", e))?;
    let total = from.metadata().map(|m| m.len()).ok();
    let mut to = File::create(part).map_err(|e| DataError::io(part, "creating", e))?;
    copy_with_progress(&mut from, &mut to, 0, total, progress)
        .map_err(|e| DataError::io(part, "copying the mirror file into", e))?;
    to.sync_all().map_err(|e| DataError::io(part, "syncing", e))
}
