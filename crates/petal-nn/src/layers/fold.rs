//! Inference-time folding: a batch norm (with its moving statistics) or an activation
//! that directly follows a convolution becomes part of that convolution, so inference
//! runs one fused kernel instead of three passes over the feature maps; an activation
//! after a residual sum becomes part of the sum; a depthwise convolution after a 1x1
//! one runs with it, band by band.

use super::{
    same_shape, single, Activation, Context, ConvDescription, Layer, LayerDescription, LayerKind,
};
use crate::error::Result;
use crate::Var;

/// What a layer does at inference, in a form a preceding layer may absorb.
#[derive(Clone, Debug, PartialEq)]
pub enum InferenceStep {
    /// `y = x * scale + shift` per channel (the last axis): batch norm in inference mode.
    ChannelAffine {
        /// One factor per channel.
        scale: Vec<f32>,
        /// One offset per channel.
        shift: Vec<f32>,
    },
    /// An element-wise activation.
    Activation(Activation),
    /// A depthwise convolution, which the 1x1 convolution before it may run with it in
    /// one pass.
    Depthwise(DepthwiseStep),
}

/// A depthwise convolution as [`InferenceStep::Depthwise`] offers it.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthwiseStep {
    /// The layer's name.
    pub name: String,
    /// Its parameters and settings.
    pub conv: ConvDescription,
}

/// A layer whose work moved into the layer before it: it passes its input through.
pub(crate) struct Folded {
    pub name: String,
}

impl Layer for Folded {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Folded
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        same_shape(&self.name, inputs)
    }
    fn forward(&self, inputs: &[&Var], _: &Context) -> Result<Var> {
        Ok((*single(&self.name, inputs)?).clone())
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::Folded)
    }
}
