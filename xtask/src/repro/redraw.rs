//! `repro <experiment> --figures-only`: the report's plots redrawn from what its
//! `metrics.json` recorded (each run's history, the test confusion matrix), without
//! training; the other figures (filters, feature maps, ...) stay as they are.

use std::path::Path;

use anyhow::Context as _;
use petal_train::History;
use serde::de::value::MapDeserializer;
use serde::de::MapAccess;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use petal_site::NetworkTable;

use super::figures::{Figure, Figures, RecordedConfusion};
use super::Experiment;

/// The figures a redraw replaces: whatever plots of the curves or the confusion matrix
/// an earlier version of the repro wrote.
const PLOTS: [&str; 5] = [
    "curves.png",
    "curves.svg",
    "loss.png",
    "val_accuracy.png",
    "confusion.png",
];

/// What a redraw reads of a report; the other fields are left as they are.
#[derive(Deserialize)]
struct Recorded {
    /// The pretrained base of a transfer experiment.
    model: Option<String>,
    /// The class names (flower reports).
    #[serde(default)]
    classes: Vec<String>,
    /// The runs of the from-scratch experiments...
    #[serde(default)]
    runs: Vec<Row>,
    /// ...or the rows of the transfer experiments.
    #[serde(default)]
    rows: Vec<Row>,
    /// The test confusion matrix.
    confusion: Option<RecordedConfusion>,
    /// The figures listed so far.
    #[serde(default)]
    figures: Vec<Figure>,
}

/// One run (or row) of a report.
#[derive(Deserialize)]
struct Row {
    name: String,
    /// Its epochs, when it was trained.
    history: Option<History>,
}

