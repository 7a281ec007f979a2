//! `.pth` checkpoints, in both formats torch has written:
//!
//! - the zip archive (torch >= 1.6): `<archive>/data.pkl` (the pickle), each storage's
//!   raw little-endian bytes in `<archive>/data/<key>`, and `byteorder`, `version`;
//! - the legacy stream (before): five pickles in a row (torch's magic number, the
//!   protocol version 1001, the system info, the object, the storage keys), then each
//!   storage as an 8-byte element count and its raw bytes.
//!
//! Storages are read one at a time, straight into f32 values: reading costs the
//! tensors plus one storage, never the file's bytes as well. A tensor that is a whole
//! storage takes its values without a copy; views (an offset, strides) and storages
//! shared by several tensors are gathered.

mod legacy;
mod zip;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use petal_tensor::Tensor;

use crate::pickle::{Pickle, TensorSpec};
use crate::storage::Dtype;
use crate::InteropError;

/// Which part of a checkpoint to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions<'a> {
    /// The key path of the state dict in a nested checkpoint, keys separated by `/`
    /// (`state_dict` in `{"state_dict": {...}, "epoch": 3}`); `None`: the checkpoint is
    /// the state dict.
    pub key: Option<&'a str>,
    /// A prefix to remove from the names that have it (`module.` from a
    /// `DataParallel` model, `model.`).
    pub strip_prefix: Option<&'a str>,
}

/// A tensor read from a checkpoint: its values as f32 and the dtype it was saved in
/// (integers are exact up to 2^24).
#[derive(Clone, Debug, PartialEq)]
pub struct TorchTensor {
    /// The values, in the checkpoint's shape and (row-major) order.
    pub tensor: Tensor,
    /// The storage's element type.
    pub dtype: Dtype,
}

/// A checkpoint's tensors by name.
pub type StateDict = BTreeMap<String, TorchTensor>;

/// Reads the state dict of the `.pth` checkpoint at `path` (zip or legacy format).
///
/// Nothing in the file is executed; a pickle that asks for anything but a state dict's
/// parts is an error naming it (`refusing pickle global posix.system in conv.weight`).
/// So is a tensor reaching past its storage, a truncated file, a wrong magic number, or
/// an entry of the chosen dict that is not a tensor.
///
/// ```no_run
/// use std::path::Path;
/// use petal_interop::pth::{read_state_dict, ReadOptions};
/// let options = ReadOptions { key: Some("state_dict"), strip_prefix: Some("module.") };
/// let state = read_state_dict(Path::new("checkpoint.pth"), &options)?;
/// for (name, entry) in &state {
///     println!("{name}: {:?} {:?}", entry.tensor.shape(), entry.dtype);
/// }
/// # Ok::<(), petal_interop::InteropError>(())
/// ```
pub fn read_state_dict(path: &Path, options: &ReadOptions<'_>) -> Result<StateDict, InteropError> {
    let io = |source| InteropError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut magic = Vec::new();
    (&mut file).take(4).read_to_end(&mut magic).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let reader = Reader {
        path,
        length: file.metadata().map_err(io)?.len(),
    };
    if magic == b"PK\x03\x04" {
        zip::read(&reader, file, options)
    } else {
        legacy::read(&reader, file, options)
    }
}

/// The file being read, for errors and bounds.
struct Reader<'a> {
    path: &'a Path,
    length: u64,
}

