//! Reading the reports the repros wrote: `docs/<experiment>/metrics.json` and the
//! figures beside it.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Deserialize as _;
use serde_json::{Map, Value};

use crate::networks::NetworkTable;

/// A figure of a report: a file in the report's folder and what it shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// File name relative to the report's folder (`curves.png`).
    pub path: String,
    /// Caption: the one `metrics.json` gives, else the file name.
    pub caption: String,
    /// A raster image under 64 pixels a side (a feature map), shown enlarged with sharp
    /// pixels.
    pub small: bool,
    /// An image more than [`WIDE_RATIO`] times as wide as high (small multiples, photo
    /// rows), shown across the whole page.
    pub wide: bool,
    /// The same figure as SVG (`curves.svg` beside `curves.png`), linked from its
    /// caption rather than shown twice.
    pub vector: Option<String>,
}

/// Images wider than this many times their height span the page.
const WIDE_RATIO: f64 = 2.2;

/// Raster images with both sides below this are enlarged pixel by pixel.
const SMALL_SIDE: u32 = 64;

impl Figure {
    fn new(dir: &Path, path: &str, caption: &str) -> Self {
        // An SVG has no pixel size to read (and is never shown small).
        let size = match path.ends_with(".svg") {
            true => None,
            false => image::image_dimensions(dir.join(path)).ok(),
        };
        let small = size.is_some_and(|(w, h)| w < SMALL_SIDE && h < SMALL_SIDE);
        let wide = size.is_some_and(|(w, h)| f64::from(w) > WIDE_RATIO * f64::from(h));
        Self {
            path: path.to_string(),
            caption: caption.to_string(),
            small,
            wide,
            vector: None,
        }
    }
}

/// The row with the largest value (the first of equals).
pub fn highest(values: &[(String, f64)]) -> Option<&(String, f64)> {
    values.iter().rev().max_by(|a, b| a.1.total_cmp(&b.1))
}

/// One experiment's report.
#[derive(Debug)]
pub struct Report {
    /// The experiment's name, its folder's name (`mnist`).
    pub slug: String,
    /// The top-level fields of `metrics.json`.
    pub metrics: Map<String, Value>,
    /// The figures `metrics.json` lists (in its order), then every other PNG or SVG in
    /// the folder (by name).
    pub figures: Vec<Figure>,
    /// The networks its runs train (none when the report records none).
    pub networks: Vec<NetworkTable>,
}

