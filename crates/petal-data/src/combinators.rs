//! Views of datasets: a subset of the samples, a seeded shuffle, a per-sample map, two
//! datasets one after the other.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// The samples of `inner` at `indices`, in that order (repeats allowed).
///
/// ```
/// use petal_data::{Dataset, InMemoryDataset, Subset};
/// use petal_tensor::Tensor;
/// let images = Tensor::from_vec(&[3, 1, 1, 1], vec![0.0, 1.0, 2.0]).unwrap();
/// let data = InMemoryDataset::new(images, vec![0, 1, 2], 3)?;
/// let last_two = Subset::new(&data, vec![2, 1])?;
/// let mut x = [0.0];
/// assert_eq!(last_two.load(0, &mut x)?, 2);
/// assert!(Subset::new(&data, vec![3]).is_err());
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Subset<D> {
    inner: D,
    indices: Vec<usize>,
}

impl<D: Dataset> Subset<D> {
    /// Checks that every index is below `inner.len()`.
    pub fn new(inner: D, indices: Vec<usize>) -> Result<Self> {
        if let Some((position, &index)) = indices
            .iter()
            .enumerate()
            .find(|(_, &index)| index >= inner.len())
        {
            return Err(DataError::invalid(
                "Subset::new",
                format!(
                    "index {index} at position {position} is out of range for a dataset of {} samples",
                    inner.len()
                ),
            ));
        }
        Ok(Self { inner, indices })
    }

    /// The indices into the inner dataset.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The inner dataset.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dataset> Dataset for Subset<D> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn sample_shape(&self) -> &[usize] {
        self.inner.sample_shape()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        let inner_index = *self.indices.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.indices.len(),
        })?;
        self.inner.load(inner_index, out)
    }
}

/// All samples of `inner` in a fixed random order drawn from `seed` (ChaCha8).
///
/// The same seed gives the same order on every machine.
#[derive(Clone, Debug)]
pub struct Shuffled<D> {
    subset: Subset<D>,
}

impl<D: Dataset> Shuffled<D> {
    /// Shuffles the sample order of `inner` with `seed`.
    pub fn new(inner: D, seed: u64) -> Self {
        let mut permutation: Vec<usize> = (0..inner.len()).collect();
        permutation.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        Self {
            subset: Subset {
                inner,
                indices: permutation,
            },
        }
    }

    /// `permutation()[i]` is the inner index of sample `i`.
    pub fn permutation(&self) -> &[usize] {
        self.subset.indices()
    }
}

impl<D: Dataset> Dataset for Shuffled<D> {
    fn len(&self) -> usize {
        self.subset.len()
    }
    fn sample_shape(&self) -> &[usize] {
        self.subset.sample_shape()
    }
    fn num_classes(&self) -> usize {
        self.subset.num_classes()
    }
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        self.subset.load(index, out)
    }
}

/// The samples of `inner` with `f` applied to each after loading; labels unchanged.
///
/// ```
/// use petal_data::{Dataset, InMemoryDataset, Mapped};
/// use petal_tensor::Tensor;
/// let images = Tensor::from_vec(&[1, 1, 2, 1], vec![0.25, 0.5]).unwrap();
/// let data = InMemoryDataset::new(images, vec![0], 1)?;
/// let centred = Mapped::new(data, |x: &mut [f32]| x.iter_mut().for_each(|v| *v -= 0.5));
/// let mut x = [0.0; 2];
/// centred.load(0, &mut x)?;
/// assert_eq!(x, [-0.25, 0.0]);
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone)]
pub struct Mapped<D, F> {
    inner: D,
    f: F,
}

impl<D: Dataset, F: Fn(&mut [f32]) + Send + Sync> Mapped<D, F> {
    /// Applies `f` to every sample of `inner` as it is loaded.
    pub fn new(inner: D, f: F) -> Self {
        Self { inner, f }
    }
}

impl<D: Dataset, F: Fn(&mut [f32]) + Send + Sync> Dataset for Mapped<D, F> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn sample_shape(&self) -> &[usize] {
        self.inner.sample_shape()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        let label = self.inner.load(index, out)?;
        (self.f)(out);
        Ok(label)
    }
}

/// The samples of `first` followed by those of `second` (Keras' `Dataset.concatenate`),
/// e.g. the train and validation splits trained on together once the epochs are chosen.
///
/// ```
/// use petal_data::{Concatenated, Dataset, InMemoryDataset};
/// use petal_tensor::Tensor;
/// let a = InMemoryDataset::new(Tensor::from_vec(&[1, 1, 1, 1], vec![5.0]).unwrap(), vec![0], 2)?;
/// let b = InMemoryDataset::new(Tensor::from_vec(&[2, 1, 1, 1], vec![6.0, 7.0]).unwrap(), vec![1, 0], 2)?;
/// let both = Concatenated::new(&a, &b)?;
/// let mut x = [0.0];
/// assert_eq!((both.len(), both.load(1, &mut x)?, x), (3, 1, [6.0]));
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Concatenated<A, B> {
    first: A,
    second: B,
}

impl<A: Dataset, B: Dataset> Concatenated<A, B> {
    /// Checks that both hold samples of one shape and the same number of classes.
    pub fn new(first: A, second: B) -> Result<Self> {
        if first.sample_shape() != second.sample_shape()
            || first.num_classes() != second.num_classes()
        {
            return Err(DataError::invalid(
                "Concatenated::new",
                format!(
                    "the datasets differ: samples {:?} with {} classes, then {:?} with {} classes",
                    first.sample_shape(),
                    first.num_classes(),
                    second.sample_shape(),
                    second.num_classes()
                ),
            ));
        }
        Ok(Self { first, second })
    }
}

impl<A: Dataset, B: Dataset> Dataset for Concatenated<A, B> {
    fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }
    fn sample_shape(&self) -> &[usize] {
        self.first.sample_shape()
    }
    fn num_classes(&self) -> usize {
        self.first.num_classes()
    }
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        match index.checked_sub(self.first.len()) {
            None => self.first.load(index, out),
            Some(rest) if rest < self.second.len() => self.second.load(rest, out),
            Some(_) => Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            }),
        }
    }
}

#[cfg(test)]
mod concatenated_tests {
    use petal_tensor::Tensor;

    use super::*;
    use crate::InMemoryDataset;

    fn data(values: &[f32], classes: usize) -> InMemoryDataset {
        let n = values.len();
        let images = Tensor::from_vec(&[n, 1, 1, 1], values.to_vec()).unwrap();
        InMemoryDataset::new(images, (0..n).map(|i| i % classes).collect(), classes).unwrap()
    }

    #[test]
    fn samples_of_both_in_order_then_out_of_range() {
        let both = Concatenated::new(data(&[1.0, 2.0], 2), data(&[3.0], 2)).unwrap();
        let mut x = [0.0];
        let loaded: Vec<(usize, f32)> = (0..3)
            .map(|i| (both.load(i, &mut x).unwrap(), x[0]))
            .collect();
        assert_eq!(loaded, [(0, 1.0), (1, 2.0), (0, 3.0)]);
        assert!(matches!(
            both.load(3, &mut x),
            Err(DataError::IndexOutOfRange { index: 3, len: 3 })
        ));
    }

    #[test]
    fn different_classes_are_refused() {
        let err = Concatenated::new(data(&[1.0], 2), data(&[1.0], 3)).unwrap_err();
        assert!(
            err.to_string().contains("2 classes, then [1, 1, 1] with 3"),
            "{err}"
        );
    }
}
