//! Plots drawn with plotters, to PNG or SVG by the file's extension: line plots
//! (training curves), small multiples of them (one chart per run on a shared scale) and
//! the confusion matrix heatmap.

mod confusion;
mod lines;
mod multiples;

use std::path::Path;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Result, VizError};
use crate::font::ensure_registered;
use crate::raster::save_png;

pub use confusion::ConfusionPlot;
pub use lines::{LinePlot, Panel, Series};
pub use multiples::SmallMultiples;

/// Something drawable on any plotters backend, at a fixed size.
pub(crate) trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Renders `figure` to `path`: SVG for `.svg`, else PNG.
pub(crate) fn save(figure: &impl Figure, path: &Path) -> Result<()> {
    ensure_registered();
    let (w, h) = figure.size();
    let failed = |reason: String| VizError::Write {
        path: path.to_path_buf(),
        reason,
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        let root = SVGBackend::new(path, (w, h)).into_drawing_area();
        figure.draw(&root).map_err(failed)?;
        return root.present().map_err(|e| failed(e.to_string()));
    }
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        figure.draw(&root).map_err(failed)?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    let image = RgbImage::from_raw(w, h, pixels).expect("the buffer holds w * h RGB pixels");
    save_png(&image, path)
}

pub(crate) fn text_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}
