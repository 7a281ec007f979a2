//! Torchvision-named checkpoints into the zoo's models.

use std::path::Path;

use petal_nn::Model;
use petal_zoo::{assign_pretrained, load_pretrained, Arch, Options};

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

/// `arch` (built with default options) holding the weights at `path`, in PyTorch's names
/// and layout: a `.pth` / `.pt` checkpoint ([`load_pth`]) or safetensors
/// ([`petal_zoo::load_pretrained`]). Unlike [`load_classifier`](crate::load_classifier),
/// the file is not checked against the catalog, so any weights of the architecture load
/// (fine-tuned ones, test fixtures).
pub fn load_arch(arch: Arch, path: &Path) -> Result<Model, InteropError> {
    let mut model = arch.build(&Options::default())?;
    if is_checkpoint(path) {
        load_pth(&mut model, arch, path, &ReadOptions::default())?;
    } else {
        load_pretrained(&mut model, arch, path)?;
    }
    Ok(model)
}

/// Whether `path` names a PyTorch checkpoint (`.pth` or `.pt`).
pub(crate) fn is_checkpoint(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == "pth" || extension == "pt")
}
