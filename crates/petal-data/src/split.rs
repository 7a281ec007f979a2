//! Train/validation/test splits: the [`Split`] names and seeded stratified splitting.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// One part of a train/validation/test split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training part.
    Train,
    /// The validation part.
    Val,
    /// The test part.
    Test,
}

/// The sample indices of each part of a split, each ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SplitIndices {
    /// Training samples.
    pub train: Vec<usize>,
    /// Validation samples.
    pub val: Vec<usize>,
    /// Test samples.
    pub test: Vec<usize>,
}

impl SplitIndices {
    /// The indices of `part`.
    pub fn get(&self, part: Split) -> &[usize] {
        match part {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }
}

/// Splits the positions of `labels` into train/val/test with `fractions` = `[train, val,
/// test]` (non-negative, summing to 1) of every class, drawn from a generator seeded by
/// `seed`. Each class contributes `round(n * train)` train and `round(n * val)` val samples
/// (fewer if the class is too small), the rest go to test.
///
/// ```
/// let labels = [0, 0, 0, 0, 1, 1, 1, 1];
/// let split = petal_data::stratified_split(&labels, [0.5, 0.25, 0.25], 7)?;
/// assert_eq!((split.train.len(), split.val.len(), split.test.len()), (4, 2, 2));
/// # Ok::<(), petal_data::DataError>(())
/// ```
pub fn stratified_split(labels: &[usize], fractions: [f64; 3], seed: u64) -> Result<SplitIndices> {
    let sum: f64 = fractions.iter().sum();
    if fractions.iter().any(|f| !(0.0..=1.0).contains(f)) || (sum - 1.0).abs() > 1e-6 {
        return Err(DataError::invalid(
            "stratified_split",
            format!("fractions {fractions:?} must be in [0, 1] and sum to 1"),
        ));
    }
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut members = vec![Vec::new(); classes];
    for (position, &label) in labels.iter().enumerate() {
        members[label].push(position);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = SplitIndices::default();
    for mut class in members {
        class.shuffle(&mut rng);
        let n = class.len();
        let train = ((n as f64 * fractions[0]).round() as usize).min(n);
        let val = ((n as f64 * fractions[1]).round() as usize).min(n - train);
        split.train.extend_from_slice(&class[..train]);
        split.val.extend_from_slice(&class[train..train + val]);
        split.test.extend_from_slice(&class[train + val..]);
    }
    for part in [&mut split.train, &mut split.val, &mut split.test] {
        part.sort_unstable();
    }
    Ok(split)
}
