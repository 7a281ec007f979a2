//! A [`Dataset`] over image files: JPEG/PNG decoded with the `image` crate, converted to
//! RGB, resized with antialiasing to `size x size`, scaled to `[0, 1]` f32 NHWC.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use image::imageops::FilterType;

use crate::dataset::{check_load_args, Dataset};
use crate::error::{DataError, Result};
use crate::resize::{resize_rgb, Region};

/// How an image of another aspect ratio becomes a square.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Keep the aspect ratio: take the central square of side `min(width, height)` and
    /// resize it, the same as resizing the shorter side to `size` then center-cropping.
    CenterCrop,
    /// Resize width and height independently to `size`, distorting the aspect ratio.
    Squash,
}

/// How image files become samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageOptions {
    /// The side of the square sample, in pixels.
    pub size: u32,
    /// Crop or squash to a square.
    pub resize: ResizeMode,
    /// The resampling filter. Every filter but `Nearest` widens its support by the
    /// downscale factor, so shrinking is antialiased.
    pub filter: FilterType,
}

impl ImageOptions {
    /// `size x size` samples, center-cropped, with the triangle (bilinear) filter.
    pub fn new(size: u32) -> Self {
        Self {
            size,
            resize: ResizeMode::CenterCrop,
            filter: FilterType::Triangle,
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
}

/// The most memory the decoder may allocate for one image: 256 MiB, an RGB photo of
/// about 9000 x 9000 pixels. A larger image, or a file whose header merely claims one,
/// is refused before its pixels are allocated.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// Decodes the image at `path` (format guessed from its bytes), converts it to RGB (grey
/// is replicated, alpha dropped) and resizes it per `options`: `size * size * 3` bytes,
/// row-major RGB. The error names the file and the decoder's reason, including an image
/// over [`MAX_IMAGE_BYTES`].
pub fn load_rgb(path: &Path, options: &ImageOptions) -> Result<Vec<u8>> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, "opening", e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, "reading", e))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| DataError::format(path, format!("cannot decode the image: {e}")))?;
    let rgb = image.to_rgb8();
    let region = match options.resize {
        ResizeMode::Squash => Region::all(&rgb),
        ResizeMode::CenterCrop => Region::center_square(&rgb),
    };
    resize_rgb(&rgb, region, options.size, options.filter)
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
        if options.size == 0 {
            return Err(DataError::invalid(
                CONTEXT,
                "the image size must be positive",
            ));
        }
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
        for (o, &p) in out.iter_mut().zip(pixels) {
            *o = f32::from(p) / 255.0;
        }
        Ok(self.labels[index])
    }
}
