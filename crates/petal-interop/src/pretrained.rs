//! The zoo's catalog entries published as torchvision `.pth` checkpoints: fetched,
//! verified and converted once to safetensors in the weights cache, and loaded from a
//! `.pth` given by hand (`cargo xtask download weights`, `cargo xtask classify --weights`).

use std::path::{Path, PathBuf};

use petal_data::download::DatasetProgress;
use petal_zoo::pretrained::{
    Classifier, Preprocessing, PretrainedWeights, WeightsFolder, WeightsFormat,
};

use crate::load::is_checkpoint;
use crate::onnx::{import_onnx, ImportOptions};
use crate::{convert_to_safetensors, load_arch, ConvertOptions, Converted, InteropError};

/// Fetches `entries` into the weights cache (`<cache_root>/weights/`) as
/// [`WeightsFolder::fetch`] does, then converts each published `.pth` to the
/// safetensors file Petal loads ([`convert_published`]) and removes the `.pth`. Later
/// calls find the conversion, verify it and fetch nothing. Returns the folder.
///
/// ```no_run
/// use petal_data::download::DataConfig;
/// use petal_interop::fetch_weights;
/// use petal_zoo::pretrained::{weights_named, WeightsFolder};
/// let folder = WeightsFolder::from_env(DataConfig::from_env("datasets/cache"));
/// let cache = fetch_weights(&folder, &[weights_named("resnet18")?], None)?;
/// assert!(cache.join("resnet18-f37072fd.safetensors").is_file());
/// # Ok::<(), petal_interop::InteropError>(())
/// ```
pub fn fetch_weights(
    folder: &WeightsFolder,
    entries: &[&PretrainedWeights],
    progress: Option<DatasetProgress>,
) -> Result<PathBuf, InteropError> {
    let cache = folder.fetch(entries, progress)?;
    for entry in entries {
        let published = cache.join(entry.file_name);
        // Absent when the conversion was already there and verified.
        if entry.format == WeightsFormat::TorchvisionPth && published.is_file() {
            let (converted, _) = entry.files_in(&cache);
            convert_published(entry, &published, &converted)?;
            folder.remove_published(entry)?;
        }
    }
    Ok(cache)
}

/// Converts `entry`'s published checkpoint at `published` (checked against the catalog's
/// sha256 first) to the safetensors file `output`, written atomically: the
/// checkpoint's own names and PyTorch layout in f32, with its file name and sha256 in
/// the metadata, which is how the zoo verifies the conversion later.
pub fn convert_published(
    entry: &PretrainedWeights,
    published: &Path,
    output: &Path,
) -> Result<Converted, InteropError> {
    let options = ConvertOptions {
        metadata: entry.provenance(published)?,
        ..ConvertOptions::default()
    };
    convert_to_safetensors(published, output, &options)
}

/// [`Classifier::load`], taking the weights from a `.pth` checkpoint (torchvision's
/// names) as well as from safetensors: `weights` ending in `.pth` or `.pt` must be the
/// catalog's published file (its sha256), and are read without converting anything.
///
/// ```no_run
/// use petal_data::download::DataConfig;
/// use petal_interop::load_classifier;
/// use petal_zoo::pretrained::{weights_named, WeightsFolder};
/// let folder = WeightsFolder::from_env(DataConfig::from_env("datasets/cache"));
/// let pth = std::path::Path::new("resnet18-f37072fd.pth");
/// let classifier = load_classifier(weights_named("resnet18")?, &folder, Some(pth))?;
/// let (_, top5) = classifier.classify("coffee.png".as_ref(), 5)?;
/// # Ok::<(), petal_interop::InteropError>(())
/// ```
pub fn load_classifier(
    entry: &'static PretrainedWeights,
    folder: &WeightsFolder,
    weights: Option<&Path>,
) -> Result<Classifier, InteropError> {
    match weights {
        Some(path) if is_checkpoint(path) => {
            if !entry.verify_published(path)? {
                return Err(entry.wrong_weights(path).into());
            }
            Ok(Classifier::new(
                entry,
                load_arch(entry.arch, path)?,
                folder,
            )?)
        }
        _ => Ok(Classifier::load(entry, folder, weights)?),
    }
}

/// A classifier of the ONNX model at `path` ([`import_onnx`]) for 224x224 RGB photos
/// prepared with torchvision's ImageNet transform (another one through
/// [`Classifier::with_preprocessing`]); a file
/// that leaves the image size dynamic is imported at 224x224. A 1000-class output is
/// named with the catalog's ImageNet class names from `folder`, any other `class 0`,
/// `class 1`, ... (`cargo xtask classify --model model.onnx`).
///
/// ```no_run
/// use petal_data::download::DataConfig;
/// use petal_interop::load_onnx_classifier;
/// use petal_zoo::pretrained::WeightsFolder;
/// let folder = WeightsFolder::from_env(DataConfig::from_env("datasets/cache"));
/// let classifier = load_onnx_classifier("mobilenet_v2.onnx".as_ref(), &folder)?;
/// let (_, top5) = classifier.classify("coffee.png".as_ref(), 5)?;
/// # Ok::<(), petal_interop::InteropError>(())
/// ```
pub fn load_onnx_classifier(
    path: &Path,
    folder: &WeightsFolder,
) -> Result<Classifier, InteropError> {
    let options = ImportOptions {
        input_size: Some([224, 224]),
    };
    let model = import_onnx(path, &options)?.model;
    if model.input_shape() != [224, 224, 3] {
        return Err(InteropError::Onnx {
            path: path.to_path_buf(),
            reason: format!(
                "the model takes {:?} (height, width, channels) inputs; photos are prepared \
                 as 224x224 RGB",
                model.input_shape()
            ),
        });
    }
    let names = match model.output_shape() {
        [1000] => folder.imagenet_class_names()?,
        shape => (0..shape.iter().product())
            .map(|class| format!("class {class}"))
            .collect(),
    };
    Ok(Classifier::from_model(
        model,
        names,
        Preprocessing::IMAGENET,
    ))
}
