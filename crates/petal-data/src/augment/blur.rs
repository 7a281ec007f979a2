//! [`GaussianBlur`]: a separable Gaussian filter with a random width.

use rand_chacha::ChaCha8Rng;

use super::warp::reflect;
use super::{check_range, image_dims, uniform, Augmentation};
use crate::error::{DataError, Result};

/// Blurs with a `kernel_size x kernel_size` Gaussian whose sigma (in pixels) is drawn
/// from `sigma`, as two 1-D passes (rows, then columns); borders reflect like
/// [`super::FillMode::Reflect`]. A constant image stays constant.
///
/// ```
/// use petal_data::augment::{Augmentation, GaussianBlur};
/// use rand::SeedableRng;
/// let blur = GaussianBlur::new((0.5, 1.5), 5)?;
/// let mut image = vec![0.0; 5 * 5];
/// image[12] = 1.0; // the centre
/// blur.apply(&mut image, &[5, 5, 1], &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// assert!(image[12] < 1.0 && image[11] > 0.0);
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianBlur {
    sigma: (f32, f32),
    kernel_size: usize,
}

impl GaussianBlur {
    /// Fails unless `0 < sigma.0 <= sigma.1` and `kernel_size` is odd.
    pub fn new(sigma: (f32, f32), kernel_size: usize) -> Result<Self> {
        const CONTEXT: &str = "GaussianBlur::new";
        check_range(CONTEXT, "sigma", sigma)?;
        if sigma.0 <= 0.0 || kernel_size.is_multiple_of(2) {
            return Err(DataError::invalid(
                CONTEXT,
                format!(
                    "sigma must be positive and kernel_size odd, got sigma {sigma:?}, kernel_size {kernel_size}"
                ),
            ));
        }
        Ok(Self { sigma, kernel_size })
    }

    /// The normalized 1-D kernel of standard deviation `sigma`, centre in the middle.
    fn kernel(&self, sigma: f32) -> Vec<f32> {
        let radius = (self.kernel_size / 2) as f32;
        let weights: Vec<f32> = (0..self.kernel_size)
            .map(|i| {
                let d = i as f32 - radius;
                (-d * d / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        let total: f32 = weights.iter().sum();
        weights.into_iter().map(|w| w / total).collect()
    }
}

impl Augmentation for GaussianBlur {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        let (height, width, channels) = image_dims(image, shape)?;
        let kernel = self.kernel(uniform(rng, self.sigma));
        // Along rows, neighbours are `channels` apart; along columns, a row apart.
        convolve_axis(image, &kernel, width, channels);
        convolve_axis(image, &kernel, height, width * channels);
        Ok(())
    }
}

/// Convolves `image` in place along an axis of `len` positions whose neighbours are
/// `stride` values apart.
fn convolve_axis(image: &mut [f32], kernel: &[f32], len: usize, stride: usize) {
    if image.is_empty() {
        return;
    }
    let source = image.to_vec();
    let radius = (kernel.len() / 2) as i64;
    for (offset, out) in image.iter_mut().enumerate() {
        let position = (offset / stride) % len;
        let line_start = offset - position * stride;
        *out = kernel
            .iter()
            .enumerate()
            .map(|(k, w)| {
                let p = reflect(position as i64 + k as i64 - radius, len);
                w * source[line_start + p * stride]
            })
            .sum();
    }
}
