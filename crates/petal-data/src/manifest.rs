//! Dataset manifests: for each file, its name, official URL, and the sha256 and size of
//! its decompressed payload (so a recompressed mirror copy still verifies).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The MNIST manifest, the same text as `datasets/mnist.json` in the workspace.
const MNIST_JSON: &str = include_str!("../../../datasets/mnist.json");

/// The files that make up a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The dataset's folder name in the cache and in a mirror, e.g. `mnist`.
    pub dataset: String,
    /// Its files.
    pub files: Vec<ManifestFile>,
}

/// One file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The file name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: String,
    /// The official download URL.
    pub url: String,
    /// Lowercase hex sha256 of the payload, decompressed when the name ends in `.gz`.
    pub sha256: String,
    /// The payload's size in bytes, decompressed when the name ends in `.gz`.
    pub size: u64,
}

impl Manifest {
    /// The manifest of MNIST, built into the crate.
    ///
    /// ```
    /// let mnist = petal_data::Manifest::mnist();
    /// assert_eq!(mnist.dataset, "mnist");
    /// assert_eq!(mnist.files.len(), 4);
    /// ```
    pub fn mnist() -> Self {
        Self::parse(MNIST_JSON, Path::new("datasets/mnist.json"))
            .expect("the built-in MNIST manifest is valid (checked by a test)")
    }

    /// Reads and checks a manifest file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "reading", e))?;
        Self::parse(&text, path)
    }

    /// Parses and checks manifest JSON; `origin` names it in errors.
    ///
    /// Names must be plain file names (they become paths in the cache) and hashes 64
    /// lowercase hex digits.
    pub fn parse(json: &str, origin: &Path) -> Result<Self> {
        let manifest: Self = serde_json::from_str(json)
            .map_err(|e| DataError::format(origin, format!("invalid manifest JSON: {e}")))?;
        let bad = |reason: String| Err(DataError::format(origin, reason));
        if !is_plain_name(&manifest.dataset) {
            return bad(format!(
                "dataset name {:?} must be a plain folder name",
                manifest.dataset
            ));
        }
        for file in &manifest.files {
            if !is_plain_name(&file.name) {
                return bad(format!(
                    "file name {:?} must be a plain file name",
                    file.name
                ));
            }
            let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
            if file.sha256.len() != 64 || !file.sha256.chars().all(hex) {
                return bad(format!(
                    "{}: sha256 {:?} is not 64 lowercase hex digits",
                    file.name, file.sha256
                ));
            }
        }
        Ok(manifest)
    }

    /// The entry named `name`, if any.
    pub fn file(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// A non-empty name without path separators that is not `.` or `..`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}
