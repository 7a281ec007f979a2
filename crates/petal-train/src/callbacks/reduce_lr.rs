//! Lower the learning rate when a figure stops improving.

use petal_nn::Model;
use petal_optim::Optimizer;

use serde::{Deserialize, Serialize};

use super::{Callback, CallbackState, Control, Monitor};
use crate::error::Result;
use crate::history::History;

/// What [`ReduceLrOnPlateau`] saves in a checkpoint (the learning rate itself is part of
/// the optimizer's state).
#[derive(Serialize, Deserialize)]
struct Saved {
    #[serde(with = "crate::exact::option")]
    best: Option<f64>,
    waited: usize,
    cooling: usize,
}

/// Multiplies the learning rate by `factor` after `patience` epochs without improvement,
/// then waits `cooldown` epochs; never goes below `min_lr` (Keras' ReduceLROnPlateau).
pub struct ReduceLrOnPlateau {
    monitor: Monitor,
    factor: f32,
    patience: usize,
    cooldown: usize,
    min_lr: f32,
    best: Option<f64>,
    waited: usize,
    cooling: usize,
}

impl ReduceLrOnPlateau {
    /// Watches `monitor`; `factor` in (0, 1).
    pub fn new(
        monitor: Monitor,
        factor: f32,
        patience: usize,
        cooldown: usize,
        min_lr: f32,
    ) -> Self {
        Self {
            monitor,
            factor,
            patience,
            cooldown,
            min_lr,
            best: None,
            waited: 0,
            cooling: 0,
        }
    }
}

impl Callback for ReduceLrOnPlateau {
    fn on_epoch_end(
        &mut self,
        _: usize,
        history: &History,
        _: &mut Model,
        optimizer: &mut dyn Optimizer,
    ) -> Result<Control> {
        let Some(value) = self.monitor.current(history) else {
            return Ok(Control::Continue);
        };
        if self.cooling > 0 {
            self.cooling -= 1;
            self.waited = 0;
        }
        if self.monitor.improves(value, self.best) {
            self.best = Some(value);
            self.waited = 0;
        } else if self.cooling == 0 {
            self.waited += 1;
            if self.waited >= self.patience {
                let lr = (optimizer.learning_rate() * self.factor).max(self.min_lr);
                optimizer.set_learning_rate(lr);
                self.cooling = self.cooldown;
                self.waited = 0;
            }
        }
        Ok(Control::Continue)
    }

    fn state(&self) -> CallbackState {
        CallbackState::of(&Saved {
            best: self.best,
            waited: self.waited,
            cooling: self.cooling,
        })
    }

    fn load_state(&mut self, state: CallbackState, _: &Model) -> Result<()> {
        let saved: Saved = state.values("ReduceLrOnPlateau")?;
        (self.best, self.waited, self.cooling) = (saved.best, saved.waited, saved.cooling);
        Ok(())
    }
}
