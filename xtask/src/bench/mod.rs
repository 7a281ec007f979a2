//! `cargo xtask bench`: the same workloads in Petal and in PyTorch, alternating round by
//! round, with medians and ratios; results go to `docs/bench/results.json`.

mod accuracy_side;
mod cost_curves;
mod group_side;
mod loader_side;
mod memory;
mod peak;
mod petal_side;
mod pytorch_side;
mod workloads;

use petal_tensor::{with_precision, Precision};
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
    /// Run as one rank of an MPI job (`mpirun -n N`, xtask built with `--features
    /// mpi`): the training workloads only, each rank stepping on its part of the global
    /// batch with `--threads` threads; rank 0 prints the global batch's images/s and the
    /// share of a step an allreduce of the gradients takes. Writes no report.
    #[arg(long)]
    pub distributed: bool,
    /// Instead of the workloads: how the flowers CNN's training rate grows with the
    /// batch size (1-256) and the image side (32-224 px), on 1 thread and on `--threads`
    /// (`docs/bench/cost_curves.json` and `.png`, shown on the benchmark page).
    #[arg(long, conflicts_with = "distributed")]
    pub cost_curves: bool,
    /// The precisions to run each network workload in, comma-separated: f32 (the
    /// default), bf16 (Petal's mixed precision against PyTorch's `torch.autocast("cpu",
    /// dtype=torch.bfloat16)`; needs AVX512-BF16), or both (`f32,bf16`: each bf16 row,
    /// named `<workload>_bf16`, follows its f32 row). The multiply-add peak runs in both
    /// too (its bf16 row times `vdpbf16ps`); the other workloads run in f32 only.
    #[arg(
        long = "precision",
        value_name = "PRECISION",
        value_delimiter = ',',
        default_value = "f32"
    )]
    pub precisions: Vec<Precision>,
}

impl BenchOptions {
    /// The workloads asked for with `--only`, or all.
    fn workloads(&self) -> Vec<Workload> {
        match self.only.is_empty() {
            true => Workload::all().to_vec(),
            false => self.only.clone(),
        }
    }
}

/// One library's figures for one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// In the workload's unit (images/s, GFLOP/s, or seconds to accuracy): the median of
    /// the rounds.
    pub median: f64,
    /// The best round (the fastest).
    pub best: f64,
    /// Epochs to reach the target accuracy (median over the seeds), for the
    /// time-to-accuracy workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<f64>,
    /// Seconds per epoch, evaluation included (median over the seeds), for the
    /// time-to-accuracy workload: its speed apart from its convergence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_per_epoch: Option<f64>,
    /// Peak resident memory of the process during the workload, in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mb: Option<f64>,
}

impl Measurement {
    /// The median and best of the rounds' `rates` (at least one), and `peak_rss_mb`.
    fn of_rates(mut rates: Vec<f64>, peak_rss_mb: Option<f64>) -> Self {
        rates.sort_by(f64::total_cmp);
        Self {
            median: rates[rates.len() / 2],
            best: rates[rates.len() - 1],
            epochs: None,
            seconds_per_epoch: None,
            peak_rss_mb,
        }
    }
}

#[derive(Serialize)]
struct Row {
    workload: String,
    unit: &'static str,
    petal: Measurement,
    pytorch: Option<Measurement>,
    /// How many times faster Petal is: a rate ratio, or PyTorch's seconds over Petal's.
    ratio: Option<f64>,
}

