//! Pretrained weights from PyTorch-layout safetensors files.
//!
//! A Petal parameter `<layer>/<param>` comes from the file's tensor `<module>.<suffix>`:
//! the source naming (torchvision's or EfficientNet-PyTorch's) maps the layer to its module,
//! and one table maps the parameter to the suffix: `kernel`, `depthwise_kernel` and
//! `gamma` from `weight`, `bias` and `beta` from `bias`, `moving_mean` from
//! `running_mean`, `moving_variance` from `running_var`. Layouts are converted once, at
//! load: convolutions `(out, in, kh, kw)` to HWIO `(kh, kw, in, out)` (depthwise
//! `(c, 1, kh, kw)` to `(kh, kw, 1, c)`), linear `(out, in)` to `(in, out)`. The files'
//! int64 `num_batches_tracked` counters are skipped.

mod catalog;
mod classifier;
mod efficientnet;
mod files;
mod torchvision;

use std::collections::BTreeMap;
use std::path::Path;

use petal_nn::weights::{assign_tensors_mapped, read_tensor_file, WeightsError};
use petal_nn::Model;
use petal_tensor::shape_ops::{permute, reshape};
use petal_tensor::Tensor;

pub use catalog::{
    decode_predictions, read_class_names, Prediction, Preprocessing, PretrainedWeights,
    WeightsFormat, CATALOG,
};
pub use classifier::Classifier;
pub use files::{load_verified, weights_named, WeightsFolder};

use crate::Options;

/// An architecture with a known source of pretrained weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// [`crate::resnet18`], torchvision names.
    ResNet18,
    /// [`crate::resnet50`], torchvision names.
    ResNet50,
    /// [`crate::mobilenet_v2()`], torchvision names.
    MobileNetV2,
    /// [`crate::vgg16`], torchvision names.
    Vgg16,
    /// [`crate::efficientnet_lite0`], EfficientNet-PyTorch names.
    EfficientNetLite0,
}

impl Arch {
    /// Every architecture with pretrained weights, smallest family first.
    pub const ALL: [Arch; 5] = [
        Arch::ResNet18,
        Arch::ResNet50,
        Arch::MobileNetV2,
        Arch::Vgg16,
        Arch::EfficientNetLite0,
    ];

    /// Builds the architecture.
    pub fn build(self, options: &Options) -> petal_nn::Result<Model> {
        match self {
            Arch::ResNet18 => crate::resnet18(options),
            Arch::ResNet50 => crate::resnet50(options),
            Arch::MobileNetV2 => crate::mobilenet_v2(options),
            Arch::Vgg16 => crate::vgg16(options),
            Arch::EfficientNetLite0 => crate::efficientnet_lite0(options),
        }
    }

    /// The first layer of the top stages that fine-tuning unfreezes
    /// ([`crate::transfer::unfreeze_top`]), as in the usual recipes: ResNet's last stage
    /// (`layer4`), VGG16's block 5 (`features.24`, its first convolution), MobileNetV2's
    /// last three stages (`features.14`, the 160-channel stage, onward) and
    /// EfficientNet-Lite0's last three (`block5a`).
    ///
    /// ```
    /// use petal_zoo::pretrained::Arch;
    /// assert_eq!(Arch::ResNet18.fine_tune_from(), "layer4");
    /// ```
    pub fn fine_tune_from(self) -> &'static str {
        match self {
            Arch::ResNet18 | Arch::ResNet50 => "layer4",
            Arch::MobileNetV2 => "features.14",
            Arch::Vgg16 => "features.24",
            Arch::EfficientNetLite0 => "block5a",
        }
    }

    /// The source module of a Petal layer, if it has one.
    fn module(self, layer: &str) -> Option<Module> {
        match self {
            Arch::EfficientNetLite0 => efficientnet::module(layer),
            _ => Some(torchvision::module(self, layer)),
        }
    }

    /// The prefix of the source's classifier tensors, which a model without its top
    /// (`include_top: false`) leaves unused.
    fn classifier_prefix(self) -> &'static str {
        match self {
            Arch::ResNet18 | Arch::ResNet50 => "fc.",
            Arch::MobileNetV2 | Arch::Vgg16 => "classifier.",
            Arch::EfficientNetLite0 => "_fc.",
        }
    }
}

/// Where a Petal layer's tensors come from.
struct Module {
    /// The source module's name (`layer1.0.conv1`).
    name: String,
    /// For a dense layer after a flatten: the channels of the flattened maps, whose
    /// source flattened them in (c, h, w) order where Petal flattens (h, w, c).
    flattened_channels: Option<usize>,
}