impl Report {
    /// Reads `<dir>/metrics.json` and finds the figures; `None` when there is no
    /// `metrics.json` (the experiment has not run).
    pub fn read(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join("metrics.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let metrics = match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => bail!("{}: expected a JSON object", path.display()),
            Err(e) => bail!("{}: not valid JSON: {e}", path.display()),
        };
        let figures = figures(dir, &path, &metrics)?;
        let networks = match metrics.get("networks") {
            Some(networks) => Vec::<NetworkTable>::deserialize(networks).with_context(|| {
                format!("{}: \"networks\" is not a list of networks", path.display())
            })?,
            None => Vec::new(),
        };
        let slug = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Some(Self {
            slug,
            metrics,
            figures,
            networks,
        }))
    }

    /// A top-level string field.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.metrics.get(key).and_then(Value::as_str)
    }

    /// `true` for a `--quick` smoke run.
    pub fn quick(&self) -> bool {
        self.metrics.get("quick").and_then(Value::as_bool) == Some(true)
    }

    /// When the run finished, `YYYY-MM-DD HH:MM UTC`.
    pub fn date(&self) -> Option<String> {
        self.metrics
            .get("finished_unix_seconds")
            .and_then(Value::as_u64)
            .map(utc_date)
    }

    /// The machine: CPU model and threads.
    pub fn machine(&self) -> Option<String> {
        let cpu = self.text("cpu").filter(|c| !c.is_empty());
        let threads = self.metrics.get("threads").and_then(Value::as_u64);
        match (cpu, threads) {
            (Some(cpu), Some(t)) => Some(format!("{cpu}, {t} threads")),
            (Some(cpu), None) => Some(cpu.to_string()),
            (None, Some(t)) => Some(format!("{t} threads")),
            (None, None) => None,
        }
    }

    /// The command that reproduces the report: the one that wrote it, without the flags
    /// that only say how that run went (`--resume`).
    pub fn command(&self) -> String {
        let args = self
            .text("command")
            .map_or_else(|| format!("repro {}", self.slug), str::to_string);
        let args: Vec<&str> = args
            .split_whitespace()
            .filter(|a| *a != "--resume")
            .collect();
        format!("cargo xtask {}", args.join(" "))
    }

    /// The seconds its runs trained, summed (the `seconds` of each row of `runs` or
    /// `rows`); `None` when the report records none.
    pub fn training_seconds(&self) -> Option<f64> {
        let seconds: Vec<f64> = self.column("seconds").into_iter().map(|(_, s)| s).collect();
        (!seconds.is_empty()).then(|| seconds.iter().sum())
    }

    /// The rows of the report's runs (`runs` or `rows`), in order.
    pub fn rows(&self) -> impl Iterator<Item = &Map<String, Value>> {
        ["runs", "rows"]
            .into_iter()
            .filter_map(|key| self.metrics.get(key)?.as_array())
            .flatten()
            .filter_map(Value::as_object)
    }

    /// `(row name, value)` of the numeric field `field` for every row that has it.
    pub fn column(&self, field: &str) -> Vec<(String, f64)> {
        self.rows()
            .filter_map(|row| {
                let value = row.get(field)?.as_f64()?;
                let name = row.get("name").and_then(Value::as_str).unwrap_or("");
                Some((name.to_string(), value))
            })
            .collect()
    }

    /// The per-epoch values of `metric` in the recorded history of the first row whose
    /// name starts with `row` (empty when there is none).
    pub fn history(&self, row: &str, metric: &str) -> Vec<f64> {
        self.rows()
            .find(|r| {
                r.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(row))
            })
            .and_then(|r| r.get("history")?.get("epochs")?.as_array())
            .into_iter()
            .flatten()
            .filter_map(|epoch| epoch.get(metric)?.as_f64())
            .collect()
    }

    /// The best test accuracy over the report's runs (or rows), with the run's name.
    pub fn best_test_accuracy(&self) -> Option<(String, f64)> {
        highest(&self.column("test_accuracy")).cloned()
    }
}

/// The listed figures (checked to exist), then the other images of the folder.
fn figures(
    dir: &Path,
    metrics_path: &Path,
    metrics: &Map<String, Value>,
) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    if let Some(listed) = metrics.get("figures") {
        let entries = listed
            .as_array()
            .with_context(|| format!("{}: \"figures\" must be a list", metrics_path.display()))?;
        for entry in entries {
            // `{"path": ..., "caption": ...}`, or just the path.
            let path = entry
                .as_str()
                .or_else(|| entry.get("path").and_then(Value::as_str));
            let path = path.with_context(|| {
                format!(
                    "{}: a figure without a \"path\": {entry}",
                    metrics_path.display()
                )
            })?;
            let inside = Path::new(path)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside {
                bail!(
                    "{}: figure {path} must be a path inside {}",
                    metrics_path.display(),
                    dir.display()
                );
            }
            if !dir.join(path).is_file() {
                bail!(
                    "{}: lists figure {path}, which is not in {}",
                    metrics_path.display(),
                    dir.display()
                );
            }
            let caption = entry.get("caption").and_then(Value::as_str).unwrap_or(path);
            figures.push(Figure::new(dir, path, caption));
        }
    }
    let mut others: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let lower = name.to_ascii_lowercase();
            (lower.ends_with(".png") || lower.ends_with(".svg"))
                && !figures.iter().any(|f| f.path == *name)
        })
        .collect();
    others.sort();
    figures.extend(others.iter().map(|name| Figure::new(dir, name, name)));
    Ok(pair_vector_twins(figures))
}