/// Redraws the plots of `<output>/metrics.json` and lists them in it, first; records
/// `networks` as the report's networks (replacing the `summary` text of older reports).
pub fn run(experiment: Experiment, output: &Path, networks: &[NetworkTable]) -> anyhow::Result<()> {
    let path = output.join("metrics.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: run `cargo xtask repro {}` first",
            path.display(),
            experiment.slug()
        )
    })?;
    let mut fields: Fields = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON object", path.display()))?;
    let report = fields
        .read::<Recorded>()
        .with_context(|| format!("{}: not a report", path.display()))?;
    let mut figures = Figures::new(output);
    let runs: Vec<(&str, &History)> = report
        .runs
        .iter()
        .chain(&report.rows)
        .filter_map(|row| Some((row.name.as_str(), row.history.as_ref()?)))
        .collect();
    figures.curves(&experiment.curves_title(report.model.as_deref()), &runs)?;
    if let Some(confusion) = &report.confusion {
        let counts = &confusion.matrix.counts;
        if counts.iter().any(|row| row.len() != counts.len()) {
            anyhow::bail!(
                "{}: \"confusion\": \"counts\" is not square ({} rows)",
                path.display(),
                counts.len()
            );
        }
        let names = class_names(confusion, &report.classes);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        figures.confusion(&confusion.run, &names, &confusion.matrix)?;
    }
    // An old confusion.png stays when the report recorded no matrix to redraw it from
    // (reports written before the matrix was recorded).
    let replaced = |f: &Figure| {
        PLOTS.contains(&f.path.as_str())
            && (f.path != "confusion.png" || report.confusion.is_some())
    };
    let drawn: Vec<&str> = figures.list().iter().map(|f| f.path.as_str()).collect();
    for old in report.figures.iter().filter(|f| replaced(f)) {
        if !drawn.contains(&old.path.as_str()) {
            let file = output.join(&old.path);
            std::fs::remove_file(&file)
                .with_context(|| format!("cannot remove the old plot {}", file.display()))?;
        }
    }
    let kept = report.figures.iter().filter(|f| !replaced(f)).cloned();
    let list: Vec<Figure> = figures.list().iter().cloned().chain(kept).collect();
    println!("redrew {drawn:?}");
    fields.set("figures", top_level(&list)?);
    fields.remove("summary");
    fields.set("networks", top_level(networks)?);
    petal_tensor::fs::write_atomically(&path, serde_json::to_string_pretty(&fields)?.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `value` as the pretty JSON of a top-level field, indented as such (JSON strings
/// hold no raw line breaks).
fn top_level<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<Box<RawValue>> {
    let pretty = serde_json::to_string_pretty(value)?.replace('\n', "\n  ");
    Ok(RawValue::from_string(pretty)?)
}

/// The names of the matrix's classes: those the confusion recorded, else the report's
/// `classes` (reports written before the confusion recorded them), when either names
/// every class; else the class numbers.
fn class_names(confusion: &RecordedConfusion, report_classes: &[String]) -> Vec<String> {
    let n = confusion.matrix.classes();
    [&confusion.classes[..], report_classes]
        .into_iter()
        .find(|names| names.len() == n)
        .map(<[String]>::to_vec)
        .unwrap_or_else(|| (0..n).map(|k| k.to_string()).collect())
}

/// A JSON object's fields in the file's order, each kept as its text, so that a
/// rewritten report differs from the old one only in the field replaced.
struct Fields(Vec<(String, Box<RawValue>)>);

impl Fields {
    /// The fields read as a `T` (each field's text parsed only now).
    fn read<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        let entries = self.0.iter().map(|(key, value)| (key.as_str(), &**value));
        T::deserialize(MapDeserializer::new(entries))
    }

    /// Removes the field `key`, if there is one.
    fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// Replaces the field `key`, or appends it.
    fn set(&mut self, key: &str, value: Box<RawValue>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => self.0.push((key.to_string(), value)),
        }
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::figures::listed;
    use super::*;

    /// A report whose fields are not in alphabetical order (as the repros write them).
    const REPORT: &str = r#"{
  "runs": [
    {"name": "a", "history": {"epochs": [
      {"accuracy": 0.5, "val_accuracy": 0.5, "loss": 0.5, "val_loss": 0.5},
      {"accuracy": 0.7, "val_accuracy": 0.7, "loss": 0.3, "val_loss": 0.3}], "stop_reason": null}},
    {"name": "b", "history": {"epochs": [
      {"accuracy": 0.6, "val_accuracy": 0.6, "loss": 0.4, "val_loss": 0.4},
      {"accuracy": 0.8, "val_accuracy": 0.8, "loss": 0.2, "val_loss": 0.2}], "stop_reason": null}}],
  "confusion": {"run": "a", "counts": [[3, 1], [0, 4]]},
  "classes": ["daisy", "rose"],
  "figures": [{"path": "val_accuracy.png", "caption": "old"}, {"path": "filters.png", "caption": "kept"}],
  "experiment": "test",
  "summary": "conv2d (Conv2D) ..."
}"#;

    #[test]
    fn the_plots_are_redrawn_from_the_recorded_histories_and_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let report: Value = serde_json::from_str(REPORT).unwrap();
        for file in ["val_accuracy.png", "filters.png"] {
            std::fs::write(dir.path().join(file), b"png").unwrap();
        }
        std::fs::write(dir.path().join("metrics.json"), REPORT).unwrap();
        let dense = petal_nn::Sequential::new(&[4], 0)
            .add(petal_nn::layers::DenseConfig::new(2))
            .unwrap()
            .build()
            .unwrap();
        let networks = NetworkTable::of_runs(&[("a".into(), dense.summary())]);
        run(Experiment::MnistRegularization, dir.path(), &networks).unwrap();
        let text = std::fs::read_to_string(dir.path().join("metrics.json")).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        // The networks replace the old summary text.
        assert_eq!(json["networks"], serde_json::to_value(&networks).unwrap());
        assert!(json.get("summary").is_none());
        let listed = listed(&json);
        assert_eq!(
            listed,
            [
                "curves.png",
                "curves.svg",
                "loss.png",
                "confusion.png",
                "filters.png"
            ]
        );
        assert!(listed.iter().all(|f| dir.path().join(f).is_file()));
        assert!(!dir.path().join("val_accuracy.png").exists());
        assert_eq!(json["runs"], report["runs"]);
        // The fields keep their order: "figures" stays last.
        assert!(text.find("\"figures\"").unwrap() > text.find("\"confusion\"").unwrap());
        // ... and where it was: every field in the file's order, none sorted.
        let at = |key: &str| text.find(&format!("\n  \"{key}\":")).unwrap();
        let order = [
            "runs",
            "confusion",
            "classes",
            "figures",
            "experiment",
            "networks",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");

        // Without a recorded matrix the old confusion.png is kept, and still listed.
        std::fs::write(dir.path().join("confusion.png"), b"png").unwrap();
        let mut without_matrix = report.clone();
        without_matrix.as_object_mut().unwrap().remove("confusion");
        without_matrix["figures"] =
            serde_json::json!([{"path": "confusion.png", "caption": "old"}]);
        std::fs::write(dir.path().join("metrics.json"), without_matrix.to_string()).unwrap();
        run(Experiment::MnistRegularization, dir.path(), &[]).unwrap();
        let text = std::fs::read_to_string(dir.path().join("metrics.json")).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert!(
            super::super::figures::listed(&json).contains(&"confusion.png"),
            "{text}"
        );
        assert!(dir.path().join("confusion.png").is_file());

        std::fs::write(
            dir.path().join("metrics.json"),
            r#"{"confusion": {"run": "a", "counts": [[1, 2]]}}"#,
        )
        .unwrap();
        let err = format!("{:#}", run(Experiment::Mnist, dir.path(), &[]).unwrap_err());
        assert!(
            err.contains("metrics.json") && err.contains("not square"),
            "{err}"
        );
    }

    /// The confusion's own class names first (transfer reports record no others), then
    /// the report's (reports from before the confusion recorded them), else numbers.
    #[test]
    fn the_matrix_is_labelled_by_the_names_it_recorded() {
        let confusion = |classes: &[&str]| RecordedConfusion {
            run: "r".into(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            matrix: petal_train::metrics::ConfusionMatrix::new(2, &[0, 1], &[0, 1]),
        };
        let report = ["daisy".to_string(), "rose".to_string()];
        assert_eq!(
            class_names(&confusion(&["tulip", "iris"]), &report),
            ["tulip", "iris"]
        );
        assert_eq!(class_names(&confusion(&[]), &report), ["daisy", "rose"]);
        assert_eq!(class_names(&confusion(&[]), &[]), ["0", "1"]);
        assert_eq!(class_names(&confusion(&["one"]), &report[..1]), ["0", "1"]);
    }
}
