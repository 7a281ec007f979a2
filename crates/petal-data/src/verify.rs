//! Checking a cached file against its manifest entry: the payload's sha256 and size, and
//! a `<name>.verified` stamp so unchanged files are not rehashed on every run.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::manifest::ManifestFile;

/// The sha256 (lowercase hex) and size in bytes of a file's payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    pub sha256: String,
    pub size: u64,
}

/// `true` when files named `name` are compared by their gunzipped payload.
fn is_gzip_name(name: &str) -> bool {
    name.ends_with(".gz") || name.ends_with(".tgz")
}

/// Hashes the payload of `path`, gunzipping on the fly when `name` ends in `.gz`/`.tgz`.
pub(crate) fn payload_of(path: &Path, name: &str) -> Result<Payload> {
    let file = fs::File::open(path).map_err(|e| DataError::io(path, "opening", e))?;
    let mut reader: Box<dyn Read> = if is_gzip_name(name) {
        Box::new(MultiGzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let mut hasher = Sha256::new();
    let size = io::copy(&mut reader, &mut hasher).map_err(|e| {
        DataError::format(
            path,
            format!("cannot read the payload (corrupt or not gzip?): {e}"),
        )
    })?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Payload { sha256, size })
}

/// `true` when the payload of `path` matches `file`'s size and sha256.
pub(crate) fn matches(payload: &Payload, file: &ManifestFile) -> bool {
    payload.size == file.size && payload.sha256 == file.sha256
}

fn stamp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".verified");
    path.with_file_name(name)
}

/// The stamp text for `path` as it is now: its size, mtime and the manifest's sha256.
fn stamp_text(path: &Path, sha256: &str) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(format!("{} {} {sha256}\n", meta.len(), mtime.as_nanos()))
}

/// `true` when `path` verified against `file` before and has not changed since.
fn stamp_is_current(path: &Path, file: &ManifestFile) -> bool {
    match (
        stamp_text(path, &file.sha256),
        fs::read_to_string(stamp_path(path)),
    ) {
        (Some(expected), Ok(found)) => expected == found,
        _ => false,
    }
}

/// Records that `path` (now) verifies against `file`.
pub(crate) fn write_stamp(path: &Path, file: &ManifestFile) -> Result<()> {
    let stamp = stamp_path(path);
    match stamp_text(path, &file.sha256) {
        Some(text) => fs::write(&stamp, text).map_err(|e| DataError::io(&stamp, "writing", e)),
        // No usable mtime on this platform: the file is rehashed on every check.
        None => Ok(()),
    }
}

/// `true` when the cached `path` holds `file`'s payload; rehashes (and restamps) only
/// when the stamp is missing or out of date.
pub(crate) fn cached_file_is_valid(path: &Path, file: &ManifestFile) -> Result<bool> {
    if !path.is_file() {
        return Ok(false);
    }
    if stamp_is_current(path, file) {
        return Ok(true);
    }
    let valid = payload_of(path, &file.name).is_ok_and(|payload| matches(&payload, file));
    if valid {
        write_stamp(path, file)?;
    }
    Ok(valid)
}
