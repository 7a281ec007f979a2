//! Antialiased resizing of RGB photos with the `fast_image_resize` crate: SIMD
//! convolutions, about 10x the `image` crate's `resize` for the flowers loader's job
//! (a 224-px photo's central square to 128x128: 59 µs against 588 µs, median over 8
//! photos, `cargo bench -p petal-data --bench resize`), with the same filters.

use fast_image_resize as fir;
use fir::pixels::U8x3;
use image::imageops::FilterType;
use image::RgbImage;

/// The `width x height` region of `rgb` at (`left`, `top`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First column.
    pub left: u32,
    /// First row.
    pub top: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
}

impl Region {
    /// The whole of `rgb`.
    pub fn all(rgb: &RgbImage) -> Self {
        Self {
            left: 0,
            top: 0,
            width: rgb.width(),
            height: rgb.height(),
        }
    }

    /// The central square of `rgb`, of side `min(width, height)`.
    pub fn center_square(rgb: &RgbImage) -> Self {
        Self::center_fraction(rgb, 1.0)
    }

    /// The central square of `rgb` whose side is `fraction` of `min(width, height)`,
    /// rounded (at least one pixel).
    ///
    /// ```
    /// use petal_data::resize::Region;
    /// let photo = image::RgbImage::new(300, 256);
    /// let crop = Region::center_fraction(&photo, 0.875);
    /// assert_eq!((crop.left, crop.top, crop.width, crop.height), (38, 16, 224, 224));
    /// ```
    pub fn center_fraction(rgb: &RgbImage, fraction: f32) -> Self {
        let shorter = rgb.width().min(rgb.height());
        let side =
            ((f64::from(shorter) * f64::from(fraction)).round() as u32).clamp(1, shorter.max(1));
        Self {
            left: (rgb.width() - side) / 2,
            top: (rgb.height() - side) / 2,
            width: side,
            height: side,
        }
    }
}

/// `region` of `rgb` resized to `size x size` with `filter` (every filter but `Nearest`
/// widens its support by the downscale factor, so shrinking is antialiased; the kernel
/// is clamped at the region's edges and reads no pixel outside it): `size * size * 3`
/// bytes, row-major RGB. Fails on an empty region or one outside the image.
///
/// ```
/// use petal_data::resize::{resize_rgb, Region};
/// use petal_data::FilterType;
/// let grey = image::RgbImage::from_pixel(40, 30, image::Rgb([100, 100, 100]));
/// let square = resize_rgb(&grey, Region::center_square(&grey), 8, FilterType::Triangle)?;
/// assert_eq!(square, vec![100; 8 * 8 * 3]);
/// # Ok::<(), String>(())
/// ```
pub fn resize_rgb(
    rgb: &RgbImage,
    region: Region,
    size: u32,
    filter: FilterType,
) -> Result<Vec<u8>, String> {
    let source = rgb_view(rgb)?;
    let cropped = fir::images::TypedCroppedImage::from_ref(
        &source,
        region.left,
        region.top,
        region.width,
        region.height,
    )
    .map_err(|e| {
        format!(
            "{region:?} of a {}x{} image: {e}",
            rgb.width(),
            rgb.height()
        )
    })?;
    resize_view(&cropped, size, size, filter)
}

/// `rgb` resized with `filter` (aspect kept) so that its shorter side is `shorter`
/// pixels and its longer side `floor(shorter * longer / shorter_side)`, then its central
/// `size x size` square, offsets rounded half to even: torchvision's `Resize(shorter)`
/// followed by `CenterCrop(size)`. `size * size * 3` bytes, row-major RGB. Fails when
/// `shorter` is below `size` or the image is empty.
///
/// ```
/// use petal_data::resize::resize_shorter_side_then_crop;
/// use petal_data::FilterType;
/// // 400x300 -> 341x256 -> the 224x224 square at (58, 16).
/// let photo = image::RgbImage::from_fn(400, 300, |x, _| image::Rgb([(x / 2) as u8, 0, 0]));
/// let crop = resize_shorter_side_then_crop(&photo, 256, 224, FilterType::Triangle)?;
/// assert_eq!(crop.len(), 224 * 224 * 3);
/// assert!(resize_shorter_side_then_crop(&photo, 200, 224, FilterType::Triangle).is_err());
/// # Ok::<(), String>(())
/// ```
pub fn resize_shorter_side_then_crop(
    rgb: &RgbImage,
    shorter: u32,
    size: u32,
    filter: FilterType,
) -> Result<Vec<u8>, String> {
    let (width, height) = rgb.dimensions();
    if shorter < size || width == 0 || height == 0 {
        return Err(format!(
            "cannot crop {size}x{size} from a {width}x{height} image resized to a shorter side of {shorter}"
        ));
    }
    let longer =
        |long: u32, short: u32| (u64::from(shorter) * u64::from(long) / u64::from(short)) as u32;
    let (new_width, new_height) = if width <= height {
        (shorter, longer(height, width))
    } else {
        (longer(width, height), shorter)
    };
    let pixels = resize_view(&rgb_view(rgb)?, new_width, new_height, filter)?;
    let (left, top) = (
        centered_offset(new_width, size),
        centered_offset(new_height, size),
    );
    let row = new_width as usize * 3;
    Ok((top..top + size)
        .flat_map(|y| {
            let start = y as usize * row + left as usize * 3;
            &pixels[start..start + size as usize * 3]
        })
        .copied()
        .collect())
}

