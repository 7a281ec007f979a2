//! Dataset manifests (JSON): parsed and checked, or refused with an error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = petal_data::Manifest::parse(text, Path::new("fuzz.json")) {
        for file in &manifest.files {
            assert!(!file.name.contains('/'), "{:?}", file.name);
            assert_eq!(file.sha256.len(), 64);
        }
    }
});
