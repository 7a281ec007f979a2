//! Streaming extraction of a `.tgz` archive into a folder that is trusted only when whole.
//!
//! [`extract_tgz`] gunzips and untars in one pass (no decompressed copy of the archive on
//! disk) into a temporary sibling `<dest>.extracting`, writes a `.complete` marker there
//! once every entry is written and the gzip trailer has checked out, and only then renames
//! the folder to `<dest>`. A cut-short or corrupt archive leaves no `<dest>` behind, and
//! a later run starts over.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

/// The marker file written into a fully extracted folder.
pub const COMPLETE_MARKER: &str = ".complete";

/// `true` when `dest` holds a finished extraction (its [`COMPLETE_MARKER`] exists).
pub fn is_extracted(dest: &Path) -> bool {
    dest.join(COMPLETE_MARKER).is_file()
}

/// Extracts the gzip-compressed tar `archive` into `dest` (e.g. `102flowers.tgz` gives
/// `dest/jpg/image_00001.jpg` ...) and returns the number of files written.
///
/// Does nothing (and returns 0) when `dest` is already complete. A `dest` without the
/// marker, or a leftover `<dest>.extracting`, is removed first. Entries with absolute
/// paths or `..` and link entries are refused; other special entries are skipped.
pub fn extract_tgz(archive: &Path, dest: &Path) -> Result<usize> {
    if is_extracted(dest) {
        return Ok(0);
    }
    let staging = staging_path(dest);
    remove_dir_if_present(&staging)?;
    remove_dir_if_present(dest)?;
    let written = match unpack_into(archive, &staging) {
        Ok(written) => written,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    fs::rename(&staging, dest)
        .map_err(|e| DataError::io(dest, "moving the extracted folder into place", e))?;
    Ok(written)
}

/// `<dest>.extracting`, beside `dest`.
fn staging_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".extracting");
    dest.with_file_name(name)
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(DataError::io(dir, "removing an unfinished extraction", e))
        }
        _ => Ok(()),
    }
}

/// Unpacks every entry of `archive` into `staging` and writes the marker last.
fn unpack_into(archive: &Path, staging: &Path) -> Result<usize> {
    let corrupt = |e: io::Error| {
        DataError::format(
            archive,
            format!("cannot extract (cut short or corrupt archive?): {e}"),
        )
    };
    let file = File::open(archive).map_err(|e| DataError::io(archive, "opening", e))?;
    fs::create_dir_all(staging).map_err(|e| DataError::io(staging, "creating the folder", e))?;
    let mut tar = tar::Archive::new(MultiGzDecoder::new(BufReader::new(file)));
    let mut written = 0;
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = entry.path().map_err(corrupt)?.into_owned();
        let relative = safe_relative_path(&name).ok_or_else(|| {
            DataError::format(
                archive,
                format!("refusing the entry {name:?}: absolute or escaping path"),
            )
        })?;
        if relative.as_os_str().is_empty() {
            continue; // the archive's own root, e.g. `./`
        }
        let target = staging.join(&relative);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&target)
                .map_err(|e| DataError::io(&target, "creating the folder", e))?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| DataError::io(parent, "creating the folder", e))?;
            }
            let expected = entry.size();
            let mut out =
                File::create(&target).map_err(|e| DataError::io(&target, "creating", e))?;
            let copied = io::copy(&mut entry, &mut out).map_err(corrupt)?;
            if copied != expected {
                return Err(DataError::format(
                    archive,
                    format!("the entry {name:?} is cut short: {copied} of {expected} bytes"),
                ));
            }
            written += 1;
        } else if kind.is_symlink() || kind.is_hard_link() {
            return Err(DataError::format(
                archive,
                format!("refusing the link entry {name:?}"),
            ));
        }
    }
    // Read to the end so the gzip trailer (CRC and length) is checked: a tar stream can
    // look finished while the archive is cut short.
    io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(corrupt)?;
    let marker = staging.join(COMPLETE_MARKER);
    fs::write(
        &marker,
        format!("{written} files from {}\n", archive.display()),
    )
    .map_err(|e| DataError::io(&marker, "writing", e))?;
    Ok(written)
}

/// `path` without `.` components when it stays inside the destination (empty for the
/// root itself), else `None`.
fn safe_relative_path(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}
