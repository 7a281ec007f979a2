//! The benchmark page: Petal against PyTorch per workload as a bar chart of the speed
//! ratios, the table of medians with what each workload is, the machine and versions
//! the figures come from, and how the cost grows with the batch and the image side.

use std::path::Path;

use anyhow::Context as _;
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use crate::cost_curves;
use crate::page::Page;
use crate::tables::{json_sections, table};
use crate::BenchWorkload;

/// Fields of `results.json` the page shows in its table or chart rather than as settings.
const SHOWN_ELSEWHERE: [&str; 2] = ["rows", "ratio"];

/// The page for `<docs>/bench/results.json`, or one saying how to make it.
pub fn bench_page(
    docs: &Path,
    docs_from_out: &str,
    workloads: &[BenchWorkload],
) -> anyhow::Result<String> {
    let path = docs.join("bench").join("results.json");
    let body = if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let results: Map<String, Value> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON object", path.display()))?;
        let cost = cost_curves::section(docs, docs_from_out)?;
        body(&results, docs_from_out, workloads, cost)
    } else {
        html! { p { "No benchmark results yet: run " code { "cargo xtask bench" } "." } "\n" }
    };
    Ok(Page {
        title: "Benchmark",
        root: "",
        body,
        scripts: &[],
    }
    .render())
}

/// The page's content; `cost` is the "how cost grows" section, set after the medians.
fn body(
    results: &Map<String, Value>,
    docs_from_out: &str,
    workloads: &[BenchWorkload],
    cost: Markup,
) -> Markup {
    let rows: Vec<&Value> = results
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let ratios: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.get("workload")?.as_str()?.to_string(),
                r.get("ratio")?.as_f64()?,
            ))
        })
        .collect();
    let table_rows: Vec<Value> = rows
        .iter()
        .map(|r| with_description(r, workloads))
        .collect();
    let machine = [results.get("cpu"), results.get("pytorch")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    let threads = results.get("threads").and_then(Value::as_u64).unwrap_or(0);
    let ratio_rule = results.get("ratio").and_then(Value::as_str);
    html! {
        p.lead {
            "The same workloads timed in Petal and in PyTorch in one run on one machine, the two sides alternating round by round ("
            (threads) " threads each; " a href={ (docs_from_out) "bench/results.json" } { "results.json" } ")."
        }
        "\n"
        p.meta { (machine) } "\n"
        h2 { "Petal's speed as a multiple of PyTorch's" } "\n"
        (ratio_chart(&ratios))
        p {
            "Bars right of the line at 1x are workloads where Petal is faster, bars left of it (red) workloads where PyTorch is."
            @if let Some(rule) = ratio_rule { " The ratio is " (rule) "." }
        }
        "\n"
        h2 { "Medians" } "\n"
        (table(&table_rows))
        (cost)
        h2 { "Reproduce" } "\n"
        pre { code { "cargo xtask bench" } } "\n"
        (json_sections(results, &SHOWN_ELSEWHERE))
    }
}

/// The row with a `what` field: the workload's description, when known.
fn with_description(row: &Value, workloads: &[BenchWorkload]) -> Value {
    let mut row = row.clone();
    let name = row.get("workload").and_then(Value::as_str).unwrap_or("");
    if let (Some(w), Some(object)) = (
        workloads.iter().find(|w| w.name == name),
        row.as_object_mut(),
    ) {
        object.insert("what".into(), json!(w.description));
    }
    row
}

