//! Batch-level mixing of images and their soft targets: [`MixUp`] and [`CutMix`].

use std::fmt;

use petal_tensor::Tensor;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Beta;

use super::region::Rect;
use crate::error::{DataError, Result};

/// An augmentation that mixes the samples of a batch with each other. `Debug` lets a
/// training configuration print which mix it holds.
pub trait BatchMix: Send + Sync + fmt::Debug {
    /// Mixes every sample of `images` `(b, height, width, channels)` with a partner
    /// from a random permutation of the batch, and its row of `targets`
    /// `(b, classes)` (one-hot or soft) with the partner's row by the same weight:
    /// `target = lambda * own + (1 - lambda) * partner`, so rows keep their sum.
    ///
    /// Fails when the shapes are not `(b, h, w, c)` and `(b, classes)` with one `b`.
    fn mix(&self, images: &mut Tensor, targets: &mut Tensor, rng: &mut ChaCha8Rng) -> Result<()>;
}

/// MixUp (Zhang et al. 2018): each sample becomes `lambda * own + (1 - lambda) *
/// partner`, with its own `lambda ~ Beta(alpha, alpha)`.
///
/// ```
/// use petal_data::augment::{BatchMix, MixUp};
/// use petal_tensor::Tensor;
/// use rand::SeedableRng;
/// let mut images = Tensor::from_vec(&[2, 1, 1, 1], vec![0.0, 1.0]).unwrap();
/// let mut targets = Tensor::from_vec(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]).unwrap();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// MixUp::new(0.4)?.mix(&mut images, &mut targets, &mut rng)?;
/// for (row, pixel) in targets.as_slice().chunks(2).zip(images.as_slice()) {
///     assert!((row[0] + row[1] - 1.0).abs() < 1e-6);
///     assert!((pixel - row[1]).abs() < 1e-6); // the image is as much "1" as its label
/// }
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixUp {
    beta: Beta<f32>,
}

impl MixUp {
    /// Fails unless `alpha` is finite and positive.
    pub fn new(alpha: f32) -> Result<Self> {
        Ok(Self {
            beta: beta("MixUp::new", alpha)?,
        })
    }
}

impl BatchMix for MixUp {
    fn mix(&self, images: &mut Tensor, targets: &mut Tensor, rng: &mut ChaCha8Rng) -> Result<()> {
        mix_pairs(
            "MixUp::mix",
            images,
            targets,
            rng,
            |own, partner, _, rng| {
                let lambda = rng.sample(self.beta);
                for (x, y) in own.iter_mut().zip(partner) {
                    *x = lambda * *x + (1.0 - lambda) * y;
                }
                lambda
            },
        )
    }
}

/// CutMix (Yun et al. 2019): pastes a box of the partner into each sample. The box
/// covers about `1 - lambda` of the image for `lambda ~ Beta(alpha, alpha)`, centred on
/// a random pixel and clipped to the image; the targets are mixed by the exact share
/// kept, `1 - box area / image area`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CutMix {
    beta: Beta<f32>,
}

impl CutMix {
    /// Fails unless `alpha` is finite and positive.
    pub fn new(alpha: f32) -> Result<Self> {
        Ok(Self {
            beta: beta("CutMix::new", alpha)?,
        })
    }
}

impl BatchMix for CutMix {
    fn mix(&self, images: &mut Tensor, targets: &mut Tensor, rng: &mut ChaCha8Rng) -> Result<()> {
        mix_pairs(
            "CutMix::mix",
            images,
            targets,
            rng,
            |own, partner, [height, width, channels], rng| {
                let side = (1.0 - rng.sample(self.beta)).sqrt();
                let box_h = (height as f32 * side) as usize;
                let box_w = (width as f32 * side) as usize;
                let rect = Rect::random(height, width, box_h, box_w, rng);
                for span in rect.spans(width, channels) {
                    own[span.clone()].copy_from_slice(&partner[span]);
                }
                1.0 - rect.area() as f32 / (height * width).max(1) as f32
            },
        )
    }
}

/// `Beta(alpha, alpha)`, failing in `context` unless `alpha` is finite and positive.
fn beta(context: &'static str, alpha: f32) -> Result<Beta<f32>> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(DataError::invalid(
            context,
            format!("alpha must be finite and positive, got {alpha}"),
        ));
    }
    Beta::new(alpha, alpha).map_err(|e| DataError::invalid(context, e.to_string()))
}

/// Checks the shapes, draws the partner permutation, then for each sample `i` with
/// partner `j` lets `blend(own_i, original_j, [h, w, c], rng)` mix the image and return
/// the weight `lambda` of its own target.
fn mix_pairs(
    context: &'static str,
    images: &mut Tensor,
    targets: &mut Tensor,
    rng: &mut ChaCha8Rng,
    mut blend: impl FnMut(&mut [f32], &[f32], [usize; 3], &mut ChaCha8Rng) -> f32,
) -> Result<()> {
    let (image_shape, target_shape) = (images.shape(), targets.shape());
    if image_shape.len() != 4 || target_shape.len() != 2 || image_shape[0] != target_shape[0] {
        return Err(DataError::invalid(
            context,
            format!(
                "images must be (b, height, width, channels) and targets (b, classes), got {image_shape:?} and {target_shape:?}"
            ),
        ));
    }
    let batch = image_shape[0];
    let dims = [image_shape[1], image_shape[2], image_shape[3]];
    let (sample_len, classes) = (dims.iter().product::<usize>(), target_shape[1]);
    let mut partners: Vec<usize> = (0..batch).collect();
    partners.shuffle(rng);
    let (original_images, original_targets) = (images.to_vec(), targets.to_vec());
    let (images, targets) = (images.as_mut_slice(), targets.as_mut_slice());
    for (i, &j) in partners.iter().enumerate() {
        let lambda = blend(
            &mut images[i * sample_len..(i + 1) * sample_len],
            &original_images[j * sample_len..(j + 1) * sample_len],
            dims,
            rng,
        );
        let partner = &original_targets[j * classes..(j + 1) * classes];
        for (t, p) in targets[i * classes..(i + 1) * classes]
            .iter_mut()
            .zip(partner)
        {
            *t = lambda * *t + (1.0 - lambda) * p;
        }
    }
    Ok(())
}
