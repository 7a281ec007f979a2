//! Image files (PNG, JPEG, whatever the bytes say) decoded through Petal's image dataset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petal_data::{Dataset, ImageDataset, ImageOptions};

fuzz_target!(|data: &[u8]| {
    let path = petal_fuzz::scratch_file("image", data);
    let dataset = ImageDataset::new(vec![path], vec![0], 1, ImageOptions::new(8)).unwrap();
    let mut sample = vec![0.0; 8 * 8 * 3];
    if dataset.load(0, &mut sample).is_ok() {
        assert!(sample.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
