//! The lecture's experiments, one module each, and what they share: options, the
//! output folder and the metrics file.

mod conv_demo;
mod figures;
pub(crate) mod flowers;
mod flowers102;
mod flowers3;
mod inspect;
pub mod mnist;
mod mnist_regularization;
mod pretrained;
mod redraw;
mod training;
mod transfer;

use std::path::PathBuf;

use petal_train::checkpoint::CheckpointConfig;
use serde::Serialize;

use crate::paths::{data_config, workspace_root};

/// An experiment `cargo xtask repro` can run.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Experiment {
    /// The convolution slides: the 6x6 image with two filters, edge filters on a photo.
    ConvDemo,
    /// The bipyramidal CNN on MNIST (visualize_cnn_mnist).
    Mnist,
    /// Baseline vs dropout, L2, batch norm, augmentation (affine, Cutout, MixUp, CutMix),
    /// label smoothing, early stopping, ensemble.
    MnistRegularization,
    /// The 3 most frequent Oxford flowers from scratch, without and with regularization.
    Flowers3,
    /// All 102 Oxford flowers from scratch on the official split.
    Flowers102,
    /// EfficientNet-Lite0 pretrained on ImageNet classifies the sample photos and some flowers.
    Pretrained,
    /// Transfer learning from EfficientNet-Lite0 to the 3 most frequent flowers.
    Flowers3Transfer,
    /// Transfer learning from EfficientNet-Lite0 to all 102 flowers (official split).
    Flowers102Transfer,
}

/// What `cargo xtask repro` runs: one experiment, or `all` of them in the lecture's order.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Every experiment, one after the other.
    All,
    /// One experiment.
    One(Experiment),
}

impl clap::ValueEnum for Target {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Target::All,
            Target::One(Experiment::ConvDemo),
            Target::One(Experiment::Mnist),
            Target::One(Experiment::MnistRegularization),
            Target::One(Experiment::Flowers3),
            Target::One(Experiment::Flowers102),
            Target::One(Experiment::Pretrained),
            Target::One(Experiment::Flowers3Transfer),
            Target::One(Experiment::Flowers102Transfer),
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        match self {
            Target::All => Some(
                clap::builder::PossibleValue::new("all")
                    .help("Every experiment below, in the lecture's order"),
            ),
            Target::One(experiment) => experiment.to_possible_value(),
        }
    }
}

/// Runs `target`: for `all`, every experiment in turn, stopping at the first failure.
pub fn run_target(target: Target, options: &ReproOptions) -> anyhow::Result<()> {
    if let Target::One(experiment) = target {
        return run(experiment, options);
    }
    for experiment in <Experiment as clap::ValueEnum>::value_variants() {
        println!("=== repro {}", experiment.slug());
        run(*experiment, options)
            .map_err(|e| e.context(format!("repro {} failed", experiment.slug())))?;
    }
    Ok(())
}

impl Experiment {
    fn slug(self) -> &'static str {
        match self {
            Experiment::ConvDemo => "conv-demo",
            Experiment::Mnist => "mnist",
            Experiment::MnistRegularization => "mnist-regularization",
            Experiment::Flowers3 => "flowers3",
            Experiment::Flowers102 => "flowers102",
            Experiment::Pretrained => "pretrained",
            Experiment::Flowers3Transfer => "flowers3-transfer",
            Experiment::Flowers102Transfer => "flowers102-transfer",
        }
    }

    /// The title of the experiment's training curves (the repro and `--figures-only`
    /// draw them alike).
    fn curves_title(self) -> String {
        match self {
            Experiment::Mnist => "Bipyramidal CNN on MNIST".to_string(),
            Experiment::MnistRegularization => "MNIST regularization".to_string(),
            Experiment::Flowers3 | Experiment::Flowers102 => {
                format!("{} from scratch", self.slug())
            }
            Experiment::Flowers3Transfer | Experiment::Flowers102Transfer => {
                format!("{}: {} transfer", self.slug(), transfer::MODEL)
            }
            Experiment::ConvDemo | Experiment::Pretrained => self.slug().to_string(),
        }
    }
}

/// Flags every repro accepts.
#[derive(Clone, Debug, clap::Args)]
pub struct ReproOptions {
    /// Training epochs (each experiment has its own default).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed for initialization, shuffling, dropout and augmentation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Side of the square images the flower experiments train on.
    #[arg(long, default_value_t = 128)]
    pub image_size: usize,
    /// A small subset and one epoch: a smoke test (writes under target/repro-quick/).
    #[arg(long)]
    pub quick: bool,
    /// Continue each training run from its last checkpoint (runs that had finished are
    /// restored from their final checkpoint, not retrained); without it runs start over.
    #[arg(long)]
    pub resume: bool,
    /// Train nothing: redraw the report's plots (training curves, confusion matrix) from
    /// the histories and matrix its metrics.json recorded.
    #[arg(long)]
    pub figures_only: bool,
}

