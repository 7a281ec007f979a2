//! Averaging one step's gradients and state updates over the ranks: each rank's values,
//! weighted by its share of the global batch, summed by allreduce in buckets.

use std::time::Instant;

use petal_nn::{ParamId, ParamStore, StepGradients};
use petal_tensor::Tensor;

use super::Distributed;
use crate::error::{Result, TrainError};

/// One step of the whole group: the global batch's loss, correct count, gradients and
/// state updates, the same on every rank.
pub(crate) struct Averaged {
    /// The loss of the global batch (the share-weighted mean of the ranks' losses).
    pub loss: f32,
    /// Correctly classified samples of the global batch.
    pub correct: f64,
    /// Gradients, in store order.
    pub grads: Vec<(ParamId, Tensor)>,
    /// State updates (moving statistics), in store order.
    pub updates: Vec<(ParamId, Tensor)>,
    /// Seconds spent in the allreduce.
    pub seconds: f64,
}

/// What this rank brings to the step: its pass over its part of the batch (`None` when
/// its part is empty) and how many of its samples it classified correctly.
pub(crate) struct Local {
    pub step: Option<StepGradients>,
    pub correct: f64,
    pub samples: usize,
}

/// Sums every rank's share-weighted gradients, updates, loss and correct count.
///
/// The buffer holds one slot per parameter of the store (its gradient or its update),
/// then two presence flags per parameter (gradient given, update given: a rank with an
/// empty part gives neither), then the loss and the correct count.
pub(crate) fn average_step(
    dist: &Distributed,
    store: &ParamStore,
    local: Local,
    global_samples: usize,
) -> Result<Averaged> {
    let share = local.samples as f32 / global_samples.max(1) as f32;
    let params: Vec<(ParamId, usize)> = store.iter().map(|(id, p)| (id, p.value.len())).collect();
    let offsets: Vec<usize> = params
        .iter()
        .scan(0, |at, &(_, len)| {
            let start = *at;
            *at += len;
            Some(start)
        })
        .collect();
    let values: usize = params.iter().map(|&(_, len)| len).sum();
    let flags = values;
    let tail = flags + 2 * params.len();
    let mut buffer = vec![0.0f32; tail + 2];
    // The store lists its parameters in id order.
    let slot = |id: ParamId| params.binary_search_by_key(&id, |&(p, _)| p).ok();
    if let Some(step) = &local.step {
        buffer[tail] = step.loss * share;
        let entries =
            (step.grads.iter().map(|e| (e, 0))).chain(step.updates.iter().map(|e| (e, 1)));
        for ((id, tensor), kind) in entries {
            let i = slot(*id).ok_or_else(|| unknown(store, *id))?;
            if buffer[flags + 2 * i + (1 - kind)] != 0.0 {
                return Err(TrainError::Config(format!(
                    "{} has both a gradient and a state update: data parallelism cannot average it",
                    store.get(*id).name
                )));
            }
            buffer[flags + 2 * i + kind] = 1.0;
            let out = &mut buffer[offsets[i]..offsets[i] + params[i].1];
            out.iter_mut()
                .zip(tensor.as_slice())
                .for_each(|(o, &g)| *o = g * share);
        }
    }
    buffer[tail + 1] = local.correct as f32;
    let started = Instant::now();
    for bucket in buffer.chunks_mut(dist.bucket_floats.max(1)) {
        dist.communicator.allreduce_sum(bucket)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let averaged = |i: usize| &buffer[offsets[i]..offsets[i] + params[i].1];
    let (grads, updates) = match local.step {
        // This rank's own tensors take the averages: no new model-sized allocations.
        Some(step) => {
            let fill = |entries: Vec<(ParamId, Tensor)>| -> Result<Vec<(ParamId, Tensor)>> {
                entries
                    .into_iter()
                    .map(|(id, mut tensor)| {
                        let i = slot(id).ok_or_else(|| unknown(store, id))?;
                        tensor.as_mut_slice().copy_from_slice(averaged(i));
                        Ok((id, tensor))
                    })
                    .collect()
            };
            (fill(step.grads)?, fill(step.updates)?)
        }
        // A rank whose part of the batch was empty takes what the flags say the others gave.
        None => {
            let (mut grads, mut updates) = (Vec::new(), Vec::new());
            for (i, &(id, _)) in params.iter().enumerate() {
                let tensor = || Tensor::from_vec(store.get(id).value.shape(), averaged(i).to_vec());
                if buffer[flags + 2 * i] > 0.0 {
                    grads.push((id, tensor()?));
                } else if buffer[flags + 2 * i + 1] > 0.0 {
                    updates.push((id, tensor()?));
                }
            }
            (grads, updates)
        }
    };
    Ok(Averaged {
        loss: buffer[tail],
        correct: f64::from(buffer[tail + 1]),
        grads,
        updates,
        seconds,
    })
}

fn unknown(store: &ParamStore, id: ParamId) -> TrainError {
    TrainError::Config(format!(
        "the step gave a gradient for parameter {id:?}, which is not among the model's {}",
        store.len()
    ))
}
