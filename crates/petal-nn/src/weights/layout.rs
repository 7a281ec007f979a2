//! Bounds checks of a safetensors file's layout before any tensor is read.
//!
//! The `safetensors` crate refuses malformed files too, but some of its messages name
//! neither the tensor nor the numbers at fault ("invalid shape, data type, or offset for
//! tensor"), and it accepts a header of up to 100 MB. These checks come first and say
//! exactly what is wrong: a header length past the file or over [`MAX_HEADER_BYTES`],
//! offsets past the end of the data, a shape whose byte count differs from the tensor's
//! bytes, overlapping tensors, and bytes that belong to no tensor.

use std::collections::{BTreeMap, HashMap};

use safetensors::Dtype;
use serde::Deserialize;

/// The largest header accepted, in bytes. A header lists each tensor in about a hundred
/// bytes, so this allows well over a hundred thousand tensors.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;

/// The header's description of one tensor.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// Checks the layout of the safetensors file `bytes`; the error says what is wrong.
pub(super) fn check_layout(bytes: &[u8]) -> Result<(), String> {
    let header_len = header_length(bytes, bytes.len() as u64)?;
    let (header, data) = bytes[8..].split_at(header_len);
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format!("the header is not a JSON object of tensors: {e}"))?;
    let mut extents = Vec::with_capacity(header.len());
    for (name, value) in header {
        if name == "__metadata__" {
            continue;
        }
        let entry = Entry::deserialize(value).map_err(|e| format!("tensor {name:?}: {e}"))?;
        check_entry(&name, &entry, data.len())?;
        extents.push((entry.data_offsets, name));
    }
    check_coverage(extents, data.len())
}

/// The header length a safetensors file of `file_len` bytes starting with `start` (at
/// least its first 8 bytes) declares, checked against the file and [`MAX_HEADER_BYTES`].
pub(super) fn header_length(start: &[u8], file_len: u64) -> Result<usize, String> {
    let Some(length) = start.first_chunk::<8>() else {
        return Err(format!(
            "{file_len} bytes is too short for the 8-byte header length (empty or truncated file)"
        ));
    };
    let header_len = u64::from_le_bytes(*length);
    if header_len > MAX_HEADER_BYTES {
        return Err(format!(
            "the header claims {header_len} bytes, more than the {MAX_HEADER_BYTES} accepted"
        ));
    }
    let follow = file_len.saturating_sub(8);
    if header_len > follow {
        return Err(format!(
            "the header claims {header_len} bytes but only {follow} follow the length (truncated file?)"
        ));
    }
    Ok(header_len as usize)
}

/// The `__metadata__` of a safetensors header (the JSON text after the length).
pub(super) fn header_metadata(header: &[u8]) -> Result<HashMap<String, String>, String> {
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| format!("the header is not a JSON object of tensors: {e}"))?;
    Ok(header.metadata)
}

/// Checks that `entry`'s offsets lie inside the `data_len` bytes of data and hold exactly
/// the bytes its dtype and shape need.
fn check_entry(name: &str, entry: &Entry, data_len: usize) -> Result<(), String> {
    let [start, end] = entry.data_offsets;
    if end < start {
        return Err(format!(
            "tensor {name:?}: data_offsets [{start}, {end}] end before they start"
        ));
    }
    if end > data_len {
        return Err(format!(
            "tensor {name:?}: data_offsets [{start}, {end}] reach past the {data_len} bytes of \
             tensor data (truncated file?)"
        ));
    }
    let bits = entry
        .shape
        .iter()
        .try_fold(entry.dtype.bitsize(), |bits, &d| bits.checked_mul(d));
    let need = match bits {
        Some(bits) if bits % 8 == 0 && bits / 8 == end - start => return Ok(()),
        Some(bits) if bits % 8 == 0 => format!("{} bytes", bits / 8),
        Some(bits) => format!("{bits} bits, not a whole number of bytes"),
        None => "more bytes than a 64-bit size can count".into(),
    };
    Err(format!(
        "tensor {name:?}: dtype {:?} and shape {:?} need {need}, but data_offsets \
         [{start}, {end}] hold {} bytes",
        entry.dtype,
        entry.shape,
        end - start
    ))
}

/// Checks that the tensors' byte ranges do not overlap and together cover the data.
fn check_coverage(mut extents: Vec<([usize; 2], String)>, data_len: usize) -> Result<(), String> {
    extents.sort();
    let mut covered = 0;
    let mut last = "";
    for ([start, end], name) in &extents {
        if *start < covered {
            return Err(format!(
                "tensors {last:?} (ending at byte {covered}) and {name:?} (bytes {start}..{end}) \
                 overlap"
            ));
        }
        if *start > covered {
            return Err(format!(
                "bytes {covered}..{start} of the tensor data belong to no tensor"
            ));
        }
        covered = *end;
        last = name;
    }
    if covered < data_len {
        return Err(format!(
            "the last {} bytes of the tensor data belong to no tensor",
            data_len - covered
        ));
    }
    Ok(())
}
