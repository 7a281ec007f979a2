//! Plots drawn with plotters, to PNG or SVG by the file's extension: line plots
//! (training curves) and the confusion matrix heatmap.

use std::path::Path;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::colormap::Colormap;
use crate::error::{Result, VizError};
use crate::font::{ensure_registered, FAMILY};
use crate::raster::save_png;

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

/// Something drawable on any plotters backend, at a fixed size.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// Renders `figure` to `path`: SVG for `.svg`, else PNG.
fn save(figure: &impl Figure, path: &Path) -> Result<()> {
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

fn text_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

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
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(text_error)
}

/// A confusion matrix as a heatmap: rows are true classes, columns predicted ones, each
/// cell coloured by its share of the row (the recall of the class on the diagonal) and,
/// for up to 20 classes, labelled with its count. Row labels carry the class names.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionPlot<'a> {
    /// Text above the matrix.
    pub title: String,
    /// `counts[true][predicted]`.
    pub counts: &'a [Vec<usize>],
    /// One name per class.
    pub class_names: &'a [&'a str],
}

impl ConfusionPlot<'_> {
    /// Writes the heatmap to `path` (`.svg` for SVG, else PNG).
    pub fn save(&self, path: &Path) -> Result<()> {
        let n = self.counts.len();
        if n == 0 || self.counts.iter().any(|r| r.len() != n) || self.class_names.len() != n {
            return Err(VizError::Input(format!(
                "{}: a confusion matrix needs n rows of n counts and n class names, got {} rows \
                 and {} names",
                path.display(),
                n,
                self.class_names.len()
            )));
        }
        save(self, path)
    }

    fn labelled(&self) -> bool {
        self.counts.len() <= 20
    }

    /// `k: name`, or just the name when it is the index (digits).
    fn row_label(&self, i: usize) -> String {
        match self.class_names[i] {
            name if name == i.to_string() => name.to_string(),
            name => format!("{i}: {name}"),
        }
    }

    /// Pixels left of the matrix for the row labels.
    fn label_width(&self) -> u32 {
        if !self.labelled() {
            return 50;
        }
        let font = (FAMILY, 13).into_font();
        (0..self.counts.len())
            .filter_map(|i| font.box_size(&self.row_label(i)).ok())
            .map(|(w, _)| w)
            .max()
            .unwrap_or(0)
            + 30
    }

    fn cell(&self) -> u32 {
        (640 / self.counts.len() as u32).clamp(6, 80)
    }
}

impl Figure for ConfusionPlot<'_> {
    fn size(&self) -> (u32, u32) {
        ensure_registered();
        let side = self.cell() * self.counts.len() as u32;
        (self.label_width() + side + 30, side + 110)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let n = self.counts.len();
        let (cell, left, top) = (self.cell() as i32, self.label_width() as i32, 60);
        root.fill(&WHITE).map_err(text_error)?;
        let centred = |size| {
            TextStyle::from((FAMILY, size).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
        };
        let width = root.dim_in_pixel().0 as i32;
        root.draw(&Text::new(
            self.title.as_str(),
            (width / 2, 18),
            centred(20),
        ))
        .map_err(text_error)?;
        root.draw(&Text::new(
            "predicted class",
            (left + cell * n as i32 / 2, top - 28),
            centred(14),
        ))
        .map_err(text_error)?;
        for (i, row) in self.counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f32;
            for (j, &count) in row.iter().enumerate() {
                let share = count as f32 / total;
                let [r, g, b] = Colormap::Viridis.rgb(share);
                let (x, y) = (left + j as i32 * cell, top + i as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(r, g, b).filled(),
                ))
                .map_err(text_error)?;
                if self.labelled() {
                    let ink = if share > 0.6 { BLACK } else { WHITE };
                    let style = centred(13.min(cell / 2 + 2)).color(&ink);
                    root.draw(&Text::new(
                        count.to_string(),
                        (x + cell / 2, y + cell / 2),
                        style,
                    ))
                    .map_err(text_error)?;
                }
            }
        }
        let every = if self.labelled() { 1 } else { n.div_ceil(10) };
        for k in (0..n).step_by(every) {
            let centre = k as i32 * cell + cell / 2;
            let right =
                TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            let label = if self.labelled() {
                self.row_label(k)
            } else {
                k.to_string()
            };
            root.draw(&Text::new(label, (left - 6, top + centre), right))
                .map_err(text_error)?;
            root.draw(&Text::new(
                k.to_string(),
                (left + centre, top - 10),
                centred(12),
            ))
            .map_err(text_error)?;
        }
        root.draw(&Text::new(
            "rows: true class; colour: share of the row",
            (left + cell * n as i32 / 2, top + cell * n as i32 + 22),
            centred(13),
        ))
        .map_err(text_error)?;
        Ok(())
    }
}
