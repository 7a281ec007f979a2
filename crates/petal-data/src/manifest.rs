//! Dataset manifests: for each file, its name, official URL, and the sha256 and size of
//! its decompressed payload (so a recompressed mirror copy still verifies), plus any
//! other versions of the file that are accepted too (e.g. a reduced copy, or an official
//! archive for which only an md5 is published).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The MNIST manifest, the same text as `datasets/mnist.json` in the workspace.
const MNIST_JSON: &str = include_str!("../../../datasets/mnist.json");

/// The Oxford 102 Flowers manifest, the same text as `datasets/flowers102.json`.
const FLOWERS102_JSON: &str = include_str!("../../../datasets/flowers102.json");

/// The fewest hex digits of a sha256 prefix that identify a file (torchvision's rule:
/// the 8 digits in `resnet18-f37072fd.pth`).
pub const MIN_SHA256_PREFIX: usize = 8;

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
    /// Manifest files give all 64 digits; an entry built in code for a source that
    /// publishes only a prefix (torchvision's file names carry the first 8 or 10 digits)
    /// gives that prefix, of at least [`MIN_SHA256_PREFIX`] digits, and the payload's
    /// sha256 must start with it.
    pub sha256: String,
    /// The payload's size in bytes, decompressed when the name ends in `.gz`; 0 when the
    /// source does not publish it (then the sha256 alone decides).
    pub size: u64,
    /// Which version of the file `sha256` and `size` describe, when worth saying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Other versions of the file that verify too; empty for most files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_accept: Vec<AcceptedVersion>,
}

/// Another version of a manifest file that is accepted, identified by the sha256 and
/// size of its payload (decompressed like the main entry), by the md5 of the file as
/// stored (compressed), or both; every digest given must match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedVersion {
    /// Lowercase hex sha256 of the payload (decompressed when the name ends in `.gz`/`.tgz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The payload's size in bytes; given exactly when `sha256` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Lowercase hex md5 of the file as stored (not decompressed), for sources that only
    /// publish an md5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// What this version is and where the digest comes from.
    pub note: String,
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

    /// The manifest of Oxford 102 Flowers, built into the crate: `102flowers.tgz` (the
    /// official archive, verified by its published md5, or the reduced copy of
    /// `../shared`, verified by the sha256 of its tar payload), `imagelabels.mat` and
    /// `setid.mat`.
    ///
    /// ```
    /// let flowers = petal_data::Manifest::flowers102();
    /// assert_eq!(flowers.dataset, "flowers102");
    /// assert_eq!(flowers.file("102flowers.tgz").unwrap().also_accept.len(), 1);
    /// ```
    pub fn flowers102() -> Self {
        Self::parse(FLOWERS102_JSON, Path::new("datasets/flowers102.json"))
            .expect("the built-in Oxford 102 Flowers manifest is valid (checked by a test)")
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
            check_hex(&file.sha256, 64, "sha256")
                .map_err(|reason| DataError::format(origin, format!("{}: {reason}", file.name)))?;
            for version in &file.also_accept {
                check_version(version).map_err(|reason| {
                    DataError::format(
                        origin,
                        format!(
                            "{}: accepted version {:?}: {reason}",
                            file.name, version.note
                        ),
                    )
                })?;
            }
        }
        Ok(manifest)
    }

    /// The entry named `name`, if any.
    pub fn file(&self, name: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// Checks that `digest` is `digits` lowercase hex digits.
fn check_hex(digest: &str, digits: usize, what: &str) -> Result<(), String> {
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if digest.len() == digits && digest.chars().all(hex) {
        Ok(())
    } else {
        Err(format!(
            "{what} {digest:?} is not {digits} lowercase hex digits"
        ))
    }
}

/// Checks that an accepted version has a digest, well-formed, with a size beside a sha256.
fn check_version(version: &AcceptedVersion) -> Result<(), String> {
    match (&version.sha256, version.size, &version.md5) {
        (None, None, None) => return Err("needs a sha256 and size, or an md5".into()),
        (Some(_), None, _) | (None, Some(_), _) => return Err("sha256 and size go together".into()),
        _ => {}
    }
    if let Some(sha256) = &version.sha256 {
        check_hex(sha256, 64, "sha256")?;
    }
    if let Some(md5) = &version.md5 {
        check_hex(md5, 32, "md5")?;
    }
    Ok(())
}

/// A non-empty name without path separators that is not `.` or `..`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}
