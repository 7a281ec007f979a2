//! A filter prepared once for many forward passes: inference with fixed weights.
//!
//! Every call of [`conv2d`](super::conv2d) derives from the filter what its path needs.
//! For a Winograd layer that is the transformed matrices `U`, 4x the filter's size
//! with F(4x4) (16/9 with F(2x2)): ResNet18 writes 151 MB of them per forward pass
//! (computed: 9.4 M weights in its stride-1 3x3 layers, times 4, in f32); a stage in
//! bf16 also packs them. A [`PreparedFilter`] makes them once, in the precision in force
//! then, and the forward passes multiply by them directly; the other paths take the
//! filter as it is. The numbers are the same bits as the unprepared calls'.

use super::{max_pooled, winograd, ConvPath, ConvShape, Filter};
use crate::elementwise::Unary;
use crate::error::Result;
use crate::{Conv2dSpec, Pool2dSpec, Precision, Tensor};

/// A convolution filter with what the forward pass derives from it alone made once.
///
/// ```
/// use petal_tensor::conv::{conv2d, PreparedFilter};
/// use petal_tensor::{elementwise::Unary, Conv2dSpec, Padding, Tensor};
/// // A 3x3 layer of 32 channels and filters: a Winograd one, whose matrices are made here.
/// let f = Tensor::from_vec(&[3, 3, 32, 32], (0..9216).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect())?;
/// let spec = Conv2dSpec { padding: Padding::Same, ..Conv2dSpec::default() };
/// let prepared = PreparedFilter::new(f.clone(), &spec)?;
/// let x = Tensor::from_vec(&[2, 8, 8, 32], (0..4096).map(|i| (i % 11) as f32 / 11.0).collect())?;
/// let y = prepared.conv2d(&x, None, Some(Unary::Relu))?;
/// let y_again = conv2d(&x, &f, None, &spec)?;
/// let relu: Vec<f32> = y_again.to_vec().into_iter().map(|v| v.max(0.0)).collect();
/// assert_eq!(y.to_vec(), relu);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub struct PreparedFilter {
    filter: Tensor,
    spec: Conv2dSpec,
    winograd: Option<winograd::Transformed>,
}

impl PreparedFilter {
    /// Prepares the HWIO `filter` for convolutions with `spec`, on the path Petal
    /// chooses now ([`with_kernel_3x3`](super::with_kernel_3x3) included). A pass that
    /// later takes another path derives what it needs from the filter, as unprepared
    /// calls do.
    pub fn new(filter: Tensor, spec: &Conv2dSpec) -> Result<Self> {
        let shape = one_window_shape(filter.shape(), spec)?;
        let winograd = match shape.path() {
            ConvPath::Winograd(tile) => {
                Some(winograd::Transformed::of(tile, &shape, filter.as_slice())?)
            }
            _ => None,
        };
        Ok(Self {
            filter,
            spec: *spec,
            winograd,
        })
    }

    /// Whether preparing a filter of `filter_shape` for `spec` saves anything on the
    /// path Petal chooses now: only Winograd layers derive something from their filter
    /// (the other paths take it as it is, and a prepared filter would only copy it).
    ///
    /// ```
    /// use petal_tensor::conv::PreparedFilter;
    /// use petal_tensor::Conv2dSpec;
    /// let spec = Conv2dSpec::default();
    /// assert!(PreparedFilter::worth_preparing(&[3, 3, 64, 64], &spec));
    /// assert!(!PreparedFilter::worth_preparing(&[1, 1, 64, 64], &spec));
    /// ```
    pub fn worth_preparing(filter_shape: &[usize], spec: &Conv2dSpec) -> bool {
        tile_now(filter_shape, spec).is_some()
    }

    /// Whether this filter holds what the path Petal chooses now needs (the choice can
    /// change with [`with_kernel_3x3`](super::with_kernel_3x3) and with
    /// [`with_precision`](crate::with_precision)); a pass on another path
    /// still gives that path's numbers, but derives them from the filter again.
    pub fn is_current(&self) -> bool {
        match (tile_now(self.filter.shape(), &self.spec), &self.winograd) {
            (Some(tile), Some(w)) => w.fits(tile, Precision::scoped()),
            (tile, w) => tile.is_none() && w.is_none(),
        }
    }

    /// The filter.
    pub fn filter(&self) -> &Tensor {
        &self.filter
    }

    /// [`conv2d`](super::conv2d) of `input` with this filter, then `activation` (if any)
    /// in the same pass, as [`conv2d_activated`](super::conv2d_activated) does.
    pub fn conv2d(
        &self,
        input: &Tensor,
        bias: Option<&Tensor>,
        activation: Option<Unary>,
    ) -> Result<Tensor> {
        super::convolve(input, self.as_filter(), bias, &self.spec, activation)
    }

    /// [`conv2d_max_pooled`](super::conv2d_max_pooled) of `input` with this filter.
    pub fn conv2d_max_pooled(
        &self,
        input: &Tensor,
        bias: Option<&Tensor>,
        activation: Option<Unary>,
        pool: &Pool2dSpec,
    ) -> Result<(Tensor, Vec<u32>)> {
        max_pooled(input, self.as_filter(), bias, &self.spec, activation, pool)
    }

    fn as_filter(&self) -> Filter<'_> {
        Filter {
            values: &self.filter,
            winograd: self.winograd.as_ref(),
        }
    }
}

/// The Winograd tiling Petal chooses now for a filter of `filter_shape` with `spec`,
/// if it takes that path (`None` for another path, or shapes that do not fit).
fn tile_now(filter_shape: &[usize], spec: &Conv2dSpec) -> Option<winograd::Tile> {
    match one_window_shape(filter_shape, spec).ok()?.path() {
        ConvPath::Winograd(tile) => Some(tile),
        _ => None,
    }
}

/// The convolution of one image one window large by a filter of `filter_shape`: the
/// path ([`ConvShape::path`]) depends on the filter and the spec, not on the image
/// size, so this shape has the path of every input the filter takes.
fn one_window_shape(filter_shape: &[usize], spec: &Conv2dSpec) -> Result<ConvShape> {
    ConvShape::new(&one_window(filter_shape, spec), filter_shape, spec)
}

/// An input shape of one image exactly one (dilated) window large, with as many
/// channels as `filter` reads.
fn one_window(filter: &[usize], spec: &Conv2dSpec) -> Vec<usize> {
    let extent = |kernel: usize, dilation: usize| kernel.saturating_sub(1) * dilation + 1;
    match filter {
        &[kh, kw, channels, _] => vec![
            1,
            extent(kh, spec.dilation[0]),
            extent(kw, spec.dilation[1]),
            channels * spec.groups,
        ],
        // Not 4-D: `ConvShape::new` names the shapes.
        _ => Vec::new(),
    }
}