/// Runs the benchmark and writes the report.
pub fn run(options: &BenchOptions) -> anyhow::Result<()> {
    if options.distributed {
        return group_side::run(options);
    }
    let dir = workspace_root().join("docs").join("bench");
    if options.cost_curves {
        return cost_curves::run(options, &dir);
    }
    let workloads = options.workloads();
    // Measured before the workloads, on an idle machine (once per process).
    let bf16_speed = petal_tensor::peak::bf16_speed_vs_f32();
    if options.precisions.contains(&Precision::Bf16) {
        // Refused before any work on a CPU without AVX512-BF16, naming the CPU.
        Precision::Bf16.supported()?;
        if let Some(warning) = petal_tensor::peak::bf16_speed_warning() {
            println!("{warning}");
        }
    }
    let python = pytorch_side::PyTorch::find();
    if let Err(why) = &python {
        println!("PyTorch skipped: {why}");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()?;
    let mut rows = Vec::new();
    let runs = workloads.into_iter().flat_map(|workload| {
        options
            .precisions
            .iter()
            .map(move |&precision| (workload, precision))
    });
    for (workload, precision) in runs {
        let name = workload.row_name(precision);
        if precision != Precision::F32 && !workload.runs_in_bf16() {
            println!("{name:<24} skipped: only the networks and the peak run in {precision}");
            continue;
        }
        let unit = workload.unit();
        let (petal, pytorch) = match workload {
            Workload::KerasMnistTo99 => {
                accuracy_side::measure(python.as_ref().ok(), options, &pool)?
            }
            _ => {
                // Alternate round by round: a PyTorch round, then a Petal round, so that
                // both see the same machine state however it drifts.
                let mut pytorch = match &python {
                    Ok(py) if !workload.petal_only() => py
                        .start(workload, precision, options)
                        .inspect_err(|why| println!("{name:<24} PyTorch skipped: {why:#}"))
                        .ok(),
                    _ => None,
                };
                let mut pytorch_round = || pytorch.as_mut().map_or(Ok(()), |py| py.round());
                memory::reset_peak();
                let mut petal = pool.install(|| {
                    with_precision(precision, || match workload {
                        Workload::FlowersLoaderCold => loader_side::measure(false, options),
                        Workload::FlowersLoaderWarm => loader_side::measure(true, options),
                        Workload::FmaPeak => peak::measure(options),
                        _ => petal_side::measure(workload, options, &mut pytorch_round),
                    })
                })?;
                petal.peak_rss_mb = memory::peak_mib();
                (
                    petal,
                    pytorch.map(pytorch_side::Session::finish).transpose()?,
                )
            }
        };
        let ratio = pytorch.as_ref().map(|p| {
            if workload == Workload::KerasMnistTo99 {
                p.median / petal.median
            } else {
                petal.median / p.median
            }
        });
        let rss = |m: &Measurement| m.peak_rss_mb.map_or("-".into(), |r| format!("{r:.0}"));
        println!(
            "{name:<24} petal {:>9.1} {unit:<9} pytorch {:>9} ratio {:>6}  peak MiB {} / {}",
            petal.median,
            pytorch
                .as_ref()
                .map_or("-".into(), |p| format!("{:.1}", p.median)),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            rss(&petal),
            pytorch.as_ref().map_or("-".into(), rss),
        );
        rows.push(Row {
            workload: name,
            unit,
            petal,
            pytorch,
            ratio,
        });
    }
    std::fs::create_dir_all(&dir)?;
    let report = serde_json::json!({
        "cpu": petal_tensor::cpu_model(),
        "bf16_speed_vs_f32": bf16_speed,
        "threads": options.threads,
        "repeats": options.repeats,
        "layouts": { "petal": "NHWC (its only layout)", "pytorch": "channels_last" },
        "bf16_speed": format!("bf16_speed_vs_f32: how many multiply-adds a second one thread does in bf16 (vdpbf16ps) for each in f32 (vfmadd), measured at start; below {}, bf16 products do not pay for rounding and packing their factors on this CPU", petal_tensor::peak::BF16_WORTHWHILE),
        "bf16": "rows named *_bf16: Petal's bf16 products (f32 sums, weights and optimizer state) against PyTorch under torch.autocast(\"cpu\", dtype=torch.bfloat16); fma_peak_bf16 is vdpbf16ps's ceiling (Petal only)",
        "ratio": "how many times faster Petal is (rates: Petal / PyTorch; seconds: PyTorch / Petal)",
        "peak_rss_mb": "peak resident memory during the workload; Petal's includes what earlier workloads of the same invocation left resident (run one workload with --only for a clean figure)",
        "pytorch": python.as_ref().ok().map(|p| p.describe()),
        "rows": rows,
    });
    let path = dir.join("results.json");
    petal_tensor::fs::write_atomically(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
