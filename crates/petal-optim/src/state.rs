//! An optimizer's state as named tensors, and its safetensors file.
//!
//! Slots are named `<slot>/<parameter name>` (`m/conv1/kernel`). Besides its
//! per-element slots, every parameter the optimizer has updated has a `step/<name>`
//! tensor of shape `[1]`: how many updates it has had (an f32, exact up to 2^24 steps;
//! Adam's bias corrections are exactly 1.0 long before that). The file keeps the kind,
//! the iteration count and the learning rate in its metadata map.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use petal_nn::weights::{encode_tensors, read_tensor_file, WeightsError};
use petal_nn::{ParamId, ParamStore};
use petal_tensor::fs::write_atomically;
use petal_tensor::Tensor;

use crate::OptimError;

/// The name of the per-parameter step-count slot.
const STEP: &str = "step";

/// One parameter's slots: zero-initialised buffers shaped like the parameter, and the
/// number of updates it has had.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamSlots {
    pub(crate) shape: Vec<usize>,
    pub(crate) step: u64,
    pub(crate) buffers: Vec<Vec<f32>>,
}

impl ParamSlots {
    /// `count` zero buffers shaped `shape`, before any update.
    pub(crate) fn zeros(shape: &[usize], count: usize) -> Self {
        let len = shape.iter().product();
        Self {
            shape: shape.to_vec(),
            step: 0,
            buffers: vec![vec![0.0; len]; count],
        }
    }
}

/// Everything an optimizer needs to continue where it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Which optimizer wrote it: `"sgd"`, `"adam"`, `"adamw"` or `"rmsprop"`.
    pub kind: String,
    /// Steps taken.
    pub iterations: u64,
    /// The base learning rate.
    pub learning_rate: f32,
    /// The slots, named `<slot>/<parameter name>`.
    pub slots: Vec<(String, Tensor)>,
}

/// The slots of every parameter of `store` the optimizer has updated, in store order.
pub(crate) fn export_slots(
    names: &[&str],
    slots: &HashMap<ParamId, ParamSlots>,
    store: &ParamStore,
) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for (id, param) in store.iter() {
        let Some(own) = slots.get(&id) else { continue };
        for (slot, buffer) in names.iter().zip(&own.buffers) {
            let tensor = Tensor::from_vec(&own.shape, buffer.clone())
                .expect("a slot's length matches its shape");
            out.push((format!("{slot}/{}", param.name), tensor));
        }
        out.push((
            format!("{STEP}/{}", param.name),
            Tensor::from_vec(&[1], vec![own.step as f32]).expect("one value"),
        ));
    }
    out
}

/// A parameter's slots while they are being gathered from a state.
struct Gathered {
    name: String,
    shape: Vec<usize>,
    buffers: Vec<Option<Vec<f32>>>,
    step: Option<u64>,
}

