//! How `fit` uses full checkpoints: resuming a run from one, saving one, and keeping
//! track of what the file holds for the error messages.

use std::path::{Path, PathBuf};

use petal_nn::weights::assign_tensors;

use crate::checkpoint::{self, Checkpoint, CheckpointConfig, Position, RunSettings};
use crate::error::{Result, TrainError};
use crate::fit::Trainer;
use crate::history::History;

impl Trainer<'_> {
    /// Restores the model, optimizer and callbacks from the checkpoint at `path` and
    /// returns where the run stood and its history. Nothing of another model, optimizer
    /// or run setting is accepted.
    pub(crate) fn resume(
        &mut self,
        path: &Path,
        settings: &RunSettings,
        verbose: bool,
    ) -> Result<(Position, History)> {
        let checkpoint = checkpoint::read(path)?;
        let bad = |reason: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let differences = checkpoint.settings.differences(settings);
        if !differences.is_empty() {
            return Err(bad(format!(
                "it was written by a run with other settings, which resuming cannot reproduce: {}",
                differences.join("; ")
            )));
        }
        assign_tensors(
            self.model.store_mut(),
            checkpoint.weights.into_iter().collect(),
            path,
        )?;
        if checkpoint.callbacks.len() != self.callbacks.len() {
            return Err(bad(format!(
                "it holds the state of {} callbacks, this run has {}",
                checkpoint.callbacks.len(),
                self.callbacks.len()
            )));
        }
        self.optimizer
            .load_state(&checkpoint.optimizer, self.model.store())
            .map_err(|e| bad(format!("the optimizer state does not fit: {e}")))?;
        for (i, (callback, state)) in self
            .callbacks
            .iter_mut()
            .zip(checkpoint.callbacks)
            .enumerate()
        {
            callback
                .load_state(state, self.model)
                .map_err(|e| bad(format!("callback {i}: {e}")))?;
        }
        if verbose {
            println!("resuming from {} ({})", path.display(), checkpoint.position);
        }
        Ok((checkpoint.position, checkpoint.history))
    }

    /// Saves a full checkpoint if the run keeps one.
    pub(crate) fn save(&self, saver: &mut Saver, at: &Position, history: &History) -> Result<()> {
        let Some(path) = saver.path() else {
            return Ok(());
        };
        let store = self.model.store();
        let checkpoint = Checkpoint {
            position: at.clone(),
            settings: saver.settings.clone(),
            history: history.clone(),
            weights: store
                .iter()
                .map(|(_, p)| (p.name.clone(), p.value.clone()))
                .collect(),
            optimizer: self.optimizer.state(store),
            callbacks: self.callbacks.iter().map(|c| c.state()).collect(),
        };
        match checkpoint::write(&path, &checkpoint) {
            Ok(()) => {
                saver.saved(at);
                Ok(())
            }
            Err(e) => Err(TrainError::CheckpointWrite {
                path,
                reason: match e {
                    TrainError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                },
                previous: saver.previous(),
            }),
        }
    }
}

/// Keeps track of a run's checkpoint file: when to save, and what the last good save
/// holds.
pub(crate) struct Saver {
    config: Option<CheckpointConfig>,
    pub(crate) settings: RunSettings,
    /// Where the file's content stands, once this run has saved or resumed it.
    last: Option<Position>,
}

impl Saver {
    pub(crate) fn new(config: Option<&CheckpointConfig>, settings: RunSettings) -> Self {
        Self {
            config: config.cloned(),
            settings,
            last: None,
        }
    }

    pub(crate) fn path(&self) -> Option<PathBuf> {
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

    pub(crate) fn saved(&mut self, at: &Position) {
        self.last = Some(at.clone());
    }

    /// Whether a mid-epoch save is due after `step`.
    pub(crate) fn due(&self, step: u64) -> bool {
        let every = self.config.as_ref().and_then(|c| c.every_steps);
        every.is_some_and(|n| n > 0 && step.is_multiple_of(n))
    }

    /// What the file holds after a failed save, as a sentence.
    pub(crate) fn previous(&self) -> String {
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
