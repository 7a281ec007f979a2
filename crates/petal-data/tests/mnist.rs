//! The MNIST-format folder loader on a tiny fake dataset.

mod common;

use std::path::Path;

use common::{gzip, idx_bytes, write};
use petal_data::mnist::load_mnist_folder;
use petal_data::Dataset;

const ROWS: u32 = 3;
const COLS: u32 = 2;

/// A fake dataset: 5 train images (pixel j of image i = 10 i + j), 2 test images;
/// train files gzipped, test files raw.
fn fake_mnist(dir: &Path, train_labels: &[u8]) {
    let pixels = |n: u32| -> Vec<u8> {
        (0..n)
            .flat_map(|i| (0..ROWS * COLS).map(move |j| (10 * i + j) as u8))
            .collect()
    };
    write(
        dir,
        "train-images-idx3-ubyte.gz",
        &gzip(&idx_bytes(&[5, ROWS, COLS], &pixels(5))),
    );
    write(
        dir,
        "train-labels-idx1-ubyte.gz",
        &gzip(&idx_bytes(&[train_labels.len() as u32], train_labels)),
    );
    write(
        dir,
        "t10k-images-idx3-ubyte",
        &idx_bytes(&[2, ROWS, COLS], &pixels(2)),
    );
    write(dir, "t10k-labels-idx1-ubyte", &idx_bytes(&[2], &[9, 0]));
}

#[test]
fn loads_values_labels_and_shape() {
    let dir = tempfile::tempdir().unwrap();
    fake_mnist(dir.path(), &[5, 0, 4, 1, 9]);
    let data = load_mnist_folder(dir.path()).unwrap();
    assert_eq!(data.train.images().shape(), &[5, 3, 2, 1]);
    assert_eq!(data.train.sample_shape(), &[3, 2, 1]);
    assert_eq!(data.train.labels(), &[5, 0, 4, 1, 9]);
    assert_eq!(data.train.num_classes(), 10);
    assert_eq!(data.test.labels(), &[9, 0]);
    let mut sample = [0.0f32; 6];
    assert_eq!(data.train.load(4, &mut sample).unwrap(), 9);
    let expected: Vec<f32> = (0..6).map(|j| (40 + j) as f32 / 255.0).collect();
    assert_eq!(sample.to_vec(), expected);
    assert!(data
        .train
        .images()
        .as_slice()
        .iter()
        .all(|&p| (0.0..=1.0).contains(&p)));
}

#[test]
fn label_out_of_range_names_file_position_and_value() {
    let dir = tempfile::tempdir().unwrap();
    fake_mnist(dir.path(), &[5, 0, 12, 1, 9]);
    let message = load_mnist_folder(dir.path()).unwrap_err().to_string();
    assert!(message.contains("train-labels-idx1-ubyte.gz"), "{message}");
    assert!(message.contains("label 12 at position 2"), "{message}");
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    fake_mnist(dir.path(), &[5, 0, 4, 1]);
    let message = load_mnist_folder(dir.path()).unwrap_err().to_string();
    assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
    assert!(message.contains("train-labels-idx1-ubyte.gz"), "{message}");
    assert!(
        message.contains("5 images") && message.contains("4 labels"),
        "{message}"
    );
}

#[test]
fn missing_file_names_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    fake_mnist(dir.path(), &[5, 0, 4, 1, 9]);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let message = load_mnist_folder(dir.path()).unwrap_err().to_string();
    assert!(message.contains("t10k-labels-idx1-ubyte.gz"), "{message}");
}

#[test]
fn images_must_be_three_dimensional() {
    let dir = tempfile::tempdir().unwrap();
    fake_mnist(dir.path(), &[5, 0, 4, 1, 9]);
    write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &idx_bytes(&[2, 6], &[0; 12]),
    );
    let message = load_mnist_folder(dir.path()).unwrap_err().to_string();
    assert!(message.contains("t10k-images-idx3-ubyte"), "{message}");
    assert!(message.contains("expected 3 dimensions"), "{message}");
}
