//! Convolution layers: Conv2D (with dilation and groups), DepthwiseConv2D and
//! SeparableConv2D.

use std::sync::Arc;

use petal_tensor::conv::{
    conv2d, conv2d_activated, conv2d_max_pooled, conv2d_output_shape, PreparedFilter,
};
use petal_tensor::elementwise::Unary;
use petal_tensor::{Conv2dSpec, Padding, Pool2dSpec, Tensor};
use rand_chacha::ChaCha8Rng;

use super::prepared::PreparedKernel;
use super::{
    batched, layer_error, single, Activation, Context, ConvDescription, DepthwiseStep,
    InferenceStep, Initializer, Layer, LayerConfig, LayerDescription, LayerKind, Regularizer,
};
use crate::error::Result;
use crate::{ParamId, ParamStore, Var};

mod expand_depthwise;
use expand_depthwise::ExpandDepthwise;

/// A 2-D convolution over NHWC inputs with an HWIO kernel (Keras' Conv2D).
///
/// ```
/// use petal_nn::layers::{Activation, Conv2dConfig};
/// use petal_tensor::Padding;
/// let config = Conv2dConfig { padding: Padding::Same, activation: Activation::Relu, ..Conv2dConfig::new(32, 3) };
/// assert_eq!((config.filters, config.kernel_size), (32, [3, 3]));
/// ```
#[derive(Clone, Debug)]
pub struct Conv2dConfig {
    /// Number of output channels.
    pub filters: usize,
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Step between windows.
    pub strides: [usize; 2],
    /// Border handling.
    pub padding: Padding,
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Channel groups (input channels / groups per filter).
    pub groups: usize,
    /// Whether to add a bias per filter.
    pub use_bias: bool,
    /// Applied to the output.
    pub activation: Activation,
    /// Kernel initializer (Glorot uniform by default, as in Keras).
    pub kernel_initializer: Initializer,
    /// Bias initializer (zeros).
    pub bias_initializer: Initializer,
    /// Optional L1/L2 penalty on the kernel.
    pub kernel_regularizer: Option<Regularizer>,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl Conv2dConfig {
    /// `filters` square `kernel x kernel` filters, stride 1, valid padding, with bias.
    pub fn new(filters: usize, kernel: usize) -> Self {
        Self {
            filters,
            kernel_size: [kernel, kernel],
            strides: [1, 1],
            padding: Padding::Valid,
            dilation: [1, 1],
            groups: 1,
            use_bias: true,
            activation: Activation::Linear,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            name: None,
        }
    }

    fn spec(&self) -> Conv2dSpec {
        Conv2dSpec {
            stride: self.strides,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// A Conv2D or DepthwiseConv2D layer.
pub struct Conv2d {
    name: String,
    kind: LayerKind,
    spec: Conv2dSpec,
    kernel: ParamId,
    kernel_shape: [usize; 4],
    bias: Option<ParamId>,
    activation: Activation,
    regularizer: Option<Regularizer>,
    /// The kernel prepared for passes that only read it.
    prepared: PreparedKernel,
}

/// How a pass through a [`Conv2d`] convolves ([`Conv2d::kernel_in`]).
enum Kernel {
    /// With the kernel prepared once for passes that record nothing.
    Prepared(Arc<PreparedFilter>),
    /// With the stored kernel as it is (nothing recorded, nothing worth preparing).
    Stored,
    /// As ops recorded on the tape, the kernel a leaf or a constant.
    Recorded,
}

impl Conv2d {
    /// The kernel's parameter.
    pub fn kernel(&self) -> ParamId {
        self.kernel
    }

    /// How this pass convolves: when nothing is recorded through this layer in `ctx`
    /// (its input and its parameters are constants: inference, or a frozen layer on
    /// constant input), straight from the stored kernel, prepared once
    /// ([`PreparedKernel`]) where that pays; else as recorded ops.
    fn kernel_in(&self, x: &Var, ctx: &Context) -> Result<Kernel> {
        if !ctx.records_nothing(x, &self.params()) {
            self.prepared.clear();
            return Ok(Kernel::Recorded);
        }
        Ok(
            match self.prepared.get(ctx.store(), self.kernel, &self.spec)? {
                Some(filter) => Kernel::Prepared(filter),
                None => Kernel::Stored,
            },
        )
    }

    /// The output of a pass that records nothing: `x` convolved as `kernel` says, the
    /// bias added and `activation` applied in the same pass; with `pool`, max pooled.
    fn constant_output(
        &self,
        kernel: &Kernel,
        x: &Var,
        ctx: &Context,
        activation: Option<Unary>,
        pool: Option<&Pool2dSpec>,
    ) -> Result<Var> {
        let (x, store) = (x.value(), ctx.store());
        let bias = self.bias.map(|b| store.value(b));
        let stored = store.value(self.kernel);
        let y = match (kernel, pool) {
            (Kernel::Prepared(f), None) => f.conv2d(x, bias, activation)?,
            (Kernel::Prepared(f), Some(pool)) => f.conv2d_max_pooled(x, bias, activation, pool)?.0,
            (_, None) => match activation {
                Some(a) => conv2d_activated(x, stored, bias, &self.spec, a)?,
                None => conv2d(x, stored, bias, &self.spec)?,
            },
            (_, Some(pool)) => conv2d_max_pooled(x, stored, bias, &self.spec, activation, pool)?.0,
        };
        Ok(Var::constant(y))
    }

    fn description(&self) -> ConvDescription {
        ConvDescription {
            kernel: self.kernel,
            bias: self.bias,
            spec: self.spec,
            activation: self.activation,
        }
    }
}

fn channels(layer: &str, input: &[usize]) -> Result<usize> {
    match input {
        [_, _, c] => Ok(*c),
        _ => Err(layer_error(
            layer,
            format!("expects (height, width, channels) inputs, got {input:?}"),
        )),
    }
}

/// Creates a kernel (and bias) and checks the convolution fits the input.
#[allow(clippy::too_many_arguments)]
fn conv_params(
    config: &Conv2dConfig,
    name: &str,
    input: &[usize],
    kernel_shape: [usize; 4],
    kernel_name: &str,
    store: &mut ParamStore,
    rng: &mut ChaCha8Rng,
) -> Result<(ParamId, Option<ParamId>)> {
    let [kh, kw, ci, co] = kernel_shape;
    conv2d_output_shape(&batched(1, input), &kernel_shape, &config.spec())
        .map_err(|e| layer_error(name, format!("input {input:?}: {e}")))?;
    let kernel_values =
        config
            .kernel_initializer
            .tensor(&kernel_shape, kh * kw * ci, kh * kw * co, rng);
    let kernel = store.add(format!("{name}/{kernel_name}"), kernel_values, true)?;
    let bias = if config.use_bias {
        let values = config.bias_initializer.tensor(&[co], ci, co, rng);
        Some(store.add(format!("{name}/bias"), values, true)?)
    } else {
        None
    };
    Ok((kernel, bias))
}

impl LayerConfig for Conv2dConfig {
    named_config!("conv2d");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let input = single(name, inputs)?;
        let c = channels(name, input)?;
        if self.groups == 0
            || !c.is_multiple_of(self.groups)
            || !self.filters.is_multiple_of(self.groups)
        {
            return Err(layer_error(
                name,
                format!(
                    "groups {} must divide {c} input channels and {} filters",
                    self.groups, self.filters
                ),
            ));
        }
        let [kh, kw] = self.kernel_size;
        let shape = [kh, kw, c / self.groups, self.filters];
        let (kernel, bias) = conv_params(self, name, input, shape, "kernel", store, rng)?;
        Ok(Box::new(Conv2d {
            name: name.to_string(),
            kind: LayerKind::Conv2d,
            spec: self.spec(),
            kernel,
            kernel_shape: shape,
            bias,
            activation: self.activation,
            regularizer: self.kernel_regularizer,
            prepared: PreparedKernel::default(),
        }))
    }
}

fn conv_flops(spec: &Conv2dSpec, input: &[usize], kernel: &[usize]) -> Result<u64> {
    let out = conv2d_output_shape(&batched(1, input), kernel, spec)?;
    Ok(2 * out.iter().product::<usize>() as u64 * (kernel[0] * kernel[1] * kernel[2]) as u64)
}

impl Layer for Conv2d {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        self.kind
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let input = single(&self.name, inputs)?;
        let out = conv2d_output_shape(&batched(1, input), &self.kernel_shape, &self.spec)
            .map_err(|e| layer_error(&self.name, e.to_string()))?;
        Ok(out[1..].to_vec())
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var> {
        let x = single(&self.name, inputs)?;
        let fused = self.activation.fusable();
        let constant = self.kernel_in(x, ctx)?;
        if !matches!(constant, Kernel::Recorded) {
            let y = self.constant_output(&constant, x, ctx, fused, None)?;
            return match fused {
                Some(_) => Ok(y),
                None => self.activation.apply(y),
            };
        }
        let bias = self.bias.map(|b| ctx.param(b));
        let kernel = ctx.param(self.kernel);
        match fused {
            Some(activation) => x.conv2d_activated(&kernel, bias.as_ref(), &self.spec, activation),
            None => self
                .activation
                .apply(x.conv2d(&kernel, bias.as_ref(), &self.spec)?),
        }
    }
    fn forward_max_pooled(
        &self,
        inputs: &[&Var],
        ctx: &Context,
        pool: &Pool2dSpec,
    ) -> Option<Result<Var>> {
        let activation = match self.activation {
            Activation::Linear => None,
            other => Some(other.fusable()?),
        };
        let pooled = single(&self.name, inputs).and_then(|x| {
            let constant = self.kernel_in(x, ctx)?;
            if !matches!(constant, Kernel::Recorded) {
                return self.constant_output(&constant, x, ctx, activation, Some(pool));
            }
            let bias = self.bias.map(|b| ctx.param(b));
            let kernel = ctx.param(self.kernel);
            x.conv2d_max_pooled(&kernel, bias.as_ref(), &self.spec, activation, pool)
        });
        Some(pooled)
    }
    fn params(&self) -> Vec<ParamId> {
        std::iter::once(self.kernel).chain(self.bias).collect()
    }
    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        single(&self.name, inputs)
            .ok()
            .and_then(|i| conv_flops(&self.spec, i, &self.kernel_shape).ok())
            .unwrap_or(0)
    }
    fn penalty(&self, ctx: &Context) -> Result<Option<Var>> {
        Ok(self.regularizer.map(|r| r.penalty(&ctx.param(self.kernel))))
    }
    fn inference_step(&self, _: &ParamStore) -> Option<InferenceStep> {
        // A depthwise convolution offers itself to the 1x1 convolution before it.
        (self.kind == LayerKind::DepthwiseConv2d).then(|| {
            InferenceStep::Depthwise(DepthwiseStep {
                name: self.name.clone(),
                conv: self.description(),
            })
        })
    }
    fn absorb(&self, step: &InferenceStep, store: &mut ParamStore) -> Option<Box<dyn Layer>> {
        if let InferenceStep::Depthwise(depthwise) = step {
            let depthwise = Conv2d::depthwise_of(depthwise, store)?;
            return ExpandDepthwise::new(self, depthwise).map(|l| Box::new(l) as Box<dyn Layer>);
        }
        self.absorbed(step, store)
            .map(|conv| Box::new(conv) as Box<dyn Layer>)
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::Conv2d(self.description()))
    }
}

impl Conv2d {
    /// The depthwise convolution `step` describes, as a layer (its kernel's shape read
    /// from `store`).
    fn depthwise_of(step: &DepthwiseStep, store: &ParamStore) -> Option<Conv2d> {
        let ConvDescription {
            kernel,
            bias,
            spec,
            activation,
        } = step.conv.clone();
        Some(Conv2d {
            name: step.name.clone(),
            kind: LayerKind::DepthwiseConv2d,
            spec,
            kernel,
            kernel_shape: store.value(kernel).shape().try_into().ok()?,
            bias,
            activation,
            regularizer: None,
            prepared: PreparedKernel::default(),
        })
    }

