//! A filter prepared once for many forward passes: inference with fixed weights.
//!
//! Every call of [`conv2d`](super::conv2d) derives from the filter what its path needs.
//! For a Winograd layer that is the transformed matrices `U`, 4x the filter's size
//! with F(4x4) (16/9 with F(2x2)): ResNet18 writes 151 MB of them per forward pass
//! (computed: 9.4 M weights in its stride-1 3x3 layers, times 4, in f32); a stage in
//! bf16 also packs them. In bf16 the im2col and 1x1 paths pack the filter as bf16 pairs
//! at every call: in a MobileNetV2 bf16 inference profile that packing took 11% of the
//! samples. A [`PreparedFilter`] makes them once, in the precision in force then, and
//! the forward passes multiply by them directly; the other paths take the filter as it
//! is. The numbers are the same bits as the unprepared calls'.

use super::{im2col, max_pooled, winograd, ConvPath, ConvShape, Filter};
use crate::elementwise::Unary;
use crate::error::Result;
use crate::gemm::bf16::PackedRight;
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
    /// The im2col or 1x1 path's filter matrices packed as bf16 pairs, made in bf16.
    packed: Option<Vec<PackedRight>>,
}

impl PreparedFilter {
    /// Prepares the HWIO `filter` for convolutions with `spec`, on the path Petal
    /// chooses now ([`with_kernel_3x3`](super::with_kernel_3x3) included). A pass that
    /// later takes another path derives what it needs from the filter, as unprepared
    /// calls do.
    pub fn new(filter: Tensor, spec: &Conv2dSpec) -> Result<Self> {
        let shape = one_window_shape(filter.shape(), spec)?;
        let (mut winograd, mut packed) = (None, None);
        match preparation(&shape) {
            Preparation::Winograd(tile) => {
                winograd = Some(winograd::Transformed::of(tile, &shape, filter.as_slice())?);
            }
            Preparation::Packed => {
                packed = Some(im2col::packed_filters(&shape, filter.as_slice())?)
            }
            Preparation::Nothing => {}
        }
        Ok(Self {
            filter,
            spec: *spec,
            winograd,
            packed,
        })
    }

    /// Whether preparing a filter of `filter_shape` for `spec` saves anything on the
    /// path and in the precision Petal chooses now: Winograd layers derive their
    /// matrices from their filter, and in bf16 the im2col and 1x1 paths pack it; the
    /// other paths take it as it is, and a prepared filter would only copy it.
    ///
    /// ```
    /// use petal_tensor::conv::PreparedFilter;
    /// use petal_tensor::{with_precision, Conv2dSpec, Precision};
    /// let spec = Conv2dSpec::default();
    /// assert!(PreparedFilter::worth_preparing(&[3, 3, 64, 64], &spec));
    /// assert!(!PreparedFilter::worth_preparing(&[1, 1, 64, 64], &spec));
    /// if Precision::bf16_available() {
    ///     let in_bf16 = with_precision(Precision::Bf16, || PreparedFilter::worth_preparing(&[1, 1, 64, 64], &spec));
    ///     assert!(in_bf16);
    /// }
    /// ```
    pub fn worth_preparing(filter_shape: &[usize], spec: &Conv2dSpec) -> bool {
        preparation_now(filter_shape, spec) != Preparation::Nothing
    }

    /// Whether this filter holds what the path Petal chooses now needs (the choice can
    /// change with [`with_kernel_3x3`](super::with_kernel_3x3) and with
    /// [`with_precision`](crate::with_precision)); a pass on another path
    /// still gives that path's numbers, but derives them from the filter again.
    pub fn is_current(&self) -> bool {
        let holds = (self.winograd.as_ref(), self.packed.is_some());
        match (preparation_now(self.filter.shape(), &self.spec), holds) {
            (Preparation::Winograd(tile), (Some(w), false)) => w.fits(tile, Precision::scoped()),
            (Preparation::Packed, (None, true)) | (Preparation::Nothing, (None, false)) => true,
            _ => false,
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
            packed: self.packed.as_deref(),
        }
    }
}

/// What a prepared filter makes for its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preparation {
    /// Winograd's transformed matrices for this tiling (see [`winograd::Transformed`]).
    Winograd(winograd::Tile),
    /// The filter matrices packed as bf16 pairs, for the im2col and 1x1 paths in bf16
    /// (in f32 they take the filter as it is).
    Packed,
    /// Nothing: the path takes the filter as it is.
    Nothing,
}

/// What a filter of the convolution `s` is prepared into, in the precision of `s`.
fn preparation(s: &ConvShape) -> Preparation {
    match s.forward_path() {
        ConvPath::Winograd(tile) => Preparation::Winograd(tile),
        ConvPath::Im2col | ConvPath::Pointwise if s.precision == Precision::Bf16 => {
            Preparation::Packed
        }
        _ => Preparation::Nothing,
    }
}

/// [`preparation`] for a filter of `filter_shape` with `spec` on the path and in the
/// precision Petal chooses now (nothing for shapes that do not fit).
fn preparation_now(filter_shape: &[usize], spec: &Conv2dSpec) -> Preparation {
    one_window_shape(filter_shape, spec).map_or(Preparation::Nothing, |s| preparation(&s))
}

/// The convolution of one image one window large by a filter of `filter_shape`: the
/// path ([`ConvShape::forward_path`]) depends on the filter and the spec, not on the image
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
