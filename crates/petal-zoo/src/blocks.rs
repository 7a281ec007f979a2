//! Building blocks shared by the architectures: convolution + batch norm (+ activation)
//! and the inverted residual (MBConv) block of MobileNetV2 and EfficientNet.

use petal_nn::layers::{
    Activation, ActivationConfig, AddConfig, BatchNormConfig, Conv2dConfig, DepthwiseConv2dConfig,
};
use petal_nn::{Graph, LayerConfig, NodeId, Result};
use petal_tensor::Padding;

/// Where an architecture's weights come from, which fixes its padding and batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// PyTorch: symmetric padding `k / 2`; BatchNorm momentum 0.1 (Keras' 0.9), eps 1e-5.
    Torchvision,
    /// TensorFlow: 'same' padding; BatchNorm momentum 0.99, eps 1e-3.
    TensorFlow,
}

impl Family {
    /// The padding of a `kernel x kernel` window.
    pub fn padding(self, kernel: usize) -> Padding {
        match (self, kernel / 2) {
            (Family::TensorFlow, _) => Padding::Same,
            (Family::Torchvision, 0) => Padding::Valid,
            (Family::Torchvision, p) => Padding::Explicit {
                top: p,
                bottom: p,
                left: p,
                right: p,
            },
        }
    }

    /// A batch norm called `name`.
    pub fn batch_norm(self, name: &str) -> BatchNormConfig {
        let (momentum, epsilon) = match self {
            Family::Torchvision => (0.9, 1e-5),
            Family::TensorFlow => (0.99, 1e-3),
        };
        BatchNormConfig {
            momentum,
            epsilon,
            name: Some(name.into()),
        }
    }

    /// A square convolution without bias (a batch norm follows it).
    pub fn conv(self, name: &str, filters: usize, kernel: usize, stride: usize) -> Conv2dConfig {
        Conv2dConfig {
            strides: [stride, stride],
            padding: self.padding(kernel),
            use_bias: false,
            name: Some(name.into()),
            ..Conv2dConfig::new(filters, kernel)
        }
    }

    /// `conv` -> batch norm `bn` -> the activation layer `(name, function)`, if any.
    pub fn conv_bn(
        self,
        graph: &mut Graph,
        x: NodeId,
        conv: &dyn LayerConfig,
        bn: &str,
        activation: Option<(&str, Activation)>,
    ) -> Result<NodeId> {
        let x = graph.call(conv, &[x])?;
        let x = graph.call(&self.batch_norm(bn), &[x])?;
        match activation {
            Some((name, function)) => activate(graph, x, name, function),
            None => Ok(x),
        }
    }
}

/// An activation layer called `name`.
pub(crate) fn activate(
    graph: &mut Graph,
    x: NodeId,
    name: &str,
    function: Activation,
) -> Result<NodeId> {
    let config = ActivationConfig {
        name: Some(name.into()),
        ..ActivationConfig::new(function)
    };
    graph.call(&config, &[x])
}

/// A residual sum called `name`.
pub(crate) fn add(graph: &mut Graph, a: NodeId, b: NodeId, name: &str) -> Result<NodeId> {
    graph.call(
        &AddConfig {
            name: Some(name.into()),
        },
        &[a, b],
    )
}

/// The channels of a node's `(h, w, c)` output.
pub(crate) fn channels(graph: &Graph, x: NodeId) -> usize {
    graph.shape(x).last().copied().unwrap_or(0)
}

/// An inverted residual block: [1x1 expand conv + BN + ReLU6 when `expand_ratio != 1`]
/// -> depthwise conv + BN + ReLU6 -> 1x1 project conv + BN -> + input when the shapes
/// allow (stride 1, same channels).
#[derive(Clone, Copy, Debug)]
pub(crate) struct MbConv {
    pub expand_ratio: usize,
    pub kernel: usize,
    pub stride: usize,
    pub filters: usize,
}

/// The layer names of one [`MbConv`] block, each step as `[conv, bn, activation]`.
pub(crate) struct MbConvNames {
    /// Used only when the block expands.
    pub expand: [String; 3],
    pub depthwise: [String; 3],
    pub project: [String; 2],
    pub add: String,
}

impl MbConv {
    /// Adds the block after `x`.
    pub fn build(
        &self,
        family: Family,
        graph: &mut Graph,
        x: NodeId,
        names: &MbConvNames,
    ) -> Result<NodeId> {
        let inputs = channels(graph, x);
        let relu6 = Activation::Relu6;
        let mut h = x;
        if self.expand_ratio != 1 {
            let [conv, bn, act] = &names.expand;
            let expand = family.conv(conv, inputs * self.expand_ratio, 1, 1);
            h = family.conv_bn(graph, h, &expand, bn, Some((act, relu6)))?;
        }
        let [conv, bn, act] = &names.depthwise;
        let depthwise = DepthwiseConv2dConfig {
            strides: [self.stride, self.stride],
            padding: family.padding(self.kernel),
            use_bias: false,
            name: Some(conv.clone()),
            ..DepthwiseConv2dConfig::new(self.kernel)
        };
        h = family.conv_bn(graph, h, &depthwise, bn, Some((act, relu6)))?;
        let [conv, bn] = &names.project;
        h = family.conv_bn(graph, h, &family.conv(conv, self.filters, 1, 1), bn, None)?;
        if self.stride == 1 && inputs == self.filters {
            h = add(graph, x, h, &names.add)?;
        }
        Ok(h)
    }
}
