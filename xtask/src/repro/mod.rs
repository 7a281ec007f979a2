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
mod networks;
mod pretrained;
mod redraw;
mod training;
mod transfer;

use std::path::PathBuf;

use petal_tensor::{with_precision, Precision};
use petal_train::checkpoint::CheckpointConfig;
use petal_train::distributed::Distributed;
use serde::Serialize;

use petal_site::NetworkTable;
use petal_zoo::pretrained::{weights_named, PretrainedWeights};

use crate::paths::{data_config, weights_folder, workspace_root};

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
        if options.model.is_some() && !experiment.uses_pretrained_model() {
            anyhow::bail!(
                "repro {} trains from scratch: --model is for pretrained, flowers3-transfer and flowers102-transfer",
                experiment.slug()
            );
        }
    }
    let result = match target {
        Target::One(experiment) => run(experiment, options),
        Target::All => run_all(options),
    };
    // Leaves the MPI job after a distributed run: finalizes MPI when the run succeeded; after
    // an error exits without finalizing, so that mpirun stops the other ranks at once (they
    // may be waiting in a collective this rank will never join).
    let group = joined().take();
    match result {
        Ok(()) => drop(group),
        Err(_) => std::mem::forget(group),
    }
    result
}

fn run_all(options: &ReproOptions) -> anyhow::Result<()> {
    for experiment in <Experiment as clap::ValueEnum>::value_variants() {
        println!("=== repro {}", experiment.slug());
        run(*experiment, options)
            .map_err(|e| e.context(format!("repro {} failed", experiment.slug())))?;
    }
    Ok(())
}

