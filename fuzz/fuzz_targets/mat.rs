//! MATLAB v5 MAT-files (Oxford 102 Flowers labels and split).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = petal_data::mat::parse_mat(data, Path::new("fuzz.mat")) {
        for array in file.arrays().values() {
            assert_eq!(array.dims.iter().product::<usize>(), array.values.len());
        }
    }
});
