//! A conv layer's kernels as pictures.

use image::RgbImage;
use petal_tensor::Tensor;

use crate::error::{Result, VizError};
use crate::grid::{image_grid, GridOptions, Tile};
use crate::raster::{tensor_image, Scaling};

/// The kernels of a conv layer, HWIO `(kh, kw, in, out)`, at most `limit` filters (and,
/// deeper in, `limit` input channels). With 3 input channels (a first layer on RGB
/// photos) each filter is one colour patch, with 1 (gray images) one gray patch;
/// otherwise each filter is a row with one gray patch per input channel. Each filter is
/// scaled on its own, min -> black, max -> white.
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_viz::filter_grid;
/// let kernel = Tensor::from_vec(&[3, 3, 2, 4], (0..72).map(|v| v as f32).collect())?;
/// let picture = filter_grid(&kernel, 16, None)?;
/// assert!(picture.height() > picture.width()); // 4 rows of 2 patches
/// # Ok::<(), petal_viz::VizError>(())
/// ```
pub fn filter_grid(kernel: &Tensor, limit: usize, title: Option<&str>) -> Result<RgbImage> {
    let &[kh, kw, inputs, outputs] = kernel.shape() else {
        return Err(VizError::Input(format!(
            "conv kernels are (height, width, in, out), got shape {:?}",
            kernel.shape()
        )));
    };
    let (filters, channels) = (outputs.min(limit), inputs.min(limit));
    let one_patch = inputs == 1 || inputs == 3;
    let value = |y: usize, x: usize, i: usize, o: usize| {
        kernel.as_slice()[((y * kw + x) * inputs + i) * outputs + o]
    };
    let mut tiles = Vec::new();
    for o in 0..filters {
        let all: Vec<f32> = (0..kh * kw * inputs)
            .map(|k| value(k / (kw * inputs), k / inputs % kw, k % inputs, o))
            .collect();
        let scaled = Tensor::from_vec(&[kh, kw, inputs], Scaling::MinMax.apply(&all))?;
        let range = Scaling::Range(0.0, 1.0);
        if one_patch {
            tiles.push(Tile {
                image: tensor_image(&scaled, range)?,
                caption: None,
            });
            continue;
        }
        for i in 0..channels {
            let patch: Vec<f32> = (0..kh * kw)
                .map(|k| scaled.as_slice()[k * inputs + i])
                .collect();
            tiles.push(Tile {
                image: tensor_image(&Tensor::from_vec(&[kh, kw, 1], patch)?, range)?,
                caption: None,
            });
        }
    }
    let (columns, min_tile_side) = if one_patch {
        (filters.min(8), 40)
    } else {
        (channels, 12)
    };
    image_grid(
        &tiles,
        &GridOptions {
            columns,
            min_tile_side,
            gap: if one_patch { 4 } else { 1 },
            title: title.map(str::to_string),
            ..GridOptions::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_filters_keep_their_colour_and_are_scaled_each_on_its_own() {
        // Filter 0 is pure red (small values), filter 1 pure blue (large values).
        let mut values = vec![0.0; 2 * 2 * 3 * 2];
        for k in 0..4 {
            values[(k * 3) * 2] = 0.01;
            values[(k * 3 + 2) * 2 + 1] = 100.0;
        }
        let kernel = Tensor::from_vec(&[2, 2, 3, 2], values).unwrap();
        let picture = filter_grid(&kernel, 8, None).unwrap();
        // Tiles are 40x40 after a 4-pixel gap.
        assert_eq!(picture.get_pixel(10, 10).0, [255, 0, 0]);
        assert_eq!(picture.get_pixel(4 + 44 + 10, 10).0, [0, 0, 255]);
        assert_eq!(picture.dimensions(), (2 * 44 + 4, 44 + 4));
    }

    #[test]
    fn a_kernel_that_is_not_hwio_is_refused() {
        let err = filter_grid(&Tensor::zeros(&[3, 3]), 8, None).unwrap_err();
        assert!(
            err.to_string().contains("(height, width, in, out)"),
            "{err}"
        );
    }
}
