//! Activation functions, usable inside a layer's config or as a layer of their own.

use petal_tensor::elementwise::Unary;
use rand_chacha::ChaCha8Rng;

use super::{
    same_shape, single, Context, InferenceStep, Layer, LayerConfig, LayerDescription, LayerKind,
};
use crate::error::Result;
use crate::{ParamStore, Var};

/// An activation function.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Activation {
    /// The identity.
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// `x * sigmoid(x)`.
    Swish,
    /// `x * relu6(x + 3) / 6` (MobileNetV3's hard swish).
    HardSwish,
    /// `x` where positive, `alpha * x` elsewhere.
    LeakyRelu(f32),
}

impl Activation {
    /// The elementwise function a convolution can fuse (its derivative follows from its
    /// output), if this is one.
    pub fn fusable(&self) -> Option<Unary> {
        match *self {
            Activation::Relu => Some(Unary::Relu),
            Activation::Relu6 => Some(Unary::Relu6),
            Activation::Sigmoid => Some(Unary::Sigmoid),
            Activation::Tanh => Some(Unary::Tanh),
            _ => None,
        }
    }

    /// Applies the activation.
    pub fn apply(&self, x: Var) -> Result<Var> {
        Ok(match *self {
            Activation::Linear => x,
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.relu6(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Softmax => x.softmax(x.value().ndim() - 1)?,
            Activation::Swish => x.silu(),
            Activation::HardSwish => x.hard_swish(),
            Activation::LeakyRelu(alpha) => x.leaky_relu(alpha),
        })
    }
}

/// An activation as a layer of its own.
#[derive(Clone, Debug, Default)]
pub struct ActivationConfig {
    /// The function.
    pub activation: Activation,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl ActivationConfig {
    /// A layer applying `activation`.
    pub fn new(activation: Activation) -> Self {
        Self {
            activation,
            name: None,
        }
    }
}

struct ActivationLayer {
    name: String,
    activation: Activation,
}

impl LayerConfig for ActivationConfig {
    named_config!("activation");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        _: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        single(name, inputs)?;
        Ok(Box::new(ActivationLayer {
            name: name.to_string(),
            activation: self.activation,
        }))
    }
}

impl Layer for ActivationLayer {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        same_shape(&self.name, inputs)
    }
    fn forward(&self, inputs: &[&Var], _: &Context) -> Result<Var> {
        self.activation
            .apply((*single(&self.name, inputs)?).clone())
    }
    fn inference_step(&self, _: &ParamStore) -> Option<InferenceStep> {
        Some(InferenceStep::Activation(self.activation))
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::Activation(self.activation))
    }
}
