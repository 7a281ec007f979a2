//! The figures of a report: each file written into the experiment's folder is recorded
//! with a one-line caption, and the list goes into `metrics.json` under `"figures"`.
//! Also the figures made from training results: curves, confusion matrices, captioned
//! sample grids.

use std::path::{Path, PathBuf};

use image::RgbImage;
use petal_data::Dataset;
use petal_tensor::Tensor;
use petal_train::metrics::ConfusionMatrix;
use petal_train::History;
use petal_viz::{
    image_grid, save_png, tensor_image, ConfusionPlot, GridOptions, LinePlot, Panel, Scaling,
    SmallMultiples, Tile,
};
use serde::{Deserialize, Serialize};

/// One figure of a report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    /// The file, relative to the experiment's folder.
    pub path: String,
    /// What it shows, in one line.
    pub caption: String,
}

/// A confusion matrix as a report records it (`"confusion": {"run": ..., "counts":
/// [[...]]}`), with the run it belongs to: `repro --figures-only` redraws it.
#[derive(Serialize)]
pub struct RecordedConfusion<'a> {
    /// The run's name in the report.
    pub run: &'a str,
    /// `counts[true][predicted]`.
    #[serde(flatten)]
    pub matrix: ConfusionMatrix,
}

/// The figures written so far into one experiment's folder.
pub struct Figures {
    dir: PathBuf,
    list: Vec<Figure>,
}

impl Figures {
    /// No figures yet; files go into `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            list: Vec::new(),
        }
    }

    /// The figures, in the order they were written.
    pub fn list(&self) -> &[Figure] {
        &self.list
    }

    /// Where `file` goes, recording it with its caption.
    pub fn record(&mut self, file: &str, caption: impl Into<String>) -> PathBuf {
        self.list.push(Figure {
            path: file.to_string(),
            caption: caption.into(),
        });
        self.dir.join(file)
    }

    /// Writes `image` as the PNG `file`.
    pub fn png(
        &mut self,
        file: &str,
        caption: impl Into<String>,
        image: &RgbImage,
    ) -> anyhow::Result<()> {
        save_png(image, &self.record(file, caption))?;
        Ok(())
    }

    /// Loss and accuracy per epoch, train and val, of every run with a history: for one
    /// run both charts side by side as `curves.png` (and `curves.svg`); for several, one
    /// small chart per run on a shared scale, accuracy in `curves.png` (and `.svg`) and
    /// loss in `loss.png`.
    pub fn curves(&mut self, title: &str, runs: &[(&str, &History)]) -> anyhow::Result<()> {
        let runs: Vec<&(&str, &History)> =
            runs.iter().filter(|(_, h)| !h.epochs.is_empty()).collect();
        let panel = |title: &str, metric: &str, history: &History| {
            Panel::new(title, metric)
                .with("train", &history.metric(metric))
                .with_dashed("val", &history.metric(&format!("val_{metric}")))
        };
        match runs.as_slice() {
            [] => Ok(()),
            [(_, history)] => {
                let plot = LinePlot {
                    title: title.to_string(),
                    panels: vec![
                        panel("loss", "loss", history),
                        panel("accuracy", "accuracy", history),
                    ],
                };
                let caption = "Loss and accuracy per epoch on the training and validation data";
                plot.save(&self.record("curves.png", caption))?;
                plot.save(&self.record("curves.svg", format!("{caption} (SVG)")))?;
                Ok(())
            }
            _ => {
                let multiples = |metric: &str| SmallMultiples {
                    title: format!("{title}: {metric} per run"),
                    panels: runs
                        .iter()
                        .map(|(name, history)| panel(name, metric, history))
                        .collect(),
                    columns: 4,
                };
                let caption = |metric: &str| {
                    format!(
                        "{metric} per epoch of each run, training (solid) and validation (dashed), one chart per run on a shared scale"
                    )
                };
                let accuracy = multiples("accuracy");
                accuracy.save(&self.record("curves.png", caption("Accuracy")))?;
                accuracy
                    .save(&self.record("curves.svg", format!("{} (SVG)", caption("Accuracy"))))?;
                multiples("loss").save(&self.record("loss.png", caption("Loss")))?;
                Ok(())
            }
        }
    }

    /// Training (solid) and validation (dashed) accuracy of a few runs per epoch (left)
    /// and per second of training (right), as the PNG `file`: which network learns
    /// faster, by either clock.
    pub fn per_epoch_and_second(
        &mut self,
        file: &str,
        caption: &str,
        title: &str,
        runs: &[(&str, &History)],
    ) -> anyhow::Result<()> {
        let (per_epoch, per_second) = runs.iter().filter(|(_, h)| !h.epochs.is_empty()).fold(
            (
                Panel::new("per epoch", "accuracy"),
                Panel::new("per second of training", "accuracy").x_axis("training seconds"),
            ),
            |(epochs, seconds), (name, history)| {
                let train = history.metric("accuracy");
                let val = history.metric("val_accuracy");
                let at = elapsed(history);
                (
                    epochs
                        .with(format!("{name} train"), &train)
                        .with_dashed(format!("{name} val"), &val),
                    seconds
                        .with_xy(format!("{name} train"), &at, &train)
                        .with_dashed_xy(format!("{name} val"), &at, &val),
                )
            },
        );
        let plot = LinePlot {
            title: title.to_string(),
            panels: vec![per_epoch, per_second],
        };
        plot.save(&self.record(file, caption))?;
        Ok(())
    }

    /// The confusion matrix of `run`'s test predictions as `confusion.png`, the classes
    /// named by `names`.
    pub fn confusion(
        &mut self,
        run: &str,
        names: &[&str],
        matrix: &ConfusionMatrix,
    ) -> anyhow::Result<()> {
        let plot = ConfusionPlot {
            title: format!("{run}: test data"),
            counts: &matrix.counts,
            class_names: names,
        };
        plot.save(&self.record(
            "confusion.png",
            "Confusion matrix on the test data: rows are the true classes, columns the predicted ones",
        ))?;
        Ok(())
    }

    /// Up to `limit` test samples the model got wrong, captioned with the predicted and
    /// the true class, as `misclassified.png`.
    pub fn misclassified(
        &mut self,
        data: &dyn Dataset,
        names: &[&str],
        labels: &[usize],
        predicted: &[usize],
        limit: usize,
    ) -> anyhow::Result<()> {
        let wrong: Vec<usize> = (0..labels.len().min(predicted.len()))
            .filter(|&i| labels[i] != predicted[i])
            .take(limit)
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        let tiles = wrong
            .iter()
            .map(|&i| {
                let caption = format!(
                    "pred: {}\ntrue: {}",
                    short(names[predicted[i]]),
                    short(names[labels[i]])
                );
                Ok(Tile::new(sample_image(data, i)?, caption))
            })
            .collect::<anyhow::Result<Vec<Tile>>>()?;
        let grid = image_grid(
            &tiles,
            &GridOptions {
                columns: 8,
                min_tile_side: 84,
                ..GridOptions::default()
            },
        )?;
        self.png(
            "misclassified.png",
            format!(
                "The first {} misclassified test samples, predicted vs true class",
                wrong.len()
            ),
            &grid,
        )
    }
}

