//! Random rectangles of an image, and [`Cutout`] which blanks one.

use std::ops::Range;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{image_dims, Augmentation};
use crate::error::{DataError, Result};

/// A rectangle of pixels: rows `top..top + height`, columns `left..left + width`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Rect {
    top: usize,
    left: usize,
    height: usize,
    width: usize,
}

impl Rect {
    /// A `box_h x box_w` box centred on a uniformly drawn pixel of a
    /// `height x width` image, clipped to the image (so possibly smaller).
    pub(super) fn random(
        height: usize,
        width: usize,
        box_h: usize,
        box_w: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        if height == 0 || width == 0 {
            return Self {
                top: 0,
                left: 0,
                height: 0,
                width: 0,
            };
        }
        let clip = |centre: usize, size: usize, len: usize| {
            let start = centre.saturating_sub(size / 2);
            let end = (centre + size - size / 2).min(len);
            (start, end - start)
        };
        let (top, height) = clip(rng.random_range(0..height), box_h, height);
        let (left, width) = clip(rng.random_range(0..width), box_w, width);
        Self {
            top,
            left,
            height,
            width,
        }
    }

    /// The number of pixels inside.
    pub(super) fn area(&self) -> usize {
        self.height * self.width
    }

    /// The flat value ranges of the rectangle's rows in an image `image_width` pixels
    /// wide with `channels` values per pixel.
    pub(super) fn spans(
        &self,
        image_width: usize,
        channels: usize,
    ) -> impl Iterator<Item = Range<usize>> + '_ {
        (self.top..self.top + self.height).map(move |row| {
            let start = (row * image_width + self.left) * channels;
            start..start + self.width * channels
        })
    }
}

/// Sets a `size x size` square, centred on a random pixel and clipped to the image, to
/// zero in every channel (DeVries & Taylor's Cutout).
///
/// ```
/// use petal_data::augment::{Augmentation, Cutout};
/// use rand::SeedableRng;
/// let cutout = Cutout::new(2)?;
/// let mut image = vec![1.0; 6 * 6];
/// cutout.apply(&mut image, &[6, 6, 1], &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// let zeros = image.iter().filter(|&&v| v == 0.0).count();
/// assert!((1..=4).contains(&zeros));
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cutout {
    size: usize,
}

impl Cutout {
    /// Fails unless `size` is positive.
    pub fn new(size: usize) -> Result<Self> {
        if size == 0 {
            return Err(DataError::invalid(
                "Cutout::new",
                "size must be positive, got 0",
            ));
        }
        Ok(Self { size })
    }
}

impl Augmentation for Cutout {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        let (height, width, channels) = image_dims(image, shape)?;
        let rect = Rect::random(height, width, self.size, self.size, rng);
        for span in rect.spans(width, channels) {
            image[span].fill(0.0);
        }
        Ok(())
    }
}
