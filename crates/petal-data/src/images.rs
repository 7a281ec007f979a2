//! A [`Dataset`] over image files: JPEG/PNG decoded with the `image` crate, converted to
//! RGB, center-cropped (or squashed) and resized with antialiasing to `size x size`,
//! normalized to f32 NHWC (`[0, 1]` by default, or a pretrained model's mean and std).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use image::imageops::FilterType;

use crate::dataset::{check_load_args, Dataset};
use crate::error::{DataError, Result};
use image::{DynamicImage, RgbImage};
use petal_tensor::Tensor;

use crate::resize::{resize_rgb, resize_shorter_side_then_crop, Region};

/// How an image of another aspect ratio becomes a square.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Keep the aspect ratio: take the central square of side `min(width, height)` and
    /// resize it, the same as resizing the shorter side to `size` then center-cropping.
    CenterCrop,
    /// Resize width and height independently to `size`, distorting the aspect ratio.
    Squash,
    /// torchvision's evaluation transform, `Resize(n)` then `CenterCrop(size)`: resize the
    /// whole image (aspect kept) so its shorter side is `n` pixels, the longer
    /// `floor(n * longer / shorter)`, then take the central `size x size` square (offsets
    /// rounded half to even, as Python's `round`). `n` must be at least `size`; the crop
    /// fraction is not used.
    ShorterSideThenCrop(u32),
}

/// How pixel bytes become sample values: `(pixel - mean) / std` per RGB channel, in
/// pixel units (0..=255).
///
/// ```
/// use petal_data::Normalization;
/// let mut out = [0.0; 3];
/// Normalization::UNIT.apply(&[0, 51, 255], &mut out);
/// assert_eq!(out, [0.0, 0.2, 1.0]);
/// Normalization::CENTERED.apply(&[127, 255, 63], &mut out);
/// assert_eq!(out, [0.0, 1.0, -0.5]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Subtracted from each channel's pixel value.
    pub mean: [f32; 3],
    /// Divides each channel after the mean is subtracted.
    pub std: [f32; 3],
}

impl Normalization {
    /// Values in `[0, 1]`: `pixel / 255`.
    pub const UNIT: Self = Self {
        mean: [0.0; 3],
        std: [255.0; 3],
    };

    /// Values in about `[-1, 1]`: `(pixel - 127) / 128` (EfficientNet-Lite's weights).
    pub const CENTERED: Self = Self {
        mean: [127.0; 3],
        std: [128.0; 3],
    };

    /// ImageNet's per-channel mean and standard deviation (torchvision's weights):
    /// mean `(0.485, 0.456, 0.406)`, std `(0.229, 0.224, 0.225)` of `pixel / 255`.
    pub const IMAGENET: Self = Self {
        mean: [123.675, 116.28, 103.53],
        std: [58.395, 57.12, 57.375],
    };

    /// Writes the values of interleaved RGB `pixels` into `out` (the same length).
    pub fn apply(&self, pixels: &[u8], out: &mut [f32]) {
        for (i, (o, &p)) in out.iter_mut().zip(pixels).enumerate() {
            let c = i % 3;
            *o = (f32::from(p) - self.mean[c]) / self.std[c];
        }
    }
}

/// How image files become samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageOptions {
    /// The side of the square sample, in pixels.
    pub size: u32,
    /// Crop or squash to a square.
    pub resize: ResizeMode,
    /// With [`ResizeMode::CenterCrop`], the side of the central square as a fraction of
    /// the shorter side: 1 keeps all of it; 0.875 is the usual ImageNet evaluation crop
    /// (resize the shorter side to 256, keep the central 224).
    pub crop_fraction: f32,
    /// The resampling filter. Every filter but `Nearest` widens its support by the
    /// downscale factor, so shrinking is antialiased.
    pub filter: FilterType,
    /// How pixels become values (default: `[0, 1]`).
    pub normalization: Normalization,
}