/// Rebuilds the per-parameter slots from a state's tensors, checking that every slot
/// is one this configuration keeps and belongs to a parameter of `store` with the same
/// shape, and that each parameter has all its slots. Every problem is reported.
pub(crate) fn import_slots(
    tensors: &[(String, Tensor)],
    kind: &str,
    names: &[&str],
    store: &ParamStore,
) -> Result<HashMap<ParamId, ParamSlots>, OptimError> {
    let mut problems = Vec::new();
    let mut gathered: BTreeMap<ParamId, Gathered> = BTreeMap::new();
    for (key, tensor) in tensors {
        let Some((slot, name)) = key.split_once('/') else {
            problems.push(format!("{key:?} is not named <slot>/<parameter>"));
            continue;
        };
        let Some(id) = store.id(name) else {
            problems.push(format!("{key:?}: the model has no parameter {name:?}"));
            continue;
        };
        let shape = store.value(id).shape();
        let entry = gathered.entry(id).or_insert_with(|| Gathered {
            name: name.to_string(),
            shape: shape.to_vec(),
            buffers: vec![None; names.len()],
            step: None,
        });
        if slot == STEP {
            match step_count(tensor) {
                Some(_) if entry.step.is_some() => problems.push(format!("{key:?} appears twice")),
                Some(step) => entry.step = Some(step),
                None => problems.push(format!(
                    "{key:?}: a step count is one whole number >= 0, got {:?}",
                    tensor.as_slice()
                )),
            }
        } else if let Some(index) = names.iter().position(|n| *n == slot) {
            if tensor.shape() != shape {
                problems.push(format!(
                    "{key:?} has shape {:?}, but parameter {name:?} has shape {shape:?}",
                    tensor.shape()
                ));
            } else if entry.buffers[index].is_some() {
                problems.push(format!("{key:?} appears twice"));
            } else {
                entry.buffers[index] = Some(tensor.to_vec());
            }
        } else {
            problems.push(format!(
                "{key:?}: this {kind} optimizer has no slot {slot:?} (its slots are {}, {STEP})",
                names.join(", ")
            ));
        }
    }
    let mut slots = HashMap::with_capacity(gathered.len());
    for (id, entry) in gathered {
        let mut missing: Vec<&str> = names
            .iter()
            .zip(&entry.buffers)
            .filter(|(_, b)| b.is_none())
            .map(|(n, _)| *n)
            .collect();
        if entry.step.is_none() {
            missing.push(STEP);
        }
        if !missing.is_empty() {
            problems.push(format!(
                "parameter {:?} lacks the slot(s) {}",
                entry.name,
                missing.join(", ")
            ));
            continue;
        }
        let buffers = entry.buffers.into_iter().flatten().collect();
        slots.insert(
            id,
            ParamSlots {
                shape: entry.shape,
                step: entry.step.unwrap_or_default(),
                buffers,
            },
        );
    }
    if problems.is_empty() {
        Ok(slots)
    } else {
        Err(OptimError::StateMismatch { problems })
    }
}

/// The value of a `step/<name>` tensor, if it is one non-negative whole number.
fn step_count(tensor: &Tensor) -> Option<u64> {
    match tensor.as_slice() {
        [value] if *value >= 0.0 && value.is_finite() && value.fract() == 0.0 => {
            Some(*value as u64)
        }
        _ => None,
    }
}

/// Writes `state` as a safetensors file: the slots as f32 tensors, the kind, iteration
/// count and learning rate in the metadata map. The file is written beside `path` and
/// renamed over it, so an interrupted save leaves the previous file intact.
pub fn save_state(state: &OptimizerState, path: impl AsRef<Path>) -> Result<(), OptimError> {
    let path = path.as_ref();
    let format = |reason: String| OptimError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = HashMap::from([
        ("kind".to_string(), state.kind.clone()),
        ("iterations".to_string(), state.iterations.to_string()),
        ("learning_rate".to_string(), state.learning_rate.to_string()),
    ]);
    let slots = state.slots.iter().map(|(name, t)| (name.as_str(), t));
    let encoded = encode_tensors(slots, Some(metadata)).map_err(format)?;
    write_atomically(path, &encoded).map_err(|source| OptimError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a state written by [`save_state`]; slots come back sorted by name.
pub fn load_state_file(path: impl AsRef<Path>) -> Result<OptimizerState, OptimError> {
    let path = path.as_ref();
    let format = |reason: String| OptimError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = read_tensor_file(path, |_| false).map_err(|e| match e {
        WeightsError::Io { path, source } => OptimError::Io { path, source },
        other => format(other.to_string()),
    })?;
    let field = |key: &str| {
        file.metadata.get(key).ok_or_else(|| {
            format(format!(
                "the metadata has no {key:?} entry (is this an optimizer state file?)"
            ))
        })
    };
    let kind = field("kind")?.clone();
    let iterations = field("iterations")?;
    let iterations = iterations
        .parse()
        .map_err(|_| format(format!("iterations {iterations:?} is not a count")))?;
    let learning_rate = field("learning_rate")?;
    let learning_rate = learning_rate
        .parse()
        .map_err(|_| format(format!("learning_rate {learning_rate:?} is not a number")))?;
    let mut slots: Vec<(String, Tensor)> = file.tensors.into_iter().collect();
    slots.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(OptimizerState {
        kind,
        iterations,
        learning_rate,
        slots,
    })
}
