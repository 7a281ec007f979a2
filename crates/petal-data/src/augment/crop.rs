//! [`RandomResizedCrop`]: a random crop resized back to the image size.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::warp::{warp, Affine, FillMode};
use super::{check_range, image_dims, uniform, Augmentation};
use crate::error::{DataError, Result};

/// Crops a random region and resizes it back to the full `height x width` with bilinear
/// sampling (torchvision's `RandomResizedCrop` with the output size of the input).
///
/// The region covers a fraction of the image area drawn from `scale` and has an aspect
/// ratio (width / height) drawn log-uniformly from `ratio`; after ten misses it falls
/// back to the largest centred region whose ratio lies in `ratio`.
///
/// The resize is the half-pixel bilinear map of the crop onto the image, as an
/// [`Affine`] warp; it samples the image itself, so an output edge pixel may blend in
/// less than half a pixel of the crop's neighbours, and only the image border repeats
/// its edge ([`FillMode::Nearest`]).
///
/// ```
/// use petal_data::augment::{Augmentation, RandomResizedCrop};
/// use rand::SeedableRng;
/// let crop = RandomResizedCrop::new((0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0))?;
/// let mut image = vec![0.5; 8 * 8 * 3];
/// crop.apply(&mut image, &[8, 8, 3], &mut rand_chacha::ChaCha8Rng::seed_from_u64(3))?;
/// assert_eq!(image.len(), 8 * 8 * 3);
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomResizedCrop {
    scale: (f32, f32),
    ratio: (f32, f32),
}

impl RandomResizedCrop {
    /// Checks `0 < scale.0 <= scale.1 <= 1` and `0 < ratio.0 <= ratio.1`.
    pub fn new(scale: (f32, f32), ratio: (f32, f32)) -> Result<Self> {
        const CONTEXT: &str = "RandomResizedCrop::new";
        check_range(CONTEXT, "scale", scale)?;
        check_range(CONTEXT, "ratio", ratio)?;
        if scale.0 <= 0.0 || scale.1 > 1.0 || ratio.0 <= 0.0 {
            return Err(DataError::invalid(
                CONTEXT,
                format!(
                    "scale must lie in (0, 1] and ratio be positive, got scale {scale:?}, ratio {ratio:?}"
                ),
            ));
        }
        Ok(Self { scale, ratio })
    }

    /// Draws the crop `(top, left, crop_height, crop_width)` for a `height x width` image.
    ///
    /// # Panics
    /// When `height` or `width` is zero.
    pub fn draw(
        &self,
        height: usize,
        width: usize,
        rng: &mut ChaCha8Rng,
    ) -> (usize, usize, usize, usize) {
        let area = (height * width) as f32;
        let log_ratio = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target_area = area * uniform(rng, self.scale);
            let aspect = uniform(rng, log_ratio).exp();
            let crop_w = (target_area * aspect).sqrt().round() as usize;
            let crop_h = (target_area / aspect).sqrt().round() as usize;
            if (1..=width).contains(&crop_w) && (1..=height).contains(&crop_h) {
                let top = rng.random_range(0..=height - crop_h);
                let left = rng.random_range(0..=width - crop_w);
                return (top, left, crop_h, crop_w);
            }
        }
        let aspect = width as f32 / height as f32;
        let (crop_h, crop_w) = if aspect < self.ratio.0 {
            ((width as f32 / self.ratio.0).round() as usize, width)
        } else if aspect > self.ratio.1 {
            (height, (height as f32 * self.ratio.1).round() as usize)
        } else {
            (height, width)
        };
        let (crop_h, crop_w) = (crop_h.clamp(1, height), crop_w.clamp(1, width));
        ((height - crop_h) / 2, (width - crop_w) / 2, crop_h, crop_w)
    }
}

impl Augmentation for RandomResizedCrop {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        let (height, width, _) = image_dims(image, shape)?;
        if image.is_empty() {
            return Ok(());
        }
        let (top, left, crop_h, crop_w) = self.draw(height, width, rng);
        // Pixel centres: output x covers [x, x + 1) of width, i.e. crop column
        // left + (x + 0.5) * crop_w / width - 0.5 (half-pixel resize, as in PIL).
        let (sx, sy) = (crop_w as f32 / width as f32, crop_h as f32 / height as f32);
        let transform = Affine([
            [sx, 0.0, left as f32 + 0.5 * sx - 0.5],
            [0.0, sy, top as f32 + 0.5 * sy - 0.5],
        ]);
        warp(image, shape, &transform, FillMode::Nearest)
    }
}
