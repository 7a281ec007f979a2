//! 2-D convolution, NHWC activations x HWIO filters, forward and both backward passes.
//!
//! Shapes: input `(n, h, w, c)`, filter `(kh, kw, c / groups, o)`, bias `(o)`, output
//! `(n, oh, ow, o)`. The paths share one geometry:
//! - pointwise (1x1, stride 1, no padding, one group): the batch's pixels as the rows of
//!   one GEMM, in cache-sized blocks (bias, product and activation per block);
//! - depthwise (`groups == c`, the MobileNet/EfficientNet case): a direct kernel;
//! - 3x3 with stride 1 and at least 16 channels and filters: Winograd for the output
//!   and both gradients, F(4x4, 3x3) (4x fewer multiplies) when channels and filters
//!   are both at least 32 (the faster there, timings in `choice.rs`), F(2x2, 3x3)
//!   (2.25x fewer) for 16 to 31. F(4x4)'s error stays
//!   below 2⁻¹² of a result's RMS on the lecture's layers (measured up to 3e-5, F(2x2)
//!   3e-6, the direct sum 2e-6: `tests/winograd_accuracy.rs`). [`with_kernel_3x3`]
//!   sets the kernel for a stretch of code;
//! - small patches (`kh*kw*c <= 32`, first layers on grey or RGB images): register-blocked
//!   kernels for the short inner dimension (the input gradient goes through im2col);
//!   the forward pass of a first layer with a longer patch (up to 160 values of at most
//!   4 channels, ResNet's 7x7 stem) too;
//! - everything else: im2col into a reused buffer, then one GEMM per group; the forward
//!   pass a block of an image's output positions at a time (about 256 KiB of patches,
//!   in L2 while its GEMM reads them), or of several images' when one has fewer.
//!
//! A [`PreparedFilter`] makes once what the forward pass derives from a filter alone
//! (Winograd's transformed matrices), for passes whose weights stay fixed (inference).
//! Every path but the 1x1 one finishes whole images inside its task, so
//! [`conv2d_max_pooled`] pools each image there, while its output is still in the
//! cache, and never stores the full output (the 1x1 path convolves then pools;
//! Winograd on the whole batch still stores the batch's transformed products).
//! `cargo bench -p petal-tensor --bench conv -- conv_pool` (ReLU and 2x2 pooling, 2
//! threads, criterion's middle estimates of three runs on a noisy host, ms, two ops ->
//! fused): Keras MNIST's first layer 2.98 -> 2.36, 3.52 -> 2.68, 3.28 -> 2.63; its
//! second 2.94 -> 2.93, 2.55 -> 2.72, 2.84 -> 2.44; flowers 128 px 3->32 29.4 -> 28.8,
//! 28.3 -> 26.0, 30.0 -> 25.6; flowers 64 px 32->64 20.5 -> 18.6, 20.4 -> 16.1 (two runs).
//!
//! The im2col and 1x1 products run in f32, or with bf16 factors inside
//! [`with_precision`](crate::with_precision)`(Precision::Bf16, ..)`, and so does the
//! element-wise stage of Winograd F(2x2) in its three passes (the `(tiles, c) x (c, o)`
//! GEMMs, the transformed filters packed once per call or per [`PreparedFilter`], the
//! transformed tiles rounded group by group; the filter gradient's `(c, tiles) x
//! (tiles, o)` through [`gemm_bf16`](crate::gemm::gemm_bf16)); the depthwise and
//! small-patch kernels, F(4x4)'s stage and the transforms stay in f32.
//!
//! F(4x4)'s stage stays f32 for accuracy: in bf16 its transforms' weights (up to 8 in
//! `Aᵀ`) turned bf16's rounding of the transformed tiles and filters into errors of
//! 0.07-0.26 of the result's RMS at worst (mean 1.1-1.7%) on the lecture's layers, and
//! 4.7% for the filter gradient, against 0.8-1.6% (mean 0.3%) for F(2x2) and 0.5-1.0%
//! for im2col in bf16 (`tests/winograd_accuracy.rs`, which measures F(2x2) and im2col in
//! bf16 and checks that F(4x4) stays f32; a simulation of F(3x3) in bf16 gave 9%). So
//! in bf16 the wide layers, whose products outweigh their transforms, take F(2x2) with
//! a bf16 stage (when `c·o/(c+o) > 75`, see `choice.rs`: 128 -> 256 and up, ResNet18's
//! last two stages); the others keep F(4x4) in f32.
//! Earlier, a bf16 stage through [`gemm_in`](crate::gemm::gemm_in), which packs both
//! factors at every call, did not pay for F(4x4) (f32 time / bf16 time, forward / input
//! gradient / filter gradient, 2 threads: Keras MNIST's 128x13x13x32->64 1.02 / 0.98 /
//! 1.01, ResNet18's 16x14x14x256->256 0.79 / 0.80 / 1.32). With the filters packed once,
//! F(2x2) in bf16 against F(4x4) in f32 (`cargo bench -p petal-tensor --bench conv --
//! 'kernel3x3/.*/(f4x4|f2x2_bf16)/'`, ms, forward / input gradient / filter gradient):
//! ResNet18's 14x14x256->256 9.8 / 11.1 / 15.2 -> 6.7 / 7.6 / 9.0; its 7x7x512->512
//! 15.6 / 19.4 / 19.1 -> 12.9 / 19.2 / 11.8; the flowers CNN's 16x16x128->256
//! 8.6 / 9.2 / 11.7 -> 8.5 / 8.5 / 10.1. im2col in bf16 (`im2col_bf16` in the same bench) stays slower than F(4x4)
//! in f32, so the narrower layers keep F(4x4) in f32 in both precisions.
//!
//! # The lecture's worked example
//!
//! A 6x6 binary image, a diagonal filter and a vertical filter, valid padding, no bias.
//! Each filter value is +1 on its pattern and -1 elsewhere, so a window scores
//! `2 * (pixels on the pattern) - (all pixels in the window)`. By hand, for the top-left
//! window (rows 0-2, columns 0-2 = `100 / 010 / 001`): filter 1 sees 3 diagonal pixels
//! of 3 in all, `2*3 - 3 = 3`; filter 2 sees 1 pixel in its middle column of 3,
//! `2*1 - 3 = -1`. Bottom-right window (rows 3-5, columns 3-5 = `010 / 010 / 010`):
//! filter 1 has 1 of 3 on its diagonal, `-1`; filter 2 has 3 of 3 in its column, `3`.
//! Window (3, 2) (rows 3-5, columns 2-4 = `001 / 001 / 101`): filter 2 has none of 4 in
//! its column, `-4`. Stride 2 keeps the windows at rows and columns 0 and 2.
//!
//! ```
//! use petal_tensor::{conv::conv2d, Conv2dSpec, Tensor};
//!
//! let image: Vec<f32> = "100001 010010 001100 100010 010010 001010"
//!     .chars().filter(|c| !c.is_whitespace()).map(|c| if c == '1' { 1.0 } else { 0.0 }).collect();
//! let image = Tensor::from_vec(&[1, 6, 6, 1], image)?;
//! let filter1 = [1., -1., -1., -1., 1., -1., -1., -1., 1.];
//! let filter2 = [-1., 1., -1., -1., 1., -1., -1., 1., -1.];
//! // HWIO: the two filters are the two output channels of one (3, 3, 1, 2) tensor.
//! let filters: Vec<f32> = filter1.iter().zip(&filter2).flat_map(|(a, b)| [*a, *b]).collect();
//! let filters = Tensor::from_vec(&[3, 3, 1, 2], filters)?;
//!
//! // Channel `k` of an NHWC output, as rows of text.
//! let map = |maps: &Tensor, k: usize| -> Vec<Vec<f32>> {
//!     let side = maps.shape()[1];
//!     (0..side).map(|r| (0..side).map(|c| maps.as_slice()[(r * side + c) * 2 + k]).collect()).collect()
//! };
//!
//! let stride1 = conv2d(&image, &filters, None, &Conv2dSpec::default())?;
//! println!("stride 1, filter 1: {:?}\nstride 1, filter 2: {:?}", map(&stride1, 0), map(&stride1, 1));
//! assert_eq!(map(&stride1, 0), [[3., -1., -3., -1.], [-3., 1., 0., -3.], [-3., -3., 0., 1.], [3., -2., -2., -1.]]);
//! assert_eq!(map(&stride1, 1), [[-1., -1., -1., -1.], [-1., -1., -2., 1.], [-1., -1., -2., 1.], [-1., 0., -4., 3.]]);
//!
//! let spec = Conv2dSpec { stride: [2, 2], ..Conv2dSpec::default() };
//! let stride2 = conv2d(&image, &filters, None, &spec)?; // the slide's "new 2x2 tensor"
//! println!("stride 2, filter 1: {:?}\nstride 2, filter 2: {:?}", map(&stride2, 0), map(&stride2, 1));
//! assert_eq!(map(&stride2, 0), [[3., -3.], [-3., 0.]]);
//! assert_eq!(map(&stride2, 1), [[-1., -1.], [-1., -2.]]);
//! # Ok::<(), petal_tensor::TensorError>(())
//! ```

