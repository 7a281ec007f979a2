//! Writing files so that a crash or a full disk never leaves half of one behind: every
//! Petal crate that saves something (weights, optimizer state, checkpoints, reports)
//! writes through [`write_atomically`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary file in `path`'s folder (created if missing), syncs it,
/// renames it over `path` and syncs the folder: readers see the old file or the new one,
/// never a partial one, and on error (a full disk) the old file is untouched and the
/// temporary removed.
///
/// ```
/// use petal_tensor::fs::write_atomically;
/// let path = std::env::temp_dir().join(format!("petal-doc-{}", std::process::id())).join("note.txt");
/// write_atomically(&path, b"first")?;
/// write_atomically(&path, b"second")?;
/// assert_eq!(std::fs::read(&path)?, b"second");
/// # std::fs::remove_dir_all(path.parent().unwrap())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = folder_of(path);
    fs::create_dir_all(folder)?;
    let temp = temporary_beside(path);
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
        return result;
    }
    // Make the rename itself durable. Folders cannot be opened as files everywhere
    // (Windows), so this part is best effort.
    if let Ok(dir) = fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The folder `path` is in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The temporary file [`write_atomically`] writes before renaming: hidden, in the same
/// folder (a rename does not cross file systems), unique per process.
fn temporary_beside(path: &Path) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    folder_of(path).join(format!(".{file_name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty folder for one test.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("petal-fs-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_file_is_written_whole_into_a_new_folder_and_replaced_whole() {
        let dir = scratch("whole");
        let path = dir.join("nested").join("weights.bin");
        write_atomically(&path, b"old contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec!["weights.bin"], "no temporary left behind");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_intact() {
        let dir = scratch("failed");
        let path = dir.join("state.json");
        fs::write(&path, b"the old state").unwrap();
        // The temporary cannot be created: a folder sits where it would go.
        fs::create_dir(temporary_beside(&path)).unwrap();
        assert!(write_atomically(&path, b"the new state").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"the old state");
        fs::remove_dir_all(dir).unwrap();
    }
}
