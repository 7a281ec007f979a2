//! Keras-style layers. Each `XxxConfig` (with defaults) turns into a layer by
//! [`LayerConfig::init`], which creates its parameters in a [`ParamStore`] under
//! `<layer name>/<parameter>`; the layer's `forward` reads them through a [`Context`].

/// Implements [`LayerConfig::stem`] and [`LayerConfig::name`] for a config whose optional
/// explicit name is its `name` field.
macro_rules! named_config {
    ($stem:literal) => {
        fn stem(&self) -> &'static str {
            $stem
        }
        fn name(&self) -> Option<&str> {
            self.name.as_deref()
        }
    };
}

mod activation;
mod context;
mod conv;
mod dense;
mod describe;
mod fold;
mod init;
mod kind;
mod merge;
mod norm;
mod pool;
mod prepared;

pub use activation::{Activation, ActivationConfig};
pub use context::{BatchParts, Context, Mode};
pub use conv::{
    Conv2d, Conv2dConfig, DepthwiseConv2dConfig, SeparableConv2d, SeparableConv2dConfig,
};
pub use dense::{Dense, DenseConfig, Dropout, DropoutConfig, Flatten, FlattenConfig};
pub use describe::{ConvDescription, LayerDescription};
pub(crate) use fold::Folded;
pub use fold::{DepthwiseStep, InferenceStep};
pub use init::Initializer;
pub use kind::LayerKind;
pub use merge::{AddConfig, ConcatConfig, Merge};
pub use norm::{BatchNorm, BatchNormConfig, GroupNormConfig, LayerNormConfig, Normalization};
pub use pool::{GlobalAvgPoolConfig, Pool, Pool2dConfig, PoolKind};

use petal_tensor::{Pool2dSpec, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::error::{NnError, Result};
use crate::{ParamId, ParamStore, Var};

/// A layer of a model: it maps input values to an output value, reading its parameters
/// from the store through the [`Context`]. Shapes exclude the batch axis.
pub trait Layer: Send + Sync {
    /// The layer's unique name in its model (`conv2d_1`).
    fn name(&self) -> &str;
    /// The kind of layer, for summaries (`Conv2D`); user layers answer
    /// [`LayerKind::Custom`].
    fn kind(&self) -> LayerKind;
    /// Per-sample output shape for per-sample input shapes.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;
    /// The forward pass over a batch.
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var>;
    /// The forward pass followed by the max pooling `pool`, as one op, if this layer can
    /// fuse it (a convolution with no activation or one
    /// [`Activation::fusable`] names); `None` otherwise. A [`Model`](crate::Model) calls
    /// it for a max pooling that is the only reader of this layer's output.
    fn forward_max_pooled(
        &self,
        _inputs: &[&Var],
        _ctx: &Context,
        _pool: &Pool2dSpec,
    ) -> Option<Result<Var>> {
        None
    }
    /// The parameters this layer owns.
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
    /// The parameters training may change when the layer is not frozen (all but state such
    /// as BatchNorm's moving statistics).
    fn learnable_params(&self) -> Vec<ParamId> {
        self.params()
    }
    /// Floating-point operations per sample (2 per multiply-add of convolutions and
    /// dense products; other layers count 0).
    fn flops(&self, _inputs: &[&[usize]]) -> u64 {
        0
    }
    /// The weight penalty (L1/L2) this layer adds to the loss, if it has one.
    fn penalty(&self, _ctx: &Context) -> Result<Option<Var>> {
        Ok(None)
    }
    /// What this layer does at inference, if a preceding layer could absorb it
    /// ([`Model::fold_for_inference`](crate::Model::fold_for_inference)).
    fn inference_step(&self, _store: &ParamStore) -> Option<InferenceStep> {
        None
    }
    /// This layer with `step` applied to its output, if it can take it over; may change
    /// or add this layer's parameters in `store`.
    fn absorb(&self, _step: &InferenceStep, _store: &mut ParamStore) -> Option<Box<dyn Layer>> {
        None
    }
    /// What this layer computes, with its hyperparameters and parameters, for tools
    /// outside Petal (the ONNX export); `None` for layers that cannot say (custom ones).
    fn describe(&self) -> Option<LayerDescription> {
        None
    }
}

/// Builds a layer once the shapes of its inputs are known.
pub trait LayerConfig {
    /// Default name stem (`conv2d`), numbered by the model (`conv2d_1`).
    fn stem(&self) -> &'static str;
    /// An explicit name, when the user gave one.
    fn name(&self) -> Option<&str> {
        None
    }
    /// Creates the layer's parameters in `store` and returns the layer.
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>>;
}

/// L1 and L2 weight penalties: `l1 * sum(|w|) + l2 * sum(w^2)` (Keras' convention).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Regularizer {
    /// L1 factor.
    pub l1: f32,
    /// L2 factor.
    pub l2: f32,
}

impl Regularizer {
    /// Only an L2 penalty.
    pub fn l2(factor: f32) -> Self {
        Self {
            l1: 0.0,
            l2: factor,
        }
    }
    /// Only an L1 penalty.
    pub fn l1(factor: f32) -> Self {
        Self {
            l1: factor,
            l2: 0.0,
        }
    }
    /// The penalty of `weights`.
    pub fn penalty(&self, weights: &Var) -> Var {
        let mut terms = Vec::new();
        if self.l1 != 0.0 {
            terms.push(weights.abs().sum_all().scale(self.l1));
        }
        if self.l2 != 0.0 {
            terms.push(weights.square().sum_all().scale(self.l2));
        }
        terms
            .into_iter()
            .reduce(|a, b| a.add(&b).expect("scalars on one tape"))
            .unwrap_or_else(|| Var::constant(Tensor::scalar(0.0)))
    }
}

/// The one input of a single-input layer, or an error naming the layer.
pub(crate) fn single<'a, T: ?Sized>(layer: &str, inputs: &'a [&'a T]) -> Result<&'a T> {
    match inputs {
        [x] => Ok(x),
        _ => Err(NnError::Layer {
            layer: layer.to_string(),
            reason: format!("takes one input, got {}", inputs.len()),
        }),
    }
}

/// The output shape of a single-input layer that keeps its input's shape.
pub(crate) fn same_shape(layer: &str, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    Ok(single(layer, inputs)?.to_vec())
}

/// An error about a layer's configuration or input shape, naming the layer.
pub(crate) fn layer_error(layer: &str, reason: impl Into<String>) -> NnError {
    NnError::Layer {
        layer: layer.to_string(),
        reason: reason.into(),
    }
}

/// Prepends the batch axis to a per-sample shape.
pub(crate) fn batched(batch: usize, shape: &[usize]) -> Vec<usize> {
    std::iter::once(batch)
        .chain(shape.iter().copied())
        .collect()
}
