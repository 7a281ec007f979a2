//! Pictures from tensors: scaling values to pixels, heatmaps, overlays, captions, PNG.

use std::path::Path;

use image::{imageops, RgbImage};
use petal_tensor::Tensor;
use plotters::backend::{BitMapBackend, DrawingBackend};
use plotters::style::{IntoFont, RGBColor, TextStyle};

use crate::colormap::Colormap;
use crate::error::{Result, VizError};
use crate::font;

/// How tensor values become pixel intensities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scaling {
    /// The smallest value is black, the largest white (a constant image is mid-gray).
    MinMax,
    /// `lo` is black, `hi` white, values outside are clipped.
    Range(f32, f32),
}

impl Scaling {
    /// Maps `values` into [0, 1].
    pub(crate) fn apply(self, values: &[f32]) -> Vec<f32> {
        let (lo, hi) = match self {
            Scaling::Range(lo, hi) => (lo, hi),
            Scaling::MinMax => values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v))),
        };
        if hi <= lo {
            return vec![0.5; values.len()];
        }
        values
            .iter()
            .map(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0))
            .collect()
    }
}

/// Whether all values are equal (up to float rounding relative to their size).
pub(crate) fn is_constant(values: &[f32]) -> bool {
    let (lo, hi) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    hi - lo <= 1e-6 * lo.abs().max(hi.abs())
}

/// The `(height, width, channels)` of an image tensor, with or without a batch axis of 1.
pub(crate) fn image_dims(image: &Tensor) -> Result<(usize, usize, usize)> {
    match *image.shape() {
        [h, w, c] | [1, h, w, c] if c == 1 || c == 3 => Ok((h, w, c)),
        ref shape => Err(VizError::Input(format!(
            "an image must be (height, width, 1 or 3 channels), got shape {shape:?}"
        ))),
    }
}

/// A picture of an image tensor `(h, w, 1 | 3)` (or `(1, h, w, c)`): gray or RGB.
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_viz::{tensor_image, Scaling};
/// let t = Tensor::from_vec(&[1, 2, 1], vec![0.0, 2.0])?;
/// let picture = tensor_image(&t, Scaling::MinMax)?;
/// assert_eq!(picture.get_pixel(1, 0).0, [255, 255, 255]);
/// # Ok::<(), petal_viz::VizError>(())
/// ```
pub fn tensor_image(image: &Tensor, scaling: Scaling) -> Result<RgbImage> {
    let (h, w, c) = image_dims(image)?;
    let v = scaling.apply(image.as_slice());
    Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let at = (y as usize * w + x as usize) * c;
        image::Rgb(std::array::from_fn(|k| {
            (v[at + if c == 3 { k } else { 0 }] * 255.0).round() as u8
        }))
    }))
}

/// A `(h, w)` map (or `(h, w, 1)`) coloured by `colormap` after `scaling`.
pub fn heatmap_image(map: &Tensor, scaling: Scaling, colormap: Colormap) -> Result<RgbImage> {
    let (h, w) = match *map.shape() {
        [h, w] | [h, w, 1] => (h, w),
        ref shape => {
            return Err(VizError::Input(format!(
                "a heatmap must be (height, width), got shape {shape:?}"
            )))
        }
    };
    let v = scaling.apply(map.as_slice());
    Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        image::Rgb(colormap.rgb(v[y as usize * w + x as usize]))
    }))
}

/// `heat` (a `(h, w)` map, min-max scaled) in `colormap` over `image`, mixed with weight
/// `alpha` for the heat; the map is resized to the image if they differ. A constant map
/// is an error: min-max scaled it would be one uniform tint that looks like a finding.
pub fn overlay(
    image: &RgbImage,
    heat: &Tensor,
    colormap: Colormap,
    alpha: f32,
) -> Result<RgbImage> {
    if is_constant(heat.as_slice()) {
        return Err(VizError::Input(format!(
            "the heat map is constant ({} everywhere): it shows nothing to draw",
            heat.as_slice().first().copied().unwrap_or(0.0)
        )));
    }
    let mut heat = heatmap_image(heat, Scaling::MinMax, colormap)?;
    if heat.dimensions() != image.dimensions() {
        heat = imageops::resize(
            &heat,
            image.width(),
            image.height(),
            imageops::FilterType::Triangle,
        );
    }
    let alpha = alpha.clamp(0.0, 1.0);
    Ok(RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let (a, b) = (image.get_pixel(x, y).0, heat.get_pixel(x, y).0);
        image::Rgb(std::array::from_fn(|k| {
            (f32::from(a[k]) * (1.0 - alpha) + f32::from(b[k]) * alpha).round() as u8
        }))
    }))
}

/// Enlarges `image` by an integer factor so its shorter side reaches `min_side` (pixel
/// blocks, no smoothing: small filters and digits stay crisp).
pub(crate) fn enlarge(image: &RgbImage, min_side: u32) -> RgbImage {
    let side = image.width().min(image.height()).max(1);
    let factor = min_side.div_ceil(side).max(1);
    if factor == 1 {
        return image.clone();
    }
    imageops::resize(
        image,
        image.width() * factor,
        image.height() * factor,
        imageops::FilterType::Nearest,
    )
}

/// `image` scaled down (smoothly, keeping its proportions) so that its longer side is at
/// most `max_side`; unchanged when it already is.
pub(crate) fn shrink(image: &RgbImage, max_side: u32) -> RgbImage {
    let side = image.width().max(image.height());
    if side <= max_side {
        return image.clone();
    }
    let scale = |n: u32| (u64::from(n) * u64::from(max_side) / u64::from(side)).max(1) as u32;
    imageops::resize(
        image,
        scale(image.width()),
        scale(image.height()),
        imageops::FilterType::Triangle,
    )
}

/// Draws `text` with its top-left corner at `(x, y)`, `size` pixels high.
pub(crate) fn draw_text(image: &mut RgbImage, text: &str, (x, y): (i32, i32), size: f64) {
    font::ensure_registered();
    let (w, h) = image.dimensions();
    let mut backend = BitMapBackend::with_buffer(image.as_mut(), (w, h));
    let style = TextStyle::from((font::FAMILY, size).into_font()).color(&RGBColor(20, 20, 20));
    // Text that does not fit is clipped by the backend; nothing else can fail here.
    let _ = backend.draw_text(text, &style, (x, y));
}

/// The width in pixels of `text` at `size`.
pub(crate) fn text_width(text: &str, size: f64) -> u32 {
    font::ensure_registered();
    (font::FAMILY, size)
        .into_font()
        .box_size(text)
        .map_or(0, |(w, _)| w)
}

/// Writes `image` as a PNG file.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<()> {
    image.save(path).map_err(|e| VizError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
