//! What a built-in layer computes, spelled out for tools outside Petal (the ONNX export):
//! its hyperparameters and the parameters it reads, by [`Layer::describe`](super::Layer::describe).

use petal_tensor::{Conv2dSpec, Pool2dSpec};

use super::{Activation, PoolKind};
use crate::ParamId;

/// A convolution: Conv2D, DepthwiseConv2D (`groups` = input channels), or one step of a
/// SeparableConv2D.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvDescription {
    /// The kernel, HWIO: `(height, width, input channels / groups, filters)`.
    pub kernel: ParamId,
    /// One bias per filter, if the layer adds one.
    pub bias: Option<ParamId>,
    /// Stride, padding, dilation and groups.
    pub spec: Conv2dSpec,
    /// Applied to the output.
    pub activation: Activation,
}

/// A built-in layer's description: what it computes at inference, with its parameters.
///
/// ```
/// use petal_nn::layers::{Activation, Conv2dConfig, LayerDescription};
/// use petal_nn::Sequential;
/// let model = Sequential::new(&[8, 8, 3], 0)
///     .add(Conv2dConfig { activation: Activation::Relu, ..Conv2dConfig::new(4, 3) })?
///     .build()?;
/// let node = &model.nodes()[1];
/// let Some(LayerDescription::Conv2d(conv)) = node.layer.unwrap().describe() else { panic!() };
/// assert_eq!(conv.activation, Activation::Relu);
/// assert_eq!(model.store().value(conv.kernel).shape(), &[3, 3, 3, 4]);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum LayerDescription {
    /// A convolution (Conv2D or DepthwiseConv2D).
    Conv2d(ConvDescription),
    /// A depthwise convolution, then a 1x1 one (SeparableConv2D).
    SeparableConv2d {
        /// The depthwise step (no bias, no activation).
        depthwise: ConvDescription,
        /// The pointwise step, with the layer's bias and activation.
        pointwise: ConvDescription,
    },
    /// A 1x1 convolution, then a depthwise one over its output (a folded model's
    /// [`LayerKind::ExpandDepthwise`](crate::layers::LayerKind::ExpandDepthwise)).
    ExpandDepthwise {
        /// The 1x1 step.
        expand: ConvDescription,
        /// The depthwise step.
        depthwise: ConvDescription,
    },
    /// `activation(x W + b)` on 1-D samples.
    Dense {
        /// The weights, `(inputs, units)`.
        kernel: ParamId,
        /// One bias per unit, if the layer adds one.
        bias: Option<ParamId>,
        /// Applied to the output.
        activation: Activation,
    },
    /// Batch normalization over the last axis; at inference
    /// `gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta`.
    BatchNorm {
        /// The scale.
        gamma: ParamId,
        /// The offset.
        beta: ParamId,
        /// The mean used at inference.
        moving_mean: ParamId,
        /// The variance used at inference.
        moving_variance: ParamId,
        /// Added to the variance.
        epsilon: f32,
    },
    /// An element-wise activation (softmax: over the last axis).
    Activation(Activation),
    /// Max or average pooling over windows; averages exclude the padding.
    Pool {
        /// [`PoolKind::Max`] or [`PoolKind::Avg`].
        kind: PoolKind,
        /// Window, stride and padding.
        spec: Pool2dSpec,
    },
    /// The mean of each channel over all positions: `(h, w, c) -> (c)`.
    GlobalAvgPool,
    /// The element-wise sum of the inputs, then `activation` (`Linear` unless
    /// [`Model::fold_for_inference`](crate::Model::fold_for_inference) moved the
    /// activation after the sum into it).
    Add {
        /// The activation applied to the sum.
        activation: Activation,
    },
    /// The inputs joined along the last (channel) axis.
    Concat,
    /// Each sample as one axis, in row-major order of its `(h, w, c)` shape.
    Flatten,
    /// The identity at inference (zeroes values with probability `rate` in training).
    Dropout {
        /// The training-time drop probability.
        rate: f32,
    },
    /// The identity: the layer's work moved into the layer before it
    /// ([`Model::fold_for_inference`](crate::Model::fold_for_inference)).
    Folded,
}
