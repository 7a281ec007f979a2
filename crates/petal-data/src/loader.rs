//! [`BatchLoader`]: an epoch of a dataset as batches, optionally in a seeded shuffled
//! order and with seeded per-sample augmentation.

use std::sync::Arc;

use petal_tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::augment::{sample_rng, Augmentation};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// One batch: images `(b, height, width, channels)`, their labels and dataset indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The samples stacked along a new first axis.
    pub images: Tensor,
    /// The label of each sample.
    pub labels: Vec<usize>,
    /// The dataset index of each sample.
    pub indices: Vec<usize>,
}

/// Cuts a dataset into batches, one epoch at a time; samples of a batch load in parallel.
///
/// With [`BatchLoader::shuffle`] the order of epoch `e` depends only on the seed and
/// `e`, so a run is reproducible and can resume at any epoch; the same holds for the
/// random transformations of [`BatchLoader::augment`].
///
/// ```
/// use petal_data::{BatchLoader, InMemoryDataset};
/// use petal_tensor::Tensor;
/// let images = Tensor::zeros(&[5, 2, 2, 1]);
/// let data = InMemoryDataset::new(images, vec![0, 1, 0, 1, 0], 2)?;
/// let loader = BatchLoader::new(data, 2)?.shuffle(7);
/// let batches: Vec<_> = loader.epoch(0).collect::<Result<_, _>>()?;
/// assert_eq!(batches.len(), 3);
/// assert_eq!(batches[0].images.shape(), &[2, 2, 2, 1]);
/// assert_eq!(batches[2].labels.len(), 1); // the last batch is short
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct BatchLoader<D> {
    dataset: D,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    augmentation: Option<SeededAugmentation>,
    shard: Option<Shard>,
}

/// One process's part of every batch in data-parallel training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shard {
    rank: usize,
    world_size: usize,
}

/// The positions of rank `rank`'s samples in a global batch of `len` samples split over
/// `world_size` processes: the `rank`-th of `world_size` contiguous, nearly equal parts
/// (`rank * len / world_size .. (rank + 1) * len / world_size`), so that the parts
/// cover the batch once, in order, and a batch of `world_size * b` samples gives every
/// rank `b`.
///
/// ```
/// use petal_data::shard_range;
/// assert_eq!(shard_range(8, 0, 2), 0..4);
/// assert_eq!(shard_range(8, 1, 2), 4..8);
/// assert_eq!(shard_range(5, 1, 3), 1..3); // a short last batch: parts of 1, 2 and 2
/// assert_eq!(shard_range(1, 0, 2), 0..0); // fewer samples than ranks: some get none
/// ```
pub fn shard_range(len: usize, rank: usize, world_size: usize) -> std::ops::Range<usize> {
    let world_size = world_size.max(1);
    let cut = |r: usize| r * len / world_size;
    cut(rank.min(world_size))..cut((rank + 1).min(world_size))
}

/// An augmentation with the seed of its per-sample generators.
#[derive(Clone, Debug)]
struct SeededAugmentation {
    augmentation: Arc<dyn Augmentation>,
    seed: u64,
}

