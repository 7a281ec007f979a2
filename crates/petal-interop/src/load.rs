//! Torchvision-named checkpoints into the zoo's models.

use std::path::Path;

use petal_nn::Model;
use petal_zoo::{assign_pretrained, Arch};

use crate::pth::{read_state_dict, ReadOptions};
use crate::InteropError;

/// Loads the `.pth` checkpoint at `path` (torchvision's names, or EfficientNet-PyTorch's
/// for EfficientNet-Lite0, in PyTorch layout) into `model`, built by [`Arch::build`],
/// as [`petal_zoo::load_pretrained`] loads safetensors: the batch norms'
/// `num_batches_tracked` counters are dropped, layouts converted, and either every
/// parameter is replaced or none is and the error lists every tensor at fault.
pub fn load_pth(
    model: &mut Model,
    arch: Arch,
    path: &Path,
    options: &ReadOptions<'_>,
) -> Result<(), InteropError> {
    let tensors = read_state_dict(path, options)?
        .into_iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(name, entry)| (name, entry.tensor))
        .collect();
    Ok(assign_pretrained(model, arch, tensors, path)?)
}