/// `round((length - size) / 2)` with halves rounded to even, as torchvision computes a
/// center crop's offset.
fn centered_offset(length: u32, size: u32) -> u32 {
    let excess = length - size;
    let half = excess / 2;
    if excess % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// `rgb` as `fast_image_resize`'s view of RGB pixels.
fn rgb_view(rgb: &RgbImage) -> Result<fir::images::TypedImageRef<'_, U8x3>, String> {
    fir::images::TypedImageRef::from_buffer(rgb.width(), rgb.height(), rgb.as_raw())
        .map_err(|e| e.to_string())
}

/// `source` resized to `width x height` with `filter`: row-major RGB bytes.
///
/// The typed entry point of `fast_image_resize` compiles its kernels for RGB pixels
/// alone; its untyped `resize` would compile them for every pixel type it supports
/// (about 6,000 functions, two minutes of every build of this crate).
fn resize_view(
    source: &impl fir::ImageView<Pixel = U8x3>,
    width: u32,
    height: u32,
    filter: FilterType,
) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0; width as usize * height as usize * 3];
    let mut resized = fir::images::TypedImage::<U8x3>::from_buffer(width, height, &mut bytes)
        .map_err(|e| e.to_string())?;
    let options = fir::ResizeOptions::new().resize_alg(algorithm(filter));
    fir::Resizer::new()
        .resize_typed(source, &mut resized, &options)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// `fast_image_resize`'s equivalent of the `image` crate's filter.
fn algorithm(filter: FilterType) -> fir::ResizeAlg {
    let convolution = |f| fir::ResizeAlg::Convolution(f);
    match filter {
        FilterType::Nearest => fir::ResizeAlg::Nearest,
        FilterType::Triangle => convolution(fir::FilterType::Bilinear),
        FilterType::CatmullRom => convolution(fir::FilterType::CatmullRom),
        FilterType::Gaussian => convolution(fir::FilterType::Gaussian),
        FilterType::Lanczos3 => convolution(fir::FilterType::Lanczos3),
    }
}

#[cfg(test)]
mod tests {
    use image::imageops;

    use super::*;

    /// A photo-like test image: smooth gradients plus a checkerboard of fine detail.
    fn pattern(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let checker = if (x / 3 + y / 3) % 2 == 0 { 40 } else { 0 };
            image::Rgb([
                (x * 200 / width) as u8 + checker,
                (y * 200 / height) as u8,
                ((x + y) % 256) as u8,
            ])
        })
    }

    #[test]
    fn matches_the_image_crates_resize_within_rounding() {
        let rgb = pattern(300, 224);
        for filter in [
            FilterType::Triangle,
            FilterType::CatmullRom,
            FilterType::Lanczos3,
        ] {
            let region = Region::center_square(&rgb);
            let ours = resize_rgb(&rgb, region, 128, filter).unwrap();
            let square = imageops::crop_imm(&rgb, region.left, region.top, 224, 224);
            let reference = imageops::resize(&*square, 128, 128, filter).into_raw();
            assert_nearly_equal(&ours, &reference, &format!("{filter:?}"));
        }
    }

    /// Rounding, and the clamping of the sharper filters' overshoot at a checkerboard's
    /// edges, differ between two resizers by a few levels at most.
    fn assert_nearly_equal(ours: &[u8], reference: &[u8], what: &str) {
        assert_eq!(ours.len(), reference.len(), "{what}");
        let differences: Vec<u8> = ours
            .iter()
            .zip(reference)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let worst = differences.iter().max().copied().unwrap_or(0);
        let mean =
            differences.iter().map(|&d| f64::from(d)).sum::<f64>() / differences.len() as f64;
        assert!(
            worst <= 4 && mean < 0.5,
            "{what}: largest difference {worst}, mean {mean}"
        );
    }

    #[test]
    fn center_crop_offsets_round_half_to_even_as_python() {
        // round(58.5) = 58, round(59.5) = 60, round(16.0) = 16.
        assert_eq!(centered_offset(341, 224), 58);
        assert_eq!(centered_offset(343, 224), 60);
        assert_eq!(centered_offset(256, 224), 16);
    }

    #[test]
    fn shorter_side_then_crop_equals_resizing_the_whole_photo_then_cropping() {
        // Portrait, so the longer side is the height: 224x300 -> 256x342 (floor of
        // 342.86), crop at (16, 59).
        let rgb = pattern(224, 300);
        let ours = resize_shorter_side_then_crop(&rgb, 256, 224, FilterType::Triangle).unwrap();
        let whole = imageops::resize(&rgb, 256, 342, FilterType::Triangle);
        let reference = imageops::crop_imm(&whole, 16, 59, 224, 224)
            .to_image()
            .into_raw();
        // The same rounding differences as between the two libraries' plain resizes.
        assert_nearly_equal(&ours, &reference, "shorter side 256, then 224");
    }

    #[test]
    fn a_region_outside_the_image_is_an_error() {
        let rgb = pattern(10, 10);
        let outside = Region {
            left: 5,
            top: 0,
            width: 10,
            height: 10,
        };
        let err = resize_rgb(&rgb, outside, 4, FilterType::Triangle).unwrap_err();
        assert!(err.contains("of a 10x10 image"), "{err}");
    }
}
