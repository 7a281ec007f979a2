//! The lecture's experiments, one module each.

mod conv_demo;

/// An experiment `cargo xtask repro` can run.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Experiment {
    /// The 6x6 image with the diagonal and vertical filters (the convolution slides).
    ConvDemo,
}

/// Runs one experiment.
pub fn run(experiment: Experiment) -> anyhow::Result<()> {
    match experiment {
        Experiment::ConvDemo => conv_demo::run(),
    }
}
