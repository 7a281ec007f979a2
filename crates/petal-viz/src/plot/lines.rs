//! Line plots: charts side by side, one line per series, x = epoch (or any increasing
//! positions, such as seconds of training).

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

/// One named line: a value per epoch (epoch 1 first), or per given x position; NaN
/// values are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// The values, one per x = 1, 2, ... (or per entry of `x`).
    pub values: Vec<f64>,
    /// Where each value sits on the x axis; empty for epochs 1, 2, ...
    pub x: Vec<f64>,
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
    /// X axis label: `epoch` unless [`Panel::x_axis`] says otherwise.
    pub x_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Powers of two get equal room on the x axis (see [`Panel::log2_x`]).
    pub log2_x: bool,
}

impl Panel {
    /// An empty chart.
    pub fn new(title: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            y_label: y_label.into(),
            x_label: "epoch".into(),
            series: Vec::new(),
            log2_x: false,
        }
    }

    /// Spaces the x axis by powers of two, so that batch sizes 1, 2, 4, ... 256 each get
    /// the same room; the ticks still read 1, 2, 4, ... Points at x <= 0 are left out.
    ///
    /// ```
    /// use petal_viz::{LinePlot, Panel};
    /// let batches = [1.0, 4.0, 16.0, 64.0, 256.0];
    /// let panel = Panel::new("rate", "images/s")
    ///     .x_axis("batch size")
    ///     .log2_x()
    ///     .with_xy("2 threads", &batches, &[40.0, 150.0, 400.0, 520.0, 530.0]);
    /// let plot = LinePlot { title: "cost".into(), panels: vec![panel] };
    /// let file = std::env::temp_dir().join("petal-viz-doc-log2.svg");
    /// plot.save(&file)?;
    /// let svg = std::fs::read_to_string(&file).unwrap();
    /// assert!(["1", "4", "16", "64", "256"].iter().all(|t| svg.contains(&format!("\n{t}\n</text>"))));
    /// # Ok::<(), petal_viz::VizError>(())
    /// ```
    pub fn log2_x(mut self) -> Self {
        self.log2_x = true;
        self
    }

    /// `series`' points where they are drawn: x as log2(x) on a [`Panel::log2_x`] axis.
    fn plotted(&self, series: &Series) -> Vec<(f64, f64)> {
        let points = series.points();
        if !self.log2_x {
            return points;
        }
        points
            .into_iter()
            .filter(|&(x, _)| x > 0.0)
            .map(|(x, v)| (x.log2(), v))
            .collect()
    }

    /// Names the x axis (for lines added with [`Panel::with_xy`]).
    pub fn x_axis(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// Adds a solid line in the next colour, a value per epoch.
    pub fn with(self, name: impl Into<String>, values: &[f64]) -> Self {
        self.with_xy(name, &[], values)
    }

    /// Adds a solid line in the next colour through the points `(x[i], values[i])`
    /// (`x` empty: epochs 1, 2, ...).
    pub fn with_xy(mut self, name: impl Into<String>, x: &[f64], values: &[f64]) -> Self {
        self.series.push(Series {
            name: name.into(),
            values: values.to_vec(),
            x: x.to_vec(),
            dashed: false,
        });
        self
    }

    /// Adds a dashed line in the colour of the line before it.
    pub fn with_dashed(self, name: impl Into<String>, values: &[f64]) -> Self {
        self.with_dashed_xy(name, &[], values)
    }

    /// Adds a dashed line through the points `(x[i], values[i])` in the colour of the
    /// line before it.
    pub fn with_dashed_xy(mut self, name: impl Into<String>, x: &[f64], values: &[f64]) -> Self {
        self = self.with_xy(name, x, values);
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
        save_panels(self, path, &self.panels, self.panels.len())
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
        let layout = Layout {
            rows: 1,
            columns: self.panels.len(),
            shared_ranges: false,
            caption_size: 17,
            legend_on_first_only: false,
        };
        draw_panels(root, &self.title, &self.panels, &layout)
    }
}

/// Checks that `panels` in `columns` make a plot, then writes `figure` to `path`.
pub(crate) fn save_panels(
    figure: &impl Figure,
    path: &Path,
    panels: &[Panel],
    columns: usize,
) -> Result<()> {
    if panels.is_empty() || columns == 0 {
        return Err(VizError::Input(format!(
            "{}: a plot needs at least one panel and one column, got {} panels in {} columns",
            path.display(),
            panels.len(),
            columns
        )));
    }
    save(figure, path)
}

