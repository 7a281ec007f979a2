//! Saving and loading a [`ParamStore`] as safetensors, by parameter name.
//!
//! Loading bounds-checks the file's layout first (see [`MAX_HEADER_BYTES`]), then checks
//! the whole file before changing anything: every missing, unused and
//! mis-shaped tensor is reported at once, and on any error the store is left as it was.
//! Saving writes a temporary file beside the target, syncs it and renames it over the
//! target, so an interrupted save never leaves a half-written weights file behind.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use petal_tensor::fs::write_atomically;
use petal_tensor::Tensor;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::ParamStore;

mod layout;

pub use layout::MAX_HEADER_BYTES;

/// Why weights could not be saved or loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file, or holds a tensor Petal cannot read.
    #[error("{path}: not a readable safetensors weights file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file's tensors do not match the model's parameters.
    #[error("{path}: the weights do not match the model:{}", describe(.missing, .unused, .mismatched))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Model parameters the file does not have.
        missing: Vec<String>,
        /// Tensors in the file the model does not have.
        unused: Vec<String>,
        /// Tensors whose shape differs: (name, model shape, file shape).
        mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
}

fn describe(
    missing: &[String],
    unused: &[String],
    mismatched: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut text = String::new();
    if !missing.is_empty() {
        text += &format!(
            "\n  missing from the file ({}): {}",
            missing.len(),
            missing.join(", ")
        );
    }
    if !unused.is_empty() {
        text += &format!(
            "\n  in the file but not in the model ({}): {}",
            unused.len(),
            unused.join(", ")
        );
    }
    for (name, model, file) in mismatched {
        text += &format!("\n  {name}: the model has shape {model:?}, the file {file:?}");
    }
    text
}

/// Writes every parameter (trainable or not) as an f32 tensor under its name.
pub fn save_weights(store: &ParamStore, path: &Path) -> Result<(), WeightsError> {
    let tensors = store.iter().map(|(_, p)| (p.name.as_str(), &p.value));
    let encoded = encode_tensors(tensors, None).map_err(|reason| WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    })?;
    write_atomically(path, &encoded).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The bytes of a safetensors file holding `tensors` as f32 under their names, with an
/// optional free-form metadata map; the error says why the header could not be built.
pub fn encode_tensors<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    let bytes: Vec<(&str, Vec<u8>, &[usize])> = tensors
        .into_iter()
        .map(|(name, t)| {
            let data = t.as_slice().iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, data, t.shape())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            TensorView::new(Dtype::F32, shape.to_vec(), data).map(|view| (*name, view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    safetensors::serialize(views, metadata).map_err(|e| e.to_string())
}

/// A safetensors file decoded to f32 tensors, with its metadata.
#[derive(Debug, Default)]
pub struct TensorFile {
    /// The tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The header's free-form metadata.
    pub metadata: HashMap<String, String>,
}

/// Reads every tensor of a safetensors file as f32, with the file's metadata. Tensors
/// whose name `skip` accepts are passed over whatever their type; any other tensor that
/// is not f32 is an error naming the file and the tensor.
pub fn read_tensor_file(
    path: &Path,
    skip: impl Fn(&str) -> bool,
) -> Result<TensorFile, WeightsError> {
    let bytes = fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_tensor_file(&bytes, path, skip)
}

/// The free-form metadata of the safetensors file at `path`, read from its header alone
/// (a few kilobytes, whatever the file's size); the header's length is checked against
/// the file as when reading the tensors.
///
/// ```
/// use std::collections::HashMap;
/// use petal_nn::weights::{encode_tensors, read_metadata};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("w.safetensors");
/// let metadata = HashMap::from([("source".to_string(), "torchvision".to_string())]);
/// std::fs::write(&path, encode_tensors(std::iter::empty(), Some(metadata.clone()))?)?;
/// assert_eq!(read_metadata(&path)?, metadata);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, WeightsError> {
    use std::io::Read;
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let format = |reason: String| WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut start = Vec::with_capacity(8);
    file.by_ref().take(8).read_to_end(&mut start).map_err(io)?;
    let header_len = layout::header_length(&start, file_len).map_err(format)?;
    let mut header = vec![0; header_len];
    file.read_exact(&mut header).map_err(io)?;
    layout::header_metadata(&header).map_err(format)
}

/// [`read_tensor_file`] on the bytes of a file already read; `path` names it in errors.
pub fn decode_tensor_file(
    bytes: &[u8],
    path: &Path,
    skip: impl Fn(&str) -> bool,
) -> Result<TensorFile, WeightsError> {
    let format = |reason: String| WeightsError::Format {
        path: path.to_path_buf(),
        reason,
    };
    layout::check_layout(bytes).map_err(format)?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| format(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format(e.to_string()))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        if skip(&name) {
            continue;
        }
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            other => {
                return Err(format(format!(
                    "tensor {name:?} has dtype {other:?}; Petal reads f32 tensors"
                )))
            }
        };
        let tensor = Tensor::from_vec(view.shape(), values)
            .map_err(|e| format(format!("tensor {name:?}: {e}")))?;
        tensors.insert(name, tensor);
    }
    Ok(TensorFile {
        tensors,
        metadata: header.metadata().clone().unwrap_or_default(),
    })
}