impl ReproOptions {
    /// The epochs to run: `--quick` runs 1, else `--epochs` or `default`.
    pub fn epochs_or(&self, default: usize) -> usize {
        if self.quick {
            1
        } else {
            self.epochs.unwrap_or(default)
        }
    }

    /// Where `experiment` keeps its runs' checkpoints: `<data dir>/checkpoints/<experiment>/`,
    /// or `target/repro-quick/checkpoints/<experiment>/` with `--quick`.
    pub fn checkpoints(&self, experiment: Experiment) -> Checkpoints {
        let root = if self.quick {
            workspace_root().join("target").join("repro-quick")
        } else {
            data_config().cache_root
        };
        Checkpoints {
            dir: root.join("checkpoints").join(experiment.slug()),
            resume: self.resume,
        }
    }
}

/// The checkpoint files of one experiment's training runs, one per run.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    /// The folder holding `<run>.ckpt` files.
    pub dir: PathBuf,
    /// Whether runs continue from their checkpoint.
    pub resume: bool,
}

impl Checkpoints {
    /// The checkpoint of the run called `run` (its name in the report), saved at every
    /// epoch end and every 100 steps.
    pub fn for_run(&self, run: &str) -> CheckpointConfig {
        let mut file = String::new();
        for c in run.chars() {
            if c.is_ascii_alphanumeric() || c == '.' {
                file.push(c.to_ascii_lowercase());
            } else if !file.is_empty() && !file.ends_with('-') {
                file.push('-');
            }
        }
        let file = format!("{}.ckpt", file.trim_end_matches('-'));
        CheckpointConfig {
            every_steps: Some(100),
            resume: self.resume,
            ..CheckpointConfig::new(self.dir.join(file))
        }
    }
}

/// Runs one experiment on the requested number of threads.
pub fn run(experiment: Experiment, options: &ReproOptions) -> anyhow::Result<()> {
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let output = output_dir(experiment, options.quick)?;
    if options.figures_only {
        return redraw::run(experiment, &output);
    }
    pool.install(|| match experiment {
        Experiment::ConvDemo => conv_demo::run(options, &output),
        Experiment::Mnist => mnist::run(options, &output),
        Experiment::MnistRegularization => mnist_regularization::run(options, &output),
        Experiment::Flowers3 => flowers3::run_flowers3(options, &output),
        Experiment::Flowers102 => flowers102::run_flowers102(options, &output),
        Experiment::Pretrained => pretrained::run_pretrained(options, &output),
        Experiment::Flowers3Transfer => transfer::run_flowers3(options, &output),
        Experiment::Flowers102Transfer => transfer::run_flowers102(options, &output),
    })
}

/// `docs/<experiment>/`, or `target/repro-quick/<experiment>/` for `--quick` runs so
/// that smoke tests never overwrite the real reports.
fn output_dir(experiment: Experiment, quick: bool) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let dir = if quick {
        root.join("target").join("repro-quick")
    } else {
        root.join("docs")
    }
    .join(experiment.slug());
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What every `metrics.json` starts with.
#[derive(Serialize)]
pub struct RunInfo {
    experiment: &'static str,
    command: String,
    threads: usize,
    seed: u64,
    quick: bool,
    finished_unix_seconds: u64,
    cpu: String,
}

impl RunInfo {
    /// The run's context, for the metrics file.
    pub fn new(experiment: Experiment, options: &ReproOptions) -> Self {
        Self {
            experiment: experiment.slug(),
            command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
            threads: rayon::current_num_threads(),
            seed: options.seed,
            quick: options.quick,
            finished_unix_seconds: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cpu: cpu_model(),
        }
    }
}

/// The CPU's model name as the kernel reports it (empty when unknown).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

/// A report followed by its figures.
#[derive(Serialize)]
struct WithFigures<'a, T: Serialize> {
    #[serde(flatten)]
    report: &'a T,
    figures: &'a [figures::Figure],
}

/// Writes `value` as pretty JSON to `<dir>/metrics.json`, with the report's figures
/// (file and caption) under `"figures"`.
pub fn write_metrics(
    dir: &std::path::Path,
    value: &impl Serialize,
    figures: &figures::Figures,
) -> anyhow::Result<()> {
    let report = WithFigures {
        report: value,
        figures: figures.list(),
    };
    let path = dir.join("metrics.json");
    petal_tensor::fs::write_atomically(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn run_names_become_plain_checkpoint_file_names() {
        let checkpoints = Checkpoints {
            dir: PathBuf::from("ckpt"),
            resume: true,
        };
        let file = |run: &str| checkpoints.for_run(run).path;
        assert_eq!(file("baseline"), Path::new("ckpt/baseline.ckpt"));
        assert_eq!(
            file("+ dropout (0.25 / 0.5)"),
            Path::new("ckpt/dropout-0.25-0.5.ckpt")
        );
        assert_eq!(
            file("(c) fine-tune block6a.. with lr 1e-4"),
            Path::new("ckpt/c-fine-tune-block6a..-with-lr-1e-4.ckpt")
        );
        assert!(checkpoints.for_run("baseline").resume);
    }
}
