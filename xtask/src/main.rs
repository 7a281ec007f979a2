//! `cargo xtask`: Petal's runner. `download <dataset>` fetches a dataset into the cache;
//! `repro <experiment>` reproduces one experiment of the CNN lecture; `bench` races
//! Petal against PyTorch; `doctor` checks the environment.

mod bench;
mod classify;
mod doctor;
mod download;
mod paths;
mod repro;

use clap::{Parser, Subcommand};

/// Training allocates and frees the same large activation buffers every step; mimalloc
/// keeps them mapped instead of returning them to the OS, which saves a page fault per
/// 4 KiB touched (glibc's malloc unmaps large blocks on free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Petal's runner: datasets and the CNN lecture's experiments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a dataset into the cache (PETAL_DATA), from PETAL_MIRROR when set.
    Download {
        /// Which dataset.
        #[arg(value_enum)]
        dataset: download::DatasetName,
    },
    /// Classify photos with a pretrained ImageNet model (weights from PETAL_WEIGHTS).
    Classify(classify::ClassifyOptions),
    /// Time the same workloads in Petal and PyTorch (PETAL_BENCH_PYTHON), side by side.
    Bench(bench::BenchOptions),
    /// Check the environment: cache, mirror, free disk, datasets, weights, threads, CPU.
    Doctor,
    /// Reproduce one experiment of the lecture.
    Repro {
        /// Which experiment.
        #[arg(value_enum)]
        experiment: repro::Experiment,
        #[command(flatten)]
        options: repro::ReproOptions,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Download { dataset } => {
            download::run(dataset).map(|path| println!("{}", path.display()))
        }
        Command::Repro {
            experiment,
            options,
        } => repro::run(experiment, &options),
        Command::Bench(options) => bench::run(&options),
        Command::Classify(options) => classify::run(&options),
        Command::Doctor => doctor::run(),
    }
}
