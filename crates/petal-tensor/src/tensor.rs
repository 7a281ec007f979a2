//! The f32 n-dimensional tensor every kernel reads and writes.

use ndarray::{ArrayD, IxDyn};

use crate::error::{invalid, Result};

/// A dense f32 tensor in row-major (C) order, backed by an [`ndarray::ArrayD`].
///
/// The data is always contiguous in standard layout, so every kernel can work on
/// [`Tensor::as_slice`] directly. Activations are NHWC, convolution filters HWIO.
///
/// ```
/// use petal_tensor::Tensor;
/// let t = Tensor::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.as_slice()[4], 5.0);
/// assert!(Tensor::from_vec(&[2, 2], vec![1.0]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    array: ArrayD<f32>,
}

impl Tensor {
    /// A tensor of `shape` holding `data` in row-major order.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(invalid(
                "Tensor::from_vec",
                format!(
                    "shape {shape:?} holds {expected} values but {} were given",
                    data.len()
                ),
            ));
        }
        Ok(Self::from_array(
            ArrayD::from_shape_vec(IxDyn(shape), data).expect("length checked above"),
        ))
    }

    /// Wraps an ndarray array, copying it into standard layout if it is not already.
    pub fn from_array(array: ArrayD<f32>) -> Self {
        let array = if array.is_standard_layout() {
            array
        } else {
            array.as_standard_layout().into_owned()
        };
        Self { array }
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Self {
        Self::from_array(ArrayD::from_elem(IxDyn(shape), value))
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full(shape, 0.0)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Self {
        Self::full(shape, 1.0)
    }

    /// A zero-dimensional tensor holding one value.
    pub fn scalar(value: f32) -> Self {
        Self::full(&[], value)
    }

    /// The extent of each axis.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.array.ndim()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// True when the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    /// The values in row-major order.
    pub fn as_slice(&self) -> &[f32] {
        self.array.as_slice().expect("Tensor keeps standard layout")
    }

    /// The values in row-major order, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        self.array
            .as_slice_mut()
            .expect("Tensor keeps standard layout")
    }

    /// The values as a vector in row-major order.
    pub fn to_vec(&self) -> Vec<f32> {
        self.as_slice().to_vec()
    }

    /// The only value of a tensor with exactly one element.
    pub fn item(&self) -> Result<f32> {
        match self.as_slice() {
            [v] => Ok(*v),
            _ => Err(invalid(
                "Tensor::item",
                format!("tensor of shape {:?} is not a single value", self.shape()),
            )),
        }
    }

    /// Borrow the underlying ndarray array.
    pub fn array(&self) -> &ArrayD<f32> {
        &self.array
    }

    /// Take the underlying ndarray array.
    pub fn into_array(self) -> ArrayD<f32> {
        self.array
    }

    /// The largest absolute difference to `other`, or `None` when the shapes differ.
    pub fn max_abs_diff(&self, other: &Tensor) -> Option<f32> {
        (self.shape() == other.shape()).then(|| {
            self.as_slice()
                .iter()
                .zip(other.as_slice())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max)
        })
    }

    /// The largest absolute difference to `reference`, relative to the largest magnitude
    /// in `reference` (how outputs are compared with another framework's); `None` when
    /// the shapes differ or `reference` is all zeros (nothing would be compared).
    ///
    /// ```
    /// use petal_tensor::Tensor;
    /// let ours = Tensor::from_vec(&[2], vec![1.0, -3.9])?;
    /// let theirs = Tensor::from_vec(&[2], vec![1.0, -4.0])?;
    /// assert!((ours.max_relative_diff(&theirs).unwrap() - 0.025).abs() < 1e-6);
    /// # Ok::<(), petal_tensor::TensorError>(())
    /// ```
    pub fn max_relative_diff(&self, reference: &Tensor) -> Option<f32> {
        let largest = reference
            .as_slice()
            .iter()
            .fold(0.0, |m: f32, v| m.max(v.abs()));
        (largest > 0.0).then_some(())?;
        Some(self.max_abs_diff(reference)? / largest)
    }
}

impl From<ArrayD<f32>> for Tensor {
    fn from(array: ArrayD<f32>) -> Self {
        Self::from_array(array)
    }
}
