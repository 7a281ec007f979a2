//! The real MNIST through the shared mirror folder, when this machine has it.

use std::path::Path;

use petal_data::download::{fetch_dataset, DataConfig};
use petal_data::mnist::load_mnist_folder;
use petal_data::{Dataset, Manifest};

#[test]
fn fetches_and_loads_real_mnist_from_the_shared_mirror() {
    let mirror = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    if !mirror.join("mnist").is_dir() {
        eprintln!(
            "skipped: no MNIST mirror at {}",
            mirror.join("mnist").display()
        );
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let config = DataConfig {
        cache_root: cache.path().to_path_buf(),
        mirror: Some(mirror),
    };
    let folder = fetch_dataset(&config, &Manifest::mnist(), None).unwrap();
    let mnist = load_mnist_folder(&folder).unwrap();
    assert_eq!(mnist.train.len(), 60_000);
    assert_eq!(mnist.test.len(), 10_000);
    assert_eq!(mnist.train.sample_shape(), &[28, 28, 1]);
    assert_eq!(mnist.train.labels()[0], 5);
    assert_eq!(mnist.test.labels()[0], 7);
    // A second fetch trusts the .verified stamps.
    assert_eq!(
        fetch_dataset(&config, &Manifest::mnist(), None).unwrap(),
        folder
    );
}
