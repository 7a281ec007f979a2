//! The confusion matrix heatmap.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{save, text_error, Figure};
use crate::colormap::Colormap;
use crate::error::{Result, VizError};
use crate::font::{ensure_registered, FAMILY};

/// A confusion matrix as a heatmap: rows are true classes, columns predicted ones, each
/// cell coloured by its share of the row (the recall of the class on the diagonal) and,
/// for up to 20 classes, labelled with its count. Row labels carry the class names; a
/// colour bar at the right spans the shares from 0 to the largest in the matrix.
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

    /// Each cell's share of its row.
    fn shares(&self) -> Vec<Vec<f32>> {
        self.counts
            .iter()
            .map(|row| {
                let total = row.iter().sum::<usize>().max(1) as f32;
                row.iter().map(|&c| c as f32 / total).collect()
            })
            .collect()
    }

    /// The largest of `shares`: the top of the colour scale.
    fn top_share(shares: &[Vec<f32>]) -> f32 {
        let top = shares.iter().flatten().copied().fold(0.0, f32::max);
        if top > 0.0 {
            top
        } else {
            1.0
        }
    }
}

/// Pixels right of the matrix for the colour bar and its labels.
const BAR_AREA: u32 = 90;

impl Figure for ConfusionPlot<'_> {
    fn size(&self) -> (u32, u32) {
        ensure_registered();
        let side = self.cell() * self.counts.len() as u32;
        let title = (FAMILY, 20)
            .into_font()
            .box_size(&self.title)
            .map_or(0, |(w, _)| w);
        (
            (self.label_width() + side + BAR_AREA).max(title + 20),
            side + 110,
        )
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
        let shares = self.shares();
        let top_share = Self::top_share(&shares);
        for (i, row) in self.counts.iter().enumerate() {
            for (j, &count) in row.iter().enumerate() {
                let share = shares[i][j] / top_share;
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
        colour_bar(
            root,
            left + cell * n as i32 + 16,
            top,
            cell * n as i32,
            top_share,
        )
    }
}

/// A vertical bar `height` pixels tall at `(x, top)`: the colour of the top share at the
/// top, of 0 at the bottom, both labelled as percentages.
fn colour_bar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    x: i32,
    top: i32,
    height: i32,
    top_share: f32,
) -> std::result::Result<(), String> {
    for k in 0..height {
        let [r, g, b] = Colormap::Viridis.rgb(1.0 - k as f32 / (height - 1).max(1) as f32);
        root.draw(&Rectangle::new(
            [(x, top + k), (x + 16, top + k + 1)],
            RGBColor(r, g, b).filled(),
        ))
        .map_err(text_error)?;
    }
    let left = TextStyle::from((FAMILY, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (y, label) in [
        (top + 6, format!("{:.0}%", 100.0 * top_share)),
        (top + height - 6, "0%".to_string()),
    ] {
        root.draw(&Text::new(label, (x + 20, y), left.clone()))
            .map_err(text_error)?;
    }
    Ok(())
}