impl<D: Dataset> BatchLoader<D> {
    /// Batches of `batch_size` samples in dataset order, the last one possibly short.
    /// A batch size of zero is an error ([`DataError::Invalid`]).
    ///
    /// ```
    /// use petal_data::{BatchLoader, InMemoryDataset};
    /// use petal_tensor::Tensor;
    /// let data = InMemoryDataset::new(Tensor::zeros(&[3, 1, 1, 1]), vec![0, 1, 0], 2)?;
    /// let error = BatchLoader::new(&data, 0).unwrap_err();
    /// assert_eq!(error.to_string(), "BatchLoader::new: the batch size must be positive, not 0");
    /// # Ok::<(), petal_data::DataError>(())
    /// ```
    pub fn new(dataset: D, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::invalid(
                "BatchLoader::new",
                "the batch size must be positive, not 0",
            ));
        }
        Ok(Self {
            dataset,
            batch_size,
            seed: None,
            drop_last: false,
            augmentation: None,
            shard: None,
        })
    }

    /// Visits the samples in a new random order every epoch, drawn from `seed` and the epoch.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Augments every sample of every batch of [`BatchLoader::epoch`] after loading.
    ///
    /// Sample `i` of the dataset in epoch `e` is transformed with its own generator
    /// [`sample_rng`]`(seed, e, i)`, which depends on nothing else, so an epoch is the
    /// same bit for bit on any number of threads and differs from epoch to epoch.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use petal_data::augment::{AffineConfig, RandomAffine};
    /// use petal_data::{BatchLoader, InMemoryDataset};
    /// use petal_tensor::Tensor;
    /// let images = Tensor::from_vec(&[4, 2, 2, 1], (0..16).map(|v| v as f32).collect()).unwrap();
    /// let data = InMemoryDataset::new(images, vec![0, 1, 0, 1], 2)?;
    /// let flips = Arc::new(RandomAffine::flip(true, true));
    /// let loader = BatchLoader::new(data, 2)?.shuffle(1).augment(flips, 42);
    /// let first: Vec<_> = loader.epoch(0).collect::<Result<_, _>>()?;
    /// let again: Vec<_> = loader.epoch(0).collect::<Result<_, _>>()?;
    /// assert_eq!(first, again);
    /// # Ok::<(), petal_data::DataError>(())
    /// ```
    pub fn augment(mut self, augmentation: Arc<dyn Augmentation>, seed: u64) -> Self {
        self.augmentation = Some(SeededAugmentation { augmentation, seed });
        self
    }

    /// When `true`, leaves out the last batch if it would be short.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Yields only rank `rank`'s part of every batch when `world_size` processes train
    /// together (data parallelism): each batch of [`BatchLoader::epoch`] is still a
    /// global batch of `batch_size` samples in the same (seed, epoch) order on every
    /// rank, and rank `rank` loads the positions [`shard_range`] gives it. The split
    /// depends only on the seed, the epoch, the batch's index and the world size. A rank
    /// outside `0..world_size` is an error ([`DataError::Invalid`]).
    ///
    /// ```
    /// use petal_data::{BatchLoader, InMemoryDataset};
    /// use petal_tensor::Tensor;
    /// let data = InMemoryDataset::new(Tensor::zeros(&[6, 1, 1, 1]), vec![0; 6], 2)?;
    /// let whole = BatchLoader::new(&data, 4)?.shuffle(3);
    /// let parts = [whole.clone().shard(0, 2)?, whole.clone().shard(1, 2)?];
    /// let indices = |loader: &BatchLoader<_>| -> Vec<Vec<usize>> {
    ///     loader.epoch(0).map(|b| b.unwrap().indices).collect()
    /// };
    /// let (all, first, second) = (indices(&whole), indices(&parts[0]), indices(&parts[1]));
    /// for b in 0..2 {
    ///     assert_eq!([first[b].clone(), second[b].clone()].concat(), all[b]);
    /// }
    /// assert_eq!(first[0].len(), 2);
    /// assert!(whole.clone().shard(2, 2).is_err());
    /// # Ok::<(), petal_data::DataError>(())
    /// ```
    pub fn shard(mut self, rank: usize, world_size: usize) -> Result<Self> {
        if rank >= world_size {
            return Err(DataError::invalid(
                "BatchLoader::shard",
                format!("rank {rank} is not below the world size {world_size}"),
            ));
        }
        self.shard = Some(Shard { rank, world_size });
        Ok(self)
    }

    /// The number of samples (over all ranks) in batch `b` of an epoch: the batch size,
    /// or less for a short last batch.
    pub fn global_batch_len(&self, b: usize) -> usize {
        self.dataset
            .len()
            .saturating_sub(b * self.batch_size)
            .min(self.batch_size)
    }

    /// The dataset being batched.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The number of samples per full batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The number of batches [`BatchLoader::epoch`] yields.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// The order in which epoch `epoch` visits the dataset's indices.
    ///
    /// Shuffled orders come from ChaCha8 seeded with the loader's seed, on stream
    /// `epoch`: independent per epoch, identical on every machine.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if let Some(seed) = self.seed {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(epoch);
            order.shuffle(&mut rng);
        }
        order
    }

    /// Runs `consume` on the batches of epoch `epoch` while a background thread loads up
    /// to `depth` batches ahead (a bounded queue), so that the next batch is ready when the
    /// model asks for it. The batches are exactly those of [`BatchLoader::epoch`], in the
    /// same order. Samples are decoded on rayon's global pool; if `consume` returns early,
    /// loading stops.
    ///
    /// ```
    /// use petal_data::{BatchLoader, InMemoryDataset};
    /// use petal_tensor::Tensor;
    /// let data = InMemoryDataset::new(Tensor::zeros(&[10, 1, 1, 2]), (0..10).collect(), 10)?;
    /// let loader = BatchLoader::new(data, 4)?.shuffle(7);
    /// let labels = loader.prefetched_epoch(0, 2, |batches| -> petal_data::Result<Vec<usize>> {
    ///     let mut labels = Vec::new();
    ///     for batch in batches {
    ///         labels.extend(batch?.labels);
    ///     }
    ///     Ok(labels)
    /// })?;
    /// assert_eq!(labels, loader.epoch_order(0));
    /// # Ok::<(), petal_data::DataError>(())
    /// ```
    pub fn prefetched_epoch<R>(
        &self,
        epoch: u64,
        depth: usize,
        consume: impl FnOnce(&mut dyn Iterator<Item = Result<Batch>>) -> R,
    ) -> R
    where
        D: Sync,
    {
        self.prefetched_epoch_from(epoch, 0, depth, consume)
    }

    /// [`BatchLoader::prefetched_epoch`] from batch `first` (0-based) on, like
    /// [`BatchLoader::epoch_from`]: a run resumed mid-epoch continues with the same
    /// batches.
    pub fn prefetched_epoch_from<R>(
        &self,
        epoch: u64,
        first: usize,
        depth: usize,
        consume: impl FnOnce(&mut dyn Iterator<Item = Result<Batch>>) -> R,
    ) -> R
    where
        D: Sync,
    {
        std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::sync_channel(depth.max(1));
            scope.spawn(move || {
                for batch in self.epoch_from(epoch, first) {
                    if sender.send(batch).is_err() {
                        break; // the consumer stopped early
                    }
                }
            });
            consume(&mut receiver.into_iter())
        })
    }

    /// The batches of epoch `epoch`, each loaded when the iterator reaches it.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = Result<Batch>> + '_ {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `first` (0-based) on, without loading the
    /// earlier ones: a run resumed mid-epoch continues with the same batches.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> impl Iterator<Item = Result<Batch>> + '_ {
        let order = self.epoch_order(epoch);
        (first..self.batches_per_epoch()).map(move |b| {
            let start = b * self.batch_size;
            let global = &order[start..start + self.global_batch_len(b)];
            let part = match self.shard {
                Some(Shard { rank, world_size }) => {
                    &global[shard_range(global.len(), rank, world_size)]
                }
                None => global,
            };
            self.load(part, Some(epoch))
        })
    }

    /// Loads the samples at `indices` into one batch, in parallel on the rayon pool,
    /// without augmentation.
    pub fn load_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.load(indices, None)
    }

    /// Loads the samples at `indices` into one batch, augmenting them as samples of
    /// `epoch` when it is given and an augmentation is set.
    fn load(&self, indices: &[usize], epoch: Option<u64>) -> Result<Batch> {
        let sample_len = self.dataset.sample_len();
        let shape = self.dataset.sample_shape();
        let augmentation = self.augmentation.as_ref().zip(epoch);
        let load_one = |i: usize, out: &mut [f32]| {
            let label = self.dataset.load(i, out)?;
            if let Some((augment, epoch)) = augmentation {
                let mut rng = sample_rng(augment.seed, epoch, i);
                augment.augmentation.apply(out, shape, &mut rng)?;
            }
            Ok(label)
        };
        let mut data = vec![0.0f32; indices.len() * sample_len];
        let labels = if sample_len == 0 {
            // par_chunks_mut needs a positive chunk size; empty samples still have labels.
            indices
                .iter()
                .map(|&i| load_one(i, &mut []))
                .collect::<Result<Vec<_>>>()?
        } else {
            data.par_chunks_mut(sample_len)
                .zip(indices.par_iter())
                .map(|(out, &i)| load_one(i, out))
                .collect::<Result<Vec<_>>>()?
        };
        let mut batch_shape = vec![indices.len()];
        batch_shape.extend_from_slice(shape);
        let images = Tensor::from_vec(&batch_shape, data)
            .map_err(|e| DataError::invalid("BatchLoader::load_batch", e.to_string()))?;
        Ok(Batch {
            images,
            labels,
            indices: indices.to_vec(),
        })
    }
}
