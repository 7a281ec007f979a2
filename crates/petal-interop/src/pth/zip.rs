//! The zip format: `<archive>/data.pkl` and one `<archive>/data/<key>` per storage.

use std::fs::File;
use std::io::{BufReader, Read};

use ::zip::ZipArchive;

use super::{build_tensors, Plan, ReadOptions, Reader, StateDict};
use crate::storage::read_storage;
use crate::InteropError;

/// The longest `byteorder` entry read.
const MAX_BYTEORDER: u64 = 16;

pub(super) fn read(
    file_info: &Reader<'_>,
    file: File,
    options: &ReadOptions<'_>,
) -> Result<StateDict, InteropError> {
    let bad = |reason: String| file_info.bad(reason);
    let mut archive = ZipArchive::new(BufReader::new(file))
        .map_err(|e| bad(format!("truncated or corrupt zip archive ({e})")))?;
    let pickle_name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with("data.pkl") && name.matches('/').count() <= 1)
        .map(|name| name.into_owned())
        .ok_or_else(|| bad("the zip archive has no data.pkl".to_string()))?;
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    if let Ok(entry) = archive.by_name(&format!("{prefix}byteorder")) {
        let mut order = String::new();
        entry
            .take(MAX_BYTEORDER)
            .read_to_string(&mut order)
            .map_err(|e| bad(format!("{prefix}byteorder: {e}")))?;
        if order.trim() != "little" {
            return Err(bad(format!(
                "byte order {order:?}: only little-endian checkpoints are read"
            )));
        }
    }
    let pickle = {
        let entry = archive
            .by_name(&pickle_name)
            .map_err(|e| bad(format!("{pickle_name}: {e}")))?;
        file_info.pickle(&mut BufReader::new(entry), &pickle_name)?
    };
    let mut plan = Plan::new(&pickle, options).map_err(&bad)?;
    let mut tensors = StateDict::new();
    let keys: Vec<String> = plan.by_storage.keys().cloned().collect();
    for key in keys {
        let wanted = plan.take(&key).expect("a key of the plan");
        let entry_name = format!("{prefix}data/{key}");
        let mut entry = archive.by_name(&entry_name).map_err(|e| {
            bad(format!(
                "{entry_name}, the storage of tensor {}: {e}",
                wanted[0].0
            ))
        })?;
        let dtype = wanted[0].1.dtype;
        let size = entry.size();
        if size % dtype.size() as u64 != 0 || size > file_info.length {
            return Err(bad(format!(
                "{entry_name} holds {size} bytes, not a whole number of {dtype:?} elements within the file"
            )));
        }
        let values = read_storage(&mut entry, dtype, (size / dtype.size() as u64) as usize)
            .map_err(|e| bad(format!("{entry_name}: {e}")))?;
        build_tensors(&key, values, wanted, &mut tensors).map_err(&bad)?;
    }
    Ok(tensors)
}
