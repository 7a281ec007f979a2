//! Streaming extraction of a `.tgz` archive into a folder that is trusted only when whole.
//!
//! [`extract_tgz`] gunzips and untars in one pass (no decompressed copy of the archive on
//! disk) into a temporary sibling `<dest>.extracting`, writes a `.complete` marker there
//! once every entry is written and the gzip trailer has checked out, and only then renames
//! the folder to `<dest>`. A cut-short or corrupt archive, or a full disk, leaves no
//! `<dest>` behind (the error says so), and a later run starts over. The lock file
//! `.<dest name>.lock` beside `<dest>` makes a second process wait for the first
//! extraction instead of writing into the same folder.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};
use crate::lock::{lock_path, CacheLock};

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
    extract_tgz_with(archive, dest, |path: &Path| File::create(path))
}

/// [`extract_tgz`] writing each file through `create` (tests give it a disk that fills).
fn extract_tgz_with<W: Write>(
    archive: &Path,
    dest: &Path,
    create: impl Fn(&Path) -> io::Result<W>,
) -> Result<usize> {
    if is_extracted(dest) {
        return Ok(0);
    }
    let _lock = CacheLock::acquire(&lock_path(dest))?;
    // Another process may have finished the extraction while this one waited.
    if is_extracted(dest) {
        return Ok(0);
    }
    let staging = staging_path(dest);
    remove_dir_if_present(&staging)?;
    remove_dir_if_present(dest)?;
    let written = match unpack_into(archive, &staging, &create, dest) {
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

/// The error for a failed write into the staging folder of `dest`: the caller removes
/// the unfinished copy, so the cache stays as it was.
fn write_failed(dest: &Path, e: io::Error) -> DataError {
    let action = if e.kind() == io::ErrorKind::StorageFull {
        "out of disk space while extracting into this folder; the unfinished copy was \
         removed and the cache is as it was (free some space and run again)"
    } else {
        "writing failed while extracting into this folder; the unfinished copy was removed \
         and the cache is as it was"
    };
    DataError::io(dest, action, e)
}

/// Why copying an entry stopped: reading the archive or writing the file.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `from` into `to`; returns the bytes copied.
fn copy_entry(from: &mut impl Read, to: &mut impl Write) -> Result<u64, CopyError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut copied = 0;
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buffer[..n]).map_err(CopyError::Write)?;
        copied += n as u64;
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(copied)
}

/// Unpacks every entry of `archive` into `staging` (files made by `create`) and writes
/// the marker last; `dest` names the extraction in errors.
fn unpack_into<W: Write>(
    archive: &Path,
    staging: &Path,
    create: &impl Fn(&Path) -> io::Result<W>,
    dest: &Path,
) -> Result<usize> {
    let corrupt = |e: io::Error| {
        DataError::format(
            archive,
            format!("cannot extract (cut short or corrupt archive?): {e}"),
        )
    };
    let file = File::open(archive).map_err(|e| DataError::io(archive, "opening", e))?;
    fs::create_dir_all(staging).map_err(|e| write_failed(dest, e))?;
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
            fs::create_dir_all(&target).map_err(|e| write_failed(dest, e))?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| write_failed(dest, e))?;
            }
            let expected = entry.size();
            let mut out = create(&target).map_err(|e| write_failed(dest, e))?;
            let copied = copy_entry(&mut entry, &mut out).map_err(|e| match e {
                CopyError::Read(e) => corrupt(e),
                CopyError::Write(e) => write_failed(dest, e),
            })?;
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
    create(&marker)
        .and_then(|mut out| {
            writeln!(out, "{written} files from {}", archive.display())?;
            out.flush()
        })
        .map_err(|e| write_failed(dest, e))?;
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use flate2::{write::GzEncoder, Compression};

    use super::*;

    /// A `.tgz` of `files` files of 1000 bytes each, `jpg/image_<i>.jpg`.
    fn archive(dir: &Path, files: usize) -> PathBuf {
        let path = dir.join("images.tgz");
        let mut tar = tar::Builder::new(GzEncoder::new(
            File::create(&path).unwrap(),
            Compression::fast(),
        ));
        for i in 0..files {
            let mut header = tar::Header::new_gnu();
            header.set_size(1000);
            header.set_mode(0o644);
            let bytes = vec![i as u8; 1000];
            tar.append_data(&mut header, format!("jpg/image_{i}.jpg"), &bytes[..])
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    /// A file on a disk with `left` bytes free, shared by every file created on it.
    struct FillingDisk<'a> {
        file: File,
        left: &'a Cell<usize>,
    }

    impl Write for FillingDisk<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left.get() == 0 {
                return Err(io::ErrorKind::StorageFull.into());
            }
            let n = buf.len().min(self.left.get());
            self.left.set(self.left.get() - n);
            self.file.write(&buf[..n])
        }

        fn flush(&mut self) -> io::Result<()> {
            self.file.flush()
        }
    }

    #[test]
    fn a_full_disk_stops_the_extraction_says_so_and_leaves_the_cache_usable() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = archive(dir.path(), 3);
        let dest = dir.path().join("images");
        // The disk fills inside the second file, then exactly before the marker.
        for free in [1500, 3000] {
            let left = Cell::new(free);
            let create =
                |path: &Path| File::create(path).map(|file| FillingDisk { file, left: &left });
            let message = extract_tgz_with(&tgz, &dest, create)
                .unwrap_err()
                .to_string();
            assert!(
                message.starts_with(&dest.display().to_string()),
                "{message}"
            );
            assert!(message.contains("out of disk space"), "{message}");
            assert!(message.contains("the cache is as it was"), "{message}");
            assert!(!dest.exists() && !staging_path(&dest).exists(), "{free}");
            assert!(tgz.is_file());
        }
        // With space again, the next run extracts everything.
        assert_eq!(extract_tgz(&tgz, &dest).unwrap(), 3);
        assert!(is_extracted(&dest));
        assert_eq!(fs::read(dest.join("jpg/image_2.jpg")).unwrap(), [2; 1000]);
    }
}
