//! `.pth` checkpoints to safetensors files (`cargo xtask convert`).

use std::collections::HashMap;
use std::path::Path;

use petal_nn::weights::encode_tensors;
use petal_tensor::fs::write_atomically;
use petal_zoo::{Arch, Options};

use crate::pth::{read_state_dict, ReadOptions};
use crate::{load_pth, InteropError};

/// How to convert a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions<'a> {
    /// `Some`: load into this architecture and write its parameters in Petal's names and
    /// layout; `None`: the source's own names and layout, dtypes converted to f32.
    pub arch: Option<Arch>,
    /// Which dict of the checkpoint, and the prefix to strip from its names.
    pub read: ReadOptions<'a>,
    /// Free-form metadata to record in the output's header (none when empty).
    pub metadata: HashMap<String, String>,
}

/// What a conversion wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Converted {
    /// Tensors in the output file.
    pub tensors: usize,
    /// Its size in bytes.
    pub bytes: usize,
}

/// Converts the `.pth` checkpoint `input` (either torch format) to the safetensors file
/// `output`, written atomically (a failed conversion leaves no partial file).
///
/// ```no_run
/// use std::path::Path;
/// use petal_interop::{convert_to_safetensors, ConvertOptions};
/// use petal_zoo::Arch;
/// let options = ConvertOptions { arch: Some(Arch::ResNet18), ..Default::default() };
/// let written = convert_to_safetensors(
///     Path::new("resnet18-f37072fd.pth"),
///     Path::new("resnet18.safetensors"),
///     &options,
/// )?;
/// println!("{} tensors, {} bytes", written.tensors, written.bytes);
/// # Ok::<(), petal_interop::InteropError>(())
/// ```
pub fn convert_to_safetensors(
    input: &Path,
    output: &Path,
    options: &ConvertOptions<'_>,
) -> Result<Converted, InteropError> {
    let metadata = (!options.metadata.is_empty()).then(|| options.metadata.clone());
    let (tensors, encoded) = match options.arch {
        Some(arch) => {
            let mut model = arch.build(&Options::default())?;
            load_pth(&mut model, arch, input, &options.read)?;
            let params = model
                .store()
                .iter()
                .map(|(_, p)| (p.name.as_str(), &p.value));
            (
                model.store().iter().count(),
                encode_tensors(params, metadata),
            )
        }
        None => {
            let state = read_state_dict(input, &options.read)?;
            let tensors = state.iter().map(|(name, t)| (name.as_str(), &t.tensor));
            (state.len(), encode_tensors(tensors, metadata))
        }
    };
    let encoded = encoded.map_err(|reason| InteropError::Checkpoint {
        path: input.to_path_buf(),
        reason: format!("cannot encode as safetensors: {reason}"),
    })?;
    write_atomically(output, &encoded).map_err(|source| InteropError::Io {
        path: output.to_path_buf(),
        source,
    })?;
    Ok(Converted {
        tensors,
        bytes: encoded.len(),
    })
}
