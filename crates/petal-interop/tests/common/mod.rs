//! Where the interop tests find their files: the small ones of `tests/fixtures`, and those
//! of `../shared` beside the project, where a test whose file is absent prints that it
//! skipped and passes (a newcomer's clone has no `../shared`; CI's `.ci/run` refuses to
//! run without it).

// Every test binary compiles its own copy of this module and uses only some of it (the
// `.pth` tests no shared file, the export tests no committed fixture).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `path` when it exists, else `None` after printing that the test skipped.
pub fn present(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        Some(path)
    } else {
        println!("skipped: {} is absent", path.display());
        None
    }
}

/// `../shared/<relative>` beside the project, when present.
pub fn shared(relative: &str) -> Option<PathBuf> {
    present(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared")
            .join(relative),
    )
}

/// `../shared/fixtures/zoo/<name>` (the torchvision fixtures), when present.
pub fn zoo_fixture(name: &str) -> Option<PathBuf> {
    shared(&format!("fixtures/zoo/{name}"))
}

/// `tests/fixtures/<name>`, the small fixtures kept in the repository.
pub fn local_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
