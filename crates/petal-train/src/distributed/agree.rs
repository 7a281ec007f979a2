//! Checks that the ranks of a group run the same thing: the settings and data at the
//! start, the weights during training.

use petal_data::Dataset;
use petal_nn::ParamStore;

use super::Distributed;
use crate::checkpoint::RunSettings;
use crate::error::{Result, TrainError};

/// FNV-1a over 64-bit words: cheap, and any changed bit changes the sum.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x0000_0100_0000_01b3);
    }
    fn add_f32s(&mut self, values: &[f32]) {
        values.iter().for_each(|v| self.add(u64::from(v.to_bits())));
    }
}

/// A checksum of every parameter's shape and bits, in store order: equal weights give
/// equal checksums, and one changed bit changes it.
///
/// ```
/// use petal_nn::ParamStore;
/// use petal_tensor::Tensor;
/// use petal_train::distributed::weights_checksum;
/// let mut store = ParamStore::new();
/// let id = store.add("w", Tensor::from_vec(&[2], vec![1.0, 2.0])?, true)?;
/// let before = weights_checksum(&store);
/// store.value_mut(id).as_mut_slice()[1] = f32::from_bits(2.0f32.to_bits() ^ 1);
/// assert_ne!(weights_checksum(&store), before);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn weights_checksum(store: &ParamStore) -> u64 {
    let mut sum = Fnv::new();
    for (_, p) in store.iter() {
        p.value.shape().iter().for_each(|&d| sum.add(d as u64));
        sum.add_f32s(p.value.as_slice());
    }
    sum.0
}

/// Samples a [`data_fingerprint`] reads at most.
const FINGERPRINT_SAMPLES: usize = 64;

/// A fingerprint of a dataset, cheap even for data decoded from files: its size,
/// sample shape and class count, and the values and labels of up to 64 samples spread
/// evenly over it (always the first and the last). Two ranks with different copies of
/// the data (another version, another split) almost surely disagree.
///
/// ```
/// use petal_data::InMemoryDataset;
/// use petal_tensor::Tensor;
/// use petal_train::distributed::data_fingerprint;
/// let a = InMemoryDataset::new(Tensor::zeros(&[3, 1, 1, 1]), vec![0, 1, 0], 2)?;
/// let b = InMemoryDataset::new(Tensor::zeros(&[3, 1, 1, 1]), vec![0, 1, 1], 2)?;
/// assert_eq!(data_fingerprint(&a)?, data_fingerprint(&a)?);
/// assert_ne!(data_fingerprint(&a)?, data_fingerprint(&b)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn data_fingerprint(data: &dyn Dataset) -> Result<u64> {
    let mut sum = Fnv::new();
    sum.add(data.len() as u64);
    sum.add(data.num_classes() as u64);
    data.sample_shape().iter().for_each(|&d| sum.add(d as u64));
    let n = data.len();
    let picks = n.min(FINGERPRINT_SAMPLES);
    let mut sample = vec![0.0; data.sample_len()];
    for k in 0..picks {
        let index = if picks == 1 {
            0
        } else {
            k * (n - 1) / (picks - 1)
        };
        let label = data.load(index, &mut sample)?;
        sum.add(index as u64);
        sum.add(label as u64);
        sum.add_f32s(&sample);
    }
    Ok(sum.0)
}

/// Compares `value` across the ranks; an error names `what` and each rank that differs
/// from rank 0, with `show` rendering the values.
fn agree(dist: &Distributed, what: &str, value: u64, show: impl Fn(u64) -> String) -> Result<()> {
    let all = dist.communicator.allgather_u64(value)?;
    let differing: Vec<String> = (all.iter().enumerate().skip(1))
        .filter(|(_, v)| **v != all[0])
        .map(|(r, &v)| format!("rank {r} has {}", show(v)))
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    Err(TrainError::Distributed(format!(
        "the ranks disagree on {what}: rank 0 has {}, {}",
        show(all[0]),
        differing.join(", ")
    )))
}

