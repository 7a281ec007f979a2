//! The Dataset combinators and the BatchLoader.

use std::sync::Arc;

use petal_data::{BatchLoader, Dataset, InMemoryDataset, Mapped, Shuffled, Subset};
use petal_tensor::Tensor;

/// `n` samples of shape (2, 1, 2); every value of sample i is i; label i % 3.
fn numbered(n: usize) -> InMemoryDataset {
    let data = (0..n).flat_map(|i| [i as f32; 4]).collect();
    let images = Tensor::from_vec(&[n, 2, 1, 2], data).unwrap();
    InMemoryDataset::new(images, (0..n).map(|i| i % 3).collect(), 3).unwrap()
}

#[test]
fn in_memory_dataset_checks_its_arguments() {
    let images = Tensor::zeros(&[2, 1, 1, 1]);
    assert!(InMemoryDataset::new(images.clone(), vec![0], 2).is_err());
    assert!(InMemoryDataset::new(images.clone(), vec![0, 2], 2)
        .unwrap_err()
        .to_string()
        .contains("label 2 at position 1"));
    assert!(InMemoryDataset::new(Tensor::zeros(&[2, 1]), vec![0, 1], 2).is_err());
    let data = InMemoryDataset::new(images, vec![0, 1], 2).unwrap();
    assert!(data.load(2, &mut [0.0]).is_err());
    assert!(data.load(0, &mut [0.0, 0.0]).is_err());
    assert!(!data.is_empty());
}

#[test]
fn combinators_view_the_inner_dataset() {
    let data = numbered(6);
    let mut x = [0.0f32; 4];

    let subset = Subset::new(&data, vec![4, 1, 4]).unwrap();
    assert_eq!(subset.len(), 3);
    assert_eq!(subset.load(2, &mut x).unwrap(), 1);
    assert_eq!(x, [4.0; 4]);
    assert!(subset.load(3, &mut x).is_err());
    assert!(Subset::new(&data, vec![0, 6]).is_err());

    let shuffled = Shuffled::new(&data, 42);
    let mut permutation = shuffled.permutation().to_vec();
    assert_eq!(permutation, Shuffled::new(&data, 42).permutation());
    assert_ne!(permutation, Shuffled::new(&data, 43).permutation());
    assert_eq!(shuffled.load(0, &mut x).unwrap(), permutation[0] % 3);
    assert_eq!(x, [permutation[0] as f32; 4]);
    permutation.sort();
    assert_eq!(permutation, (0..6).collect::<Vec<_>>());

    let doubled = Mapped::new(&data, |x: &mut [f32]| x.iter_mut().for_each(|v| *v *= 2.0));
    assert_eq!(doubled.load(3, &mut x).unwrap(), 0);
    assert_eq!(x, [6.0; 4]);
    assert_eq!(doubled.sample_shape(), &[2, 1, 2]);
}

