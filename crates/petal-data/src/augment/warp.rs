//! The deterministic kernel behind every geometric augmentation: an affine warp with
//! bilinear sampling and a Keras fill mode.

use super::image_dims;
use crate::error::Result;

/// How pixels outside the input image are read (Keras' `fill_mode`), shown for a row
/// `a b c d`:
///
/// | mode | outside left | image | outside right |
/// |---|---|---|---|
/// | `Reflect` | `d c b a` | `a b c d` | `d c b a` |
/// | `Wrap` | `a b c d` | `a b c d` | `a b c d` |
/// | `Constant(k)` | `k k k k` | `a b c d` | `k k k k` |
/// | `Nearest` | `a a a a` | `a b c d` | `d d d d` |
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FillMode {
    /// Mirror about the edge of the last pixel (Keras' default).
    Reflect,
    /// Repeat the image periodically.
    Wrap,
    /// Read this value everywhere outside.
    Constant(f32),
    /// Repeat the edge pixel.
    Nearest,
}

impl FillMode {
    /// The in-image index read for integer position `i` along an axis of `n > 0`
    /// pixels, or `None` where [`FillMode::Constant`] reads its value.
    fn source_index(self, i: i64, n: usize) -> Option<usize> {
        let n_i64 = n as i64;
        match self {
            Self::Reflect => Some(reflect(i, n)),
            Self::Wrap => Some(i.rem_euclid(n_i64) as usize),
            Self::Nearest => Some(i.clamp(0, n_i64 - 1) as usize),
            Self::Constant(_) => (0..n_i64).contains(&i).then_some(i as usize),
        }
    }
}

/// Integer position `i` on an axis of `n > 0` pixels mirrored into the axis:
/// `... 1 0 | 0 1 ... n-1 | n-1 n-2 ...`.
pub(super) fn reflect(i: i64, n: usize) -> usize {
    let period = 2 * n as i64;
    let m = i.rem_euclid(period);
    (if m < n as i64 { m } else { period - 1 - m }) as usize
}

/// Mirrors an `(h, w, c)` image left to right in place: an exact horizontal flip, without
/// resampling (e.g. for test-time augmentation).
///
/// ```
/// use petal_data::augment::flip_horizontally;
/// let mut image = vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
/// flip_horizontally(&mut image, &[1, 3, 2])?;
/// assert_eq!(image, [3.0, 30.0, 2.0, 20.0, 1.0, 10.0]);
/// assert!(flip_horizontally(&mut image, &[2, 3, 2]).is_err());
/// # Ok::<(), petal_data::DataError>(())
/// ```
///
/// A `shape` that is not `[h, w, c]` holding `image.len()` values is an error.
pub fn flip_horizontally(image: &mut [f32], shape: &[usize]) -> Result<()> {
    let (_, width, channels) = image_dims(image, shape)?;
    if image.is_empty() {
        return Ok(());
    }
    for row in image.chunks_exact_mut(width * channels) {
        for x in 0..width / 2 {
            let mirror = width - 1 - x;
            for c in 0..channels {
                row.swap(x * channels + c, mirror * channels + c);
            }
        }
    }
    Ok(())
}

/// An affine map from output pixel coordinates to input pixel coordinates.
///
/// Coordinates are `(x, y) = (column, row)` with pixel centres on the integers; the
/// output pixel `(x, y)` reads the input at
/// `(m[0][0] x + m[0][1] y + m[0][2], m[1][0] x + m[1][1] y + m[1][2])`.
/// This is the "inverse" matrix of Keras' `ImageProjectiveTransform`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine(pub [[f32; 3]; 2]);

impl Affine {
    /// The map that reads every pixel where it is.
    pub const IDENTITY: Self = Self([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);

    /// The map `input - centre = linear * (output - centre) + shift` for an image of
    /// `height x width` pixels, whose centre is `((width - 1) / 2, (height - 1) / 2)`.
    pub fn about_center(
        linear: [[f32; 2]; 2],
        shift: [f32; 2],
        height: usize,
        width: usize,
    ) -> Self {
        let centre = [(width as f32 - 1.0) / 2.0, (height as f32 - 1.0) / 2.0];
        let row = |r: usize| {
            let [a, b] = linear[r];
            [a, b, shift[r] + centre[r] - a * centre[0] - b * centre[1]]
        };
        Self([row(0), row(1)])
    }

    /// The input coordinates `(x, y)` that output pixel `(x, y)` reads.
    pub fn map(&self, x: f32, y: f32) -> (f32, f32) {
        let [[a, b, c], [d, e, f]] = self.0;
        (a * x + b * y + c, d * x + e * y + f)
    }
}

/// Resamples `image` (`[height, width, channels]`) in place: output pixel `(x, y)`
/// becomes the bilinear interpolation, all channels at once, of the input at
/// `transform.map(x, y)`, reading outside the image as `fill` says.
///
/// Neighbours with weight zero are not read, so integer maps (flips, quarter turns,
/// whole-pixel shifts) copy values exactly.
///
/// A `shape` that is not 3-d or does not hold `image.len()` values is an error naming
/// both.
pub fn warp(image: &mut [f32], shape: &[usize], transform: &Affine, fill: FillMode) -> Result<()> {
    let (height, width, channels) = image_dims(image, shape)?;
    if image.is_empty() {
        return Ok(());
    }
    let source = image.to_vec();
    let outside = match fill {
        FillMode::Constant(value) => value,
        _ => 0.0, // never read: the other modes map every position into the image
    };
    for (pixel, out) in image.chunks_exact_mut(channels).enumerate() {
        let (x, y) = transform.map((pixel % width) as f32, (pixel / width) as f32);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        out.fill(0.0);
        for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
            for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                let weight = wy * wx;
                if weight == 0.0 {
                    continue;
                }
                let row = fill.source_index((y0 as i64).saturating_add(dy), height);
                let col = fill.source_index((x0 as i64).saturating_add(dx), width);
                match row.zip(col) {
                    Some((r, c)) => {
                        let start = (r * width + c) * channels;
                        for (o, s) in out.iter_mut().zip(&source[start..start + channels]) {
                            *o += weight * s;
                        }
                    }
                    None => out.iter_mut().for_each(|o| *o += weight * outside),
                }
            }
        }
    }
    Ok(())
}
