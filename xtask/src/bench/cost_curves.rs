//! `cargo xtask bench --cost-curves`: how the flowers CNN's training rate grows with the
//! batch size (1-256, at 128 px) and the image side (32-224 px, at batch 32), on one
//! thread and on `--threads`. Writes `docs/bench/cost_curves.json` and
//! `docs/bench/cost_curves.png`, which the benchmark page shows.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use petal_viz::{LinePlot, Panel};
use serde::Serialize;

use super::petal_side::{random, train_rate};
use super::workloads::flowers_cnn;
use super::BenchOptions;

/// The batch sizes of the first curve, at [`BATCH_CURVE_SIDE`] px.
const BATCHES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/// The image sides of the second curve, at batch [`SIDE_CURVE_BATCH`].
const SIDES: [usize; 7] = [32, 64, 96, 128, 160, 192, 224];
/// The image side of the batch curve: workload 3's.
const BATCH_CURVE_SIDE: usize = 128;
/// The batch of the side curve: workload 3's.
const SIDE_CURVE_BATCH: usize = 32;

/// One measured point.
#[derive(Clone, Copy, Debug, Serialize)]
struct Point {
    threads: usize,
    batch: usize,
    side: usize,
    /// Median images/s of training steps.
    images_per_second: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    cpu: String,
    network: &'static str,
    what: &'static str,
    batch_curve_side: usize,
    side_curve_batch: usize,
    points: &'a [Point],
}

/// Measures every point and writes the report and the figure under `docs/bench`.
pub fn run(options: &BenchOptions, docs_bench: &Path) -> anyhow::Result<()> {
    let mut thread_counts = vec![1, options.threads];
    thread_counts.dedup();
    let shapes = shapes();
    let bar = ProgressBar::new((thread_counts.len() * shapes.len()) as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} points  {msg}  ({elapsed})")
            .expect("a valid template"),
    );
    let mut points = Vec::new();
    for &threads in &thread_counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        for &(batch, side) in &shapes {
            bar.set_message(format!("{threads} thread(s), batch {batch}, {side} px"));
            let mut model = flowers_cnn(side, 0);
            let x = random(&[batch, side, side, 3]);
            let rate = pool.install(|| train_rate(&mut model, x, options, None, &mut || Ok(())))?;
            points.push(Point {
                threads,
                batch,
                side,
                images_per_second: rate.median,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    print_summary(&points);
    std::fs::create_dir_all(docs_bench)?;
    let json = docs_bench.join("cost_curves.json");
    let report = Report {
        cpu: petal_tensor::cpu_model(),
        network: "flowers CNN of workload 3 (4 x [3x3 conv + 2x2 max pool], dense 128, 3 classes)",
        what: "training images/s (forward, backward and an Adam step), median of the rounds",
        batch_curve_side: BATCH_CURVE_SIDE,
        side_curve_batch: SIDE_CURVE_BATCH,
        points: &points,
    };
    petal_tensor::fs::write_atomically(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
    let png = docs_bench.join("cost_curves.png");
    figure(&points).save(&png)?;
    println!("wrote {} and {}", json.display(), png.display());
    Ok(())
}

/// `(batch, side)` of every point: the batch curve, then the side curve without the
/// point the two share.
fn shapes() -> Vec<(usize, usize)> {
    let batch_curve = BATCHES.map(|b| (b, BATCH_CURVE_SIDE));
    let side_curve = SIDES.map(|s| (SIDE_CURVE_BATCH, s));
    let mut shapes = batch_curve.to_vec();
    shapes.extend(side_curve.iter().filter(|p| !batch_curve.contains(p)));
    shapes
}

/// Images/s against the batch size, and milliseconds per image against the image side
/// (the cost that grows with the pixels), a line per thread count.
fn figure(points: &[Point]) -> LinePlot {
    let mut by_batch = Panel::new(
        format!("by batch size ({BATCH_CURVE_SIDE} px images)"),
        "images/s",
    )
    .x_axis("batch size")
    .log2_x();
    let mut by_side = Panel::new(
        format!("by image side (batch {SIDE_CURVE_BATCH})"),
        "ms per image",
    )
    .x_axis("image side (px)");
    let mut thread_counts: Vec<usize> = points.iter().map(|p| p.threads).collect();
    thread_counts.dedup();
    for threads in thread_counts {
        let name = format!("{threads} thread{}", if threads == 1 { "" } else { "s" });
        let curve = |keep: &dyn Fn(&Point) -> bool, x: fn(&Point) -> usize| {
            let mut chosen: Vec<&Point> = points
                .iter()
                .filter(|p| p.threads == threads && keep(p))
                .collect();
            chosen.sort_by_key(|p| x(p));
            let xs: Vec<f64> = chosen.iter().map(|p| x(p) as f64).collect();
            let rates: Vec<f64> = chosen.iter().map(|p| p.images_per_second).collect();
            (xs, rates)
        };
        let (batches, rates) = curve(&|p| p.side == BATCH_CURVE_SIDE, |p| p.batch);
        by_batch = by_batch.with_xy(name.clone(), &batches, &rates);
        let (sides, rates) = curve(&|p| p.batch == SIDE_CURVE_BATCH, |p| p.side);
        let milliseconds: Vec<f64> = rates.iter().map(|r| 1000.0 / r).collect();
        by_side = by_side.with_xy(name, &sides, &milliseconds);
    }
    LinePlot {
        title: "Flowers CNN training: how cost grows".into(),
        panels: vec![by_batch, by_side],
    }
}

fn print_summary(points: &[Point]) {
    println!(
        "{:>7} {:>6} {:>5} {:>10}",
        "threads", "batch", "side", "images/s"
    );
    for p in points {
        println!(
            "{:>7} {:>6} {:>5} {:>10.1}",
            p.threads, p.batch, p.side, p.images_per_second
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_curves_share_one_point_and_cover_their_ranges() {
        let shapes = shapes();
        assert_eq!(shapes.len(), BATCHES.len() + SIDES.len() - 1);
        assert!(shapes.contains(&(1, 128)) && shapes.contains(&(256, 128)));
        assert!(shapes.contains(&(32, 32)) && shapes.contains(&(32, 224)));
        assert_eq!(shapes.iter().filter(|&&s| s == (32, 128)).count(), 1);
    }

    #[test]
    fn the_figure_draws_a_line_per_thread_count_in_both_panels() {
        let points: Vec<Point> = [1, 2]
            .into_iter()
            .flat_map(|threads| {
                shapes().into_iter().map(move |(batch, side)| Point {
                    threads,
                    batch,
                    side,
                    images_per_second: (threads * batch) as f64 / side as f64,
                })
            })
            .collect();
        let plot = figure(&points);
        for panel in &plot.panels {
            assert_eq!(panel.series.len(), 2);
        }
        assert_eq!(plot.panels[0].series[1].x.len(), BATCHES.len());
        assert_eq!(plot.panels[1].series[0].x, SIDES.map(|s| s as f64));
    }
}