/// The training seconds at the end of each epoch: the epochs' `seconds`, summed up.
pub fn elapsed(history: &History) -> Vec<f64> {
    history
        .metric("seconds")
        .iter()
        .scan(0.0, |total, s| {
            *total += s;
            Some(*total)
        })
        .collect()
}

/// A class name cut to fit under a tile.
pub fn short(name: &str) -> String {
    if name.chars().count() <= 16 {
        return name.to_string();
    }
    name.chars().take(15).chain(std::iter::once('.')).collect()
}

/// Sample `index` of `data` as a tensor `(h, w, c)` and its label.
pub fn sample(data: &dyn Dataset, index: usize) -> anyhow::Result<(Tensor, usize)> {
    let mut values = vec![0.0; data.sample_len()];
    let label = data.load(index, &mut values)?;
    Ok((Tensor::from_vec(data.sample_shape(), values)?, label))
}

/// Sample `index` of `data` as a picture (values scaled min to max).
pub fn sample_image(data: &dyn Dataset, index: usize) -> anyhow::Result<RgbImage> {
    Ok(tensor_image(&sample(data, index)?.0, Scaling::MinMax)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_and_listed_with_captions_in_the_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let mut figures = Figures::new(dir.path());
        let mut history = History::default();
        for (loss, accuracy) in [(0.9, 0.6), (0.5, 0.8)] {
            history.epochs.push(
                [
                    ("loss".to_string(), loss),
                    ("val_loss".to_string(), loss + 0.1),
                    ("accuracy".to_string(), accuracy),
                    ("val_accuracy".to_string(), accuracy - 0.1),
                ]
                .into(),
            );
        }
        figures.curves("run", &[("run", &history)]).unwrap();
        let matrix = ConfusionMatrix::new(2, &[0, 1, 1], &[0, 1, 0]);
        figures.confusion("c", &["a", "b"], &matrix).unwrap();
        #[derive(Serialize)]
        struct Report {
            accuracy: f64,
        }
        super::super::write_metrics(dir.path(), &Report { accuracy: 0.5 }, &figures).unwrap();
        let text = std::fs::read_to_string(dir.path().join("metrics.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["accuracy"], 0.5);
        let listed: Vec<&str> = json["figures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["curves.png", "curves.svg", "confusion.png"]);
        assert!(listed.iter().all(|p| dir.path().join(p).is_file()));
        assert!(json["figures"][2]["caption"]
            .as_str()
            .unwrap()
            .starts_with("Confusion matrix"));
    }
}
