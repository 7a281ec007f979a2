//! The benchmark page's "how cost grows" section, from `bench/cost_curves.json`
//! (`cargo xtask bench --cost-curves`): the figure and what it shows, in sentences
//! computed from the measured points.

use std::path::Path;

use anyhow::Context as _;
use maud::{html, Markup};
use serde::Deserialize;

/// One measured point of the report.
#[derive(Clone, Copy, Debug, Deserialize)]
struct Point {
    threads: usize,
    batch: usize,
    side: usize,
    images_per_second: f64,
}

#[derive(Debug, Deserialize)]
struct Report {
    network: String,
    what: String,
    batch_curve_side: usize,
    side_curve_batch: usize,
    points: Vec<Point>,
}

/// The section for `<docs>/bench/cost_curves.json`, or a line saying how to make it.
pub fn section(docs: &Path, docs_from_out: &str) -> anyhow::Result<Markup> {
    let path = docs.join("bench").join("cost_curves.json");
    if !path.is_file() {
        return Ok(html! {
            h2 { "How cost grows" } "\n"
            p { "Not measured yet: run " code { "cargo xtask bench --cost-curves" } "." } "\n"
        });
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a cost-curves report", path.display()))?;
    Ok(html! {
        h2 { "How cost grows" } "\n"
        p { "The " (report.network) ": " (report.what) ", against the batch size and the image side." } "\n"
        figure {
            img src={ (docs_from_out) "bench/cost_curves.png" }
                alt="Training images/s of the flowers CNN against the batch size and the image side, per thread count";
        } "\n"
        @for sentence in findings(&report) { p { (sentence) } "\n" }
        p {
            "What to look at: where the left curve flattens. Beyond that batch a larger batch buys no speed, only memory; "
            "on the right, the time per image grows with the pixels, the square of the side."
        } "\n"
        pre { code { "cargo xtask bench --cost-curves" } } "\n"
    })
}

/// What the points show, as sentences: the batch curve, the side curve and the threads.
fn findings(report: &Report) -> Vec<String> {
    let most_threads = report.points.iter().map(|p| p.threads).max().unwrap_or(1);
    let rate = |threads: usize, batch: usize, side: usize| {
        report
            .points
            .iter()
            .find(|p| (p.threads, p.batch, p.side) == (threads, batch, side))
            .map(|p| p.images_per_second)
    };
    let threads_name = |t: usize| format!("{t} thread{}", if t == 1 { "" } else { "s" });
    let mut sentences = Vec::new();
    let batch_curve: Vec<&Point> = report
        .points
        .iter()
        .filter(|p| p.threads == most_threads && p.side == report.batch_curve_side)
        .collect();
    if let (Some(first), Some(best)) = (
        batch_curve.iter().min_by_key(|p| p.batch),
        batch_curve
            .iter()
            .max_by(|a, b| a.images_per_second.total_cmp(&b.images_per_second)),
    ) {
        let near_best = batch_curve
            .iter()
            .filter(|p| p.images_per_second >= 0.95 * best.images_per_second)
            .map(|p| p.batch)
            .min()
            .unwrap_or(best.batch);
        sentences.push(format!(
            "On {}, training at {} px runs at {:.0} images/s with a batch of {} and at {:.0} at its best (batch {}), {:.1} times faster; from batch {} on, the rate stays within 5% of that best.",
            threads_name(most_threads),
            report.batch_curve_side,
            first.images_per_second,
            first.batch,
            best.images_per_second,
            best.batch,
            best.images_per_second / first.images_per_second,
            near_best,
        ));
    }
    let sides: Vec<usize> = report
        .points
        .iter()
        .filter(|p| p.threads == most_threads && p.batch == report.side_curve_batch)
        .map(|p| p.side)
        .collect();
    if let (Some(&small), Some(&large)) = (sides.iter().min(), sides.iter().max()) {
        let batch = report.side_curve_batch;
        if let (Some(fast), Some(slow)) = (
            rate(most_threads, batch, small),
            rate(most_threads, batch, large),
        ) {
            sentences.push(format!(
                "An image of {large} px has {:.0} times the pixels of one of {small} px and costs {:.0} times the time to train on (batch {batch}).",
                (large * large) as f64 / (small * small) as f64,
                fast / slow,
            ));
        }
    }
    if most_threads > 1 {
        let (batch, side) = (report.side_curve_batch, report.batch_curve_side);
        let gain = |b: usize| Some(rate(most_threads, b, side)? / rate(1, b, side)?);
        if let (Some(at_batch), Some(at_one)) = (gain(batch), gain(1)) {
            sentences.push(format!(
                "{} give {at_batch:.2} times one thread's rate at batch {batch} ({side} px) and {at_one:.2} times at batch 1, where a step has too little work to split.",
                threads_name(most_threads),
            ));
        }
    }
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut points = Vec::new();
        for threads in [1, 2] {
            for batch in [1usize, 2, 4, 8, 16, 32, 64] {
                // Rates saturate at batch 16: 100, 180, 300, 380, 400, 405, 400 (x threads).
                let rate =
                    [100.0, 180.0, 300.0, 380.0, 400.0, 405.0, 400.0][batch.ilog2() as usize];
                points.push(Point {
                    threads,
                    batch,
                    side: 128,
                    images_per_second: rate * if threads == 2 && batch > 1 { 1.8 } else { 1.0 },
                });
            }
            for side in [32, 64, 224] {
                let pixels = (side * side) as f64 / (128.0 * 128.0);
                points.push(Point {
                    threads,
                    batch: 32,
                    side,
                    images_per_second: 405.0 * threads as f64 / pixels,
                });
            }
        }
        Report {
            network: "flowers CNN".into(),
            what: "training images/s".into(),
            batch_curve_side: 128,
            side_curve_batch: 32,
            points,
        }
    }

    #[test]
    fn the_sentences_come_from_the_points() {
        let sentences = findings(&report());
        assert_eq!(sentences.len(), 3, "{sentences:?}");
        assert!(
            sentences[0].contains("100 images/s with a batch of 1 and at 729 at its best (batch 32), 7.3 times faster; from batch 16 on"),
            "{}",
            sentences[0]
        );
        assert!(
            sentences[1]
                .contains("224 px has 49 times the pixels of one of 32 px and costs 49 times"),
            "{}",
            sentences[1]
        );
        assert!(
            sentences[2].contains("2 threads give 1.80 times one thread's rate at batch 32 (128 px) and 1.00 times at batch 1"),
            "{}",
            sentences[2]
        );
    }

    #[test]
    fn a_missing_report_says_how_to_make_it_and_a_broken_one_names_its_file() {
        let docs = tempfile::tempdir().unwrap();
        let html = section(docs.path(), "../").unwrap().into_string();
        assert!(html.contains("cargo xtask bench --cost-curves"), "{html}");
        std::fs::create_dir_all(docs.path().join("bench")).unwrap();
        std::fs::write(
            docs.path().join("bench/cost_curves.json"),
            "{\"points\": 3}",
        )
        .unwrap();
        let error = format!("{:#}", section(docs.path(), "../").unwrap_err());
        assert!(
            error.contains("cost_curves.json: not a cost-curves report"),
            "{error}"
        );
    }
}
