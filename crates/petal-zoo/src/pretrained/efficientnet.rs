//! EfficientNet-PyTorch's names for Petal's EfficientNet-Lite0 (Keras' names).

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
