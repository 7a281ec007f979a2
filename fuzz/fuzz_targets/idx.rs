//! IDX files (MNIST), raw or gzip-compressed: any input is read or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = petal_fuzz::scratch_file("input-idx-ubyte", data);
    if let Ok(array) = petal_data::idx::read_idx(&path) {
        assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
    }
});
