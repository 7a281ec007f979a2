//! The benchmark workloads, built in Petal exactly as `bench/pytorch_bench.py` builds
//! them in PyTorch.

use petal_nn::layers::{
    Activation, Conv2dConfig, DenseConfig, DropoutConfig, FlattenConfig, Pool2dConfig,
};
use petal_nn::{LayerConfig, Model, Sequential};
use petal_tensor::{Padding, Precision};
use petal_zoo::Options;

/// One benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// The Keras MNIST example CNN, training, batch 128.
    KerasMnistTrain,
    /// The same network, inference, batch 128.
    KerasMnistInfer,
    /// The same network trained on MNIST until 99.0% test accuracy: seconds (and epochs).
    #[value(name = "keras-mnist-to-99")]
    KerasMnistTo99,
    /// The bigger MNIST CNN with 'same' padding, training, batch 128.
    MnistSameTrain,
    /// A flowers CNN on 128x128x3, training, batch 32.
    FlowersTrain,
    /// MobileNetV2 at 224x224, inference, batch 16.
    #[value(name = "mobilenet-v2-infer")]
    MobileNetV2Infer,
    /// ResNet18 at 224x224, inference, batch 16.
    #[value(name = "resnet18-infer")]
    ResNet18Infer,
    /// EfficientNet-Lite0 at 224x224, inference, batch 16.
    #[value(name = "efficientnet-lite0-infer")]
    EfficientNetLite0Infer,
    /// A 2048x2048 fp32 matrix product.
    Gemm2048,
    /// The machine's multiply-add ceiling: register-resident vector multiply-adds on
    /// every thread (no PyTorch side).
    FmaPeak,
    /// Petal's loader on Oxford flowers photos, JPEG decoding every epoch (no PyTorch side).
    FlowersLoaderCold,
    /// The same with decoded photos cached in memory (no PyTorch side).
    FlowersLoaderWarm,
}

