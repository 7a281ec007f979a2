//! [`RandomAffine`]: Keras' RandomFlip, RandomRotation, RandomZoom, RandomTranslation
//! and a shear fused into one affine warp per image.

use std::f32::consts::TAU;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::warp::{warp, Affine, FillMode};
use super::{check_range, image_dims, uniform, Augmentation};
use crate::error::{DataError, Result};

/// The ranges [`RandomAffine`] draws from; every range is `(min, max)` and a point range
/// `(v, v)` pins the value. [`Default`] is the identity with [`FillMode::Reflect`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineConfig {
    /// Mirror left-right with probability 0.5.
    pub horizontal_flip: bool,
    /// Mirror top-bottom with probability 0.5.
    pub vertical_flip: bool,
    /// Rotation as a fraction of a full turn, positive counter-clockwise (Keras'
    /// `RandomRotation(factor)` is `(-factor, factor)`; 0.05 is up to 18 degrees).
    pub rotation: (f32, f32),
    /// Vertical zoom: the image is scaled by `1 / (1 + z)`, so positive values zoom
    /// out and negative values zoom in (Keras' `RandomZoom`); `min > -1`.
    pub zoom_height: (f32, f32),
    /// Horizontal zoom like `zoom_height`; `None` reuses the vertical draw and keeps
    /// the aspect ratio.
    pub zoom_width: Option<(f32, f32)>,
    /// Vertical shift as a fraction of the height, positive down.
    pub translate_height: (f32, f32),
    /// Horizontal shift as a fraction of the width, positive right.
    pub translate_width: (f32, f32),
    /// Horizontal shear angle as a fraction of a full turn, within a quarter turn:
    /// the output pixel at `dy` rows below the centre reads `tan(angle) * dy` columns
    /// further right.
    pub shear: (f32, f32),
    /// How pixels from outside the image are read.
    pub fill: FillMode,
}

impl Default for AffineConfig {
    fn default() -> Self {
        Self {
            horizontal_flip: false,
            vertical_flip: false,
            rotation: (0.0, 0.0),
            zoom_height: (0.0, 0.0),
            zoom_width: None,
            translate_height: (0.0, 0.0),
            translate_width: (0.0, 0.0),
            shear: (0.0, 0.0),
            fill: FillMode::Reflect,
        }
    }
}

/// Random flip, rotation, zoom, translation and shear as one affine warp about the
/// image centre with bilinear sampling; see [`AffineConfig`] for the conventions.
///
/// Drawn per image, the parts compose like Keras layers applied in the order flip,
/// rotation, shear, zoom, translation, but the image is resampled only once.
///
/// ```
/// use petal_data::augment::{AffineConfig, Augmentation, FillMode, RandomAffine};
/// use rand::SeedableRng;
/// use rand_chacha::ChaCha8Rng;
///
/// // A quarter turn counter-clockwise: the top-right pixel moves to the top-left.
/// let quarter_turn = RandomAffine::new(AffineConfig {
///     rotation: (0.25, 0.25),
///     ..AffineConfig::default()
/// })?;
/// let mut image = vec![0.0; 3 * 3];
/// image[2] = 1.0; // row 0, column 2
/// quarter_turn.apply(&mut image, &[3, 3, 1], &mut ChaCha8Rng::seed_from_u64(0))?;
/// assert!((image[0] - 1.0).abs() < 1e-5);
///
/// // The usual training mix: flips, +-18 degrees, +-10% zoom and shift, black border.
/// let augment = RandomAffine::new(AffineConfig {
///     horizontal_flip: true,
///     rotation: (-0.05, 0.05),
///     zoom_height: (-0.1, 0.1),
///     translate_height: (-0.1, 0.1),
///     translate_width: (-0.1, 0.1),
///     fill: FillMode::Constant(0.0),
///     ..AffineConfig::default()
/// })?;
/// let mut photo = vec![0.5; 32 * 32 * 3];
/// augment.apply(&mut photo, &[32, 32, 3], &mut ChaCha8Rng::seed_from_u64(7))?;
/// # Ok::<(), petal_data::DataError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomAffine {
    config: AffineConfig,
}

impl RandomAffine {
    /// Checks that every range is finite with `min <= max`, zooms stay above -1, shears
    /// within a quarter turn, and a constant fill value is finite.
    pub fn new(config: AffineConfig) -> Result<Self> {
        const CONTEXT: &str = "RandomAffine::new";
        check_range(CONTEXT, "rotation", config.rotation)?;
        check_range(CONTEXT, "translate_height", config.translate_height)?;
        check_range(CONTEXT, "translate_width", config.translate_width)?;
        for (name, zoom) in [
            ("zoom_height", Some(config.zoom_height)),
            ("zoom_width", config.zoom_width),
        ] {
            if let Some(zoom) = zoom {
                check_range(CONTEXT, name, zoom)?;
                if zoom.0 <= -1.0 {
                    return Err(DataError::invalid(
                        CONTEXT,
                        format!("{name} must stay above -1, got min {}", zoom.0),
                    ));
                }
            }
        }
        check_range(CONTEXT, "shear", config.shear)?;
        if config.shear.0 <= -0.25 || config.shear.1 >= 0.25 {
            return Err(DataError::invalid(
                CONTEXT,
                format!(
                    "shear must stay within a quarter turn, got {:?}",
                    config.shear
                ),
            ));
        }
        if let FillMode::Constant(value) = config.fill {
            if !value.is_finite() {
                return Err(DataError::invalid(
                    CONTEXT,
                    format!("the fill value must be finite, got {value}"),
                ));
            }
        }
        Ok(Self { config })
    }

