//! Shared by the fuzz targets: Petal's parsers of outside data take paths, so each input
//! is written to a scratch file first and the real entry point reads it from there.

use std::path::PathBuf;

/// Writes `data` to this process's scratch file named `name` (its extension selects the
/// format where the reader cares) and returns the path; the same path is reused by
/// every run of the target.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("petal-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the scratch folder");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("writing the scratch file");
    path
}
