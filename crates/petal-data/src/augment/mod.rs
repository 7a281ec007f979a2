//! Image augmentation, seeded and deterministic.
//!
//! A sample is an f32 NHWC image without the batch axis, `shape = [height, width,
//! channels]`, values typically in `[0, 1]`. Every [`Augmentation`] first draws its
//! random parameters from the [`ChaCha8Rng`] it is handed, then runs a deterministic
//! kernel in place, so the same generator state always gives the same image.
//!
//! - geometry: [`RandomAffine`] (flip, rotation, zoom, translation and shear fused into
//!   one bilinear warp, with a Keras [`FillMode`]) and [`RandomResizedCrop`];
//! - photometric: [`RandomBrightness`], [`RandomContrast`], [`GaussianNoise`],
//!   [`GaussianBlur`];
//! - occlusion: [`Cutout`];
//! - combinators: [`Pipeline`] (a sequence) and [`RandomApply`] (apply with probability
//!   `p`, via [`Augmentation::with_probability`]);
//! - batch mixing of images and soft targets: [`MixUp`] and [`CutMix`] ([`BatchMix`]).
//!
//! [`crate::BatchLoader::augment`] augments every sample of every batch with its own
//! generator from [`sample_rng`], so a seed gives the same epoch, bit for bit, on any
//! number of threads. A [`BatchMix`] mixes a whole batch with the generator of its
//! training step from [`batch_rng`].
//!
//! Invalid settings are refused by the constructors with a [`DataError`], and a shape
//! that does not describe the image by [`Augmentation::apply`].

mod affine;
mod blur;
mod crop;
mod mix;
mod photometric;
mod region;
mod warp;

use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use affine::{AffineConfig, RandomAffine};
pub use blur::GaussianBlur;
pub use crop::RandomResizedCrop;
pub use mix::{BatchMix, CutMix, MixUp};
pub use photometric::{GaussianNoise, RandomBrightness, RandomContrast};
pub use region::Cutout;
pub use warp::{flip_horizontally, warp, Affine, FillMode};

use crate::error::{DataError, Result};

/// A random, in-place transformation of one `[height, width, channels]` image.
///
/// Implementations draw every random parameter from `rng` and nothing else, so the
/// output depends only on the image and the generator's state. `Debug` lets a loader
/// or a test print which augmentation it holds.
pub trait Augmentation: Send + Sync + fmt::Debug {
    /// Transforms `image` (of shape `shape`) in place, drawing from `rng`. A `shape` that
    /// is not `[height, width, channels]` holding exactly `image.len()` values is an
    /// error naming both, and leaves the image untouched.
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()>;

    /// This augmentation applied only with probability `p`; fails unless `0 <= p <= 1`.
    fn with_probability(self, p: f32) -> Result<RandomApply<Self>>
    where
        Self: Sized,
    {
        RandomApply::new(self, p)
    }
}

/// Applies its augmentations one after the other, each drawing from the same generator.
///
/// ```
/// use petal_data::augment::{Augmentation, GaussianNoise, Pipeline, RandomAffine};
/// use rand::SeedableRng;
/// let pipeline = Pipeline(vec![
///     Box::new(RandomAffine::flip(true, false)),
///     Box::new(GaussianNoise::new(0.01)?.with_probability(0.5)?),
/// ]);
/// let mut image = vec![0.5; 4 * 4 * 3];
/// pipeline.apply(&mut image, &[4, 4, 3], &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Debug)]
pub struct Pipeline(pub Vec<Box<dyn Augmentation>>);

impl Augmentation for Pipeline {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        image_dims(image, shape)?;
        for augmentation in &self.0 {
            augmentation.apply(image, shape, rng)?;
        }
        Ok(())
    }
}

/// Applies `inner` with probability `p`, leaving the image untouched otherwise.
///
/// The coin is drawn from the generator first; with `p = 0` the image is never changed
/// and with `p = 1` always transformed.
#[derive(Clone, Debug)]
pub struct RandomApply<A> {
    inner: A,
    p: f32,
}

impl<A: Augmentation> RandomApply<A> {
    /// `inner` with probability `p`; fails unless `0 <= p <= 1`.
    pub fn new(inner: A, p: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(DataError::invalid(
                "RandomApply::new",
                format!("the probability must be in [0, 1], got {p}"),
            ));
        }
        Ok(Self { inner, p })
    }

    /// The probability of applying the inner augmentation.
    pub fn probability(&self) -> f32 {
        self.p
    }
}

impl<A: Augmentation> Augmentation for RandomApply<A> {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        image_dims(image, shape)?;
        if rng.random::<f32>() < self.p {
            self.inner.apply(image, shape, rng)?;
        }
        Ok(())
    }
}

/// The generator that augments dataset sample `index` in epoch `epoch` under `seed`.
///
/// Its 256-bit ChaCha key is the four words (`seed`, `epoch`, `index`, a fixed tag), so
/// every triple gets an independent stream that depends on nothing else: not on the
/// batch, the thread, or the loader's shuffle seed.
pub fn sample_rng(seed: u64, epoch: u64, index: usize) -> ChaCha8Rng {
    keyed_rng([seed, epoch, index as u64, u64::from_le_bytes(*b"petalaug")])
}

/// The generator that mixes the batch of training step `step` under `seed` (a
/// [`BatchMix`]), keyed like [`sample_rng`] with its own tag: a seed gives the same
/// mixes bit for bit, and a resumed run the ones it would have had.
pub fn batch_rng(seed: u64, step: u64) -> ChaCha8Rng {
    keyed_rng([seed, step, 0, u64::from_le_bytes(*b"petalmix")])
}

/// A ChaCha generator whose 256-bit key is the four words.
fn keyed_rng(words: [u64; 4]) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// `(height, width, channels)` of an image; a `shape` that is not 3-d or does not hold
/// exactly `image.len()` values is an error naming both.
fn image_dims(image: &[f32], shape: &[usize]) -> Result<(usize, usize, usize)> {
    let holds = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match *shape {
        [height, width, channels] if holds == Some(image.len()) => Ok((height, width, channels)),
        _ => Err(DataError::invalid(
            "augmentation",
            format!(
                "shape {shape:?} must be [height, width, channels] holding the image's {} values",
                image.len()
            ),
        )),
    }
}

/// A uniform draw from `[lo, hi]`; `lo` itself (without drawing) when the range is a point.
fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f32, f32)) -> f32 {
    if lo < hi {
        rng.random_range(lo..=hi)
    } else {
        lo
    }
}

/// Fails unless `lo <= hi`, both finite.
fn check_range(context: &'static str, name: &str, (lo, hi): (f32, f32)) -> Result<()> {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(DataError::invalid(
            context,
            format!("{name} must be a finite range (min, max) with min <= max, got ({lo}, {hi})"),
        ));
    }
    Ok(())
}

/// Fails unless `value` is finite and at least `min`.
fn check_at_least(context: &'static str, name: &str, value: f32, min: f32) -> Result<()> {
    if !(value.is_finite() && value >= min) {
        return Err(DataError::invalid(
            context,
            format!("{name} must be finite and at least {min}, got {value}"),
        ));
    }
    Ok(())
}
