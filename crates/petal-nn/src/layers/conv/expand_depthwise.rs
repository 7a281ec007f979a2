//! A 1x1 convolution and the depthwise convolution that alone reads it, as one layer:
//! what [`Model::fold_for_inference`](crate::Model::fold_for_inference) makes of the
//! start of MobileNetV2's and EfficientNet's inverted residual blocks. At inference it
//! runs [`conv2d_expand_depthwise`], which never stores the expanded feature maps;
//! recorded on a tape, or with an activation that kernel cannot apply, it runs the two
//! convolutions in turn.

use petal_tensor::conv::{conv2d_expand_depthwise, ConvStep};
use petal_tensor::{Padding, Tensor};

use super::Conv2d;
use crate::error::Result;
use crate::layers::{
    single, Activation, Context, InferenceStep, Layer, LayerDescription, LayerKind,
};
use crate::{ParamId, ParamStore, Var};

/// `expand` (1x1), then `depthwise` on its output.
pub(crate) struct ExpandDepthwise {
    expand: Conv2d,
    depthwise: Conv2d,
}

impl ExpandDepthwise {
    /// The two as one layer, when `expand` is a 1x1 convolution of stride 1 without
    /// padding or groups, and `depthwise` a depthwise one (multiplier 1) over its
    /// filters.
    pub(super) fn new(expand: &Conv2d, depthwise: Conv2d) -> Option<Self> {
        let spec = &expand.spec;
        let pointwise = expand.kind == LayerKind::Conv2d
            && expand.kernel_shape[..2] == [1, 1]
            && spec.stride == [1, 1]
            && spec.groups == 1
            && matches!(spec.padding, Padding::Valid | Padding::Same);
        let filters = expand.kernel_shape[3];
        let over_them = depthwise.kind == LayerKind::DepthwiseConv2d
            && depthwise.kernel_shape[2..] == [1, filters]
            && depthwise.spec.groups == filters;
        (pointwise && over_them).then(|| Self {
            expand: expand.unprepared(),
            depthwise,
        })
    }

    /// The fused kernel's step for `conv`, if it can apply its activation.
    fn step<'a>(conv: &Conv2d, store: &'a ParamStore) -> Option<ConvStep<'a>> {
        let activation = match conv.activation {
            Activation::Linear => None,
            other => Some(other.fusable()?),
        };
        Some(ConvStep {
            filter: store.value(conv.kernel),
            bias: conv.bias.map(|b| store.value(b)),
            activation,
        })
    }
}

impl Layer for ExpandDepthwise {
    /// The depthwise layer's name: the layer computes its output.
    fn name(&self) -> &str {
        &self.depthwise.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::ExpandDepthwise
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let expanded = self.expand.output_shape(inputs)?;
        self.depthwise.output_shape(&[&expanded])
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var> {
        let x = single(self.name(), inputs)?;
        let store = ctx.store();
        let steps = Self::step(&self.expand, store).zip(Self::step(&self.depthwise, store));
        match steps {
            Some((expand, depthwise)) if ctx.records_nothing(x, &self.params()) => {
                let y: Tensor =
                    conv2d_expand_depthwise(x.value(), expand, depthwise, &self.depthwise.spec)?;
                Ok(Var::constant(y))
            }
            _ => {
                let expanded = self.expand.forward(inputs, ctx)?;
                self.depthwise.forward(&[&expanded], ctx)
            }
        }
    }
    fn params(&self) -> Vec<ParamId> {
        [self.expand.params(), self.depthwise.params()].concat()
    }
    fn flops(&self, inputs: &[&[usize]]) -> u64 {
        let expanded = self.expand.output_shape(inputs).unwrap_or_default();
        self.expand.flops(inputs) + self.depthwise.flops(&[&expanded])
    }
    fn absorb(&self, step: &InferenceStep, store: &mut ParamStore) -> Option<Box<dyn Layer>> {
        let depthwise = self.depthwise.absorbed(step, store)?;
        Some(Box::new(Self {
            expand: self.expand.unprepared(),
            depthwise,
        }))
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::ExpandDepthwise {
            expand: self.expand.description(),
            depthwise: self.depthwise.description(),
        })
    }
}
