//! What kind of layer a layer is: one variant per built-in layer, named after Keras'
//! classes when printed (`Conv2D`, `BatchNormalization`), plus [`LayerKind::Custom`] for
//! layers defined outside this crate.

use std::fmt;

/// The kind of a [`Layer`](super::Layer), as summaries list it.
///
/// ```
/// use petal_nn::layers::{BatchNormConfig, LayerKind};
/// use petal_nn::Sequential;
/// let model = Sequential::new(&[4, 4, 2], 0).add(BatchNormConfig::default())?.build()?;
/// let row = &model.summary().rows[0];
/// assert_eq!(row.kind, LayerKind::BatchNorm);
/// assert_eq!(row.kind.to_string(), "BatchNormalization");
/// assert_eq!(LayerKind::Custom("Attention").name(), "Attention");
/// # Ok::<(), petal_nn::NnError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// A 2-D convolution (`Conv2D`).
    Conv2d,
    /// A per-channel 2-D convolution (`DepthwiseConv2D`).
    DepthwiseConv2d,
    /// A depthwise then pointwise convolution (`SeparableConv2D`).
    SeparableConv2d,
    /// A fully connected layer (`Dense`).
    Dense,
    /// Reshapes each sample to one axis (`Flatten`).
    Flatten,
    /// Zeroes random values while training (`Dropout`).
    Dropout,
    /// An element-wise activation (`Activation`).
    Activation,
    /// Batch normalization (`BatchNormalization`).
    BatchNorm,
    /// Layer normalization (`LayerNormalization`).
    LayerNorm,
    /// Group normalization (`GroupNormalization`).
    GroupNorm,
    /// Max pooling (`MaxPooling2D`).
    MaxPool2d,
    /// Average pooling (`AveragePooling2D`).
    AvgPool2d,
    /// Average over all positions (`GlobalAveragePooling2D`).
    GlobalAvgPool2d,
    /// Element-wise sum of its inputs (`Add`).
    Add,
    /// Concatenation of its inputs along the channels (`Concatenate`).
    Concat,
    /// A 1x1 convolution and the depthwise convolution after it, run as one at
    /// inference (made by [`Model::fold_for_inference`](crate::Model::fold_for_inference)).
    ExpandDepthwise,
    /// A layer whose work moved into the layer before it at inference (`Folded`), see
    /// [`Model::fold_for_inference`](crate::Model::fold_for_inference).
    Folded,
    /// A layer defined outside this crate, with the name summaries show for it.
    Custom(&'static str),
}

impl LayerKind {
    /// The name summaries print: Keras' class name for built-in layers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Conv2d => "Conv2D",
            Self::DepthwiseConv2d => "DepthwiseConv2D",
            Self::SeparableConv2d => "SeparableConv2D",
            Self::Dense => "Dense",
            Self::Flatten => "Flatten",
            Self::Dropout => "Dropout",
            Self::Activation => "Activation",
            Self::BatchNorm => "BatchNormalization",
            Self::LayerNorm => "LayerNormalization",
            Self::GroupNorm => "GroupNormalization",
            Self::MaxPool2d => "MaxPooling2D",
            Self::AvgPool2d => "AveragePooling2D",
            Self::GlobalAvgPool2d => "GlobalAveragePooling2D",
            Self::Add => "Add",
            Self::Concat => "Concatenate",
            Self::ExpandDepthwise => "ExpandDepthwise",
            Self::Folded => "Folded",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
