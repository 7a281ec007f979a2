//! EfficientNet-PyTorch's names for Petal's EfficientNet-Lite0 (Keras' names), and the
//! preprocessing its ImageNet weights expect.

use image::imageops::{self, FilterType};
use image::DynamicImage;
use petal_tensor::Tensor;

use super::Module;
use crate::efficientnet::blocks;

/// Petal layer -> EfficientNet-PyTorch module, outside the blocks.
const FIXED: [(&str, &str); 5] = [
    ("stem_conv", "_conv_stem"),
    ("stem_bn", "_bn0"),
    ("top_conv", "_conv_head"),
    ("top_bn", "_bn1"),
    ("predictions", "_fc"),
];

/// Petal layer suffix -> module of `_blocks.{i}`, inside block `i`.
const BLOCK: [(&str, &str); 6] = [
    ("expand_conv", "_expand_conv"),
    ("expand_bn", "_bn0"),
    ("dwconv", "_depthwise_conv"),
    ("bn", "_bn1"),
    ("project_conv", "_project_conv"),
    ("project_bn", "_bn2"),
];

/// The EfficientNet-PyTorch module of a Petal layer (`block2b_dwconv` ->
/// `_blocks.2._depthwise_conv`).
pub(super) fn module(layer: &str) -> Option<Module> {
    let name = match FIXED.iter().find(|(petal, _)| *petal == layer) {
        Some((_, source)) => source.to_string(),
        None => {
            let (block, part) = layer.split_once('_')?;
            let index = blocks().iter().position(|(name, _)| name == block)?;
            let (_, source) = BLOCK.iter().find(|(petal, _)| *petal == part)?;
            format!("_blocks.{index}.{source}")
        }
    };
    Some(Module {
        name,
        flattened_channels: None,
    })
}

/// Input side of the pretrained EfficientNet-Lite0.
pub const EFFICIENTNET_LITE0_SIZE: u32 = 224;

/// An image as the pretrained EfficientNet-Lite0 expects it, a `(1, 224, 224, 3)` batch:
/// RGB; the centered square of side 224/256 of the shorter side; resized to 224x224
/// (bicubic); `(pixel - 127) / 128`.
pub fn preprocess_efficientnet_lite(image: &DynamicImage) -> Tensor {
    let size = EFFICIENTNET_LITE0_SIZE;
    let rgb = image.to_rgb8();
    let (w, h) = rgb.dimensions();
    let side = ((w.min(h) * size) as f64 / (size + 32) as f64).round() as u32;
    let crop = imageops::crop_imm(&rgb, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let resized = imageops::resize(&crop, size, size, FilterType::CatmullRom);
    let values = resized
        .as_raw()
        .iter()
        .map(|&p| (f32::from(p) - 127.0) / 128.0)
        .collect();
    let side = size as usize;
    Tensor::from_vec(&[1, side, side, 3], values).expect("224 x 224 RGB values")
}