impl Experiment {
    /// Whether the experiment starts from a pretrained model (`--model` picks it).
    fn uses_pretrained_model(self) -> bool {
        matches!(
            self,
            Experiment::Pretrained | Experiment::Flowers3Transfer | Experiment::Flowers102Transfer
        )
    }

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
    /// draw them alike); `model` is the pretrained base of the transfer experiments
    /// (default EfficientNet-Lite0).
    fn curves_title(self, model: Option<&str>) -> String {
        match self {
            Experiment::Mnist => "Bipyramidal CNN on MNIST".to_string(),
            Experiment::MnistRegularization => "MNIST regularization".to_string(),
            Experiment::Flowers3 | Experiment::Flowers102 => {
                format!("{} from scratch", self.slug())
            }
            Experiment::Flowers3Transfer | Experiment::Flowers102Transfer => {
                let model = model.unwrap_or(DEFAULT_PRETRAINED);
                format!("{}: {model} transfer", self.slug())
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
    /// The pretrained model of `pretrained` and the transfer experiments, a catalog name:
    /// efficientnet-lite0 (the default), resnet18, resnet50, resnet50-v2, mobilenet_v2,
    /// vgg16. Fetched (and converted) when missing; another model than the default
    /// reports to `docs/<experiment>-<model>/`.
    #[arg(long)]
    pub model: Option<String>,
    /// Train on every process of the MPI job this one belongs to (data parallelism; start
    /// with `mpirun -n N`, build with `--features mpi`); the batch sizes stay global.
    #[arg(long)]
    pub distributed: bool,
    /// With `--distributed`: seconds a rank waits for the others in a collective before
    /// naming the ranks that do not answer and stopping the job.
    #[arg(long, default_value_t = 300)]
    pub collective_timeout: u64,
    /// With `--distributed`: batch norm normalizes with the statistics of the global
    /// batch instead of each rank's part (PyTorch's `SyncBatchNorm`).
    #[arg(long)]
    pub sync_batch_norm: bool,
    /// Train nothing: redraw the report's plots (training curves, confusion matrix) from
    /// the histories and matrix its metrics.json recorded.
    #[arg(long)]
    pub figures_only: bool,
    /// The precision of the convolution and dense products, in training and evaluation:
    /// f32, or bf16 (mixed precision: bf16 factors, f32 sums, weights and optimizer
    /// state; needs AVX512-BF16). A bf16 run reports to `docs/<experiment>-bf16/`.
    #[arg(long, default_value_t = Precision::F32)]
    pub precision: Precision,
}

/// This process's place in a distributed job, from `--distributed` joining it until
/// [`run_target`] ends (dropping the last handle finalizes MPI).
static GROUP: std::sync::Mutex<Option<Distributed>> = std::sync::Mutex::new(None);

fn joined() -> std::sync::MutexGuard<'static, Option<Distributed>> {
    GROUP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The group this process trains with (`--distributed`), or `None` alone.
pub fn group() -> Option<Distributed> {
    joined().clone()
}

/// Whether this process writes reports, figures and checkpoints: rank 0, or the only
/// process.
pub fn leads() -> bool {
    joined().as_ref().is_none_or(Distributed::is_leader)
}

/// Joins the MPI job for `--distributed` (and silences the other ranks' standard
/// output); returns the ranks on this machine.
fn join_group(options: &ReproOptions) -> anyhow::Result<usize> {
    if !options.distributed {
        anyhow::ensure!(
            !options.sync_batch_norm,
            "--sync-batch-norm synchronizes the ranks of a distributed run: add --distributed"
        );
        return Ok(1);
    }
    let local_ranks = || petal_distributed::local_ranks().unwrap_or(1);
    // `repro all` joins once, for its first experiment.
    if joined().is_none() {
        let timeout = std::time::Duration::from_secs(options.collective_timeout);
        let group = petal_distributed::launch(timeout)?;
        petal_distributed::quiet_followers(&group)?;
        println!(
            "distributed: {} ranks, {} on this machine",
            group.world_size(),
            local_ranks()
        );
        *joined() = Some(Distributed {
            sync_batch_norm: options.sync_batch_norm,
            ..group
        });
    }
    Ok(local_ranks())
}

/// The pretrained model the experiments use unless `--model` names another.
const DEFAULT_PRETRAINED: &str = "efficientnet-lite0";

impl ReproOptions {
    /// The catalog entry `--model` names (default EfficientNet-Lite0), its weights
    /// fetched and converted into the weights cache when missing.
    pub fn pretrained(&self) -> anyhow::Result<&'static PretrainedWeights> {
        let entry = self.pretrained_entry()?;
        if weights_folder().weights_file(entry).is_err() {
            petal_interop::fetch_weights(&weights_folder(), &[entry], None)?;
        }
        Ok(entry)
    }

    /// The catalog entry `--model` names (default EfficientNet-Lite0), whether or not
    /// its weights are here.
    fn pretrained_entry(&self) -> anyhow::Result<&'static PretrainedWeights> {
        Ok(weights_named(
            self.model.as_deref().unwrap_or(DEFAULT_PRETRAINED),
        )?)
    }

    /// The folder name of `experiment`'s report and checkpoints: its slug, followed by
    /// the model when `--model` is not the default and the experiment uses it, and by
    /// `-bf16` for `--precision bf16`.
    fn folder_name(&self, experiment: Experiment) -> String {
        let name = match self.model.as_deref() {
            Some(model) if model != DEFAULT_PRETRAINED && experiment.uses_pretrained_model() => {
                format!("{}-{model}", experiment.slug())
            }
            _ => experiment.slug().to_string(),
        };
        match self.precision {
            Precision::F32 => name,
            Precision::Bf16 => format!("{name}-bf16"),
        }
    }

    /// The epochs to run: `--quick` runs 1, else `--epochs` or `default`.
    pub fn epochs_or(&self, default: usize) -> usize {
        if self.quick {
            1
        } else {
            self.epochs.unwrap_or(default)
        }
    }

    /// The seeds each row is trained with: `--quick` runs 1, else `default`.
    pub fn seeds_or(&self, default: usize) -> usize {
        if self.quick {
            1
        } else {
            default
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
            dir: root.join("checkpoints").join(self.folder_name(experiment)),
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

/// Runs one experiment on the requested number of threads (by default the cores, shared
/// among the ranks on this machine).
pub fn run(experiment: Experiment, options: &ReproOptions) -> anyhow::Result<()> {
    // Redrawing trains nothing: no group to join, and the report is this machine's.
    if options.figures_only {
        let output = output_dir(&options.folder_name(experiment), options.quick)?;
        return redraw::run(experiment, &output, &networks::tables(experiment, options)?);
    }
    // Refused before any work on a CPU without AVX512-BF16, naming the CPU.
    let precision = options.precision.supported()?;
    let local_ranks = join_group(options)?;
    let threads = options.threads.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / local_ranks).max(1)
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    // Ranks other than 0 write their (identical) reports into a folder that is removed.
    let scratch = tempfile::tempdir()?;
    let output = match leads() {
        true => output_dir(&options.folder_name(experiment), options.quick)?,
        false => scratch.path().to_path_buf(),
    };
    // Training (`FitConfig::precision` reads the scope) and evaluation in `precision`.
    pool.install(|| {
        with_precision(precision, || match experiment {
            Experiment::ConvDemo => conv_demo::run(options, &output),
            Experiment::Mnist => mnist::run(options, &output),
            Experiment::MnistRegularization => mnist_regularization::run(options, &output),
            Experiment::Flowers3 => flowers3::run_flowers3(options, &output),
            Experiment::Flowers102 => flowers102::run_flowers102(options, &output),
            Experiment::Pretrained => pretrained::run_pretrained(options, &output),
            Experiment::Flowers3Transfer => transfer::run_flowers3(options, &output),
            Experiment::Flowers102Transfer => transfer::run_flowers102(options, &output),
        })
    })
}

/// `docs/<folder_name>/`, or `target/repro-quick/<folder_name>/` for `--quick` runs so
/// that smoke tests never overwrite the real reports.
fn output_dir(folder_name: &str, quick: bool) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let dir = if quick {
        root.join("target").join("repro-quick")
    } else {
        root.join("docs")
    }
    .join(folder_name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What every `metrics.json` starts with.
#[derive(Serialize)]
pub struct RunInfo {
    experiment: &'static str,
    command: String,
    threads: usize,
    /// Processes that trained together (`--distributed`), each with `threads` threads.
    world_size: usize,
    seed: u64,
    quick: bool,
    /// The products' precision (`--precision`).
    precision: String,
    finished_unix_seconds: u64,
    cpu: String,
    /// The networks the experiment trains.
    networks: Vec<NetworkTable>,
}

impl RunInfo {
    /// The run's context, for the metrics file.
    pub fn new(experiment: Experiment, options: &ReproOptions) -> anyhow::Result<Self> {
        Ok(Self {
            experiment: experiment.slug(),
            command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
            threads: rayon::current_num_threads(),
            world_size: group().map_or(1, |g| g.world_size()),
            seed: options.seed,
            quick: options.quick,
            precision: options.precision.to_string(),
            finished_unix_seconds: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cpu: petal_tensor::cpu_model(),
            networks: networks::tables(experiment, options)?,
        })
    }
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
