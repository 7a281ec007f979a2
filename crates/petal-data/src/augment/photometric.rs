//! Changes of pixel values that keep the geometry: brightness, contrast and noise.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{check_at_least, image_dims, uniform, Augmentation};
use crate::error::{DataError, Result};

/// Adds one delta drawn from `[-max_delta, max_delta]` to every value and clamps the
/// result to `[0, 1]` (Keras' `RandomBrightness` for images in `[0, 1]`).
///
/// ```
/// use petal_data::augment::{Augmentation, RandomBrightness};
/// use rand::SeedableRng;
/// let brightness = RandomBrightness::new(0.2)?;
/// let mut image = vec![0.0, 0.5, 1.0];
/// brightness.apply(&mut image, &[1, 3, 1], &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// assert!(image.iter().all(|v| (0.0..=1.0).contains(v)));
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomBrightness {
    max_delta: f32,
}

impl RandomBrightness {
    /// Fails unless `max_delta` is finite and non-negative.
    pub fn new(max_delta: f32) -> Result<Self> {
        check_at_least("RandomBrightness::new", "max_delta", max_delta, 0.0)?;
        Ok(Self { max_delta })
    }
}

impl Augmentation for RandomBrightness {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        image_dims(image, shape)?;
        let delta = uniform(rng, (-self.max_delta, self.max_delta));
        image
            .iter_mut()
            .for_each(|v| *v = (*v + delta).clamp(0.0, 1.0));
        Ok(())
    }
}

/// Scales each channel's deviation from its mean by one factor drawn from
/// `[1 - factor, 1 + factor]`: `x -> (x - mean) * f + mean` (Keras' `RandomContrast`,
/// without clamping, so the channel means are kept).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomContrast {
    factor: f32,
}

impl RandomContrast {
    /// Fails unless `0 <= factor <= 1`.
    pub fn new(factor: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&factor) {
            return Err(DataError::invalid(
                "RandomContrast::new",
                format!("factor must be in [0, 1], got {factor}"),
            ));
        }
        Ok(Self { factor })
    }
}

impl Augmentation for RandomContrast {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        let (_, _, channels) = image_dims(image, shape)?;
        let f = uniform(rng, (1.0 - self.factor, 1.0 + self.factor));
        if image.is_empty() {
            return Ok(());
        }
        let mut sums = vec![0.0f64; channels];
        for pixel in image.chunks_exact(channels) {
            sums.iter_mut()
                .zip(pixel)
                .for_each(|(s, &v)| *s += f64::from(v));
        }
        let pixels = (image.len() / channels) as f64;
        let means: Vec<f32> = sums.iter().map(|s| (s / pixels) as f32).collect();
        for pixel in image.chunks_exact_mut(channels) {
            for (v, mean) in pixel.iter_mut().zip(&means) {
                *v = (*v - mean) * f + mean;
            }
        }
        Ok(())
    }
}

/// Adds independent Gaussian noise of standard deviation `stddev` to every value
/// (Keras' `GaussianNoise`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianNoise {
    stddev: f32,
}

impl GaussianNoise {
    /// Fails unless `stddev` is finite and non-negative.
    pub fn new(stddev: f32) -> Result<Self> {
        check_at_least("GaussianNoise::new", "stddev", stddev, 0.0)?;
        Ok(Self { stddev })
    }
}

impl Augmentation for GaussianNoise {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        image_dims(image, shape)?;
        for v in image.iter_mut() {
            *v += self.stddev * rng.sample::<f32, _>(StandardNormal);
        }
        Ok(())
    }
}
