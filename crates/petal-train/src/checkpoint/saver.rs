//! Saving full checkpoints during `fit` and resuming from them: when to save, what the
//! last good save holds (for the error messages), and moving a run's model, optimizer
//! and callbacks to and from the file.

use std::path::{Path, PathBuf};

use petal_nn::weights::assign_tensors;
use petal_nn::Model;
use petal_optim::Optimizer;

use super::{Checkpoint, CheckpointConfig, Position, RunSettings};
use crate::callbacks::Callback;
use crate::error::{Result, TrainError};
use crate::history::History;

/// Keeps track of a run's checkpoint file: when to save, and what the last good save
/// holds.
pub(crate) struct Saver {
    config: Option<CheckpointConfig>,
    settings: RunSettings,
    /// Where the file's content stands, once this run has saved or resumed it.
    last: Option<Position>,
}

impl Saver {
    /// The checkpoint to resume from, read, if resuming was asked for and there is one.
    pub(crate) fn read_resumable(&self) -> Result<Option<(PathBuf, Checkpoint)>> {
        self.resumable()
            .map(|path| super::read(&path).map(|checkpoint| (path, checkpoint)))
            .transpose()
    }

    /// Restores `model`, `optimizer` and `callbacks` from `checkpoint`, read from
    /// `path`, and returns where the run stood and its history. Nothing of another
    /// model, optimizer or run setting is accepted.
    pub(crate) fn restore(
        &self,
        path: &Path,
        checkpoint: Checkpoint,
        model: &mut Model,
        optimizer: &mut dyn Optimizer,
        callbacks: &mut [Box<dyn Callback + '_>],
        verbose: bool,
    ) -> Result<(Position, History)> {
        let bad = |reason: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let differences = checkpoint.settings.differences(&self.settings);
        if !differences.is_empty() {
            return Err(bad(format!(
                "it was written by a run with other settings, which resuming cannot reproduce: {}",
                differences.join("; ")
            )));
        }
        assign_tensors(
            model.store_mut(),
            checkpoint.weights.into_iter().collect(),
            path,
        )?;
        if checkpoint.callbacks.len() != callbacks.len() {
            return Err(bad(format!(
                "it holds the state of {} callbacks, this run has {}",
                checkpoint.callbacks.len(),
                callbacks.len()
            )));
        }
        optimizer
            .load_state(&checkpoint.optimizer, model.store())
            .map_err(|e| bad(format!("the optimizer state does not fit: {e}")))?;
        for (i, (callback, state)) in callbacks.iter_mut().zip(checkpoint.callbacks).enumerate() {
            callback
                .load_state(state, model)
                .map_err(|e| bad(format!("callback {i}: {e}")))?;
        }
        if verbose {
            println!("resuming from {} ({})", path.display(), checkpoint.position);
        }
        Ok((checkpoint.position, checkpoint.history))
    }

    /// Saves a full checkpoint of the run at `at`, if the run keeps one.
    pub(crate) fn save(
        &mut self,
        at: &Position,
        history: &History,
        model: &Model,
        optimizer: &dyn Optimizer,
        callbacks: &[Box<dyn Callback + '_>],
    ) -> Result<()> {
        let Some(path) = self.path() else {
            return Ok(());
        };
        let store = model.store();
        let checkpoint = Checkpoint {
            position: at.clone(),
            settings: self.settings.clone(),
            history: history.clone(),
            weights: store
                .iter()
                .map(|(_, p)| (p.name.clone(), p.value.clone()))
                .collect(),
            optimizer: optimizer.state(store),
            callbacks: callbacks.iter().map(|c| c.state()).collect(),
        };
        match super::write(&path, &checkpoint) {
            Ok(()) => {
                self.saved(at);
                Ok(())
            }
            Err(e) => Err(TrainError::CheckpointWrite {
                path,
                reason: match e {
                    TrainError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                },
                previous: self.previous(),
            }),
        }
    }

    /// Keeps `config`'s checkpoint for a run with `settings`.
    pub(crate) fn new(config: Option<&CheckpointConfig>, settings: RunSettings) -> Self {
        Self {
            config: config.cloned(),
            settings,
            last: None,
        }
    }

    fn path(&self) -> Option<PathBuf> {
        self.config.as_ref().map(|c| c.path.clone())
    }

    /// The file to resume from, if resuming was asked for and there is one.
    pub(crate) fn resumable(&self) -> Option<PathBuf> {
        self.config
            .as_ref()
            .filter(|c| c.resume && c.path.exists())
            .map(|c| c.path.clone())
    }

    /// Records the position a resumed run starts from (the file holds it).
    pub(crate) fn resumed(&mut self, at: &Position) {
        if self.resumable().is_some() {
            self.last = Some(at.clone());
        }
    }

    fn saved(&mut self, at: &Position) {
        self.last = Some(at.clone());
    }

    /// Whether a mid-epoch save is due after `step`.
    pub(crate) fn due(&self, step: u64) -> bool {
        let every = self.config.as_ref().and_then(|c| c.every_steps);
        every.is_some_and(|n| n > 0 && step.is_multiple_of(n))
    }

    /// What the file holds after a failed save, as a sentence.
    fn previous(&self) -> String {
        match &self.last {
            Some(at) => format!(
                "the previous checkpoint in that file ({at}) is intact and usable: resuming continues from it"
            ),
            None => "no earlier checkpoint of this run was saved, so it cannot be resumed".into(),
        }
    }

    /// Fills the last good checkpoint into a non-finite-loss error.
    pub(crate) fn name_last_good(&self, error: TrainError) -> TrainError {
        match error {
            TrainError::NonFiniteLoss {
                step,
                loss,
                culprit,
                ..
            } => TrainError::NonFiniteLoss {
                step,
                loss,
                culprit,
                checkpoint: match (&self.config, &self.last) {
                    (Some(c), Some(at)) => {
                        format!("the last good checkpoint is {} ({at})", c.path.display())
                    }
                    (Some(_), None) => "no checkpoint had been saved yet".into(),
                    (None, _) => "no checkpoint was being kept (FitConfig::checkpoint)".into(),
                },
            },
            other => other,
        }
    }
}
