//! Batch mixing inside a training step: the labels become one-hot rows, mixed with
//! the images by a [`BatchMix`].

use petal_data::augment::{batch_rng, BatchMix};
use petal_tensor::loss::one_hot;
use petal_tensor::Tensor;

use crate::error::{Result, TrainError};

/// Mixes `images` and the one-hot rows of `labels` with `mix`, drawing from
/// [`batch_rng`]`(seed, step)`, and returns the soft targets. The model's per-sample
/// `output_shape` must be `[classes]`.
pub(crate) fn mix_batch(
    mix: &dyn BatchMix,
    images: &mut Tensor,
    labels: &[usize],
    output_shape: &[usize],
    seed: u64,
    step: u64,
) -> Result<Tensor> {
    let &[classes] = output_shape else {
        return Err(TrainError::Config(format!(
            "batch mixing needs a model with one score per class, but its output per sample has shape {output_shape:?}"
        )));
    };
    let mut targets = one_hot(labels, classes)?;
    mix.mix(images, &mut targets, &mut batch_rng(seed, step))?;
    Ok(targets)
}
