//! Every channel of a layer's output for one input.

use image::RgbImage;
use petal_tensor::Tensor;

use crate::colormap::Colormap;
use crate::error::{Result, VizError};
use crate::grid::{image_grid, GridOptions, Tile};
use crate::raster::{heatmap_image, Scaling};

/// The feature maps `(h, w, c)` (or `(1, h, w, c)`) of one input as a grid of at most
/// `limit` channels, each scaled on its own and coloured with viridis (a channel that is
/// zero everywhere, a dead ReLU, shows as one flat colour).
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_viz::feature_map_grid;
/// let maps = Tensor::from_vec(&[1, 4, 4, 9], (0..144).map(|v| v as f32).collect())?;
/// let picture = feature_map_grid(&maps, 64, Some("conv1"))?;
/// assert!(picture.width() >= 3 * 64);
/// # Ok::<(), petal_viz::VizError>(())
/// ```
pub fn feature_map_grid(maps: &Tensor, limit: usize, title: Option<&str>) -> Result<RgbImage> {
    let (h, w, c) = match *maps.shape() {
        [h, w, c] | [1, h, w, c] => (h, w, c),
        ref shape => {
            return Err(VizError::Input(format!(
                "feature maps are (height, width, channels) of one input, got shape {shape:?}"
            )))
        }
    };
    let shown = c.min(limit);
    let tiles = (0..shown)
        .map(|k| {
            let channel: Vec<f32> = (0..h * w).map(|p| maps.as_slice()[p * c + k]).collect();
            let map = Tensor::from_vec(&[h, w], channel)?;
            Ok(Tile {
                image: heatmap_image(&map, Scaling::MinMax, Colormap::Viridis)?,
                caption: None,
            })
        })
        .collect::<Result<Vec<Tile>>>()?;
    image_grid(
        &tiles,
        &GridOptions {
            columns: (shown as f64).sqrt().ceil() as usize,
            min_tile_side: 64,
            gap: 2,
            title: title.map(str::to_string),
            ..GridOptions::default()
        },
    )
}
