//! The checkpoint file: encoding a [`Checkpoint`] as safetensors with a JSON header
//! entry, and reading one back with every field checked.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use petal_nn::weights::{decode_tensor_file, encode_tensors, WeightsError};
use petal_optim::OptimizerState;
use petal_tensor::fs::write_atomically;
use petal_tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{Checkpoint, Position, RunSettings};
use crate::callbacks::CallbackState;
use crate::error::{Result, TrainError};
use crate::history::History;

/// The metadata key holding the JSON header.
const KEY: &str = "petal_checkpoint";
/// The version of the layout this code writes and reads.
const FORMAT: u32 = 1;

/// A float written as exact text.
#[derive(Serialize, Deserialize)]
struct Exact(#[serde(with = "crate::exact")] f64);

/// The JSON header: everything but the tensors.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    position: Position,
    settings: RunSettings,
    epochs: Vec<BTreeMap<String, Exact>>,
    stop_reason: Option<String>,
    optimizer_kind: String,
    optimizer_iterations: u64,
    #[serde(with = "crate::exact")]
    learning_rate: f64,
    callbacks: Vec<serde_json::Value>,
}

/// Writes `checkpoint` to `path` atomically: a temporary file in the same folder,
/// synced, then renamed over `path`. On error the previous file is untouched.
pub fn write(path: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let header = Header {
        format: FORMAT,
        position: checkpoint.position.clone(),
        settings: checkpoint.settings.clone(),
        epochs: checkpoint
            .history
            .epochs
            .iter()
            .map(|logs| logs.iter().map(|(k, v)| (k.clone(), Exact(*v))).collect())
            .collect(),
        stop_reason: checkpoint.history.stop_reason.clone(),
        optimizer_kind: checkpoint.optimizer.kind.clone(),
        optimizer_iterations: checkpoint.optimizer.iterations,
        learning_rate: f64::from(checkpoint.optimizer.learning_rate),
        callbacks: checkpoint
            .callbacks
            .iter()
            .map(|c| c.values.clone())
            .collect(),
    };
    let json = serde_json::to_string(&header).expect("the header is plain data");
    let named = |prefix: String, tensors: &'_ [(String, Tensor)]| {
        tensors
            .iter()
            .map(|(name, t)| (format!("{prefix}/{name}"), t.clone()))
            .collect::<Vec<_>>()
    };
    let mut tensors = named("weights".into(), &checkpoint.weights);
    tensors.extend(named("optimizer".into(), &checkpoint.optimizer.slots));
    for (i, callback) in checkpoint.callbacks.iter().enumerate() {
        tensors.extend(named(format!("callbacks/{i}"), &callback.tensors));
    }
    let encoded = encode_tensors(
        tensors.iter().map(|(name, t)| (name.as_str(), t)),
        Some(HashMap::from([(KEY.to_string(), json)])),
    )
    .map_err(|reason| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    })?;
    write_atomically(path, &encoded).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks the checkpoint at `path`.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes, path)
}

/// Decodes and checks a checkpoint file's bytes; `path` names it in errors. Any flaw
/// (not safetensors, no or malformed header, an unknown format version, tensors under
/// unknown names, a step count that disagrees with the optimizer's) is an error saying
/// what is wrong.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let bad = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let file = decode_tensor_file(bytes, path, |_| false).map_err(|e| match e {
        WeightsError::Format { reason, .. } => {
            bad(format!("not a readable safetensors file: {reason}"))
        }
        other => TrainError::Weights(other),
    })?;
    let json = file.metadata.get(KEY).ok_or_else(|| {
        bad(format!(
            "its header has no {KEY:?} entry (a weights file rather than a full checkpoint?)"
        ))
    })?;
    let header: Header =
        serde_json::from_str(json).map_err(|e| bad(format!("its {KEY:?} entry: {e}")))?;
    if header.format != FORMAT {
        return Err(bad(format!(
            "format version {}; this Petal reads version {FORMAT}",
            header.format
        )));
    }
    let (mut weights, mut slots) = (Vec::new(), Vec::new());
    let mut callbacks: Vec<CallbackState> = header
        .callbacks
        .into_iter()
        .map(|values| CallbackState {
            values,
            tensors: Vec::new(),
        })
        .collect();
    for (name, tensor) in file.tensors {
        let (group, rest) = name.split_once('/').unwrap_or((&name, ""));
        match group {
            "weights" if !rest.is_empty() => weights.push((rest.to_string(), tensor)),
            "optimizer" if !rest.is_empty() => slots.push((rest.to_string(), tensor)),
            "callbacks" => {
                let (index, own) = rest.split_once('/').unwrap_or((rest, ""));
                let callback = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| callbacks.get_mut(i))
                    .filter(|_| !own.is_empty())
                    .ok_or_else(|| bad(format!("tensor {name:?} belongs to no saved callback")))?;
                callback.tensors.push((own.to_string(), tensor));
            }
            _ => {
                return Err(bad(format!(
                    "tensor {name:?} is not under weights/, optimizer/ or callbacks/<i>/"
                )))
            }
        }
    }
    let position = header.position;
    if position.step != header.optimizer_iterations {
        return Err(bad(format!(
            "the run is at step {} but the optimizer has taken {} steps",
            position.step, header.optimizer_iterations
        )));
    }
    if position.epoch != header.epochs.len() {
        return Err(bad(format!(
            "the run is after epoch {} but its history has {} epochs",
            position.epoch,
            header.epochs.len()
        )));
    }
    Ok(Checkpoint {
        position,
        settings: header.settings,
        history: History {
            epochs: header
                .epochs
                .into_iter()
                .map(|logs| logs.into_iter().map(|(k, v)| (k, v.0)).collect())
                .collect(),
            stop_reason: header.stop_reason,
        },
        weights,
        optimizer: OptimizerState {
            kind: header.optimizer_kind,
            iterations: header.optimizer_iterations,
            learning_rate: header.learning_rate as f32,
            slots,
        },
        callbacks,
    })
}
