//! Full checkpoints: everything a training run needs to continue bit for bit where it
//! stopped, in one safetensors file written atomically.
//!
//! The file holds the weights (`weights/<parameter>`), the optimizer's slots
//! (`optimizer/<slot>/<parameter>`) and the callbacks' tensors (`callbacks/<i>/<name>`);
//! its header's metadata holds, under the key `petal_checkpoint`, a JSON document with
//! the format version, the position (epochs done, batches done in the current epoch,
//! optimizer steps, the running loss and accuracy of the epoch), the run's settings
//! (seeds, batch size, training-set size), the optimizer's kind, step count and learning
//! rate, the [`History`] and each callback's values. Floats are stored as exact text.
//!
//! Randomness needs no saved generator: shuffling is keyed by (shuffle seed, epoch),
//! augmentation by (seed, epoch, sample) and dropout by (seed, step), so the seeds and
//! the position recreate every stream; the learning-rate schedules are functions of the
//! step, and model initialization is replaced by the saved weights.
//!
//! A checkpoint is saved at every epoch end and, with [`CheckpointConfig::every_steps`],
//! every that many steps. The file is written to a temporary file beside it, synced and
//! renamed over it, so the previous checkpoint stays intact until the new one is
//! complete.

mod file;
pub(crate) mod saver;

use std::path::PathBuf;

use petal_optim::OptimizerState;
use petal_tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use file::{decode, read, write};

use crate::callbacks::CallbackState;
use crate::history::History;

/// Where `fit` keeps its full checkpoint and whether it resumes from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// The checkpoint file (`.ckpt`), replaced at every save.
    pub path: PathBuf,
    /// Also save every this many optimizer steps (besides every epoch end).
    pub every_steps: Option<u64>,
    /// Continue from `path` when it exists (a run with no checkpoint yet starts fresh);
    /// without it any file there is replaced.
    pub resume: bool,
}

impl CheckpointConfig {
    /// Checkpoints at `path` at every epoch end, without resuming.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            every_steps: None,
            resume: false,
        }
    }
}

/// Where a run stands: how far it got and the running figures of the epoch in progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Epochs finished.
    pub epoch: usize,
    /// Batches done in epoch `epoch` (0 at an epoch end).
    pub batch: usize,
    /// Optimizer steps taken in the whole run.
    pub step: u64,
    /// Sum of the batch losses of the epoch in progress, weighted by batch size.
    #[serde(with = "crate::exact")]
    pub loss_sum: f64,
    /// Correctly classified samples of the epoch in progress.
    #[serde(with = "crate::exact")]
    pub correct: f64,
    /// Samples seen in the epoch in progress.
    pub seen: usize,
}

impl std::fmt::Display for Position {
    /// `end of epoch 2, step 40` or `epoch 3 batch 5, step 45`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.batch > 0 {
            write!(f, "epoch {} batch {}", self.epoch + 1, self.batch)?;
        } else {
            write!(f, "end of epoch {}", self.epoch)?;
        }
        write!(f, ", step {}", self.step)
    }
}

/// The settings a resumed run must share with the run that wrote the checkpoint for
/// the two to give the same weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `FitConfig::seed` (dropout and augmentation streams).
    pub seed: u64,
    /// `FitConfig::shuffle_seed`.
    pub shuffle_seed: Option<u64>,
    /// Samples per step.
    pub batch_size: usize,
    /// Training samples per epoch (after the validation split).
    pub train_samples: usize,
    /// Processes that trained together (1 without `FitConfig::distributed`; checkpoints
    /// written before distributed training existed read as 1).
    #[serde(default = "one")]
    pub world_size: usize,
}

fn one() -> usize {
    1
}

impl RunSettings {
    /// Every setting of `self` that differs from `other`, as `name: checkpoint vs run`.
    pub fn differences(&self, other: &RunSettings) -> Vec<String> {
        let mut out = Vec::new();
        let mut compare = |name: &str, saved: String, now: String| {
            if saved != now {
                out.push(format!(
                    "{name}: {saved} in the checkpoint, {now} in this run"
                ));
            }
        };
        compare("seed", self.seed.to_string(), other.seed.to_string());
        compare(
            "shuffle seed",
            format!("{:?}", self.shuffle_seed),
            format!("{:?}", other.shuffle_seed),
        );
        compare(
            "batch size",
            self.batch_size.to_string(),
            other.batch_size.to_string(),
        );
        compare(
            "training samples",
            self.train_samples.to_string(),
            other.train_samples.to_string(),
        );
        compare(
            "world size (processes)",
            self.world_size.to_string(),
            other.world_size.to_string(),
        );
        out
    }
}

/// The content of a full checkpoint file.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// How far the run got.
    pub position: Position,
    /// The settings it ran with.
    pub settings: RunSettings,
    /// The epochs finished so far (and the stop reason, if the run stopped early).
    pub history: History,
    /// Every parameter by name.
    pub weights: Vec<(String, Tensor)>,
    /// The optimizer's state (its `iterations` equal `position.step`).
    pub optimizer: OptimizerState,
    /// One state per callback, in the order they were given to the trainer.
    pub callbacks: Vec<CallbackState>,
}
