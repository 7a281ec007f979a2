//! JSON values as HTML: a list of objects becomes a table (one row per object, one
//! column per field), numbers are rounded for reading, nested values are summarized, and
//! a whole report becomes its settings, tables and matrices ([`json_sections`]).

use maud::{html, Markup};
use serde_json::{Map, Value};

/// Known columns in reading order, with their names on the page: what a row is, how
/// long it trained, how well it did (train, validation, test), what it cost, then its
/// provenance. Other columns follow by name.
const COLUMNS: [(&str, &str); 36] = [
    ("name", "Run"),
    ("true_class", "Class"),
    ("predicted_class", "Taken for"),
    ("test_photos", "Test photos taken for it"),
    ("of_its_test_photos", "Of its test photos"),
    ("workload", "Workload"),
    ("what", "What it measures"),
    ("image", "Photo"),
    ("top5", "Top 5 classes"),
    ("epochs", "Epochs"),
    ("history.stop_reason", "Stopped early because"),
    ("train_accuracy", "Train accuracy"),
    ("val_accuracy", "Validation accuracy"),
    ("test_accuracy", "Test accuracy"),
    ("test_accuracy_std", "Test accuracy (std over seeds)"),
    ("seed_test_accuracies", "Test accuracy per seed"),
    ("test_top5_accuracy", "Test top-5 accuracy"),
    ("test_loss", "Test loss"),
    ("seconds", "Training seconds"),
    ("images_per_second", "Images / s"),
    ("unit", "Unit"),
    ("petal.median", "Petal (median)"),
    ("pytorch.median", "PyTorch (median)"),
    ("ratio", "Petal / PyTorch"),
    ("petal.peak_rss_mb", "Petal peak MiB"),
    ("pytorch.peak_rss_mb", "PyTorch peak MiB"),
    ("petal.best", "Petal (best round)"),
    ("pytorch.best", "PyTorch (best round)"),
    ("petal.epochs", "Petal epochs"),
    ("pytorch.epochs", "PyTorch epochs"),
    ("petal.seconds_per_epoch", "Petal s / epoch"),
    ("pytorch.seconds_per_epoch", "PyTorch s / epoch"),
    ("weights_sha256", "Weights SHA-256"),
    ("petal", "Petal"),
    ("pytorch", "PyTorch"),
    ("peak_rss_mb", "Peak memory (MiB)"),
];

/// A field's name on the page: the known ones as [`COLUMNS`] names them, others with
/// spaces for underscores and dots and a capital first letter.
pub fn label(key: &str) -> String {
    if let Some((_, name)) = COLUMNS.iter().find(|(k, _)| *k == key) {
        return (*name).to_string();
    }
    capitalize(&key.replace(['_', '.'], " "))
}

/// `text` with its first letter in upper case.
pub fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
}

/// Where `key` goes among the columns: the known ones in their order, then the rest.
fn rank(key: &str) -> (usize, &str) {
    let known = COLUMNS.iter().position(|(k, _)| *k == key);
    (known.unwrap_or(COLUMNS.len()), key)
}