/// Petal parameter -> source tensor suffix.
const PARAMS: [(&str, &str); 7] = [
    ("kernel", "weight"),
    ("depthwise_kernel", "weight"),
    ("bias", "bias"),
    ("gamma", "weight"),
    ("beta", "bias"),
    ("moving_mean", "running_mean"),
    ("moving_variance", "running_var"),
];

/// Loads PyTorch-layout pretrained weights of `arch` into `model` (built by
/// [`Arch::build`]). A model without its classifier ignores the file's classifier.
///
/// Either every parameter is replaced, or none is and the error lists every missing
/// source tensor, every unused file tensor and every shape mismatch (shapes in Petal's
/// layout).
pub fn load_pretrained(model: &mut Model, arch: Arch, path: &Path) -> Result<(), WeightsError> {
    assign_pretrained(model, arch, read_pytorch_tensors(path)?, path)
}

/// [`load_pretrained`] with the tensors already read (by their PyTorch names and in
/// PyTorch layout, without the `num_batches_tracked` counters) from `path`, which errors
/// name: the entry point for other checkpoint formats (petal-interop's `.pth` reader).
pub fn assign_pretrained(
    model: &mut Model,
    arch: Arch,
    mut file: BTreeMap<String, Tensor>,
    path: &Path,
) -> Result<(), WeightsError> {
    let uses_classifier = model.store().iter().any(|(_, param)| {
        source_tensor(arch, &param.name)
            .is_some_and(|(source, _)| source.starts_with(arch.classifier_prefix()))
    });
    if !uses_classifier {
        file.retain(|name, _| !name.starts_with(arch.classifier_prefix()));
    }
    assign_tensors_mapped(
        model.store_mut(),
        file,
        path,
        |param| source_tensor(arch, param).map(|(source, _)| source),
        |param, tensor| {
            let flattened_channels = source_tensor(arch, param).and_then(|(_, c)| c);
            to_petal_layout(&tensor, flattened_channels).ok_or(tensor)
        },
    )
}

/// The source tensor of a Petal parameter, with the flattened channels of its module.
fn source_tensor(arch: Arch, param: &str) -> Option<(String, Option<usize>)> {
    let (layer, kind) = param.rsplit_once('/')?;
    let module = arch.module(layer)?;
    let (_, suffix) = PARAMS.iter().find(|(petal, _)| *petal == kind)?;
    Some((
        format!("{}.{suffix}", module.name),
        module.flattened_channels,
    ))
}

/// Converts a PyTorch tensor to Petal's layout by its rank: 4-D convolution kernels
/// `(out, in / groups, kh, kw)` to HWIO, 2-D linear weights `(out, in)` to `(in, out)`
/// (reordering the inputs of a dense layer after a flatten of `flattened_channels`-channel
/// maps from (c, h, w) to Petal's (h, w, c) order), 1-D as they are; `None` for other
/// ranks or when `flattened_channels` does not divide the inputs. ONNX files lay weights
/// out the same way (petal-interop's ONNX import uses it too).
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_zoo::pretrained::to_petal_layout;
/// let linear = Tensor::from_vec(&[1, 4], vec![0., 1., 2., 3.])?; // 2 channels x 2 pixels
/// assert_eq!(to_petal_layout(&linear, Some(2)).unwrap().to_vec(), vec![0., 2., 1., 3.]);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn to_petal_layout(tensor: &Tensor, flattened_channels: Option<usize>) -> Option<Tensor> {
    match (tensor.shape(), flattened_channels) {
        ([_], _) => Some(tensor.clone()),
        ([_, _, _, _], _) => permute(tensor, &[2, 3, 1, 0]).ok(),
        ([_, _], None) => permute(tensor, &[1, 0]).ok(),
        (&[out, inputs], Some(c)) if c > 0 && inputs % c == 0 => {
            let chw = reshape(tensor, &[out, c, inputs / c]).ok()?;
            reshape(&permute(&chw, &[2, 1, 0]).ok()?, &[inputs, out]).ok()
        }
        _ => None,
    }
}