/// How [`draw_panels`] lays its charts out.
pub(crate) struct Layout {
    /// Rows of the grid.
    pub(crate) rows: usize,
    /// Charts per row.
    pub(crate) columns: usize,
    /// One x and y range for every chart (else each its own).
    pub(crate) shared_ranges: bool,
    /// Points of each chart's caption.
    pub(crate) caption_size: u32,
    /// Only the first chart carries a legend (else every chart does).
    pub(crate) legend_on_first_only: bool,
}

/// Draws `panels` row by row in a grid under `title`.
pub(crate) fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    layout: &Layout,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(text_error)?;
    let root = root
        .titled(title, (FAMILY, 22).into_font())
        .map_err(text_error)?;
    let shared = layout.shared_ranges.then(|| Ranges::of(panels));
    for (k, (panel, area)) in panels
        .iter()
        .zip(root.split_evenly((layout.rows, layout.columns)))
        .enumerate()
    {
        let ranges = shared.unwrap_or_else(|| Ranges::of([panel]));
        let legend = k == 0 || !layout.legend_on_first_only;
        draw_panel_in(panel, &area, ranges, layout.caption_size, legend)?;
    }
    Ok(())
}

impl Series {
    /// The drawable points: `(x, value)` for every finite value.
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, &v)| (self.x.get(i).copied().unwrap_or(i as f64 + 1.0), v))
            .filter(|(x, v)| x.is_finite() && v.is_finite())
            .collect()
    }
}

/// The axes' extent of some panels together: x from the first to the last point
/// (half an epoch of margin for epoch axes), y from the lowest to the highest value
/// with a little room.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ranges {
    x: (f64, f64),
    y: (f64, f64),
}

impl Ranges {
    /// The extent of every point of `panels`; `(0, 1)` squares when there are none.
    fn of<'a>(panels: impl IntoIterator<Item = &'a Panel>) -> Self {
        let mut epochs_only = true;
        let (mut x, mut y) = ((f64::MAX, f64::MIN), (f64::MAX, f64::MIN));
        for (panel, series) in panels
            .into_iter()
            .flat_map(|p| p.series.iter().map(move |s| (p, s)))
        {
            epochs_only &= series.x.is_empty();
            for (px, py) in panel.plotted(series) {
                x = (x.0.min(px), x.1.max(px));
                y = (y.0.min(py), y.1.max(py));
            }
        }
        let x = match (x.0 > x.1, epochs_only) {
            (true, _) => (0.5, 1.5),
            (false, true) => (x.0.min(1.0) - 0.5, x.1 + 0.5),
            (false, false) => (x.0.min(0.0), x.1 + (x.1 - x.0.min(0.0)) * 0.03 + 1e-9),
        };
        let y = if y.0 > y.1 { (0.0, 1.0) } else { y };
        let pad = ((y.1 - y.0) * 0.08).max(1e-3);
        Self {
            x,
            y: (y.0 - pad, y.1 + pad),
        }
    }
}

/// Draws `panel` on `area` within `ranges`, its caption at `caption_size` points, with
/// or without its legend.
fn draw_panel_in<DB: DrawingBackend>(
    panel: &Panel,
    area: &DrawingArea<DB, Shift>,
    ranges: Ranges,
    caption_size: u32,
    legend: bool,
) -> std::result::Result<(), String> {
    let Ranges {
        x: (x_lo, x_hi),
        y: (y_lo, y_hi),
    } = ranges;
    let epochs = panel.series.iter().all(|s| s.x.is_empty());
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FAMILY, caption_size))
        .margin(12)
        .x_label_area_size(38)
        .y_label_area_size(58)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
        .map_err(text_error)?;
    let x_labels = if epochs || panel.log2_x {
        ((x_hi - x_lo).round() as usize).clamp(1, 10)
    } else {
        6
    };
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_labels(x_labels)
        .x_label_formatter(&|x| {
            if panel.log2_x {
                format!("{:.0}", x.exp2())
            } else if epochs || x_hi - x_lo >= 10.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.1}")
            }
        })
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
        let points = panel.plotted(series);
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
    if !legend {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(legend_position(panel, y_lo, y_hi))
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
