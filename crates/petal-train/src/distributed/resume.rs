//! Starting a group from the same point: rank 0's initial weights, or the checkpoint
//! rank 0 resumes from, sent to every rank.

use std::path::PathBuf;

use petal_nn::ParamStore;

use super::Distributed;
use crate::checkpoint::saver::Saver;
use crate::checkpoint::{decode, Checkpoint, CheckpointConfig};
use crate::error::{Result, TrainError};

/// What rank 0 sends: no checkpoint, a checkpoint file's bytes, or why it could not read
/// one.
const NONE: u8 = 0;
const FILE: u8 = 1;
const FAILED: u8 = 2;

/// The checkpoint the group resumes from, if any: rank 0 decides (its `saver` knows
/// whether resuming was asked and the file exists) and sends the file's bytes, so the
/// other ranks need no shared file system. Every rank decodes the same bytes.
pub(crate) fn shared_checkpoint(
    dist: &Distributed,
    saver: &Saver,
    config: Option<&CheckpointConfig>,
) -> Result<Option<(PathBuf, Checkpoint)>> {
    let mut message = Vec::new();
    if dist.is_leader() {
        message = match saver.resumable() {
            None => vec![NONE],
            Some(path) => match std::fs::read(&path) {
                Ok(bytes) => [vec![FILE], bytes].concat(),
                Err(e) => [
                    vec![FAILED],
                    format!("{}: {e}", path.display()).into_bytes(),
                ]
                .concat(),
            },
        };
    }
    dist.communicator.broadcast_bytes(&mut message)?;
    let path = config.map_or_else(PathBuf::new, |c| c.path.clone());
    match message.split_first() {
        Some((&NONE, _)) => Ok(None),
        Some((&FILE, bytes)) => Ok(Some((path.clone(), decode(bytes, &path)?))),
        Some((&FAILED, reason)) => Err(TrainError::Distributed(format!(
            "rank 0 could not read the checkpoint to resume from: {}",
            String::from_utf8_lossy(reason)
        ))),
        _ => Err(TrainError::Distributed(
            "rank 0 sent no answer on resuming (a mismatched program?)".into(),
        )),
    }
}

/// Replaces every rank's weights (all parameters, trainable or not) by rank 0's.
pub(crate) fn broadcast_weights(dist: &Distributed, store: &mut ParamStore) -> Result<()> {
    let mut flat: Vec<f32> = store
        .iter()
        .flat_map(|(_, p)| p.value.as_slice().iter().copied())
        .collect();
    dist.communicator.broadcast(&mut flat)?;
    let ids: Vec<_> = store.iter().map(|(id, _)| id).collect();
    let mut rest = flat.as_slice();
    for id in ids {
        let values = store.value_mut(id).as_mut_slice();
        let (mine, others) = rest.split_at(values.len());
        values.copy_from_slice(mine);
        rest = others;
    }
    Ok(())
}
