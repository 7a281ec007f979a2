//! Checking a cached file against its manifest entry: the payload's sha256 and size (or
//! an accepted other version's digests, e.g. the md5 of the file as stored), and a
//! `<name>.verified` stamp so unchanged files are not rehashed on every run.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::read::MultiGzDecoder;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::manifest::{AcceptedVersion, ManifestFile, MIN_SHA256_PREFIX};

/// The sha256 (lowercase hex) and size in bytes of a file's payload, and the md5 of the
/// file as stored when the manifest entry accepts a version by md5.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    pub sha256: String,
    pub size: u64,
    pub md5: Option<String>,
}

/// A reader that feeds every byte it passes on into an md5.
struct Md5Reader<R> {
    inner: R,
    md5: Md5,
}

impl<R: Read> Read for Md5Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `true` when files named `name` are compared by their gunzipped payload.
fn is_gzip_name(name: &str) -> bool {
    name.ends_with(".gz") || name.ends_with(".tgz")
}

/// Hashes the payload of `path` in one pass, gunzipping on the fly when `file`'s name
/// ends in `.gz`/`.tgz`, and computing the md5 of the stored bytes when `file` accepts a
/// version by md5.
pub(crate) fn payload_of(path: &Path, file: &ManifestFile) -> Result<Payload> {
    let unreadable = |e: io::Error| {
        DataError::format(
            path,
            format!("cannot read the payload (corrupt or not gzip?): {e}"),
        )
    };
    let stored = fs::File::open(path).map_err(|e| DataError::io(path, "opening", e))?;
    let mut stored = io::BufReader::new(Md5Reader {
        inner: stored,
        md5: Md5::new(),
    });
    let mut sha256 = Sha256::new();
    let size = if is_gzip_name(&file.name) {
        let mut decoder = MultiGzDecoder::new(&mut stored);
        io::copy(&mut decoder, &mut sha256).map_err(unreadable)?
    } else {
        io::copy(&mut stored, &mut sha256).map_err(unreadable)?
    };
    // Whatever the decoder left unread still belongs to the stored file's md5.
    io::copy(&mut stored, &mut io::sink()).map_err(unreadable)?;
    let md5 = file
        .also_accept
        .iter()
        .any(|v| v.md5.is_some())
        .then(|| hex(&stored.into_inner().md5.finalize()));
    Ok(Payload {
        sha256: hex(&sha256.finalize()),
        size,
        md5,
    })
}

/// `true` when `version` names at least one digest and `payload` matches all it names.
fn matches_version(payload: &Payload, version: &AcceptedVersion) -> bool {
    let sha256_ok = match (&version.sha256, version.size) {
        (Some(sha256), Some(size)) => Some(*sha256 == payload.sha256 && size == payload.size),
        (None, None) => None,
        _ => Some(false),
    };
    let md5_ok = version
        .md5
        .as_ref()
        .map(|md5| payload.md5.as_ref() == Some(md5));
    match (sha256_ok, md5_ok) {
        (None, None) => false,
        (a, b) => a.unwrap_or(true) && b.unwrap_or(true),
    }
}

/// `true` when the payload matches `file`'s size (unless 0, unknown) and sha256 (or the
/// prefix of at least [`MIN_SHA256_PREFIX`] digits it gives), or one of its accepted
/// other versions.
pub(crate) fn matches(payload: &Payload, file: &ManifestFile) -> bool {
    let size_ok = file.size == 0 || payload.size == file.size;
    let sha256_ok =
        file.sha256.len() >= MIN_SHA256_PREFIX && payload.sha256.starts_with(&file.sha256);
    (size_ok && sha256_ok)
        || file
            .also_accept
            .iter()
            .any(|version| matches_version(payload, version))
}

/// For a checksum error: the other accepted versions and the received md5, if any.
pub(crate) fn describe_alternatives(payload: &Payload, file: &ManifestFile) -> Option<String> {
    if file.also_accept.is_empty() {
        return None;
    }
    let versions: Vec<String> = file
        .also_accept
        .iter()
        .map(|v| {
            let mut digests = Vec::new();
            if let (Some(sha256), Some(size)) = (&v.sha256, v.size) {
                digests.push(format!("payload sha256 {sha256} ({size} bytes)"));
            }
            if let Some(md5) = &v.md5 {
                digests.push(format!("stored-file md5 {md5}"));
            }
            format!("{} [{}]", digests.join(" and "), v.note)
        })
        .collect();
    let received = payload
        .md5
        .as_ref()
        .map(|md5| format!("; the received file's md5 is {md5}"))
        .unwrap_or_default();
    Some(format!(
        "; also accepted: {}{received}",
        versions.join("; ")
    ))
}

/// The stamp file beside `path`, `<name>.verified`.
pub(crate) fn stamp_path(path: &Path) -> PathBuf {
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
    let valid = payload_of(path, file).is_ok_and(|payload| matches(&payload, file));
    if valid {
        write_stamp(path, file)?;
    }
    Ok(valid)
}