/// Horizontal bars of `(workload, ratio)` on one scale, with the parity line at 1x, as
/// inline SVG.
pub fn ratio_chart(ratios: &[(String, f64)]) -> Markup {
    if ratios.is_empty() {
        return html! { p { "No workload has a PyTorch side in these results." } "\n" };
    }
    let (label_width, bar_width, row_height) = (190.0, 420.0, 26.0);
    let top = ratios.iter().map(|(_, r)| *r).fold(1.0, f64::max).ceil();
    let x = |ratio: f64| label_width + bar_width * ratio / top;
    let height = row_height * ratios.len() as f64 + 24.0;
    let bottom = row_height * ratios.len() as f64;
    let parity = format!("{:.1}", x(1.0));
    html! {
        svg.chart viewBox={ "0 0 " (label_width + bar_width + 60.0) " " (height) } role="img"
            aria-label="Petal / PyTorch speed ratio per workload" {
            "\n"
            @for (i, (name, ratio)) in ratios.iter().enumerate() {
                @let y = row_height * i as f64;
                text x=(label_width - 8.0) y=(y + 17.0) text-anchor="end" { (name) }
                rect class=(if *ratio >= 1.0 { "faster" } else { "slower" }) x=(label_width) y=(y + 4.0)
                    width=(format!("{:.1}", x(*ratio) - label_width)) height=(row_height - 8.0) {}
                text x=(format!("{:.1}", x(*ratio) + 6.0)) y=(y + 17.0) { (format!("{ratio:.2}")) "x" }
                "\n"
            }
            line.parity x1=(parity) x2=(parity) y1="0" y2=(bottom) {}
            text x=(parity) y=(bottom + 18.0) text-anchor="middle" { "1x" }
            "\n"
        }
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::{ESCAPED, HOSTILE};

    #[test]
    fn bars_scale_to_the_largest_ratio_with_the_parity_line() {
        let svg = ratio_chart(&[("train<".into(), 2.0), ("infer".into(), 0.5)]).into_string();
        // Scale up to 2x: 2.0 fills the 420 px, 0.5 a quarter of it, 1x sits halfway.
        assert!(
            svg.contains("width=\"420.0\"") && svg.contains("width=\"105.0\""),
            "{svg}"
        );
        assert!(svg.contains("x1=\"400.0\""), "{svg}");
        assert!(
            svg.contains("train&lt;") && svg.contains("2.00x") && svg.contains("class=\"slower\"")
        );
    }

    #[test]
    fn the_table_says_what_each_workload_is() {
        let results = json!({"threads": 2, "pytorch": "torch 2.15", "ratio": "Petal / PyTorch",
            "rows": [{"workload": "gemm", "unit": "GFLOP/s", "petal": {"median": 200.0},
                      "pytorch": {"median": 100.0}, "ratio": 2.0}]});
        let workloads = [BenchWorkload {
            name: "gemm".into(),
            description: "A 2048x2048 product".into(),
        }];
        let html = body(results.as_object().unwrap(), "../", &workloads, html! {}).into_string();
        assert!(html.contains("<td>A 2048x2048 product</td>"), "{html}");
        assert!(html.contains("<td class=\"num\">2.00x</td>"), "{html}");
        assert!(html.contains("torch 2.15") && html.contains("2.00x</text>"));
    }

    #[test]
    fn workload_names_and_machine_strings_are_escaped() {
        let (hostile, escaped) = (HOSTILE, ESCAPED);
        let results = json!({"cpu": hostile, "ratio": hostile,
            "rows": [{"workload": hostile, "ratio": 2.0}]});
        let workloads = [BenchWorkload {
            name: hostile.into(),
            description: hostile.into(),
        }];
        let html = body(results.as_object().unwrap(), hostile, &workloads, html! {}).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains(&format!("<p class=\"meta\">{escaped}</p>")),
            "{html}"
        );
        assert!(
            html.contains(&format!("text-anchor=\"end\">{escaped}</text>")),
            "{html}"
        );
        assert!(
            html.contains(&format!("<td>{escaped}</td><td>{escaped}</td>")),
            "{html}"
        );
        assert!(
            html.contains(&format!(" The ratio is {escaped}.</p>")),
            "{html}"
        );
        assert!(
            html.contains(&format!("href=\"{escaped}bench/results.json\"")),
            "{html}"
        );
    }
}
