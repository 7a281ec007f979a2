//! The legacy format: five pickles in a row, then each storage's element count and bytes.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};

use super::{build_tensors, Plan, ReadOptions, Reader, StateDict};
use crate::storage::read_storage;
use crate::InteropError;

/// The first pickle of a legacy checkpoint.
const MAGIC_NUMBER: i128 = 0x1950a86a20f9469cfc6c;
/// The second.
const PROTOCOL_VERSION: i128 = 1001;
/// The PROTO opcode a pickle (protocol 2 or later) starts with.
const PROTO: u8 = 0x80;

pub(super) fn read(
    file_info: &Reader<'_>,
    file: File,
    options: &ReadOptions<'_>,
) -> Result<StateDict, InteropError> {
    let bad = |reason: String| file_info.bad(reason);
    let io = |e: std::io::Error| bad(format!("read failed: {e}"));
    let mut reader = BufReader::new(file);
    let starts_as_pickle = reader.fill_buf().map_err(io)?.first() == Some(&PROTO);
    if !starts_as_pickle
        || !file_info
            .pickle(&mut reader, "magic number")?
            .is_int(MAGIC_NUMBER)
    {
        return Err(bad(
            "wrong magic: neither a zip archive nor a legacy torch pickle stream".to_string(),
        ));
    }
    if !file_info
        .pickle(&mut reader, "protocol version")?
        .is_int(PROTOCOL_VERSION)
    {
        return Err(bad(format!(
            "legacy protocol version is not {PROTOCOL_VERSION}"
        )));
    }
    file_info.pickle(&mut reader, "system info")?;
    let pickle = file_info.pickle(&mut reader, "state pickle")?;
    let keys = file_info
        .pickle(&mut reader, "storage keys")?
        .strings()
        .map_err(|e| bad(format!("storage keys: {e}")))?;
    let mut plan = Plan::new(&pickle, options).map_err(&bad)?;
    let mut tensors = StateDict::new();
    for key in keys {
        let dtype = *pickle
            .storages()
            .get(&key)
            .ok_or_else(|| bad(format!("storage {key} is listed but never described")))?;
        let mut count = [0u8; 8];
        reader
            .read_exact(&mut count)
            .map_err(|_| bad(format!("truncated: storage {key} has no element count")))?;
        let count = u64::from_le_bytes(count);
        let left = (file_info.length).saturating_sub(reader.stream_position().map_err(io)?);
        let bytes = count
            .checked_mul(dtype.size() as u64)
            .filter(|&b| b <= left);
        let Some(bytes) = bytes else {
            return Err(bad(format!(
                "truncated: storage {key} announces {count} {dtype:?} elements, the file has {left} bytes left"
            )));
        };
        match plan.take(&key) {
            Some(wanted) => {
                let values = read_storage(&mut reader, dtype, count as usize)
                    .map_err(|e| bad(format!("storage {key}: {e}")))?;
                build_tensors(&key, values, wanted, &mut tensors).map_err(&bad)?;
            }
            None => reader.seek_relative(bytes as i64).map_err(io)?,
        }
    }
    plan.check_done().map_err(bad)?;
    Ok(tensors)
}
