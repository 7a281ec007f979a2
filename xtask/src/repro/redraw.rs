//! `repro <experiment> --figures-only`: the report's plots redrawn from what its
//! `metrics.json` recorded (each run's history, the test confusion matrix), without
//! training; the other figures (filters, feature maps, ...) stay as they are.

use std::path::Path;

use anyhow::Context as _;
use petal_train::metrics::ConfusionMatrix;
use petal_train::History;
use serde::de::MapAccess;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::figures::{Figure, Figures};
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

/// Redraws the plots of `<output>/metrics.json` and lists them in it, first.
pub fn run(experiment: Experiment, output: &Path) -> anyhow::Result<()> {
    let path = output.join("metrics.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: run `cargo xtask repro {}` first",
            path.display(),
            experiment.slug()
        )
    })?;
    let not_an_object = || format!("{}: not a JSON object", path.display());
    let report: Map<String, Value> = serde_json::from_str(&text).with_context(not_an_object)?;
    let mut fields: Fields = serde_json::from_str(&text).with_context(not_an_object)?;
    let histories = histories(&report).with_context(|| format!("{}", path.display()))?;
    let mut figures = Figures::new(output);
    let runs: Vec<(&str, &History)> = histories.iter().map(|(n, h)| (n.as_str(), h)).collect();
    figures.curves(
        &experiment.curves_title(report.get("model").and_then(Value::as_str)),
        &runs,
    )?;
    if let Some(confusion) = report.get("confusion") {
        let (run, matrix) = confusion_of(confusion)
            .with_context(|| format!("{}: \"confusion\"", path.display()))?;
        let names = class_names(&report, matrix.classes());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        figures.confusion(&run, &names, &matrix)?;
    }
    let earlier: Vec<Figure> = match report.get("figures") {
        Some(list) => serde_json::from_value(list.clone())
            .with_context(|| format!("{}: \"figures\" is not a list of figures", path.display()))?,
        None => Vec::new(),
    };
    let drawn: Vec<&str> = figures.list().iter().map(|f| f.path.as_str()).collect();
    for old in earlier.iter().filter(|f| PLOTS.contains(&f.path.as_str())) {
        if !drawn.contains(&old.path.as_str()) {
            let file = output.join(&old.path);
            std::fs::remove_file(&file)
                .with_context(|| format!("cannot remove the old plot {}", file.display()))?;
        }
    }
    let kept = earlier
        .into_iter()
        .filter(|f| !PLOTS.contains(&f.path.as_str()));
    let list: Vec<Figure> = figures.list().iter().cloned().chain(kept).collect();
    println!("redrew {drawn:?}");
    // Pretty, indented as a top-level field (JSON strings hold no raw line breaks).
    let pretty = serde_json::to_string_pretty(&list)?.replace('\n', "\n  ");
    fields.set("figures", RawValue::from_string(pretty)?);
    petal_tensor::fs::write_atomically(&path, serde_json::to_string_pretty(&fields)?.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// A JSON object's fields in the file's order, each kept as its text, so that a
/// rewritten report differs from the old one only in the field replaced.
struct Fields(Vec<(String, Box<RawValue>)>);

impl Fields {
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

/// Every row (of `runs` or `rows`) with a recorded history: its name and history.
fn histories(report: &Map<String, Value>) -> anyhow::Result<Vec<(String, History)>> {
    let rows = ["runs", "rows"]
        .iter()
        .filter_map(|key| report.get(*key)?.as_array())
        .flatten();
    let mut out = Vec::new();
    for row in rows {
        let (Some(name), Some(history)) =
            (row.get("name").and_then(Value::as_str), row.get("history"))
        else {
            continue;
        };
        let history: History = serde_json::from_value(history.clone())
            .with_context(|| format!("the history of run {name} is not a list of epochs"))?;
        out.push((name.to_string(), history));
    }
    Ok(out)
}

/// The run and the matrix of a recorded `{"run": ..., "counts": [[...]]}`.
fn confusion_of(value: &Value) -> anyhow::Result<(String, ConfusionMatrix)> {
    let run = value
        .get("run")
        .and_then(Value::as_str)
        .context("no \"run\" name")?
        .to_string();
    let counts: Vec<Vec<usize>> =
        serde_json::from_value(value.get("counts").cloned().context("no \"counts\"")?)
            .context("\"counts\" is not a matrix of counts")?;
    if counts.iter().any(|row| row.len() != counts.len()) {
        anyhow::bail!("\"counts\" is not square ({} rows)", counts.len());
    }
    Ok((run, ConfusionMatrix { counts }))
}

/// The report's `classes` when it names `n` of them, else the class numbers.
fn class_names(report: &Map<String, Value>, n: usize) -> Vec<String> {
    let named: Option<Vec<String>> = report.get("classes").and_then(Value::as_array).map(|list| {
        list.iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect()
    });
    match named {
        Some(names) if names.len() == n => names,
        _ => (0..n).map(|k| k.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plots_are_redrawn_from_the_recorded_histories_and_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let epoch = |a: f64| serde_json::json!({"accuracy": a, "val_accuracy": a, "loss": 1.0 - a, "val_loss": 1.0 - a});
        let report = serde_json::json!({
            "classes": ["daisy", "rose"],
            "runs": [
                {"name": "a", "history": {"epochs": [epoch(0.5), epoch(0.7)], "stop_reason": null}},
                {"name": "b", "history": {"epochs": [epoch(0.6), epoch(0.8)], "stop_reason": null}}],
            "confusion": {"run": "a", "counts": [[3, 1], [0, 4]]},
            "figures": [{"path": "val_accuracy.png", "caption": "old"}, {"path": "filters.png", "caption": "kept"}]
        });
        for file in ["val_accuracy.png", "filters.png"] {
            std::fs::write(dir.path().join(file), b"png").unwrap();
        }
        std::fs::write(dir.path().join("metrics.json"), report.to_string()).unwrap();
        run(Experiment::MnistRegularization, dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("metrics.json")).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        let listed: Vec<&str> = json["figures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
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

        std::fs::write(
            dir.path().join("metrics.json"),
            r#"{"confusion": {"run": "a", "counts": [[1, 2]]}}"#,
        )
        .unwrap();
        let err = format!("{:#}", run(Experiment::Mnist, dir.path()).unwrap_err());
        assert!(
            err.contains("metrics.json") && err.contains("not square"),
            "{err}"
        );
    }
}
