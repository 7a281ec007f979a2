//! [`BatchLoader`]: an epoch of a dataset as batches, optionally in a seeded shuffled order.

use petal_tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

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
/// `e`, so a run is reproducible and can resume at any epoch.
///
/// ```
/// use petal_data::{BatchLoader, InMemoryDataset};
/// use petal_tensor::Tensor;
/// let images = Tensor::zeros(&[5, 2, 2, 1]);
/// let data = InMemoryDataset::new(images, vec![0, 1, 0, 1, 0], 2)?;
/// let loader = BatchLoader::new(data, 2).shuffle(7);
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
}

impl<D: Dataset> BatchLoader<D> {
    /// Batches of `batch_size` samples in dataset order, the last one possibly short.
    ///
    /// # Panics
    /// When `batch_size` is zero.
    pub fn new(dataset: D, batch_size: usize) -> Self {
        assert!(
            batch_size > 0,
            "BatchLoader::new: batch_size must be positive"
        );
        Self {
            dataset,
            batch_size,
            seed: None,
            drop_last: false,
        }
    }

    /// Visits the samples in a new random order every epoch, drawn from `seed` and the epoch.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// When `true`, leaves out the last batch if it would be short.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
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

    /// The batches of epoch `epoch`, each loaded when the iterator reaches it.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = Result<Batch>> + '_ {
        let order = self.epoch_order(epoch);
        (0..self.batches_per_epoch()).map(move |b| {
            let start = b * self.batch_size;
            let end = (start + self.batch_size).min(order.len());
            self.load_batch(&order[start..end])
        })
    }

    /// Loads the samples at `indices` into one batch, in parallel on the rayon pool.
    pub fn load_batch(&self, indices: &[usize]) -> Result<Batch> {
        let sample_len = self.dataset.sample_len();
        let mut data = vec![0.0f32; indices.len() * sample_len];
        let labels = if sample_len == 0 {
            // par_chunks_mut needs a positive chunk size; empty samples still have labels.
            indices
                .iter()
                .map(|&i| self.dataset.load(i, &mut []))
                .collect::<Result<Vec<_>>>()?
        } else {
            data.par_chunks_mut(sample_len)
                .zip(indices.par_iter())
                .map(|(out, &i)| self.dataset.load(i, out))
                .collect::<Result<Vec<_>>>()?
        };
        let mut shape = vec![indices.len()];
        shape.extend_from_slice(self.dataset.sample_shape());
        let images = Tensor::from_vec(&shape, data)
            .map_err(|e| DataError::invalid("BatchLoader::load_batch", e.to_string()))?;
        Ok(Batch {
            images,
            labels,
            indices: indices.to_vec(),
        })
    }
}
