//! Callbacks: code that runs after each step and epoch of `fit` and may stop training
//! (Keras' callbacks). The trainer owns the callbacks it is given; give it `&mut
//! callback` instead to read the callback after training (the best epoch of
//! [`EarlyStopping`], the files of [`ModelCheckpoint`]).

mod csv_logger;
mod early_stopping;
mod model_checkpoint;
mod reduce_lr;

pub use csv_logger::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use model_checkpoint::ModelCheckpoint;
pub use reduce_lr::ReduceLrOnPlateau;

use petal_nn::Model;
use petal_optim::Optimizer;
use petal_tensor::Tensor;

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
    /// Whether, in a distributed run, only rank 0 calls this callback: true for the
    /// callbacks that write files ([`ModelCheckpoint`], [`CsvLogger`]), so that ranks
    /// sharing a machine do not write the same files (Horovod's "only on rank 0"). A stop
    /// such a callback asks for reaches every rank at the end of the epoch.
    fn leader_only(&self) -> bool {
        false
    }
    /// What this callback must remember for a resumed run to go on exactly as an
    /// uninterrupted one; it is saved in every full checkpoint. Stateless callbacks keep
    /// the default (nothing).
    fn state(&self) -> CallbackState {
        CallbackState::default()
    }
    /// Restores what [`Callback::state`] returned, when `fit` resumes a run. `model`
    /// gives the parameters' ids by name. A state this callback cannot have written is
    /// an error saying what is wrong.
    fn load_state(&mut self, _state: CallbackState, _model: &Model) -> Result<()> {
        Ok(())
    }
}

/// A callback lent to the trainer: `Trainer::callback(&mut early_stopping)` leaves it
/// with its owner, who can read it once the trainer is gone.
impl<C: Callback + ?Sized> Callback for &mut C {
    fn on_batch_end(&mut self, step: u64, loss: f32) -> Result<Control> {
        (**self).on_batch_end(step, loss)
    }
    fn on_epoch_end(
        &mut self,
        epoch: usize,
        history: &History,
        model: &mut Model,
        optimizer: &mut dyn Optimizer,
    ) -> Result<Control> {
        (**self).on_epoch_end(epoch, history, model, optimizer)
    }
    fn on_train_end(&mut self, history: &History, model: &mut Model) -> Result<()> {
        (**self).on_train_end(history, model)
    }
    fn leader_only(&self) -> bool {
        (**self).leader_only()
    }
    fn state(&self) -> CallbackState {
        (**self).state()
    }
    fn load_state(&mut self, state: CallbackState, model: &Model) -> Result<()> {
        (**self).load_state(state, model)
    }
}

/// A callback's saved state: small values as JSON and tensors by name (EarlyStopping's
/// best weights).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallbackState {
    /// Counters and figures.
    pub values: serde_json::Value,
    /// Named tensors.
    pub tensors: Vec<(String, Tensor)>,
}

impl CallbackState {
    /// The state of a callback whose values are `values`.
    pub(crate) fn of(values: &impl serde::Serialize) -> Self {
        Self {
            values: serde_json::to_value(values).expect("callback states are plain data"),
            tensors: Vec::new(),
        }
    }

    /// Reads the values back as `T`; `callback` names the callback in the error.
    pub(crate) fn values<T: serde::de::DeserializeOwned>(&self, callback: &str) -> Result<T> {
        serde_json::from_value(self.values.clone()).map_err(|e| {
            crate::TrainError::Config(format!(
                "the checkpoint's {callback} state does not fit this callback: {e}"
            ))
        })
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
