//! `cargo xtask`: Petal's runner. `download <dataset>` fetches a dataset into the cache;
//! `repro <experiment>` reproduces one experiment of the CNN lecture.

mod download;
mod paths;
mod repro;

use clap::{Parser, Subcommand};

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
    }
}