#[test]
fn works_through_arc_dyn_dataset() {
    let data: Arc<dyn Dataset> = Arc::new(numbered(5));
    let subset = Subset::new(Arc::clone(&data), vec![3, 4]).unwrap();
    let loader = BatchLoader::new(subset, 2).unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.labels, vec![0, 1]);
    assert_eq!(batch.indices, vec![0, 1]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Every sample exactly once per epoch; with drop_last each at most once and exactly
    /// n - n % batch_size of them, in full batches; for any thread count.
    #[test]
    fn every_sample_once_per_epoch(
        n in 0usize..50,
        batch_size in 1usize..20,
        threads in 1usize..5,
        drop_last in proptest::bool::ANY,
        shuffle in proptest::option::of(0u64..1000),
        epoch in 0u64..4,
    ) {
        let data = numbered(n);
        let mut loader = BatchLoader::new(&data, batch_size).unwrap().drop_last(drop_last);
        if let Some(seed) = shuffle {
            loader = loader.shuffle(seed);
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let batches: Vec<_> = pool.install(|| loader.epoch(epoch).map(Result::unwrap).collect());
        proptest::prop_assert_eq!(batches.len(), loader.batches_per_epoch());
        let mut seen = Vec::new();
        for batch in &batches {
            let size = batch.labels.len();
            proptest::prop_assert!(size >= 1 && size <= batch_size);
            if drop_last {
                proptest::prop_assert_eq!(size, batch_size);
            }
            // Each sample's pixels all equal its index: read the samples from the images.
            let pixels = batch.images.as_slice();
            for (row, &index) in batch.indices.iter().enumerate() {
                proptest::prop_assert!(pixels[row * 4..row * 4 + 4].iter().all(|&v| v == index as f32));
                proptest::prop_assert_eq!(batch.labels[row], index % 3);
            }
            seen.extend(batch.indices.iter().copied());
        }
        let expected = if drop_last { n - n % batch_size } else { n };
        proptest::prop_assert_eq!(seen.len(), expected);
        if shuffle.is_none() {
            proptest::prop_assert_eq!(&seen, &(0..expected).collect::<Vec<_>>());
        }
        seen.sort_unstable();
        seen.dedup();
        proptest::prop_assert_eq!(seen.len(), expected, "a sample came twice");
    }
}

#[test]
fn shuffled_order_depends_only_on_seed_and_epoch() {
    let data = numbered(50);
    let loader = BatchLoader::new(&data, 8).unwrap().shuffle(1234);
    let order = |l: &BatchLoader<&InMemoryDataset>, epoch| -> Vec<usize> {
        l.epoch(epoch).flat_map(|b| b.unwrap().indices).collect()
    };
    let again = BatchLoader::new(&data, 8).unwrap().shuffle(1234);
    assert_eq!(order(&loader, 0), order(&again, 0));
    assert_eq!(order(&loader, 5), order(&again, 5));
    assert_eq!(order(&loader, 5), loader.epoch_order(5));
    assert_ne!(order(&loader, 0), order(&loader, 1));
    let from_third: Vec<usize> = loader
        .epoch_from(5, 2)
        .flat_map(|b| b.unwrap().indices)
        .collect();
    assert_eq!(from_third, order(&loader, 5)[16..], "resuming at batch 2");
    assert_eq!(loader.epoch_from(5, 7).count(), 0);
    let other_seed = BatchLoader::new(&data, 8).unwrap().shuffle(1235);
    assert_ne!(order(&loader, 0), order(&other_seed, 0));
    assert_ne!(order(&loader, 0), (0..50).collect::<Vec<_>>());
}

#[test]
fn batch_contents_equal_the_dataset_samples() {
    let data = numbered(10);
    let mapped = Mapped::new(&data, |x: &mut [f32]| x[0] += 0.5);
    let loader = BatchLoader::new(&mapped, 4).unwrap().shuffle(3);
    for batch in loader.epoch(2) {
        let batch = batch.unwrap();
        assert_eq!(batch.images.shape(), &[batch.indices.len(), 2, 1, 2]);
        for (k, &i) in batch.indices.iter().enumerate() {
            let mut x = [0.0f32; 4];
            let label = mapped.load(i, &mut x).unwrap();
            assert_eq!(batch.labels[k], label);
            assert_eq!(&batch.images.as_slice()[4 * k..4 * k + 4], &x);
            assert_eq!(x, [i as f32 + 0.5, i as f32, i as f32, i as f32]);
        }
    }
}

#[test]
fn batches_are_identical_for_any_thread_count() {
    let data = numbered(37);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            BatchLoader::new(&data, 6)
                .unwrap()
                .shuffle(5)
                .epoch(1)
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn load_errors_reach_the_caller() {
    struct Broken;
    impl Dataset for Broken {
        fn len(&self) -> usize {
            3
        }
        fn sample_shape(&self) -> &[usize] {
            &[1, 1, 1]
        }
        fn num_classes(&self) -> usize {
            2
        }
        fn load(&self, index: usize, out: &mut [f32]) -> petal_data::Result<usize> {
            if index == 2 {
                return Err(petal_data::DataError::IndexOutOfRange { index, len: 2 });
            }
            out[0] = 1.0;
            Ok(0)
        }
    }
    let results: Vec<_> = BatchLoader::new(Broken, 2).unwrap().epoch(0).collect();
    assert!(results[0].is_ok());
    assert!(results[1].is_err());
}

#[test]
fn a_batch_size_of_zero_is_an_error_naming_the_loader() {
    let error = BatchLoader::new(numbered(4), 0).unwrap_err();
    assert!(
        matches!(
            error,
            petal_data::DataError::Invalid {
                context: "BatchLoader::new",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("batch size must be positive"));
}

#[test]
fn shard_ranges_cover_every_batch_once_in_order_and_evenly() {
    use petal_data::shard_range;
    for len in 0..40 {
        for world in 1..7 {
            let parts: Vec<_> = (0..world).map(|r| shard_range(len, r, world)).collect();
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[world - 1].end, len);
            assert!(
                parts.windows(2).all(|w| w[0].end == w[1].start),
                "{len} {world}"
            );
            let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{len} over {world}: {sizes:?}");
        }
    }
}

#[test]
fn sharded_loaders_split_every_global_batch_the_same_way_on_every_epoch() {
    let data = numbered(23);
    let flips = Arc::new(petal_data::augment::RandomAffine::flip(true, true));
    let whole = BatchLoader::new(&data, 8)
        .unwrap()
        .shuffle(5)
        .augment(flips, 9);
    for world in [1, 2, 3, 4] {
        let ranks: Vec<_> = (0..world)
            .map(|r| whole.clone().shard(r, world).unwrap())
            .collect();
        for epoch in 0..3 {
            let parts: Vec<Vec<_>> = ranks
                .iter()
                .map(|l| l.epoch(epoch).collect::<Result<_, _>>().unwrap())
                .collect();
            for (b, global) in whole.epoch(epoch).enumerate() {
                let global = global.unwrap();
                assert_eq!(whole.global_batch_len(b), global.labels.len());
                let indices: Vec<usize> = parts.iter().flat_map(|p| p[b].indices.clone()).collect();
                assert_eq!(
                    indices, global.indices,
                    "world {world} epoch {epoch} batch {b}"
                );
                // The same samples, augmented the same way, as the unsharded batch.
                let values: Vec<f32> = parts
                    .iter()
                    .flat_map(|p| p[b].images.as_slice().to_vec())
                    .collect();
                assert_eq!(values, global.images.as_slice());
            }
        }
    }
    assert!(whole
        .shard(3, 3)
        .unwrap_err()
        .to_string()
        .contains("rank 3 is not below the world size 3"));
}