mod batch;
mod choice;
mod depthwise;
mod expand_depthwise;
mod im2col;
mod pointwise;
mod prepared;
mod small_patch;
mod winograd;

use self::batch::Output;
use self::choice::winograd_tile;
pub use self::choice::{with_kernel_3x3, Kernel3x3};
pub use self::prepared::PreparedFilter;
use self::small_patch::GradientRows;
use crate::elementwise::Unary;
use crate::error::{invalid, shape_mismatch, Result};
use crate::gemm::bf16::PackedRight;
use crate::parallel::Start;
use crate::pool::{max_pool2d, MaxPool, PooledGradient};
use crate::window::{AxisGeometry, Padding};
use crate::{Pool2dSpec, Precision, Tensor};

/// Stride, padding, dilation and groups of a 2-D convolution.
///
/// ```
/// use petal_tensor::{Conv2dSpec, Padding};
/// let spec = Conv2dSpec { stride: [2, 2], padding: Padding::Same, ..Conv2dSpec::default() };
/// assert_eq!(spec.dilation, [1, 1]);
/// assert_eq!(spec.groups, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dSpec {
    /// Step between windows along rows and columns.
    pub stride: [usize; 2],
    /// Border handling.
    pub padding: Padding,
    /// Spacing between filter taps along rows and columns (1 = dense).
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels split into `groups` independent
    /// convolutions. `groups == c` is the depthwise convolution.
    pub groups: usize,
}

