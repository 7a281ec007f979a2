//! # petal-zoo
//!
//! Ready-made architectures and their pretrained weights:
//! - the lecture's bipyramidal CNN ([`bipyramidal`]): blocks of convolutions and 2x2
//!   max-pooling whose filter counts double block by block while the feature maps halve,
//!   then a dense head;
//! - [`lenet5`], [`vgg16`], [`resnet18`], [`resnet50`], [`mobilenet_v2()`] and
//!   [`efficientnet_lite0`], each built from [`Options`] as in `keras.applications`
//!   (`include_top`, `input_shape`, `pooling`, `classes`, `classifier_activation`);
//! - [`load_pretrained`]: PyTorch-layout safetensors weights (torchvision names for
//!   ResNet, MobileNetV2 and VGG16, EfficientNet-PyTorch names for EfficientNet-Lite0);
//!   the [`pretrained`] catalog fetches, verifies and loads published weights with their
//!   preprocessing and class names, and a [`pretrained::Classifier`] names photos;
//! - [`transfer`]: photos prepared as a pretrained model expects them, and its features
//!   computed once and cached on disk.
//!
//! Each architecture's module documents its layer names; parameters are `<layer name>/<param>`, with
//! `kernel`, `depthwise_kernel` and `bias` for convolutions and dense layers, `gamma`,
//! `beta`, `moving_mean` and `moving_variance` for batch norms. Architectures ported from
//! torchvision pad symmetrically (`Padding::Explicit`); EfficientNet-Lite0 pads as
//! TensorFlow (`Padding::Same`).

mod bipyramidal;
mod blocks;
pub mod efficientnet;
mod error;
pub mod lenet;
pub mod mobilenet_v2;
mod options;
pub mod pretrained;
pub mod resnet;
pub mod transfer;
pub mod vgg;

pub use bipyramidal::{bipyramidal, BipyramidalConfig};
pub use efficientnet::efficientnet_lite0;
pub use error::ZooError;
pub use lenet::lenet5;
pub use mobilenet_v2::mobilenet_v2;
pub use options::{Options, Pooling};
pub use pretrained::{assign_pretrained, load_pretrained, Arch};
pub use resnet::{resnet18, resnet50};
pub use vgg::vgg16;