/// A table of `rows` (JSON objects), the columns in a reading order (see [`COLUMNS`]). Nested objects contribute their scalar fields as
/// `outer.inner` columns; columns that are empty in every row are left out.
pub fn table(rows: &[Value]) -> Markup {
    let flat: Vec<Vec<(String, &Value)>> = rows
        .iter()
        .filter_map(Value::as_object)
        .map(flatten)
        .collect();
    let mut columns: Vec<&str> = Vec::new();
    for row in &flat {
        for (key, value) in row {
            if !is_empty(value) && !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    columns.sort_by_key(|c| rank(c));
    html! {
        div.scroll {
            table {
                "\n"
                thead { tr { @for c in &columns { th { (label(c)) } } } }
                "\n"
                tbody {
                    "\n"
                    @for row in &flat {
                        tr {
                            @for c in &columns {
                                @let value = row.iter().find(|(k, _)| k == c).map(|(_, v)| *v);
                                td class=[value.is_some_and(Value::is_number).then_some("num")] {
                                    @if let Some(v) = value { (cell(c, v)) }
                                }
                            }
                        }
                        "\n"
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

/// The scalar fields of `object`, and one level of nested objects' scalar fields.
fn flatten(object: &Map<String, Value>) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (key, value) in object {
        match value {
            Value::Object(inner) => out.extend(
                inner
                    .iter()
                    .filter(|(_, v)| !v.is_object() && !is_list_of_objects(v))
                    .map(|(k, v)| (format!("{key}.{k}"), v)),
            ),
            v if is_list_of_objects(v) => {}
            v => out.push((key.clone(), v)),
        }
    }
    out
}

/// `true` for `null` and `[]`: nothing to show.
pub fn is_empty(value: &Value) -> bool {
    value.is_null() || value.as_array().is_some_and(Vec::is_empty)
}

/// `true` for a non-empty list of JSON objects: a table of its own.
pub fn is_list_of_objects(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_object))
}

/// A value for reading: accuracies as percentages, other fractions rounded, hashes
/// shortened, lists joined.
pub fn cell(key: &str, value: &Value) -> Markup {
    match value {
        Value::Null => html! {},
        Value::Bool(b) => html! { (b) },
        Value::Number(n) => html! { (number(key, n.as_f64().unwrap_or(f64::NAN), n.is_f64())) },
        Value::String(s) if key.ends_with("sha256") && s.chars().count() > 12 => {
            let start: String = s.chars().take(12).collect();
            html! { code title=(s) { (start) "…" } }
        }
        // A path of the machine that wrote the report means nothing to a reader: its file name.
        Value::String(s) if s.starts_with('/') => html! { (s.rsplit('/').next().unwrap_or(s)) },
        Value::String(s) => html! { (s) },
        Value::Array(items) => {
            let separator = if items.iter().all(Value::is_array) {
                "; "
            } else {
                ", "
            };
            html! {
                @for (i, v) in items.iter().enumerate() {
                    @if i > 0 { (separator) }
                    @match v {
                        Value::Array(_) | Value::Number(_) => (cell(key, v)),
                        _ => (cell("", v)),
                    }
                }
            }
        }
        Value::Object(_) => html! { (value.to_string()) },
    }
}

/// `true` for a list of `[name, matrix of numbers]` pairs, such as conv-demo's maps.
pub fn is_grid_list(value: &Value) -> bool {
    value.as_array().is_some_and(|items| {
        !items.is_empty() && items.iter().all(|pair| grid_pair(pair).is_some())
    })
}

/// A `[name, matrix of numbers]` pair as its parts; `None` for anything else.
pub fn grid_pair(pair: &Value) -> Option<(&str, Vec<Vec<f64>>)> {
    let [name, rows] = pair.as_array()?.as_slice() else {
        return None;
    };
    let rows: Option<Vec<Vec<f64>>> = rows
        .as_array()?
        .iter()
        .map(|row| row.as_array()?.iter().map(Value::as_f64).collect())
        .collect();
    Some((name.as_str()?, rows.filter(|r| !r.is_empty())?))
}

/// Each `[name, matrix]` pair as a small table of numbers with the name as caption,
/// side by side.
pub fn grids(value: &Value) -> Markup {
    html! {
        div.grids {
            "\n"
            @for (name, rows) in value.as_array().into_iter().flatten().filter_map(grid_pair) {
                table.grid {
                    caption { (name.replace('_', " ")) }
                    @for row in &rows {
                        tr { @for x in row { td { (number("", *x, x.fract() != 0.0)) } } }
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

fn number(key: &str, x: f64, float: bool) -> String {
    if key == "ratio" {
        format!("{x:.2}x")
    } else if key == "seconds" || key.ends_with(".median") || key.ends_with(".best") {
        format!("{x:.1}")
    } else if key.ends_with("per_second") {
        format!("{x:.0}")
    } else if (key.contains("accuracy") || key.contains("accuracies")) && (0.0..=1.0).contains(&x) {
        format!("{:.2}%", 100.0 * x)
    } else if !float {
        format!("{x}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{:.4}", x)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// A JSON report's fields: scalars and short lists in a facts table, each list of
/// objects as a table, anything deeper as collapsed JSON.
pub fn json_sections(metrics: &Map<String, Value>, skip: &[&str]) -> Markup {
    let mut facts: Vec<(String, Markup)> = Vec::new();
    let mut tables: Vec<(String, Markup)> = Vec::new();
    let mut raw: Vec<(String, String)> = Vec::new();
    let shown = metrics
        .iter()
        .filter(|(k, v)| !skip.contains(&k.as_str()) && !is_empty(v));
    for (key, value) in shown {
        let title = label(key);
        if is_grid_list(value) {
            tables.push((title, grids(value)));
        } else if is_list_of_objects(value) {
            tables.push((title, table(value.as_array().expect("a list"))));
        } else if depth(value) > 2 {
            let json = serde_json::to_string_pretty(value).unwrap_or_default();
            raw.push((title, json));
        } else if let Value::Object(inner) = value {
            for (k, v) in inner.iter().filter(|(_, v)| !is_empty(v)) {
                facts.push((format!("{title}: {}", label(k)), cell(k, v)));
            }
        } else {
            facts.push((title, cell(key, value)));
        }
    }
    html! {
        @if !facts.is_empty() {
            h2 { "Settings" } "\n"
            table.facts {
                "\n"
                @for (name, value) in &facts { tr { th { (name) } td { (value) } } "\n" }
            }
            "\n"
        }
        @for (title, html) in &tables { h2 { (title) } "\n" (html) }
        @for (title, json) in &raw { details { summary { (title) } pre { (json) } } "\n" }
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{ESCAPED, HOSTILE};
    use serde_json::json;

    #[test]
    fn confused_pairs_read_class_first_then_what_it_was_taken_for() {
        let pairs = [json!({"test_photos": 29, "of_its_test_photos": 238,
                            "predicted_class": "hibiscus", "true_class": "petunia"})];
        let html = table(&pairs).into_string();
        let headers = [
            "Class",
            "Taken for",
            "Test photos taken for it",
            "Of its test photos",
        ]
        .map(|h| html.find(&format!("<th>{h}</th>")).expect(h));
        assert!(headers.windows(2).all(|w| w[0] < w[1]), "{html}");
    }

    #[test]
    fn rows_become_columns_nested_fields_join_and_empty_columns_go() {
        let rows = [
            json!({"name": "a", "test_accuracy": 0.9922, "history": {"stop_reason": null, "epochs": [{"x": 1}]},
                   "petal": {"median": 1130.04}, "weights_sha256": "0123456789abcdef"}),
            json!({"name": "b<", "test_accuracy": 0.5, "extra": 3}),
        ];
        let html = table(&rows).into_string();
        assert!(html.contains("<th>Run</th><th>Test accuracy</th><th>Petal (median)</th><th>Weights SHA-256</th><th>Extra</th>"), "{html}");
        assert!(!html.contains("stop_reason") && !html.contains("history"));
        assert!(html.contains("<td class=\"num\">99.22%</td>"));
        assert!(html.contains("<td class=\"num\">1130.0</td>"));
        assert!(html.contains("<code title=\"0123456789abcdef\">0123456789ab…</code>"));
        assert!(html.contains("<td>b&lt;</td>"));
        assert!(html.contains("<td class=\"num\">3</td>"));
    }

    #[test]
    fn matrices_become_tables_and_paths_their_file_names() {
        let maps = json!([["diagonal_stride2", [[3.0, -3.0], [-3.0, 0.5]]]]);
        assert!(is_grid_list(&maps) && !is_grid_list(&json!([["a", 1]])));
        let html = grids(&maps).into_string();
        assert!(
            html.contains("<caption>diagonal stride2</caption>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><td>3</td><td>-3</td></tr><tr><td>-3</td><td>0.5</td></tr>"),
            "{html}"
        );
        assert_eq!(
            cell("image", &json!("/home/me/shared/images/chelsea.png")).into_string(),
            "chelsea.png"
        );
        assert_eq!(label("history.stop_reason"), "Stopped early because");
        assert_eq!(label("published_top1"), "Published top1");
    }

    #[test]
    fn lists_and_numbers_read_well() {
        assert_eq!(
            cell("top5", &json!([["cat", 0.4242], ["dog", 0.01]])).into_string(),
            "cat, 0.4242; dog, 0.01"
        );
        assert_eq!(
            cell("split_sizes", &json!([494, 106])).into_string(),
            "494, 106"
        );
        assert_eq!(
            cell("seed_test_accuracies", &json!([0.5, 0.25])).into_string(),
            "50.00%, 25.00%"
        );
        assert_eq!(cell("loss", &json!(0.025)).into_string(), "0.025");
        assert_eq!(cell("seconds", &json!(48.6743)).into_string(), "48.7");
        assert_eq!(
            cell("images_per_second", &json!(10366.8)).into_string(),
            "10367"
        );
        assert_eq!(cell("published_top1", &json!(0.751)).into_string(), "0.751");
    }

    #[test]
    fn report_strings_are_escaped_everywhere_they_show() {
        let (hostile, escaped) = (HOSTILE, ESCAPED);
        let rows =
            [json!({"name": hostile, hostile: 1, "weights_sha256": format!("{hostile}{hostile}")})];
        let html = table(&rows).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(&format!("<td>{escaped}</td>")), "{html}");
        assert!(html.contains(&format!("<th>{escaped}</th>")), "{html}");
        assert!(
            html.contains(&format!(
                "<code title=\"{escaped}{escaped}\">&lt;script&gt;aler…</code>"
            )),
            "{html}"
        );
        let report = json!({hostile: hostile, "settings": {hostile: [hostile]}, "maps": [[hostile, [[1.0]]]],
                            "deep": [[[hostile]]]});
        let html = json_sections(report.as_object().expect("an object"), &[]).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains(&format!("<tr><th>{escaped}</th><td>{escaped}</td></tr>")),
            "{html}"
        );
        assert!(
            html.contains(&format!(
                "<tr><th>Settings: {escaped}</th><td>{escaped}</td></tr>"
            )),
            "{html}"
        );
        assert!(
            html.contains(&format!("<caption>{escaped}</caption>")),
            "{html}"
        );
        assert!(
            html.contains("<pre>[\n  [\n    [\n      &quot;&lt;script&gt;"),
            "{html}"
        );
    }
}
