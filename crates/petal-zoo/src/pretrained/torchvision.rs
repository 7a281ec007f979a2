//! torchvision's names. Petal's ResNet, MobileNetV2 and VGG16 name their layers after
//! torchvision's modules, so layer `layer1.0.conv1` reads `layer1.0.conv1.weight`.

use super::{Arch, Module};

/// The torchvision module of a Petal layer: the layer's own name.
pub(super) fn module(arch: Arch, layer: &str) -> Module {
    Module {
        name: layer.to_string(),
        // VGG16's first dense layer reads the 512-channel maps of `features.30`,
        // flattened by torchvision in (c, h, w) order.
        flattened_channels: (arch == Arch::Vgg16 && layer == "classifier.0").then_some(512),
    }
}
