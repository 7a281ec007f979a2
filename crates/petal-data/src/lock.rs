//! An exclusive lock on a lock file, so that two processes filling the same cache take
//! turns instead of writing the same `.part` file or extraction folder at once.
//!
//! The lock is the operating system's advisory file lock ([`File::lock`]): it is
//! released when the holder drops it or exits, even by a crash, so a stale lock file is
//! harmless.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Held while a process writes into the cache; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Locks `path` (created if missing, with its folder), waiting as long as another
    /// process holds it; says on stderr who is waiting for what when it has to wait.
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder)
                .map_err(|e| DataError::io(folder, "creating the folder", e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| DataError::io(path, "opening the lock file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!(
                    "{}: another process is writing this part of the cache; waiting for it",
                    path.display()
                );
                file.lock()
                    .map_err(|e| DataError::io(path, "waiting for the lock", e))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(DataError::io(path, "locking", e));
            }
        }
        Ok(Self { _file: file })
    }
}

/// The lock file guarding `target`: `.<name>.lock` beside it.
pub(crate) fn lock_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(".lock");
    target.with_file_name(name)
}
