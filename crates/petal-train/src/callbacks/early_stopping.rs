//! Stop when a figure stops improving, optionally going back to the best weights.

use petal_nn::{Model, ParamId};
use petal_optim::Optimizer;
use petal_tensor::Tensor;

use serde::{Deserialize, Serialize};

use super::{Callback, CallbackState, Control, Monitor};
use crate::error::{Result, TrainError};
use crate::history::History;

/// What [`EarlyStopping`] saves in a checkpoint besides the best weights.
#[derive(Serialize, Deserialize)]
struct Saved {
    #[serde(with = "crate::exact::option")]
    best: Option<f64>,
    best_epoch: Option<usize>,
    waited: usize,
    /// Absent from the checkpoints of runs that did not stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stopped_epoch: Option<usize>,
}

/// Stops training after `patience` epochs without improvement of the monitored figure.
/// With `restore_best_weights`, the model ends with the weights of its best epoch
/// whenever training ends (stopped early or not).
pub struct EarlyStopping {
    monitor: Monitor,
    patience: usize,
    restore_best_weights: bool,
    best: Option<f64>,
    best_epoch: Option<usize>,
    /// The parameters at the best epoch: id, name (for checkpoints) and value.
    best_weights: Option<Vec<(ParamId, String, Tensor)>>,
    waited: usize,
    stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Watches `monitor` with the given patience.
    pub fn new(monitor: Monitor, patience: usize, restore_best_weights: bool) -> Self {
        Self {
            monitor,
            patience,
            restore_best_weights,
            best: None,
            best_epoch: None,
            best_weights: None,
            waited: 0,
            stopped_epoch: None,
        }
    }

    /// The epoch (0-based) with the best value so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// The best value of the monitored figure so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The epoch (0-based) after which this callback stopped training, if it did
    /// (Keras' `stopped_epoch`).
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(
        &mut self,
        epoch: usize,
        history: &History,
        model: &mut Model,
        _: &mut dyn Optimizer,
    ) -> Result<Control> {
        let Some(value) = self.monitor.current(history) else {
            return Ok(Control::Continue);
        };
        if self.monitor.improves(value, self.best) {
            self.best = Some(value);
            self.best_epoch = Some(epoch);
            self.waited = 0;
            if self.restore_best_weights {
                self.best_weights = Some(
                    model
                        .store()
                        .iter()
                        .map(|(id, p)| (id, p.name.clone(), p.value.clone()))
                        .collect(),
                );
            }
            return Ok(Control::Continue);
        }
        self.waited += 1;
        if self.waited >= self.patience {
            self.stopped_epoch = Some(epoch);
            return Ok(Control::Stop(format!(
                "early stopping: {} did not improve for {} epochs (best {:.4} at epoch {})",
                self.monitor.name,
                self.waited,
                self.best.unwrap_or(f64::NAN),
                self.best_epoch.map_or(0, |e| e + 1)
            )));
        }
        Ok(Control::Continue)
    }

    fn state(&self) -> CallbackState {
        let mut state = CallbackState::of(&Saved {
            best: self.best,
            best_epoch: self.best_epoch,
            waited: self.waited,
            stopped_epoch: self.stopped_epoch,
        });
        state.tensors = self
            .best_weights
            .iter()
            .flatten()
            .map(|(_, name, t)| (name.clone(), t.clone()))
            .collect();
        state
    }

    fn load_state(&mut self, state: CallbackState, model: &Model) -> Result<()> {
        let saved: Saved = state.values("early stopping")?;
        let mut weights = Vec::with_capacity(state.tensors.len());
        for (name, tensor) in state.tensors {
            let id = model.store().id(&name).ok_or_else(|| {
                TrainError::Config(format!(
                    "early stopping's best weights name {name:?}, which the model lacks"
                ))
            })?;
            weights.push((id, name, tensor));
        }
        self.best = saved.best;
        self.best_epoch = saved.best_epoch;
        self.waited = saved.waited;
        self.stopped_epoch = saved.stopped_epoch;
        self.best_weights = (!weights.is_empty()).then_some(weights);
        Ok(())
    }

    fn on_train_end(&mut self, _: &History, model: &mut Model) -> Result<()> {
        if let Some(weights) = self.best_weights.take() {
            for (id, _, value) in weights {
                model.store_mut().set_value(id, value)?;
            }
        }
        Ok(())
    }
}