/// The inverse of [`to_petal_layout`]: a Petal tensor in PyTorch's (and ONNX's) layout
/// by its rank: 4-D HWIO kernels to `(out, in / groups, kh, kw)`, 2-D dense kernels
/// `(in, out)` to `(out, in)` (inputs after a flatten of `flattened_channels`-channel maps
/// reordered from Petal's (h, w, c) to (c, h, w)), 1-D as they are; `None` for other
/// ranks or when `flattened_channels` does not divide the inputs.
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_zoo::pretrained::to_pytorch_layout;
/// let dense = Tensor::from_vec(&[4, 1], vec![0., 2., 1., 3.])?; // 2 pixels x 2 channels
/// assert_eq!(to_pytorch_layout(&dense, Some(2)).unwrap().to_vec(), vec![0., 1., 2., 3.]);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn to_pytorch_layout(tensor: &Tensor, flattened_channels: Option<usize>) -> Option<Tensor> {
    match (tensor.shape(), flattened_channels) {
        ([_], _) => Some(tensor.clone()),
        ([_, _, _, _], _) => permute(tensor, &[3, 2, 0, 1]).ok(),
        ([_, _], None) => permute(tensor, &[1, 0]).ok(),
        (&[inputs, out], Some(c)) if c > 0 && inputs % c == 0 => {
            let hwc = reshape(tensor, &[inputs / c, c, out]).ok()?;
            reshape(&permute(&hwc, &[2, 1, 0]).ok()?, &[out, inputs]).ok()
        }
        _ => None,
    }
}

/// Whether a tensor is a batch norm's `num_batches_tracked` counter (of any dtype),
/// which Petal skips.
fn is_counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// Reads every f32 tensor of a PyTorch safetensors file, skipping the counters.
fn read_pytorch_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>, WeightsError> {
    read_tensor_file(path, is_counter).map(|file| file.tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_convert_to_petal_order() {
        // A (2 out, 3 in, 1, 1) conv kernel becomes (1, 1, 3, 2).
        let conv = Tensor::from_vec(&[2, 3, 1, 1], (0..6).map(|v| v as f32).collect()).unwrap();
        let hwio = to_petal_layout(&conv, None).unwrap();
        assert_eq!(hwio.shape(), &[1, 1, 3, 2]);
        assert_eq!(hwio.to_vec(), vec![0., 3., 1., 4., 2., 5.]);
        // A dense layer after flattening 2 channels of 2 pixels: torch input c*2 + p,
        // Petal input p*2 + c.
        let linear = Tensor::from_vec(&[1, 4], vec![0., 1., 2., 3.]).unwrap();
        let flat = to_petal_layout(&linear, Some(2)).unwrap();
        assert_eq!(flat.shape(), &[4, 1]);
        assert_eq!(flat.to_vec(), vec![0., 2., 1., 3.]);
        assert!(to_petal_layout(&Tensor::zeros(&[1, 2, 3]), None).is_none());
    }

    #[test]
    fn the_pytorch_layout_is_the_inverse_of_petal_s() {
        let numbered = |shape: &[usize]| {
            let n = shape.iter().product::<usize>();
            Tensor::from_vec(shape, (0..n).map(|v| v as f32).collect()).unwrap()
        };
        for (shape, channels) in [
            (&[3, 2, 4, 5][..], None),
            (&[3, 2, 4, 5][..], Some(4)),
            (&[12, 5][..], None),
            (&[12, 5][..], Some(3)),
        ] {
            let t = numbered(shape);
            let torch = to_pytorch_layout(&t, channels).unwrap();
            assert_eq!(to_petal_layout(&torch, channels).unwrap(), t, "{shape:?}");
        }
        assert!(to_pytorch_layout(&numbered(&[12, 5]), Some(5)).is_none());
    }

    #[test]
    fn parameters_map_to_source_tensors() {
        let source = |arch, name| source_tensor(arch, name).map(|s| s.0);
        assert_eq!(
            source(Arch::ResNet18, "layer1.0.bn1/moving_variance").as_deref(),
            Some("layer1.0.bn1.running_var")
        );
        assert_eq!(
            source(Arch::EfficientNetLite0, "block2b_dwconv/depthwise_kernel").as_deref(),
            Some("_blocks.2._depthwise_conv.weight")
        );
        assert_eq!(
            source(Arch::EfficientNetLite0, "top_bn/gamma").as_deref(),
            Some("_bn1.weight")
        );
        assert_eq!(source(Arch::EfficientNetLite0, "conv1/kernel"), None);
        assert_eq!(
            source_tensor(Arch::Vgg16, "classifier.0/kernel").and_then(|s| s.1),
            Some(512)
        );
    }
}
