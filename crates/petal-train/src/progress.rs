//! Epoch progress: an indicatif bar on a terminal, one plain line per epoch otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::history::EpochLogs;

/// Shows one epoch's progress.
pub(crate) struct EpochProgress {
    bar: Option<ProgressBar>,
    label: String,
}

impl EpochProgress {
    /// Starts an epoch of `batches` steps of which `done` are done (a resumed epoch);
    /// silent unless `verbose`.
    pub fn start(epoch: usize, epochs: usize, batches: usize, done: usize, verbose: bool) -> Self {
        let label = format!("Epoch {}/{epochs}", epoch + 1);
        // The bar draws on standard error: only when both streams are terminals (under
        // mpirun standard output is one and standard error is not), else plain lines.
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let bar = (verbose && terminal).then(|| {
            let bar = ProgressBar::new(batches as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar.set_position(done as u64);
            bar
        });
        Self { bar, label }
    }

    /// Advances one step, showing the running loss and accuracy.
    pub fn step(&self, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4} accuracy {accuracy:.4}"));
        }
    }

    /// Ends the epoch with its figures.
    pub fn finish(self, logs: &EpochLogs, verbose: bool) {
        let figures: Vec<String> = logs
            .iter()
            .filter(|(k, _)| k.as_str() != "epoch")
            .map(|(k, v)| {
                if k.contains("images") {
                    format!("{k} {v:.0}")
                } else {
                    format!("{k} {v:.4}")
                }
            })
            .collect();
        let line = format!("{} - {}", self.label, figures.join(" - "));
        match self.bar {
            Some(bar) => bar.finish_with_message(figures.join(" - ")),
            None if verbose => println!("{line}"),
            None => {}
        }
    }
}
