//! # petal-viz
//!
//! Figures of what a convolutional network learned and how its training went:
//!
//! - [`filter_grid`]: a conv layer's kernels, RGB patches for a first layer, one gray
//!   patch per input channel deeper in;
//! - [`feature_map_grid`]: every channel of a layer's output for one input
//!   ([`Model::forward_with_outputs`](petal_nn::Model::forward_with_outputs) gives it);
//! - [`saliency`]: vanilla gradient, SmoothGrad and Grad-CAM maps, drawn over the input
//!   with [`overlay`];
//! - [`LinePlot`]: training curves (loss and accuracy, train vs val) and
//!   [`SmallMultiples`]: one small chart per run on a shared scale; and
//!   [`ConfusionPlot`]: a confusion matrix heatmap with its colour bar, all as PNG or SVG;
//! - [`image_grid`]: captioned image grids (samples, augmentations, mistakes).
//!
//! Text is drawn with DejaVu Sans, embedded in the crate, so figures render the same on
//! a machine without any system font.

mod colormap;
mod error;
mod feature_maps;
mod filters;
mod font;
mod grid;
mod plot;
mod raster;
pub mod saliency;

pub use colormap::Colormap;
pub use error::{Result, VizError};
pub use feature_maps::feature_map_grid;
pub use filters::filter_grid;
pub use grid::{image_grid, GridOptions, Tile};
pub use plot::{ConfusionPlot, LinePlot, Panel, Series, SmallMultiples};
pub use raster::{heatmap_image, overlay, save_png, tensor_image, Scaling};