/// What every rank must share at the start of a run beyond the checkpoint's
/// [`RunSettings`]: the run length, the data and the model.
pub(crate) struct StartSettings<'a> {
    pub run: &'a RunSettings,
    pub epochs: usize,
    pub train: &'a dyn Dataset,
    pub validation: Option<&'a dyn Dataset>,
    pub store: &'a ParamStore,
}

/// Refuses, by name, any setting, data or model on which the ranks differ, a batch size
/// that does not split evenly over them, and synchronized batch norm with a last batch
/// that leaves a rank without samples.
pub(crate) fn agree_on_start(dist: &Distributed, s: &StartSettings<'_>) -> Result<()> {
    let number = |v: u64| v.to_string();
    let checksum = |v: u64| format!("checksum {v:016x}");
    agree(dist, "the seed", s.run.seed, number)?;
    agree(
        dist,
        "the shuffle seed",
        s.run.shuffle_seed.unwrap_or(u64::MAX),
        |v| {
            if v == u64::MAX {
                "none".into()
            } else {
                v.to_string()
            }
        },
    )?;
    agree(dist, "the batch size", s.run.batch_size as u64, number)?;
    agree(dist, "the number of epochs", s.epochs as u64, number)?;
    agree(dist, "the training-set size", s.train.len() as u64, number)?;
    agree(
        dist,
        "the training data",
        data_fingerprint(s.train)?,
        checksum,
    )?;
    let validation_size = s.validation.map_or(0, |v| v.len() as u64);
    agree(dist, "the validation-set size", validation_size, number)?;
    if let Some(validation) = s.validation {
        agree(
            dist,
            "the validation data",
            data_fingerprint(validation)?,
            checksum,
        )?;
    }
    let mut shapes = Fnv::new();
    for (_, p) in s.store.iter() {
        p.name.bytes().for_each(|b| shapes.add(u64::from(b)));
        p.value.shape().iter().for_each(|&d| shapes.add(d as u64));
    }
    agree(
        dist,
        "the model (parameter names and shapes)",
        shapes.0,
        checksum,
    )?;
    agree(
        dist,
        "synchronized batch norm",
        u64::from(dist.sync_batch_norm),
        |v| if v == 1 { "on".into() } else { "off".into() },
    )?;
    let world = dist.world_size();
    if !s.run.batch_size.is_multiple_of(world) {
        return Err(TrainError::Distributed(format!(
            "the batch size {} (the global batch) does not split evenly over {world} ranks: \
             give a multiple of {world}",
            s.run.batch_size
        )));
    }
    let last_batch = s.train.len().checked_rem(s.run.batch_size).unwrap_or(0);
    if dist.sync_batch_norm && (1..world).contains(&last_batch) {
        return Err(TrainError::Distributed(format!(
            "synchronized batch norm needs a sample on every rank in every batch, but the last \
             batch of the {} training samples has {last_batch} for {world} ranks: choose a batch \
             size that leaves at least {world} (or none) in the last batch",
            s.train.len()
        )));
    }
    Ok(())
}

/// Compares a checksum of the weights across ranks after `step`; ranks whose weights
/// differ from rank 0's are an error naming them.
pub(crate) fn check_weights(dist: &Distributed, store: &ParamStore, step: u64) -> Result<()> {
    agree(
        dist,
        &format!("the weights after step {step} (the replicas drifted apart)"),
        weights_checksum(store),
        |v| format!("checksum {v:016x}"),
    )
}

/// Rank 0's stop decision at an epoch's end, on every rank: its callbacks include those
/// only it runs ([`Callback::leader_only`](crate::callbacks::Callback::leader_only)).
/// Returns the reason to stop with (this rank's own, or rank 0's in general words), or
/// `None` to go on.
pub(crate) fn leaders_stop(dist: &Distributed, mine: Option<String>) -> Result<Option<String>> {
    let stops = dist.communicator.allgather_u64(u64::from(mine.is_some()))?;
    Ok(match stops[0] {
        0 => None,
        _ => Some(mine.unwrap_or_else(|| "a callback of rank 0 stopped the run".into())),
    })
}