    /// Keras' `RandomFlip`: each enabled direction mirrors with probability 0.5.
    pub fn flip(horizontal: bool, vertical: bool) -> Self {
        Self {
            config: AffineConfig {
                horizontal_flip: horizontal,
                vertical_flip: vertical,
                ..AffineConfig::default()
            },
        }
    }

    /// Keras' `RandomRotation(factor)`: up to `factor` of a full turn either way.
    pub fn rotation(factor: f32) -> Result<Self> {
        Self::new(AffineConfig {
            rotation: (-factor, factor),
            ..AffineConfig::default()
        })
    }

    /// Keras' `RandomZoom(height_factor, width_factor)` with symmetric ranges; without
    /// `width_factor` the aspect ratio is kept.
    pub fn zoom(height_factor: f32, width_factor: Option<f32>) -> Result<Self> {
        Self::new(AffineConfig {
            zoom_height: (-height_factor, height_factor),
            zoom_width: width_factor.map(|f| (-f, f)),
            ..AffineConfig::default()
        })
    }

    /// Keras' `RandomTranslation(height_factor, width_factor)`: shifts of up to these
    /// fractions of the height and width, either way.
    pub fn translation(height_factor: f32, width_factor: f32) -> Result<Self> {
        Self::new(AffineConfig {
            translate_height: (-height_factor, height_factor),
            translate_width: (-width_factor, width_factor),
            ..AffineConfig::default()
        })
    }

    /// A horizontal shear of up to `factor` of a full turn either way.
    pub fn shear(factor: f32) -> Result<Self> {
        Self::new(AffineConfig {
            shear: (-factor, factor),
            ..AffineConfig::default()
        })
    }

    /// The same augmentation reading outside pixels with `fill`.
    pub fn with_fill(self, fill: FillMode) -> Result<Self> {
        Self::new(AffineConfig {
            fill,
            ..self.config
        })
    }

    /// The ranges this augmentation draws from.
    pub fn config(&self) -> &AffineConfig {
        &self.config
    }

    /// Draws one transform for a `height x width` image: the map from output to input
    /// pixel coordinates that [`Augmentation::apply`] warps with.
    pub fn draw(&self, height: usize, width: usize, rng: &mut ChaCha8Rng) -> Affine {
        let c = &self.config;
        let mut flip = |enabled: bool| {
            if enabled && rng.random::<bool>() {
                -1.0
            } else {
                1.0
            }
        };
        let flips = diagonal(flip(c.horizontal_flip), flip(c.vertical_flip));
        let (sin, cos) = (uniform(rng, c.rotation) * TAU).sin_cos();
        let rotation = [[cos, -sin], [sin, cos]];
        let shear = [[1.0, (uniform(rng, c.shear) * TAU).tan()], [0.0, 1.0]];
        let zoom_y = 1.0 + uniform(rng, c.zoom_height);
        let zoom_x = c
            .zoom_width
            .map_or(zoom_y, |range| 1.0 + uniform(rng, range));
        let zoom = diagonal(zoom_x, zoom_y);
        let shift_y = uniform(rng, c.translate_height) * height as f32;
        let shift_x = uniform(rng, c.translate_width) * width as f32;

        // Each part maps output to input, so the first layer's matrix is leftmost and
        // the translation, applied last, is undone first.
        let linear = matmul(matmul(matmul(flips, rotation), shear), zoom);
        let shift = [
            -(linear[0][0] * shift_x + linear[0][1] * shift_y),
            -(linear[1][0] * shift_x + linear[1][1] * shift_y),
        ];
        Affine::about_center(linear, shift, height, width)
    }
}

impl Augmentation for RandomAffine {
    fn apply(&self, image: &mut [f32], shape: &[usize], rng: &mut ChaCha8Rng) -> Result<()> {
        let (height, width, _) = image_dims(image, shape)?;
        let transform = self.draw(height, width, rng);
        warp(image, shape, &transform, self.config.fill)
    }
}

/// The 2x2 diagonal matrix `diag(x, y)`.
fn diagonal(x: f32, y: f32) -> [[f32; 2]; 2] {
    [[x, 0.0], [0.0, y]]
}

/// The 2x2 matrix product `a * b`.
fn matmul(a: [[f32; 2]; 2], b: [[f32; 2]; 2]) -> [[f32; 2]; 2] {
    let entry = |r: usize, c: usize| a[r][0] * b[0][c] + a[r][1] * b[1][c];
    [[entry(0, 0), entry(0, 1)], [entry(1, 0), entry(1, 1)]]
}