impl Default for Conv2dSpec {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: Padding::Valid,
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// A convolution's resolved shapes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvShape {
    pub batch: usize,
    pub channels: usize,
    pub filters: usize,
    pub groups: usize,
    pub rows: AxisGeometry,
    pub cols: AxisGeometry,
    /// The precision of the im2col and 1x1 products ([`crate::with_precision`]).
    pub precision: Precision,
}

impl ConvShape {
    fn new(input: &[usize], filter: &[usize], spec: &Conv2dSpec) -> Result<Self> {
        const OP: &str = "conv2d";
        let (Some([n, h, w, c]), Some([kh, kw, ci, o])) = (as4(input), as4(filter)) else {
            return Err(shape_mismatch(
                OP,
                input,
                filter,
                "input must be 4-D (n, h, w, c) and filter 4-D (kh, kw, c/groups, o)",
            ));
        };
        let groups = spec.groups;
        if groups == 0 || c % groups != 0 || o % groups != 0 {
            return Err(invalid(
                OP,
                format!("groups {groups} must divide the {c} input channels and the {o} filters"),
            ));
        }
        if ci * groups != c {
            return Err(shape_mismatch(
                OP,
                input,
                filter,
                format!("filter expects {ci} channels per group x {groups} groups, input has {c} channels"),
            ));
        }
        let [pr, pc] = spec.padding.axes();
        Ok(Self {
            batch: n,
            channels: c,
            filters: o,
            groups,
            rows: AxisGeometry::new(OP, h, kh, spec.stride[0], spec.dilation[0], pr)?,
            cols: AxisGeometry::new(OP, w, kw, spec.stride[1], spec.dilation[1], pc)?,
            // Refused here, once per call, on a CPU without AVX512-BF16.
            precision: Precision::scoped().supported()?,
        })
    }

