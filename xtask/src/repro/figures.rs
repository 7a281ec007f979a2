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

/// The largest side of a photo in the captioned grids: the transfer repros' 224 px
/// photos, 24 to a grid, made PNGs of over 2 MB.
const MAX_TILE_SIDE: u32 = 128;

/// One figure of a report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figure {
    /// The file, relative to the experiment's folder.
    pub path: String,
    /// What it shows, in one line.
    pub caption: String,
}

/// A confusion matrix as a report records it (`"confusion": {"run": ..., "classes":
/// [...], "counts": [[...]]}`), with the run it belongs to and its classes' names:
/// `repro --figures-only` redraws it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordedConfusion {
    /// The run's name in the report.
    pub run: String,
    /// The classes' names, in the matrix's order (empty in reports written before they
    /// were recorded).
    #[serde(default)]
    pub classes: Vec<String>,
    /// `counts[true][predicted]`.
    #[serde(flatten)]
    pub matrix: ConfusionMatrix,
}

/// The most classes a drawn confusion matrix has; larger ones are summarized by their
/// most confused pairs.
pub const READABLE_CLASSES: usize = 20;

/// How many of the most confused class pairs summarize a matrix of more than
/// [`READABLE_CLASSES`] classes.
pub const CONFUSED_PAIRS: usize = 12;

/// A pair of classes a model mixes up, as a report records it.
#[derive(Debug, Serialize)]
pub struct ConfusedPair {
    /// The photos' class.
    pub true_class: String,
    /// The class they were taken for.
    pub predicted_class: String,
    /// How many test photos of `true_class` went to `predicted_class`.
    pub test_photos: usize,
    /// The test photos of `true_class`.
    pub of_its_test_photos: usize,
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

