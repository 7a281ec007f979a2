//! `cargo xtask`: Petal's runner. `repro <experiment>` reproduces one experiment of the
//! CNN lecture.

mod repro;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Petal's runner: reproduce the CNN lecture's experiments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce one experiment of the lecture.
    Repro {
        /// Which experiment.
        #[arg(value_enum)]
        experiment: repro::Experiment,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Repro { experiment } => repro::run(experiment),
    }
}