    pub fn group_channels(&self) -> usize {
        self.channels / self.groups
    }
    pub fn group_filters(&self) -> usize {
        self.filters / self.groups
    }
    /// Values in one input image.
    pub fn image_len(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }
    /// Output positions per image.
    pub fn positions(&self) -> usize {
        self.rows.output * self.cols.output
    }
    /// Values in one output image.
    pub fn output_image_len(&self) -> usize {
        self.positions() * self.filters
    }
    /// Rows of one group's filter matrix: `kh * kw * c / groups`.
    pub fn patch_len(&self) -> usize {
        self.rows.kernel * self.cols.kernel * self.group_channels()
    }
    pub fn filter_len(&self) -> usize {
        self.patch_len() * self.filters
    }
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.input, self.cols.input, self.channels]
    }
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.output, self.cols.output, self.filters]
    }
    pub fn filter_shape(&self) -> [usize; 4] {
        [
            self.rows.kernel,
            self.cols.kernel,
            self.group_channels(),
            self.filters,
        ]
    }

    fn path(&self) -> ConvPath {
        let unit = |a: &AxisGeometry| a.kernel == 1 && a.stride == 1 && a.pad_before == 0;
        if self.groups == 1
            && unit(&self.rows)
            && unit(&self.cols)
            && self.rows.output == self.rows.input
            && self.cols.output == self.cols.input
        {
            ConvPath::Pointwise
        } else if self.groups > 1 && self.group_channels() == 1 {
            ConvPath::Depthwise
        } else if self.groups == 1 && self.patch_len() <= small_patch::MAX_PATCH {
            ConvPath::SmallPatch
        } else if let Some(tile) = winograd_tile(self) {
            ConvPath::Winograd(tile)
        } else {
            ConvPath::Im2col
        }
    }

    /// The forward pass's path: [`ConvShape::path`], but a first layer on images whose
    /// patch is too long for the small-patch path (ResNet's 7x7 stem on RGB, 147
    /// values) takes that path's forward kernel (see [`small_patch::takes_image`]).
    /// Its gradients stay on im2col: the stem's filter gradient took 24.5 ms there
    /// against 18.6 (batch 16, 2 threads). Like every small-patch product, that forward
    /// pass runs in f32 under bf16 too, while the gradients take bf16 factors.
    fn forward_path(&self) -> ConvPath {
        match self.path() {
            ConvPath::Im2col if small_patch::takes_image(self) => ConvPath::SmallPatch,
            path => path,
        }
    }

    /// Calls `visit(output_pixel, input_pixel, tap)` for every in-bounds (output, input)
    /// pixel pair of one image; pixels and taps (`ky * kw + kx`) are flat indices.
    pub fn for_each_tap(&self, mut visit: impl FnMut(usize, usize, usize)) {
        let (r, c) = (&self.rows, &self.cols);
        for oy in 0..r.output {
            for ox in 0..c.output {
                let out_pixel = oy * c.output + ox;
                for ky in 0..r.kernel {
                    let Some(iy) = r.input_index(oy, ky) else {
                        continue;
                    };
                    for kx in 0..c.kernel {
                        if let Some(ix) = c.input_index(ox, kx) {
                            visit(out_pixel, iy * c.input + ix, ky * c.kernel + kx);
                        }
                    }
                }
            }
        }
    }

    fn check_grad_out(&self, op: &'static str, grad_out: &Tensor) -> Result<()> {
        if grad_out.shape() != self.output_shape() {
            return Err(shape_mismatch(
                op,
                grad_out.shape(),
                &self.output_shape(),
                "output gradient must have the convolution's output shape",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConvPath {
    Pointwise,
    Depthwise,
    SmallPatch,
    Winograd(winograd::Tile),
    Im2col,
}

fn as4(shape: &[usize]) -> Option<[usize; 4]> {
    shape.try_into().ok()
}

/// The output shape `(n, oh, ow, o)` of a convolution, or why the shapes do not fit.
///
/// ```
/// use petal_tensor::{conv::conv2d_output_shape, Conv2dSpec, Padding};
/// let spec = Conv2dSpec { stride: [2, 2], padding: Padding::Same, ..Default::default() };
/// assert_eq!(conv2d_output_shape(&[8, 7, 7, 3], &[3, 3, 3, 16], &spec).unwrap(), [8, 4, 4, 16]);
/// ```
pub fn conv2d_output_shape(
    input: &[usize],
    filter: &[usize],
    spec: &Conv2dSpec,
) -> Result<[usize; 4]> {
    ConvShape::new(input, filter, spec).map(|s| s.output_shape())
}

/// Forward convolution: `(n, h, w, c) x (kh, kw, c/groups, o) [+ bias (o)] -> (n, oh, ow, o)`.
///
/// ```
/// use petal_tensor::{conv::conv2d, Conv2dSpec, Tensor};
/// // A 3x3 image of ones and a 2x2 filter of ones: every valid window sums to 4.
/// let x = Tensor::ones(&[1, 3, 3, 1]);
/// let f = Tensor::ones(&[2, 2, 1, 1]);
/// let b = Tensor::from_vec(&[1], vec![0.5]).unwrap();
/// let y = conv2d(&x, &f, Some(&b), &Conv2dSpec::default()).unwrap();
/// assert_eq!(y.shape(), &[1, 2, 2, 1]);
/// assert_eq!(y.to_vec(), vec![4.5; 4]);
/// ```
pub fn conv2d(
    input: &Tensor,
    filter: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    convolve(input, Filter::plain(filter), bias, spec, None)
}

/// [`conv2d`] with `activation` applied to every output value, in the same pass over
/// each image (while it is in the cache) instead of a second pass over the batch.
///
/// ```
/// use petal_tensor::{conv::conv2d_activated, elementwise::Unary, Conv2dSpec, Tensor};
/// let x = Tensor::from_vec(&[1, 1, 2, 1], vec![1.0, -3.0])?;
/// let f = Tensor::ones(&[1, 1, 1, 1]);
/// let b = Tensor::from_vec(&[1], vec![0.5])?;
/// let y = conv2d_activated(&x, &f, Some(&b), &Conv2dSpec::default(), Unary::Relu)?;
/// assert_eq!(y.to_vec(), vec![1.5, 0.0]);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn conv2d_activated(
    input: &Tensor,
    filter: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
    activation: Unary,
) -> Result<Tensor> {
    convolve(input, Filter::plain(filter), bias, spec, Some(activation))
}

/// [`conv2d_activated`] (or [`conv2d`] when `activation` is `None`) followed by
/// [`max_pool2d`](crate::pool::max_pool2d) with `pool`, in one pass: each image is
/// pooled while its output is still in the cache, and the convolution's full output is
/// never stored. Returns what `max_pool2d` returns for that output: the pooled values
/// and, for each, the flat index within its image of the value that won (the same
/// numbers as the two ops one after the other).
///
/// ```
/// use petal_tensor::{conv::conv2d_max_pooled, elementwise::Unary, Conv2dSpec, Pool2dSpec, Tensor};
/// // A 1x5 image and a 1x2 filter (0, -1): outputs -2, 3, -4, 0 (minus each next
/// // pixel), then ReLU (0, 3, 0, 0) and 1x2 windows; a tie goes to the first value.
/// let x = Tensor::from_vec(&[1, 1, 5, 1], vec![-1.0, 2.0, -3.0, 4.0, 0.0])?;
/// let f = Tensor::from_vec(&[1, 2, 1, 1], vec![0.0, -1.0])?;
/// let pool = Pool2dSpec { window: [1, 2], stride: [1, 2], ..Pool2dSpec::square(1) };
/// let (y, argmax) = conv2d_max_pooled(&x, &f, None, &Conv2dSpec::default(), Some(Unary::Relu), &pool)?;
/// assert_eq!((y.to_vec(), argmax), (vec![3.0, 0.0], vec![1, 2]));
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn conv2d_max_pooled(
    input: &Tensor,
    filter: &Tensor,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
    activation: Option<Unary>,
    pool: &Pool2dSpec,
) -> Result<(Tensor, Vec<u32>)> {
    max_pooled(input, Filter::plain(filter), bias, spec, activation, pool)
}

/// One convolution's filter, bias and activation, as [`conv2d_expand_depthwise`]
/// takes them.
#[derive(Clone, Copy, Debug)]
pub struct ConvStep<'a> {
    /// The filter, HWIO.
    pub filter: &'a Tensor,
    /// One value per filter, if any.
    pub bias: Option<&'a Tensor>,
    /// Applied to every output value, if any.
    pub activation: Option<Unary>,
}

/// A 1x1 convolution (`expand`, stride 1, no padding) and then a depthwise convolution
/// (`depthwise` with `spec`, its `groups` the 1x1 layer's filter count) in one pass
/// that never stores the 1x1 layer's output: each image goes down a band of rows at a
/// time, the band's expanded rows in the cache (MobileNetV2's and EfficientNet's
/// inverted residual blocks at inference). The same values as [`conv2d_activated`]
/// (or [`conv2d`]) twice, bit for bit. Shapes the fused pass does not take run as
/// those two calls: a depth multiplier other than 1, windows lying wholly in the
/// padding, a first filter that is not 1x1 or an input with no channels.
///
/// ```
/// use petal_tensor::conv::{conv2d_activated, conv2d_expand_depthwise, ConvStep};
/// use petal_tensor::{elementwise::Unary, Conv2dSpec, Padding, Tensor};
/// let x = Tensor::from_vec(&[1, 4, 4, 2], (0..32).map(|i| i as f32 / 32.0 - 0.5).collect())?;
/// let expand = Tensor::from_vec(&[1, 1, 2, 6], (0..12).map(|i| i as f32 / 6.0 - 1.0).collect())?;
/// let depthwise = Tensor::from_vec(&[3, 3, 1, 6], (0..54).map(|i| (i % 7) as f32 / 7.0).collect())?;
/// let spec = Conv2dSpec { padding: Padding::Same, groups: 6, ..Conv2dSpec::default() };
/// let step = |filter| ConvStep { filter, bias: None, activation: Some(Unary::Relu6) };
/// let y = conv2d_expand_depthwise(&x, step(&expand), step(&depthwise), &spec)?;
/// let mid = conv2d_activated(&x, &expand, None, &Conv2dSpec::default(), Unary::Relu6)?;
/// let two_passes = conv2d_activated(&mid, &depthwise, None, &spec, Unary::Relu6)?;
/// assert_eq!(y.shape(), [1, 4, 4, 6]);
/// assert_eq!(y.to_vec(), two_passes.to_vec());
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn conv2d_expand_depthwise(
    input: &Tensor,
    expand: ConvStep<'_>,
    depthwise: ConvStep<'_>,
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    let pointwise = Conv2dSpec::default();
    let s1 = ConvShape::new(input.shape(), expand.filter.shape(), &pointwise)?;
    let s2 = ConvShape::new(&s1.output_shape(), depthwise.filter.shape(), spec)?;
    let (out1, out2) = (
        Output::of(&s1, expand.bias, expand.activation)?,
        Output::of(&s2, depthwise.bias, depthwise.activation)?,
    );
    let shapes = expand_depthwise::Shapes {
        expand: &s1,
        depthwise: &s2,
    };
    if !shapes.fusable() {
        let ConvStep {
            filter,
            bias,
            activation,
        } = expand;
        let mid = convolve(input, Filter::plain(filter), bias, &pointwise, activation)?;
        let ConvStep {
            filter,
            bias,
            activation,
        } = depthwise;
        return convolve(&mid, Filter::plain(filter), bias, spec, activation);
    }
    let values = expand_depthwise::forward(
        shapes,
        input.as_slice(),
        (Filter::plain(expand.filter), out1),
        (depthwise.filter.as_slice(), out2),
    )?;
    Tensor::from_vec(&s2.output_shape(), values)
}

/// A filter as the forward pass takes it: its values, and its Winograd matrices or its
/// matrices packed in bf16 when a [`PreparedFilter`] made them already.
#[derive(Clone, Copy)]
struct Filter<'a> {
    values: &'a Tensor,
    winograd: Option<&'a winograd::Transformed>,
    packed: Option<&'a [PackedRight]>,
}

impl<'a> Filter<'a> {
    /// A filter with nothing prepared: each pass derives what it needs.
    fn plain(values: &'a Tensor) -> Self {
        Self {
            values,
            winograd: None,
            packed: None,
        }
    }
}

/// [`conv2d_max_pooled`] with `filter` as given.
fn max_pooled(
    input: &Tensor,
    filter: Filter<'_>,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
    activation: Option<Unary>,
    pool: &Pool2dSpec,
) -> Result<(Tensor, Vec<u32>)> {
    let shape = ConvShape::new(input.shape(), filter.values.shape(), spec)?;
    let max_pool = MaxPool::new("conv2d_max_pooled", &shape.output_shape(), pool)?;
    let pooled_len = max_pool.output_image_len();
    // The 1x1 path computes blocks of pixels rather than whole images.
    if shape.forward_path() == ConvPath::Pointwise || pooled_len == 0 {
        let y = convolve(input, filter, bias, spec, activation)?;
        return max_pool2d(&y, pool);
    }
    let out_len = shape.output_image_len();
    let (pooled, argmax) = max_pool.new_batch(|pool_into| {
        let pool_group = |first: usize, outputs: &[f32]| {
            for (i, image) in outputs.chunks_exact(out_len).enumerate() {
                pool_into(first + i, image);
            }
        };
        let output = Output {
            reduce: Some(&pool_group),
            ..Output::of(&shape, bias, activation)?
        };
        run(&shape, input, filter, output).map(drop)
    })?;
    Ok((Tensor::from_vec(&max_pool.output_shape(), pooled)?, argmax))
}

fn convolve(
    input: &Tensor,
    filter: Filter<'_>,
    bias: Option<&Tensor>,
    spec: &Conv2dSpec,
    activation: Option<Unary>,
) -> Result<Tensor> {
    let shape = ConvShape::new(input.shape(), filter.values.shape(), spec)?;
    let values = run(&shape, input, filter, Output::of(&shape, bias, activation)?)?;
    Tensor::from_vec(&shape.output_shape(), values)
}

/// The forward pass on the path the shapes choose, started and finished as `output` says.
fn run(
    shape: &ConvShape,
    input: &Tensor,
    filter: Filter<'_>,
    output: Output<'_>,
) -> Result<Vec<f32>> {
    let (x, f) = (input.as_slice(), filter.values.as_slice());
    match shape.forward_path() {
        ConvPath::Pointwise => pointwise::forward(shape, x, filter, output),
        ConvPath::Depthwise => depthwise::forward(shape, x, f, output),
        ConvPath::SmallPatch => small_patch::forward(shape, x, f, output),
        ConvPath::Winograd(tile) => winograd::forward(tile, shape, x, f, filter.winograd, output),
        ConvPath::Im2col => im2col::forward(shape, x, filter, output),
    }
}

impl<'a> Output<'a> {
    /// Each output image starting as the bias (zeros without one), then `activation`.
    fn of(shape: &ConvShape, bias: Option<&'a Tensor>, activation: Option<Unary>) -> Result<Self> {
        if let Some(b) = bias {
            if b.shape() != [shape.filters] {
                return Err(shape_mismatch(
                    "conv2d",
                    b.shape(),
                    &shape.filter_shape(),
                    "bias must have one value per filter",
                ));
            }
        }
        Ok(Self {
            start: bias.map_or(Start::Zeros, |b| Start::Repeat(b.as_slice())),
            activation,
            reduce: None,
        })
    }
}

/// Gradient of the loss with respect to the convolution's input, `(n, h, w, c)`.
pub fn conv2d_backward_input(
    grad_out: &Tensor,
    filter: &Tensor,
    input_shape: &[usize],
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    let shape = ConvShape::new(input_shape, filter.shape(), spec)?;
    shape.check_grad_out("conv2d_backward_input", grad_out)?;
    let (dy, f) = (grad_out.as_slice(), filter.as_slice());
    let values = match shape.path() {
        ConvPath::Pointwise => pointwise::backward_input(&shape, dy, f)?,
        ConvPath::Depthwise => depthwise::backward_input(&shape, dy, f)?,
        ConvPath::Winograd(tile) if winograd::applies_to_input_gradient(&shape) => {
            winograd::backward_input(tile, &shape, dy, f)?
        }
        ConvPath::SmallPatch | ConvPath::Winograd(_) | ConvPath::Im2col => {
            im2col::backward_input(&shape, dy, f)?
        }
    };
    Tensor::from_vec(&shape.input_shape(), values)
}

/// Gradient of the loss with respect to the filter, `(kh, kw, c/groups, o)`, summed over
/// the batch.
pub fn conv2d_backward_filter(
    input: &Tensor,
    grad_out: &Tensor,
    filter_shape: &[usize],
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    let shape = ConvShape::new(input.shape(), filter_shape, spec)?;
    shape.check_grad_out("conv2d_backward_filter", grad_out)?;
    let (x, dy) = (input.as_slice(), grad_out.as_slice());
    let grad = match shape.path() {
        ConvPath::Pointwise => pointwise::backward_filter(&shape, x, dy)?,
        ConvPath::Depthwise => depthwise::backward_filter(&shape, x, dy)?,
        ConvPath::SmallPatch => small_patch::backward_filter(&shape, x, GradientRows::Full(dy))?,
        ConvPath::Winograd(tile) => winograd::backward_filter(tile, &shape, x, dy)?,
        ConvPath::Im2col => im2col::backward_filter(&shape, x, dy)?,
    };
    Tensor::from_vec(&shape.filter_shape(), grad)
}

/// The filter gradient of [`conv2d_max_pooled`] from the gradient of its pooled
/// output (`grad_pooled`, the activation's derivative already applied) and the winners
/// it returned: [`conv2d_backward_filter`] of that gradient routed back through the
/// pooling ([`max_pool2d_backward`](crate::pool::max_pool2d_backward)). On the small-patch path (a first layer) under a
/// pooling whose windows are apart, each band of output rows is routed just before it
/// is read, so that the full-size gradient never goes through memory.
///
/// ```
/// use petal_tensor::conv::{conv2d_backward_filter, conv2d_max_pooled, conv2d_max_pooled_backward_filter};
/// use petal_tensor::pool::max_pool2d_backward;
/// use petal_tensor::{Conv2dSpec, Pool2dSpec, Tensor};
/// let x = Tensor::from_vec(&[1, 3, 3, 1], (1..=9).map(|v| v as f32).collect())?;
/// let w = Tensor::ones(&[2, 2, 1, 1]);
/// let (spec, pool) = (Conv2dSpec::default(), Pool2dSpec::square(2));
/// let (y, argmax) = conv2d_max_pooled(&x, &w, None, &spec, None, &pool)?;
/// let g = Tensor::ones(y.shape());
/// let dw = conv2d_max_pooled_backward_filter(&x, &g, &argmax, w.shape(), &spec, &pool)?;
/// // Only the winning window (the bottom right, 5 + 6 + 8 + 9) moves the output.
/// assert_eq!(dw.to_vec(), vec![5.0, 6.0, 8.0, 9.0]);
/// let routed = max_pool2d_backward(&g, &argmax, &[1, 2, 2, 1], &pool)?;
/// assert_eq!(dw, conv2d_backward_filter(&x, &routed, w.shape(), &spec)?);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn conv2d_max_pooled_backward_filter(
    input: &Tensor,
    grad_pooled: &Tensor,
    argmax: &[u32],
    filter_shape: &[usize],
    spec: &Conv2dSpec,
    pool: &Pool2dSpec,
) -> Result<Tensor> {
    let op = "conv2d_max_pooled_backward_filter";
    let shape = ConvShape::new(input.shape(), filter_shape, spec)?;
    let output_shape = shape.output_shape();
    let pooled = PooledGradient::new(op, grad_pooled, argmax, &output_shape, pool)?;
    let banded = shape.path() == ConvPath::SmallPatch && pooled.windows_are_disjoint();
    if !banded || shape.output_image_len() == 0 {
        let routed = Tensor::from_vec(&output_shape, pooled.routed())?;
        return conv2d_backward_filter(input, &routed, filter_shape, spec);
    }
    let x = input.as_slice();
    let grad = small_patch::backward_filter(&shape, x, GradientRows::Pooled(&pooled))?;
    Tensor::from_vec(&shape.filter_shape(), grad)
}

/// Gradient of the loss with respect to the bias: `grad_out` summed over all axes but
/// the last (channels).
pub fn conv2d_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
    let Some(&channels) = grad_out.shape().last() else {
        return Err(invalid(
            "conv2d_backward_bias",
            "the output gradient has no channel axis",
        ));
    };
    // The batch's pixels as images of `channels` values, summed one partial per thread
    // (the gradient is both sides of the pair `sum_over_images` walks).
    let g = grad_out.as_slice();
    let sum = batch::sum_over_images(g, channels, g, channels, channels, 0, |sum, _, pixel, _| {
        for (s, v) in sum.iter_mut().zip(pixel) {
            *s += v;
        }
        Ok(())
    })?;
    Tensor::from_vec(&[channels], sum)
}

#[cfg(test)]
mod tests;