/// Folds each `x.svg` whose `x.png` is also listed into that figure's
/// [`Figure::vector`].
fn pair_vector_twins(figures: Vec<Figure>) -> Vec<Figure> {
    let raster_of = |svg: &str| svg.strip_suffix(".svg").map(|stem| format!("{stem}.png"));
    let twins: Vec<(String, String)> = figures
        .iter()
        .filter_map(|f| {
            let png = raster_of(&f.path)?;
            figures
                .iter()
                .any(|g| g.path == png)
                .then(|| (png, f.path.clone()))
        })
        .collect();
    figures
        .into_iter()
        .filter(|f| !twins.iter().any(|(_, svg)| *svg == f.path))
        .map(|mut f| {
            f.vector = twins
                .iter()
                .find(|(png, _)| *png == f.path)
                .map(|(_, svg)| svg.clone());
            f
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since 1970 (the proleptic Gregorian calendar).
pub fn utc_date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let minutes = seconds % 86_400 / 60;
    // Shift to an era starting on 0000-03-01 so leap days end each 4-year cycle.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_795_596_381), "2026-11-25 08:46 UTC");
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    #[test]
    fn listed_figures_come_first_then_the_other_images() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = r#"{"command": "repro x --quick", "quick": true, "threads": 2, "cpu": "CPU",
            "figures": [{"path": "curves.png", "caption": "Loss and accuracy"}, "b.svg"],
            "runs": [{"name": "a", "test_accuracy": 0.5}, {"name": "b", "test_accuracy": 0.75}]}"#;
        write(dir.path(), "metrics.json", metrics.as_bytes());
        for name in ["curves.png", "b.svg", "notes.txt"] {
            write(dir.path(), name, b"x");
        }
        image::GrayImage::new(4, 4)
            .save_with_format(dir.path().join("a.PNG"), image::ImageFormat::Png)
            .unwrap();
        let report = Report::read(dir.path()).unwrap().unwrap();
        let paths: Vec<&str> = report.figures.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["curves.png", "b.svg", "a.PNG"]);
        assert_eq!(report.figures[0].caption, "Loss and accuracy");
        let small: Vec<bool> = report.figures.iter().map(|f| f.small).collect();
        assert_eq!(small, [false, false, true]);
        assert_eq!(report.command(), "cargo xtask repro x --quick");
        assert!(report.quick());
        assert_eq!(report.machine().unwrap(), "CPU, 2 threads");
        assert_eq!(report.best_test_accuracy(), Some(("b".to_string(), 0.75)));
    }

    /// `curves.svg` beside `curves.png` becomes the PNG figure's link; a lone SVG stays a
    /// figure; a strip three times as wide as high spans the page.
    #[test]
    fn svg_twins_fold_into_their_png_and_wide_strips_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = r#"{"figures": ["curves.png", "curves.svg", "alone.svg", "strip.png"]}"#;
        write(dir.path(), "metrics.json", metrics.as_bytes());
        for name in ["curves.svg", "alone.svg"] {
            write(dir.path(), name, b"<svg/>");
        }
        for (name, width) in [("curves.png", 40), ("strip.png", 90)] {
            image::GrayImage::new(width, 30)
                .save_with_format(dir.path().join(name), image::ImageFormat::Png)
                .unwrap();
        }
        let report = Report::read(dir.path()).unwrap().unwrap();
        let shown: Vec<(&str, Option<&str>, bool)> = report
            .figures
            .iter()
            .map(|f| (f.path.as_str(), f.vector.as_deref(), f.wide))
            .collect();
        assert_eq!(
            shown,
            [
                ("curves.png", Some("curves.svg"), false),
                ("alone.svg", None, false),
                ("strip.png", None, true)
            ]
        );
    }

    #[test]
    fn no_metrics_file_means_not_run_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Report::read(dir.path()).unwrap().is_none());
        write(dir.path(), "metrics.json", b"{oops");
        let err = Report::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("metrics.json: not valid JSON"), "{err}");
        write(
            dir.path(),
            "metrics.json",
            br#"{"figures": [{"path": "gone.png"}]}"#,
        );
        let err = Report::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("lists figure gone.png"), "{err}");
        write(dir.path(), "metrics.json", br#"{"figures": ["../x.png"]}"#);
        let err = Report::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("figure ../x.png must be a path inside"),
            "{err}"
        );
        write(
            dir.path(),
            "metrics.json",
            br#"{"networks": [{"name": "cnn", "layers": "conv2d"}]}"#,
        );
        let err = format!("{:#}", Report::read(dir.path()).unwrap_err());
        assert!(
            err.contains("metrics.json: \"networks\" is not a list of networks"),
            "{err}"
        );
    }
}
