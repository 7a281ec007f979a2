//! Small multiples: one small chart per run on a shared scale, so that many runs can be
//! compared without crowding one axis.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::lines::{draw_panels, save_panels, Layout, Panel};
use super::Figure;
use crate::error::Result;

/// Pixels of one small chart.
const CELL: (u32, u32) = (330, 250);

/// One small chart per panel, in a grid of `columns`, all with the same x and y ranges;
/// the first chart carries the legend (every chart should hold the same kinds of lines,
/// e.g. train and val of one run).
///
/// ```
/// use petal_viz::{Panel, SmallMultiples};
/// let plot = SmallMultiples {
///     title: "accuracy per run".into(),
///     panels: vec![
///         Panel::new("baseline", "accuracy").with("train", &[0.8, 0.9]),
///         Panel::new("+ dropout", "accuracy").with("train", &[0.7, 0.85]),
///     ],
///     columns: 2,
/// };
/// let file = std::env::temp_dir().join("petal-viz-doc-multiples.svg");
/// plot.save(&file)?;
/// assert!(std::fs::read_to_string(&file).unwrap().contains("+ dropout"));
/// # Ok::<(), petal_viz::VizError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SmallMultiples {
    /// Text above the charts.
    pub title: String,
    /// The charts, row by row.
    pub panels: Vec<Panel>,
    /// Charts per row (at least 1).
    pub columns: usize,
}

impl SmallMultiples {
    /// Writes the grid to `path` (`.svg` for SVG, else PNG).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_panels(self, path, &self.panels, self.columns)
    }

    /// The grid's columns and rows.
    fn grid(&self) -> (usize, usize) {
        let columns = self.columns.min(self.panels.len()).max(1);
        (columns, self.panels.len().div_ceil(columns))
    }
}

impl Figure for SmallMultiples {
    fn size(&self) -> (u32, u32) {
        let (columns, rows) = self.grid();
        (CELL.0 * columns as u32, CELL.1 * rows as u32 + 40)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let (columns, rows) = self.grid();
        let layout = Layout {
            rows,
            columns,
            shared_ranges: true,
            caption_size: 15,
            legend_on_first_only: true,
        };
        draw_panels(root, &self.title, &self.panels, &layout)
    }
}
