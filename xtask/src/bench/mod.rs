//! `cargo xtask bench`: the same workloads in Petal and in PyTorch, alternating, with
//! medians and ratios; results go to `docs/bench/results.json`.

mod loader_side;
mod petal_side;
mod pytorch_side;
mod workloads;

use serde::Serialize;

use crate::paths::workspace_root;
pub use workloads::Workload;

/// Options of `cargo xtask bench`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchOptions {
    /// Workloads to run (default: all).
    #[arg(long, value_enum)]
    pub only: Vec<Workload>,
    /// Threads for both libraries.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed rounds per workload and library (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub repeats: usize,
    /// Minimum seconds per round.
    #[arg(long, default_value_t = 2.0)]
    pub min_seconds: f64,
}

/// One library's figures for one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Images per second, or GFLOP/s for GEMM: median of the rounds.
    pub median: f64,
    /// The best round.
    pub best: f64,
}

#[derive(Serialize)]
struct Row {
    workload: &'static str,
    unit: &'static str,
    petal: Measurement,
    pytorch: Option<Measurement>,
    ratio: Option<f64>,
}

/// Runs the benchmark and writes the report.
pub fn run(options: &BenchOptions) -> anyhow::Result<()> {
    let workloads: Vec<Workload> = if options.only.is_empty() {
        Workload::all().to_vec()
    } else {
        options.only.clone()
    };
    let python = pytorch_side::PyTorch::find();
    if let Err(why) = &python {
        println!("PyTorch skipped: {why}");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()?;
    let mut rows = Vec::new();
    for workload in workloads {
        let unit = if workload == Workload::Gemm2048 {
            "GFLOP/s"
        } else {
            "images/s"
        };
        // Alternate: PyTorch, then Petal, so both see the same machine state.
        let pytorch = match &python {
            Ok(py) if !workload.petal_only() => Some(py.measure(workload, options)?),
            _ => None,
        };
        let petal = pool.install(|| match workload {
            Workload::FlowersLoaderCold => loader_side::measure(false, options),
            Workload::FlowersLoaderWarm => loader_side::measure(true, options),
            _ => petal_side::measure(workload, options),
        })?;
        let ratio = pytorch.as_ref().map(|p| petal.median / p.median);
        println!(
            "{:<20} petal {:>9.1} {unit:<9} pytorch {:>9} ratio {}",
            workload.name(),
            petal.median,
            pytorch
                .as_ref()
                .map_or("-".into(), |p| format!("{:.1}", p.median)),
            ratio.map_or("-".into(), |r| format!("{r:.2}x"))
        );
        rows.push(Row {
            workload: workload.name(),
            unit,
            petal,
            pytorch,
            ratio,
        });
    }
    let dir = workspace_root().join("docs").join("bench");
    std::fs::create_dir_all(&dir)?;
    let report = serde_json::json!({
        "threads": options.threads,
        "repeats": options.repeats,
        "layouts": { "petal": "NHWC (its only layout)", "pytorch": "channels_last" },
        "pytorch": python.as_ref().ok().map(|p| p.describe()),
        "rows": rows,
    });
    let path = dir.join("results.json");
    petal_nn::weights::write_atomically(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