impl Workload {
    /// The name both sides use.
    pub fn name(self) -> &'static str {
        match self {
            Workload::KerasMnistTrain => "keras_mnist_train",
            Workload::KerasMnistInfer => "keras_mnist_infer",
            Workload::KerasMnistTo99 => "keras_mnist_to_99",
            Workload::MnistSameTrain => "mnist_same_train",
            Workload::FlowersTrain => "flowers_train",
            Workload::MobileNetV2Infer => "mobilenet_v2_infer",
            Workload::ResNet18Infer => "resnet18_infer",
            Workload::EfficientNetLite0Infer => "efficientnet_lite0_infer",
            Workload::Gemm2048 => "gemm2048",
            Workload::FmaPeak => "fma_peak",
            Workload::FlowersLoaderCold => "flowers_loader_cold",
            Workload::FlowersLoaderWarm => "flowers_loader_warm",
        }
    }

    /// The row name of the workload run in `precision`: its name in f32, with `_bf16`
    /// after it in bf16.
    pub fn row_name(self, precision: Precision) -> String {
        match precision {
            Precision::F32 => self.name().to_string(),
            Precision::Bf16 => format!("{}_bf16", self.name()),
        }
    }

    /// Whether the workload also runs in bf16: the networks timed on random data, and
    /// the multiply-add peak (its bf16 row is `vdpbf16ps`'s ceiling, next to the f32 one);
    /// the time to 99%, GEMM and the loaders run in f32 only.
    pub fn runs_in_bf16(self) -> bool {
        !matches!(
            self,
            Workload::KerasMnistTo99
                | Workload::Gemm2048
                | Workload::FlowersLoaderCold
                | Workload::FlowersLoaderWarm
        )
    }

    /// Every workload, in report order.
    pub fn all() -> [Workload; 12] {
        [
            Workload::KerasMnistTrain,
            Workload::KerasMnistInfer,
            Workload::KerasMnistTo99,
            Workload::MnistSameTrain,
            Workload::FlowersTrain,
            Workload::MobileNetV2Infer,
            Workload::ResNet18Infer,
            Workload::EfficientNetLite0Infer,
            Workload::Gemm2048,
            Workload::FmaPeak,
            Workload::FlowersLoaderCold,
            Workload::FlowersLoaderWarm,
        ]
    }

    /// Whether only Petal runs it (PyTorch has no counterpart in the bench script).
    pub fn petal_only(self) -> bool {
        matches!(
            self,
            Workload::FmaPeak | Workload::FlowersLoaderCold | Workload::FlowersLoaderWarm
        )
    }

    /// What the workload's figure counts.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::Gemm2048 | Workload::FmaPeak => "GFLOP/s",
            Workload::KerasMnistTo99 => "seconds",
            _ => "images/s",
        }
    }

    /// The network initialized from `seed`, its batch size and whether it trains (`None`
    /// for GEMM and the loader).
    pub fn network(self, seed: u64) -> Option<(Model, usize, bool)> {
        let zoo_inference = |build: fn(&Options) -> petal_nn::Result<Model>| {
            let model = build(&Options::default()).expect("the zoo's ImageNet models build");
            Some((model, 16, false))
        };
        let (input, layers, batch, train): (&[usize], Vec<Box<dyn LayerConfig>>, usize, bool) =
            match self {
                Workload::KerasMnistTrain
                | Workload::KerasMnistInfer
                | Workload::KerasMnistTo99 => (
                    &[28, 28, 1],
                    vec![
                        Box::new(relu(32, Padding::Valid)),
                        Box::new(Pool2dConfig::max(2)),
                        Box::new(relu(64, Padding::Valid)),
                        Box::new(Pool2dConfig::max(2)),
                        Box::new(FlattenConfig::default()),
                        Box::new(DropoutConfig::new(0.5)),
                        Box::new(DenseConfig::new(10)),
                    ],
                    128,
                    self != Workload::KerasMnistInfer,
                ),
                Workload::MnistSameTrain => (
                    &[28, 28, 1],
                    vec![
                        Box::new(relu(32, Padding::Same)),
                        Box::new(relu(32, Padding::Same)),
                        Box::new(Pool2dConfig::max(2)),
                        Box::new(relu(64, Padding::Same)),
                        Box::new(relu(64, Padding::Same)),
                        Box::new(Pool2dConfig::max(2)),
                        Box::new(FlattenConfig::default()),
                        Box::new(DenseConfig {
                            activation: Activation::Relu,
                            ..DenseConfig::new(128)
                        }),
                        Box::new(DropoutConfig::new(0.5)),
                        Box::new(DenseConfig::new(10)),
                    ],
                    128,
                    true,
                ),
                Workload::FlowersTrain => return Some((flowers_cnn(128, seed), 32, true)),
                Workload::MobileNetV2Infer => return zoo_inference(petal_zoo::mobilenet_v2),
                Workload::ResNet18Infer => return zoo_inference(petal_zoo::resnet18),
                Workload::EfficientNetLite0Infer => {
                    return zoo_inference(petal_zoo::efficientnet_lite0)
                }
                Workload::Gemm2048
                | Workload::FmaPeak
                | Workload::FlowersLoaderCold
                | Workload::FlowersLoaderWarm => return None,
            };
        Some((build(input, &layers, seed), batch, train))
    }
}

/// The flowers CNN of workload 3 on `side` x `side` RGB images: four 3x3 'same'
/// convolutions (32, 64, 128, 128 filters) each followed by 2x2 max pooling, a dense
/// layer of 128 and 3 classes. `side` must be a multiple of 16.
pub fn flowers_cnn(side: usize, seed: u64) -> Model {
    let mut layers: Vec<Box<dyn LayerConfig>> = Vec::new();
    for filters in [32, 64, 128, 128] {
        layers.push(Box::new(relu(filters, Padding::Same)));
        layers.push(Box::new(Pool2dConfig::max(2)));
    }
    layers.push(Box::new(FlattenConfig::default()));
    layers.push(Box::new(DenseConfig {
        activation: Activation::Relu,
        ..DenseConfig::new(128)
    }));
    layers.push(Box::new(DenseConfig::new(3)));
    build(&[side, side, 3], &layers, seed)
}

/// A 3x3 convolution with `filters` filters and ReLU.
fn relu(filters: usize, padding: Padding) -> Conv2dConfig {
    Conv2dConfig {
        padding,
        activation: Activation::Relu,
        ..Conv2dConfig::new(filters, 3)
    }
}

/// `layers` on `input`, initialized from `seed`.
fn build(input: &[usize], layers: &[Box<dyn LayerConfig>], seed: u64) -> Model {
    let mut model = Sequential::new(input, seed);
    for layer in layers {
        model
            .push(layer.as_ref())
            .expect("the workload networks are valid");
    }
    model.build().expect("valid")
}
