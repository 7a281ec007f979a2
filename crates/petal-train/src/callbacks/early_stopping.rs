//! Stop when a figure stops improving, optionally going back to the best weights.

use petal_nn::{Model, ParamId};
use petal_optim::Optimizer;
use petal_tensor::Tensor;

use super::{Callback, Control, Monitor};
use crate::error::Result;
use crate::history::History;

/// Stops training after `patience` epochs without improvement of the monitored figure.
/// With `restore_best_weights`, the model ends with the weights of its best epoch
/// whenever training ends (stopped early or not).
pub struct EarlyStopping {
    monitor: Monitor,
    patience: usize,
    restore_best_weights: bool,
    best: Option<f64>,
    best_epoch: Option<usize>,
    best_weights: Option<Vec<(ParamId, Tensor)>>,
    waited: usize,
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
        }
    }

    /// The epoch (0-based) with the best value so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
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
                        .map(|(id, p)| (id, p.value.clone()))
                        .collect(),
                );
            }
            return Ok(Control::Continue);
        }
        self.waited += 1;
        if self.waited >= self.patience {
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

    fn on_train_end(&mut self, _: &History, model: &mut Model) -> Result<()> {
        if let Some(weights) = self.best_weights.take() {
            for (id, value) in weights {
                model.store_mut().set_value(id, value)?;
            }
        }
        Ok(())
    }
}