impl ImageOptions {
    /// `size x size` samples in `[0, 1]`, the whole central square, triangle (bilinear)
    /// filter.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            resize: ResizeMode::CenterCrop,
            crop_fraction: 1.0,
            filter: FilterType::Triangle,
            normalization: Normalization::UNIT,
        }
    }

    /// These options with `resize` instead.
    pub fn resize(self, resize: ResizeMode) -> Self {
        Self { resize, ..self }
    }

    /// These options with `filter` instead.
    pub fn filter(self, filter: FilterType) -> Self {
        Self { filter, ..self }
    }

    /// These options keeping the central `fraction` of the shorter side (center crop).
    pub fn crop_fraction(self, fraction: f32) -> Self {
        Self {
            crop_fraction: fraction,
            ..self
        }
    }

    /// These options with `normalization` instead.
    pub fn normalization(self, normalization: Normalization) -> Self {
        Self {
            normalization,
            ..self
        }
    }

    /// `rgb` cropped and resized per these options: `size * size * 3` bytes.
    fn resize_rgb(&self, rgb: &RgbImage) -> std::result::Result<Vec<u8>, String> {
        let region = match self.resize {
            ResizeMode::Squash => Region::all(rgb),
            ResizeMode::CenterCrop => Region::center_fraction(rgb, self.crop_fraction),
            ResizeMode::ShorterSideThenCrop(shorter) => {
                return resize_shorter_side_then_crop(rgb, shorter, self.size, self.filter)
            }
        };
        resize_rgb(rgb, region, self.size, self.filter)
    }

    fn check(&self, context: &'static str) -> Result<()> {
        if self.size == 0 {
            return Err(DataError::invalid(
                context,
                "the image size must be positive",
            ));
        }
        if !(self.crop_fraction > 0.0 && self.crop_fraction <= 1.0) {
            return Err(DataError::invalid(
                context,
                format!("crop fraction {} is not in (0, 1]", self.crop_fraction),
            ));
        }
        if let ResizeMode::ShorterSideThenCrop(shorter) = self.resize {
            if shorter < self.size {
                return Err(DataError::invalid(
                    context,
                    format!(
                        "resizing the shorter side to {shorter} leaves nothing to crop {} pixels from",
                        self.size
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The most memory the decoder may allocate for one image: 256 MiB, an RGB photo of
/// about 9000 x 9000 pixels. A larger image, or a file whose header merely claims one,
/// is refused before its pixels are allocated.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Decodes the image at `path` in any format the `image` crate reads (guessed from its
/// bytes). The error names the file and the decoder's reason, including an image over
/// [`MAX_IMAGE_BYTES`]. Every Petal path that reads a photo goes through here.
pub fn open_image(path: &Path) -> Result<DynamicImage> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, "opening", e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, "reading", e))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| DataError::format(path, format!("cannot decode the image: {e}")))
}

/// `image` converted to RGB (grey replicated, alpha dropped), cropped and resized per
/// `options`: `size * size * 3` bytes, row-major RGB (not yet normalized).
pub fn prepare_rgb(
    image: &DynamicImage,
    options: &ImageOptions,
) -> std::result::Result<Vec<u8>, String> {
    options.resize_rgb(&image.to_rgb8())
}

/// `image` as one normalized `(1, size, size, 3)` batch, per `options`.
///
/// ```
/// use petal_data::{prepare_image, ImageOptions, Normalization};
/// let grey = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(9, 6, image::Luma([127])));
/// let batch = prepare_image(&grey, &ImageOptions::new(4).normalization(Normalization::CENTERED))?;
/// assert_eq!(batch.shape(), &[1, 4, 4, 3]);
/// assert!(batch.as_slice().iter().all(|&v| v == 0.0));
/// # Ok::<(), petal_data::DataError>(())
/// ```
pub fn prepare_image(image: &DynamicImage, options: &ImageOptions) -> Result<Tensor> {
    options.check("prepare_image")?;
    let pixels = prepare_rgb(image, options)
        .map_err(|reason| DataError::invalid("prepare_image", reason))?;
    let side = options.size as usize;
    let mut values = vec![0.0; pixels.len()];
    options.normalization.apply(&pixels, &mut values);
    Tensor::from_vec(&[1, side, side, 3], values)
        .map_err(|e| DataError::invalid("prepare_image", e.to_string()))
}

/// Decodes the image at `path`, converts it to RGB and crops and resizes it per
/// `options`: `size * size * 3` bytes, row-major RGB. The error names the file and the
/// decoder's reason, including an image over [`MAX_IMAGE_BYTES`].
pub fn load_rgb(path: &Path, options: &ImageOptions) -> Result<Vec<u8>> {
    let image = open_image(path)?;
    prepare_rgb(&image, options)
        .map_err(|reason| DataError::format(path, format!("cannot resize the image: {reason}")))
}

/// Labelled image files as a [`Dataset`] of `[size, size, 3]` samples in `[0, 1]`.
///
/// Files are decoded on every [`Dataset::load`] unless [`ImageDataset::cached`] keeps the
/// resized pixels (as bytes, a quarter of the f32 size) after the first load.
#[derive(Debug)]
pub struct ImageDataset {
    paths: Vec<PathBuf>,
    labels: Vec<usize>,
    num_classes: usize,
    options: ImageOptions,
    shape: [usize; 3],
    cache: Option<Vec<OnceLock<Vec<u8>>>>,
}

impl ImageDataset {
    /// One label per path, each below `num_classes`; `options.size` must be positive.
    /// Files are not opened until loaded.
    pub fn new(
        paths: Vec<PathBuf>,
        labels: Vec<usize>,
        num_classes: usize,
        options: ImageOptions,
    ) -> Result<Self> {
        const CONTEXT: &str = "ImageDataset::new";
        if paths.len() != labels.len() {
            return Err(DataError::invalid(
                CONTEXT,
                format!("{} paths but {} labels", paths.len(), labels.len()),
            ));
        }
        if let Some(position) = labels.iter().position(|&l| l >= num_classes) {
            return Err(DataError::invalid(
                CONTEXT,
                format!(
                    "label {} of {} is not below num_classes = {num_classes}",
                    labels[position],
                    paths[position].display()
                ),
            ));
        }
        options.check(CONTEXT)?;
        let side = options.size as usize;
        Ok(Self {
            paths,
            labels,
            num_classes,
            options,
            shape: [side, side, 3],
            cache: None,
        })
    }

    /// This dataset keeping each sample's resized pixels in memory after its first load,
    /// so later epochs decode nothing. Safe to load from many threads.
    pub fn cached(self) -> Self {
        let cache = (0..self.paths.len()).map(|_| OnceLock::new()).collect();
        Self {
            cache: Some(cache),
            ..self
        }
    }

    /// The image files, in sample order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The labels, in sample order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The decoding options.
    pub fn options(&self) -> &ImageOptions {
        &self.options
    }
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn load(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        check_load_args(self, index, out)?;
        let decode = || load_rgb(&self.paths[index], &self.options);
        let owned;
        let pixels = match &self.cache {
            Some(cache) => match cache[index].get() {
                Some(pixels) => pixels,
                // Two threads may both decode the same sample; the first result is kept.
                None => {
                    let pixels = decode()?;
                    cache[index].get_or_init(|| pixels)
                }
            },
            None => {
                owned = decode()?;
                &owned
            }
        };
        self.options.normalization.apply(pixels, out);
        Ok(self.labels[index])
    }
}
