//! The [`Dataset`] trait and the in-memory dataset every loader reads from.

use std::sync::Arc;

use petal_tensor::Tensor;

use crate::error::{DataError, Result};

/// A labelled collection of equally shaped f32 samples, readable from many threads.
///
/// A sample is one NHWC image without the batch axis, e.g. `[28, 28, 1]` for MNIST.
/// [`Dataset::load`] writes it into a caller-provided buffer so a batch can be filled
/// in place, one sample per thread.
pub trait Dataset: Send + Sync {
    /// The number of samples.
    fn len(&self) -> usize;

    /// The shape of one sample, e.g. `[height, width, channels]`.
    fn sample_shape(&self) -> &[usize];

    /// The number of classes; every label is below it.
    fn num_classes(&self) -> usize;

    /// Writes sample `index` into `out` (which must hold exactly
    /// [`Dataset::sample_len`] values) and returns its label.
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize>;

    /// `true` when the dataset holds no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of f32 values in one sample.
    fn sample_len(&self) -> usize {
        self.sample_shape().iter().product()
    }
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn sample_shape(&self) -> &[usize] {
        (**self).sample_shape()
    }
    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        (**self).load(index, out)
    }
}

impl<D: Dataset + ?Sized> Dataset for &D {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn sample_shape(&self) -> &[usize] {
        (**self).sample_shape()
    }
    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }
    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        (**self).load(index, out)
    }
}

/// Checks `index` and the size of `out` for a [`Dataset::load`] call.
pub(crate) fn check_load_args(dataset: &dyn Dataset, index: usize, out: &[f32]) -> Result<()> {
    if index >= dataset.len() {
        return Err(DataError::IndexOutOfRange {
            index,
            len: dataset.len(),
        });
    }
    if out.len() != dataset.sample_len() {
        return Err(DataError::invalid(
            "Dataset::load",
            format!(
                "the output buffer holds {} values but a sample of shape {:?} has {}",
                out.len(),
                dataset.sample_shape(),
                dataset.sample_len()
            ),
        ));
    }
    Ok(())
}

/// Images and labels held in memory: images `(n, height, width, channels)`, one label each.
///
/// ```
/// use petal_data::{Dataset, InMemoryDataset};
/// use petal_tensor::Tensor;
/// let images = Tensor::from_vec(&[2, 1, 2, 1], vec![0.0, 0.1, 0.2, 0.3]).unwrap();
/// let data = InMemoryDataset::new(images, vec![1, 0], 2)?;
/// let mut sample = [0.0; 2];
/// assert_eq!(data.load(1, &mut sample)?, 0);
/// assert_eq!(sample, [0.2, 0.3]);
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct InMemoryDataset {
    images: Tensor,
    labels: Vec<usize>,
    num_classes: usize,
}

impl InMemoryDataset {
    /// Checks that `images` is 4-d `(n, h, w, c)`, that there is one label per image
    /// and that every label is below `num_classes`.
    pub fn new(images: Tensor, labels: Vec<usize>, num_classes: usize) -> Result<Self> {
        const CONTEXT: &str = "InMemoryDataset::new";
        if images.ndim() != 4 {
            return Err(DataError::invalid(
                CONTEXT,
                format!(
                    "images must be 4-d (n, height, width, channels), got shape {:?}",
                    images.shape()
                ),
            ));
        }
        if images.shape()[0] != labels.len() {
            return Err(DataError::invalid(
                CONTEXT,
                format!("{} images but {} labels", images.shape()[0], labels.len()),
            ));
        }
        if let Some((position, label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &label)| label >= num_classes)
        {
            return Err(DataError::invalid(
                CONTEXT,
                format!(
                    "label {label} at position {position} is not below num_classes = {num_classes}"
                ),
            ));
        }
        Ok(Self {
            images,
            labels,
            num_classes,
        })
    }

    /// All images, `(n, height, width, channels)`.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// All labels, one per image.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }
}

impl Dataset for InMemoryDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.images.shape()[1..]
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        check_load_args(self, index, out)?;
        let n = out.len();
        out.copy_from_slice(&self.images.as_slice()[index * n..(index + 1) * n]);
        Ok(self.labels[index])
    }
}
