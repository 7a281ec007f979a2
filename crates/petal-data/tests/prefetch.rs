//! The prefetching loader yields exactly the batches of the plain one, and stops cleanly
//! when its consumer stops early.

use std::sync::Arc;

use petal_data::augment::{AffineConfig, RandomAffine};
use petal_data::{BatchLoader, InMemoryDataset};
use petal_tensor::Tensor;

fn images(n: usize) -> InMemoryDataset {
    let values = (0..n * 4 * 4 * 3).map(|i| (i % 17) as f32 / 17.0).collect();
    let images = Tensor::from_vec(&[n, 4, 4, 3], values).unwrap();
    InMemoryDataset::new(images, (0..n).map(|i| i % 5).collect(), 5).unwrap()
}

#[test]
fn prefetched_batches_equal_the_plain_ones() {
    let augmentation = Arc::new(
        RandomAffine::new(AffineConfig {
            horizontal_flip: true,
            rotation: (-0.2, 0.2),
            ..AffineConfig::default()
        })
        .unwrap(),
    );
    for (batch_size, drop_last, depth) in [(3, false, 1), (4, true, 2), (64, false, 4)] {
        let loader = BatchLoader::new(images(23), batch_size)
            .unwrap()
            .shuffle(5)
            .drop_last(drop_last)
            .augment(augmentation.clone(), 9);
        let plain: Vec<_> = loader.epoch(2).map(Result::unwrap).collect();
        let prefetched = loader.prefetched_epoch(2, depth, |batches| {
            batches.map(Result::unwrap).collect::<Vec<_>>()
        });
        assert_eq!(prefetched, plain);
    }
}

#[test]
fn a_consumer_that_stops_early_ends_the_loading() {
    let loader = BatchLoader::new(images(100), 2).unwrap();
    let first = loader.prefetched_epoch(0, 1, |batches| batches.next().unwrap().unwrap());
    assert_eq!(first.labels, vec![0, 1]);
}