impl Reader<'_> {
    fn bad(&self, reason: impl Into<String>) -> InteropError {
        InteropError::Checkpoint {
            path: self.path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A pickle from `reader`, its errors prefixed by `what` it is.
    fn pickle(&self, reader: &mut impl Read, what: &str) -> Result<Pickle, InteropError> {
        Pickle::parse(reader).map_err(|e| self.bad(format!("{what}: {e}")))
    }
}

/// The tensors to build, grouped by storage.
struct Plan {
    by_storage: BTreeMap<String, Vec<(String, TensorSpec)>>,
}

impl Plan {
    /// The tensors of the dict `options` picks, renamed.
    fn new(pickle: &Pickle, options: &ReadOptions<'_>) -> Result<Plan, String> {
        let mut by_storage: BTreeMap<String, Vec<(String, TensorSpec)>> = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for (name, spec) in pickle.tensors(options.key)? {
            let name = match options.strip_prefix {
                Some(prefix) => name.strip_prefix(prefix).unwrap_or(&name).to_string(),
                None => name,
            };
            if !names.insert(name.clone()) {
                return Err(format!("two tensors are named {name:?}"));
            }
            by_storage
                .entry(spec.storage.clone())
                .or_default()
                .push((name, spec));
        }
        Ok(Plan { by_storage })
    }

    /// The tensors of one storage, removed from the plan.
    fn take(&mut self, storage: &str) -> Option<Vec<(String, TensorSpec)>> {
        self.by_storage.remove(storage)
    }

    /// An error for the first storage never found, if any.
    fn check_done(&self) -> Result<(), String> {
        match self.by_storage.iter().next() {
            Some((key, wanted)) => Err(format!(
                "storage {key} of tensor {} is missing from the file",
                wanted[0].0
            )),
            None => Ok(()),
        }
    }
}

/// Builds the tensors `wanted` from the values of storage `key` into `out`. Every view
/// is checked against the storage first (it must lie inside it and, not overlapping
/// itself, hold at most as many elements); the last tensor takes the values themselves
/// when it is the whole storage.
fn build_tensors(
    key: &str,
    mut values: Vec<f32>,
    wanted: Vec<(String, TensorSpec)>,
    out: &mut StateDict,
) -> Result<(), String> {
    for (name, spec) in &wanted {
        let fits = spec.view.extent().is_some_and(|end| end <= values.len());
        if !fits {
            return Err(format!(
                "tensor {name} (shape {:?}, offset {}, stride {:?}) reaches past its storage {key}, which holds {} elements",
                spec.view.shape,
                spec.view.offset,
                spec.view.stride,
                values.len()
            ));
        }
        // Inside the storage, only a view that overlaps itself holds more elements.
        let elements = spec
            .view
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d));
        if elements.is_none_or(|n| n > values.len()) {
            return Err(format!(
                "tensor {name} (shape {:?}, stride {:?}) has more elements than its storage {key} ({}): overlapping views (expanded, stride 0) are not read",
                spec.view.shape,
                spec.view.stride,
                values.len()
            ));
        }
    }
    let last = wanted.len().saturating_sub(1);
    for (i, (name, spec)) in wanted.into_iter().enumerate() {
        let data = if i == last && spec.view.is_whole(values.len()) {
            std::mem::take(&mut values)
        } else {
            spec.view.gather(&values)
        };
        let tensor =
            Tensor::from_vec(&spec.view.shape, data).map_err(|e| format!("tensor {name}: {e}"))?;
        out.insert(
            name,
            TorchTensor {
                tensor,
                dtype: spec.dtype,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::View;

    fn spec(name: &str, shape: &[usize], stride: &[usize]) -> (String, TensorSpec) {
        let view = View {
            offset: 0,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        };
        let storage = "0".to_string();
        (
            name.to_string(),
            TensorSpec {
                storage,
                dtype: Dtype::F32,
                view,
            },
        )
    }

    #[test]
    fn overlapping_or_overflowing_views_are_refused() {
        let values = vec![1.0; 4];
        let mut out = StateDict::new();
        // An expanded (stride 0) view would repeat one element 2^40 times.
        let expanded = spec("expanded", &[1 << 20, 1 << 20], &[0, 0]);
        let error = build_tensors("0", values.clone(), vec![expanded], &mut out).unwrap_err();
        assert!(error.contains("overlapping views"), "{error}");
        let overflow = spec("overflow", &[usize::MAX, 2, 0], &[1, 1, 1]);
        assert!(build_tensors("0", values, vec![overflow], &mut out).is_err());
        // Two tensors of one storage: the first gathered, the last takes the values.
        let whole = spec("whole", &[2, 2], &[2, 1]);
        let column = spec("column", &[2], &[2]);
        build_tensors("0", vec![1., 2., 3., 4.], vec![column, whole], &mut out).unwrap();
        assert_eq!(out["column"].tensor.as_slice(), [1., 3.]);
        assert_eq!(out["whole"].tensor.as_slice(), [1., 2., 3., 4.]);
    }
}
