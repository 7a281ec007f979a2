//! Callbacks: code that runs after each step and epoch of `fit` and may stop training
//! (Keras' callbacks).

mod checkpoint;
mod csv_logger;
mod early_stopping;
mod reduce_lr;
mod terminate_on_nan;

pub use checkpoint::ModelCheckpoint;
pub use csv_logger::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use reduce_lr::ReduceLrOnPlateau;
pub use terminate_on_nan::TerminateOnNan;

use petal_nn::Model;
use petal_optim::Optimizer;

use crate::error::Result;
use crate::history::History;

/// Whether training goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop, for the given reason.
    Stop(String),
}

/// Hooks into a training run.
pub trait Callback {
    /// After each optimizer step, with the global step count and the batch loss.
    fn on_batch_end(&mut self, _step: u64, _loss: f32) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After each epoch (its figures are the last entry of `history`).
    fn on_epoch_end(
        &mut self,
        _epoch: usize,
        _history: &History,
        _model: &mut Model,
        _optimizer: &mut dyn Optimizer,
    ) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// When training ends, however it ends.
    fn on_train_end(&mut self, _history: &History, _model: &mut Model) -> Result<()> {
        Ok(())
    }
}

/// Whether a monitored figure should go down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracies).
    Max,
}

/// A figure of the epoch logs that a callback watches.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    /// The figure's name (`val_loss`).
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
    /// How much better a value must be to count as an improvement.
    pub min_delta: f64,
}

impl Monitor {
    /// Watches `name`; accuracies are maximised, everything else minimised (Keras' "auto").
    pub fn new(name: &str) -> Self {
        let direction = if name.contains("acc") {
            Direction::Max
        } else {
            Direction::Min
        };
        Self {
            name: name.to_string(),
            direction,
            min_delta: 0.0,
        }
    }

    /// The figure's value in the last epoch.
    pub fn current(&self, history: &History) -> Option<f64> {
        history.last(&self.name)
    }

    /// Whether `value` improves on `best` by more than `min_delta`.
    pub fn improves(&self, value: f64, best: Option<f64>) -> bool {
        match (best, self.direction) {
            (None, _) => value.is_finite(),
            (Some(b), Direction::Min) => value < b - self.min_delta,
            (Some(b), Direction::Max) => value > b + self.min_delta,
        }
    }
}
