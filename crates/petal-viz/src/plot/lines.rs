//! Line plots: charts side by side, one line per series, x = epoch.

use std::path::Path;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{save, text_error, Figure};
use crate::error::{Result, VizError};
use crate::font::FAMILY;

/// Line colours, cycled: blue, orange, green, red, purple, brown, pink, gray.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 110, 180),
    RGBColor(245, 125, 20),
    RGBColor(40, 160, 45),
    RGBColor(215, 40, 40),
    RGBColor(145, 100, 190),
    RGBColor(140, 85, 75),
    RGBColor(225, 120, 195),
    RGBColor(125, 125, 125),
];

/// One named line: a value per epoch (epoch 1 first); NaN values are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// The values, one per x = 1, 2, ...
    pub values: Vec<f64>,
    /// Dashed, in the colour of the solid line before it (val after train); solid lines
    /// each take the next colour.
    pub dashed: bool,
}

/// One chart of a [`LinePlot`].
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// Chart caption.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

impl Panel {
    /// An empty chart.
    pub fn new(title: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            y_label: y_label.into(),
            series: Vec::new(),
        }
    }

    /// Adds a solid line in the next colour.
    pub fn with(mut self, name: impl Into<String>, values: &[f64]) -> Self {
        self.series.push(Series {
            name: name.into(),
            values: values.to_vec(),
            dashed: false,
        });
        self
    }

    /// Adds a dashed line in the colour of the line before it.
    pub fn with_dashed(mut self, name: impl Into<String>, values: &[f64]) -> Self {
        self = self.with(name, values);
        if let Some(last) = self.series.last_mut() {
            last.dashed = true;
        }
        self
    }
}

/// Charts side by side under one title, x = epoch: e.g. loss and accuracy, train vs val.
///
/// ```
/// use petal_viz::{LinePlot, Panel};
/// let plot = LinePlot {
///     title: "training".into(),
///     panels: vec![Panel::new("loss", "cross-entropy").with("train", &[0.9, 0.5, 0.4])],
/// };
/// let file = std::env::temp_dir().join("petal-viz-doc-curves.svg");
/// plot.save(&file)?;
/// assert!(std::fs::read_to_string(&file).unwrap().contains("<svg"));
/// # Ok::<(), petal_viz::VizError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    /// Text above the charts.
    pub title: String,
    /// The charts, left to right.
    pub panels: Vec<Panel>,
}

impl LinePlot {
    /// Writes the plot to `path` (`.svg` for SVG, else PNG).
    pub fn save(&self, path: &Path) -> Result<()> {
        if self.panels.is_empty() {
            return Err(VizError::Input(format!(
                "{}: a line plot needs at least one panel",
                path.display()
            )));
        }
        save(self, path)
    }
}

impl Figure for LinePlot {
    fn size(&self) -> (u32, u32) {
        (480 * self.panels.len() as u32, 400)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(text_error)?;
        let root = root
            .titled(&self.title, (FAMILY, 22).into_font())
            .map_err(text_error)?;
        for (panel, area) in self
            .panels
            .iter()
            .zip(root.split_evenly((1, self.panels.len())))
        {
            draw_panel(panel, &area)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    area: &DrawingArea<DB, Shift>,
) -> std::result::Result<(), String> {
    let finite = || {
        panel
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
    };
    let epochs = panel
        .series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let (lo, hi) = finite().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FAMILY, 17))
        .margin(12)
        .x_label_area_size(38)
        .y_label_area_size(58)
        .build_cartesian_2d(0.5..epochs as f64 + 0.5, (lo - pad)..(hi + pad))
        .map_err(text_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(&panel.y_label)
        .x_labels(epochs.min(10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(text_error)?;
    let mut solid = 0;
    for series in &panel.series {
        if !series.dashed {
            solid += 1;
        }
        let colour = PALETTE[(solid.max(1) - 1) % PALETTE.len()];
        let style = colour.stroke_width(2);
        let points: Vec<(f64, f64)> = series
            .values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(e, &v)| (e as f64 + 1.0, v))
            .collect();
        let legend = [(0, 0), (18, 0)];
        if series.dashed {
            chart
                .draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
                .map_err(text_error)?
                .label(&series.name)
                .legend(move |(x, y)| {
                    DashedPathElement::new(legend.map(|(dx, _)| (x + dx, y)), 5, 3, style)
                });
        } else {
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(text_error)?
                .label(&series.name)
                .legend(move |(x, y)| PathElement::new(legend.map(|(dx, _)| (x + dx, y)), style));
        }
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.filled())),
            )
            .map_err(text_error)?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(legend_position(panel, lo, hi))
        .draw()
        .map_err(text_error)
}

/// Where the legend hides the least: at the bottom right when the lines end high (an
/// accuracy going up), else at the top right (a loss going down).
fn legend_position(panel: &Panel, lo: f64, hi: f64) -> SeriesLabelPosition {
    let ends: Vec<f64> = panel
        .series
        .iter()
        .filter_map(|s| s.values.iter().rev().find(|v| v.is_finite()))
        .map(|v| (v - lo) / (hi - lo).max(f64::MIN_POSITIVE))
        .collect();
    let mean = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
    if mean > 0.5 {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}