/// Reads every tensor of a safetensors file as f32, by name.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>, WeightsError> {
    read_tensor_file(path, |_| false).map(|file| file.tensors)
}

/// Loads the file's tensors into the store by name. Either every parameter is replaced,
/// or (on any missing, unused or mis-shaped tensor) none is and all problems are reported.
pub fn load_weights(store: &mut ParamStore, path: &Path) -> Result<(), WeightsError> {
    assign_tensors(store, read_tensors(path)?, path)
}

/// Sets every parameter of `store` from the tensor of the same name in `tensors` (read
/// from `path`, which errors name). Either every parameter is replaced, or (on any
/// missing, unused or mis-shaped tensor) none is and all problems are reported.
pub fn assign_tensors(
    store: &mut ParamStore,
    tensors: BTreeMap<String, Tensor>,
    path: &Path,
) -> Result<(), WeightsError> {
    assign_tensors_mapped(
        store,
        tensors,
        path,
        |param| Some(param.to_string()),
        |_, t| Ok(t),
    )
}

/// [`assign_tensors`] for files that name and lay out tensors their own way (pretrained
/// weights from another framework): `source(param)` is the file's name for the
/// parameter `param` (`None`: no file tensor can hold it, reported as missing), and
/// `convert(param, tensor)` turns the file's tensor into the parameter's layout, or gives
/// it back as `Err` when it cannot. Errors name the file's tensors. Either every
/// parameter is replaced, or none is and every missing, unused and mis-shaped tensor is
/// reported at once (shapes after conversion where it succeeded).
///
/// ```
/// use std::collections::BTreeMap;
/// use std::path::Path;
/// use petal_nn::weights::{assign_tensors_mapped, WeightsError};
/// use petal_nn::ParamStore;
/// use petal_tensor::{shape_ops::permute, Tensor};
/// let mut store = ParamStore::new();
/// let kernel = store.add("dense/kernel", Tensor::zeros(&[3, 2]), true)?;
/// // A PyTorch-style file: `fc.weight` laid out (out, in).
/// let file = BTreeMap::from([("fc.weight".to_string(), Tensor::ones(&[2, 3]))]);
/// let source = |param: &str| param.strip_prefix("dense/").map(|_| "fc.weight".to_string());
/// let transpose = |_: &str, t: Tensor| permute(&t, &[1, 0]).map_err(|_| t);
/// assign_tensors_mapped(&mut store, file.clone(), Path::new("fc.safetensors"), source, transpose)?;
/// assert_eq!(store.value(kernel).shape(), &[3, 2]);
/// assert_eq!(store.value(kernel).to_vec(), vec![1.0; 6]);
/// // Without the conversion the shapes do not match, and nothing changes.
/// let err = assign_tensors_mapped(&mut store, file, Path::new("fc.safetensors"), source, |_, t| Ok(t));
/// assert!(matches!(err, Err(WeightsError::Mismatch { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn assign_tensors_mapped(
    store: &mut ParamStore,
    mut tensors: BTreeMap<String, Tensor>,
    path: &Path,
    source: impl Fn(&str) -> Option<String>,
    convert: impl Fn(&str, Tensor) -> Result<Tensor, Tensor>,
) -> Result<(), WeightsError> {
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let mut updates = Vec::new();
    for (id, param) in store.iter() {
        let Some(name) = source(&param.name) else {
            missing.push(format!("{} (no tensor in the file for it)", param.name));
            continue;
        };
        let Some(tensor) = tensors.remove(&name) else {
            missing.push(name);
            continue;
        };
        match convert(&param.name, tensor) {
            Ok(t) if t.shape() == param.value.shape() => updates.push((id, t)),
            Ok(t) | Err(t) => {
                mismatched.push((name, param.value.shape().to_vec(), t.shape().to_vec()))
            }
        }
    }
    let unused: Vec<String> = tensors.into_keys().collect();
    if !(missing.is_empty() && unused.is_empty() && mismatched.is_empty()) {
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            missing,
            unused,
            mismatched,
        });
    }
    for (id, t) in updates {
        store.set_value(id, t).expect("shape checked above");
    }
    Ok(())
}