    /// `tiles` in rows of `columns`, each at least `min_tile_side` and at most
    /// [`MAX_TILE_SIDE`] pixels, as the PNG `file`.
    pub fn tile_grid(
        &mut self,
        file: &str,
        caption: impl Into<String>,
        tiles: &[Tile],
        columns: usize,
        min_tile_side: u32,
    ) -> anyhow::Result<()> {
        let options = GridOptions {
            columns,
            min_tile_side,
            max_tile_side: MAX_TILE_SIDE,
            ..GridOptions::default()
        };
        self.png(file, caption, &image_grid(tiles, &options)?)
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

    /// The confusion matrix of `run`'s test predictions (`labels` against `predicted`,
    /// the classes named by `names`), recorded for the report: drawn as `confusion.png`
    /// or, above [`READABLE_CLASSES`] classes, summarized by its [`CONFUSED_PAIRS`] most
    /// confused pairs with photos of `data` (returned for the report's table).
    pub fn test_confusion(
        &mut self,
        run: &str,
        data: &dyn Dataset,
        names: &[&str],
        labels: &[usize],
        predicted: &[usize],
    ) -> anyhow::Result<(RecordedConfusion, Vec<ConfusedPair>)> {
        let matrix = ConfusionMatrix::new(names.len(), labels, predicted);
        self.confusion(run, names, &matrix)?;
        let pairs = if matrix.classes() > READABLE_CLASSES {
            self.confused_pairs(data, names, &matrix, labels, predicted)?
        } else {
            Vec::new()
        };
        let recorded = RecordedConfusion {
            run: run.to_string(),
            classes: names.iter().map(|n| n.to_string()).collect(),
            matrix,
        };
        Ok((recorded, pairs))
    }

    /// The confusion matrix of `run`'s test predictions as `confusion.png`, the classes
    /// named by `names`. A matrix of more than [`READABLE_CLASSES`] classes is not drawn
    /// (its cells would be a few pixels each): [`Figures::test_confusion`] summarizes it.
    pub fn confusion(
        &mut self,
        run: &str,
        names: &[&str],
        matrix: &ConfusionMatrix,
    ) -> anyhow::Result<()> {
        if matrix.classes() > READABLE_CLASSES {
            return Ok(());
        }
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

    /// The [`CONFUSED_PAIRS`] class pairs `matrix` (of `labels` against `predicted`)
    /// mixes up most, as `confused_pairs.png`: per pair a test photo of the true class
    /// that was taken for the other, and a test photo of the other class; the pairs are
    /// returned for the report's table.
    fn confused_pairs(
        &mut self,
        data: &dyn Dataset,
        names: &[&str],
        matrix: &ConfusionMatrix,
        labels: &[usize],
        predicted: &[usize],
    ) -> anyhow::Result<Vec<ConfusedPair>> {
        let first = |wanted: &dyn Fn(usize) -> bool| (0..labels.len()).find(|&i| wanted(i));
        let mut pairs = Vec::new();
        let mut tiles = Vec::new();
        for pair in matrix.most_confused(CONFUSED_PAIRS) {
            let (actual, other) = (pair.actual, pair.predicted);
            let confused = ConfusedPair {
                true_class: names[actual].to_string(),
                predicted_class: names[other].to_string(),
                test_photos: pair.count,
                of_its_test_photos: matrix.of_class(actual),
            };
            let mistaken = first(&|i| labels[i] == actual && predicted[i] == other);
            let example = first(&|i| labels[i] == other && predicted[i] == other)
                .or_else(|| first(&|i| labels[i] == other));
            let captions = [
                format!(
                    "{} ({} of {})\ntaken for {}",
                    short(names[actual]),
                    confused.test_photos,
                    confused.of_its_test_photos,
                    short(names[other])
                ),
                format!("a real {}", short(names[other])),
            ];
            for (index, caption) in [mistaken, example].into_iter().zip(captions) {
                if let Some(i) = index {
                    tiles.push(Tile::new(sample_image(data, i)?, caption));
                }
            }
            pairs.push(confused);
        }
        if !tiles.is_empty() {
            self.tile_grid(
                "confused_pairs.png",
                format!(
                    "The {} class pairs mixed up most on the test photos: a photo of the true class taken for the other, then a photo of the other",
                    pairs.len()
                ),
                &tiles,
                8,
                96,
            )?;
        }
        Ok(pairs)
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
        self.tile_grid(
            "misclassified.png",
            format!(
                "The first {} misclassified test samples, predicted vs true class",
                wrong.len()
            ),
            &tiles,
            8,
            84,
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

/// The paths a report's `"figures"` lists, in its order.
#[cfg(test)]
pub(super) fn listed(report: &serde_json::Value) -> Vec<&str> {
    report["figures"]
        .as_array()
        .expect("a list of figures")
        .iter()
        .map(|f| f["path"].as_str().expect("a figure's path"))
        .collect()
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
        let listed = listed(&json);
        assert_eq!(listed, ["curves.png", "curves.svg", "confusion.png"]);
        assert!(listed.iter().all(|p| dir.path().join(p).is_file()));
        assert!(json["figures"][2]["caption"]
            .as_str()
            .unwrap()
            .starts_with("Confusion matrix"));
    }

    /// 25 classes: no matrix is drawn; the two mixed-up pairs come out most frequent
    /// first, each with its two photos in `confused_pairs.png`.
    #[test]
    fn a_large_matrix_is_summarized_by_its_most_confused_pairs() {
        use petal_data::InMemoryDataset;
        let labels: Vec<usize> = (0..25).chain([3, 3, 7]).collect();
        let mut predicted = labels.clone();
        predicted[25] = 5;
        predicted[26] = 5;
        predicted[27] = 8;
        let images: Vec<f32> = (0..labels.len() * 4 * 4 * 3)
            .map(|v| (v % 7) as f32)
            .collect();
        let images = Tensor::from_vec(&[labels.len(), 4, 4, 3], images).unwrap();
        let data = InMemoryDataset::new(images, labels.clone(), 25).unwrap();
        let names: Vec<String> = (0..25).map(|c| format!("class {c}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut figures = Figures::new(dir.path());
        let (recorded, pairs) = figures
            .test_confusion("run", &data, &names, &labels, &predicted)
            .unwrap();
        // The report records the matrix with its classes' names, for `--figures-only`.
        assert_eq!(recorded.run, "run");
        assert_eq!(recorded.classes, names);
        assert_eq!(recorded.matrix.counts[3][5], 2);
        let summary: Vec<(&str, &str, usize, usize)> = pairs
            .iter()
            .map(|p| {
                (
                    p.true_class.as_str(),
                    p.predicted_class.as_str(),
                    p.test_photos,
                    p.of_its_test_photos,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("class 3", "class 5", 2, 3), ("class 7", "class 8", 1, 2)]
        );
        let listed: Vec<&str> = figures.list().iter().map(|f| f.path.as_str()).collect();
        assert_eq!(listed, ["confused_pairs.png"]);
        let grid = image::open(dir.path().join("confused_pairs.png")).unwrap();
        assert!(grid.width() >= 4 * 96, "four photos side by side");
    }
}