    /// A copy of this convolution, its kernel not yet prepared.
    fn unprepared(&self) -> Conv2d {
        Conv2d {
            name: self.name.clone(),
            prepared: PreparedKernel::default(),
            ..*self
        }
    }

    /// This convolution with `step` applied to its output, if it has no activation of its
    /// own (and, for a channel affine, one scale per filter); may add a bias to `store`.
    fn absorbed(&self, step: &InferenceStep, store: &mut ParamStore) -> Option<Conv2d> {
        if self.activation != Activation::Linear {
            return None;
        }
        let mut folded = self.unprepared();
        match step {
            InferenceStep::Depthwise(_) => return None,
            InferenceStep::Activation(activation) => folded.activation = *activation,
            InferenceStep::ChannelAffine { scale, shift } => {
                if scale.len() != self.kernel_shape[3] {
                    return None;
                }
                let bias = match self.bias {
                    Some(bias) => bias,
                    None => {
                        let zeros = Tensor::zeros(&[scale.len()]);
                        store.add(format!("{}/bias", self.name), zeros, true).ok()?
                    }
                };
                for row in store
                    .value_mut(self.kernel)
                    .as_mut_slice()
                    .chunks_exact_mut(scale.len())
                {
                    row.iter_mut().zip(scale).for_each(|(w, s)| *w *= s);
                }
                let b = store.value_mut(bias).as_mut_slice();
                for ((b, s), t) in b.iter_mut().zip(scale).zip(shift) {
                    *b = *b * s + t;
                }
                folded.bias = Some(bias);
            }
        }
        Some(folded)
    }
}

/// A depthwise convolution: each input channel convolved with its own
/// `depth_multiplier` filters (Keras' DepthwiseConv2D; groups = channels).
#[derive(Clone, Debug)]
pub struct DepthwiseConv2dConfig {
    /// Kernel height and width.
    pub kernel_size: [usize; 2],
    /// Step between windows.
    pub strides: [usize; 2],
    /// Border handling.
    pub padding: Padding,
    /// Filters per input channel.
    pub depth_multiplier: usize,
    /// Whether to add a bias per output channel.
    pub use_bias: bool,
    /// Applied to the output.
    pub activation: Activation,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl DepthwiseConv2dConfig {
    /// A `kernel x kernel` depthwise convolution, stride 1, valid padding, with bias.
    pub fn new(kernel: usize) -> Self {
        Self {
            kernel_size: [kernel, kernel],
            strides: [1, 1],
            padding: Padding::Valid,
            depth_multiplier: 1,
            use_bias: true,
            activation: Activation::Linear,
            name: None,
        }
    }

    fn as_conv(&self, channels: usize) -> Conv2dConfig {
        Conv2dConfig {
            kernel_size: self.kernel_size,
            strides: self.strides,
            padding: self.padding,
            groups: channels,
            use_bias: self.use_bias,
            activation: self.activation,
            ..Conv2dConfig::new(channels * self.depth_multiplier, 1)
        }
    }
}

impl LayerConfig for DepthwiseConv2dConfig {
    named_config!("depthwise_conv2d");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let input = single(name, inputs)?;
        let c = channels(name, input)?;
        let conv = self.as_conv(c);
        let [kh, kw] = self.kernel_size;
        let shape = [kh, kw, 1, c * self.depth_multiplier];
        let (kernel, bias) =
            conv_params(&conv, name, input, shape, "depthwise_kernel", store, rng)?;
        Ok(Box::new(Conv2d {
            name: name.to_string(),
            kind: LayerKind::DepthwiseConv2d,
            spec: conv.spec(),
            kernel,
            kernel_shape: shape,
            bias,
            activation: self.activation,
            regularizer: None,
            prepared: PreparedKernel::default(),
        }))
    }
}

/// A depthwise convolution followed by a 1x1 convolution to `filters` channels
/// (Keras' SeparableConv2D).
#[derive(Clone, Debug)]
pub struct SeparableConv2dConfig {
    /// Output channels of the pointwise step.
    pub filters: usize,
    /// The depthwise step's settings (its `activation` and `use_bias` are ignored).
    pub depthwise: DepthwiseConv2dConfig,
    /// Whether to add a bias after the pointwise step.
    pub use_bias: bool,
    /// Applied to the output.
    pub activation: Activation,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl SeparableConv2dConfig {
    /// `filters` outputs from a `kernel x kernel` depthwise step.
    pub fn new(filters: usize, kernel: usize) -> Self {
        Self {
            filters,
            depthwise: DepthwiseConv2dConfig {
                use_bias: false,
                ..DepthwiseConv2dConfig::new(kernel)
            },
            use_bias: true,
            activation: Activation::Linear,
            name: None,
        }
    }
}

/// A SeparableConv2D layer.
pub struct SeparableConv2d {
    name: String,
    depthwise: Conv2d,
    pointwise: Conv2d,
}

impl LayerConfig for SeparableConv2dConfig {
    named_config!("separable_conv2d");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let input = single(name, inputs)?;
        let c = channels(name, input)?;
        let depthwise_conv = DepthwiseConv2dConfig {
            use_bias: false,
            activation: Activation::Linear,
            ..self.depthwise.clone()
        }
        .as_conv(c);
        let [kh, kw] = self.depthwise.kernel_size;
        let mid = c * self.depthwise.depth_multiplier;
        let dw_shape = [kh, kw, 1, mid];
        let (dw_kernel, _) = conv_params(
            &depthwise_conv,
            name,
            input,
            dw_shape,
            "depthwise_kernel",
            store,
            rng,
        )?;
        let depthwise = Conv2d {
            name: name.to_string(),
            kind: LayerKind::DepthwiseConv2d,
            spec: depthwise_conv.spec(),
            kernel: dw_kernel,
            kernel_shape: dw_shape,
            bias: None,
            activation: Activation::Linear,
            regularizer: None,
            prepared: PreparedKernel::default(),
        };
        let mid_shape = depthwise.output_shape(&[input])?;
        let pointwise_conv = Conv2dConfig {
            use_bias: self.use_bias,
            activation: self.activation,
            ..Conv2dConfig::new(self.filters, 1)
        };
        let pw_shape = [1, 1, mid, self.filters];
        let (pw_kernel, bias) = conv_params(
            &pointwise_conv,
            name,
            &mid_shape,
            pw_shape,
            "pointwise_kernel",
            store,
            rng,
        )?;
        let pointwise = Conv2d {
            name: name.to_string(),
            kind: LayerKind::Conv2d,
            spec: pointwise_conv.spec(),
            kernel: pw_kernel,
            kernel_shape: pw_shape,
            bias,
            activation: self.activation,
            regularizer: None,
            prepared: PreparedKernel::default(),
        };
        Ok(Box::new(SeparableConv2d {
            name: name.to_string(),
            depthwise,
            pointwise,
        }))
    }
}

impl Layer for SeparableConv2d {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::SeparableConv2d
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let mid = self.depthwise.output_shape(inputs)?;
        self.pointwise.output_shape(&[&mid])
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var> {
        let mid = self.depthwise.forward(inputs, ctx)?;
        self.pointwise.forward(&[&mid], ctx)
    }
    fn params(&self) -> Vec<ParamId> {
        [self.depthwise.params(), self.pointwise.params()].concat()
    }
    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        let mid = self.depthwise.output_shape(inputs).unwrap_or_default();
        self.depthwise.flops(inputs) + self.pointwise.flops(&[&mid])
    }
    fn absorb(&self, step: &InferenceStep, store: &mut ParamStore) -> Option<Box<dyn Layer>> {
        let pointwise = self.pointwise.absorbed(step, store)?;
        Some(Box::new(SeparableConv2d {
            name: self.name.clone(),
            depthwise: self.depthwise.unprepared(),
            pointwise,
        }))
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::SeparableConv2d {
            depthwise: self.depthwise.description(),
            pointwise: self.pointwise.description(),
        })
    }
}
