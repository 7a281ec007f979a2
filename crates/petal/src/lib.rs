//! # Petal
//!
//! Convolutional neural networks in Rust, written to be read while learning them. This
//! crate re-exports every Petal crate under one name, and [`prelude`] brings what a
//! typical experiment uses into scope:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`tensor`] | `petal-tensor` | the f32 tensor and its kernels (GEMM, convolution, pooling) |
//! | [`nn`] | `petal-nn` | autodiff tape, layers, `Sequential`/`Graph` models, losses, weights files |
//! | [`optim`] | `petal-optim` | SGD, Adam, AdamW, RMSprop, learning-rate schedules |
//! | [`data`] | `petal-data` | datasets, downloads, MNIST, Oxford flowers, loaders, augmentation |
//! | [`train`] | `petal-train` | `Trainer` (compile and fit), evaluation, metrics, callbacks, history |
//! | [`zoo`] | `petal-zoo` | LeNet-5, the bipyramidal CNN, VGG16, ResNet, MobileNetV2, EfficientNet-Lite0 |
//! | [`doctor`] | `petal` | checks of the environment: cache, mirror, disk, datasets, weights, threads, CPU |
//! | [`viz`] | `petal-viz` | filter grids, feature maps, saliency and Grad-CAM, training curves, confusion matrices |
//!
//! Users who need only a part depend on that crate alone; the names are the same.
//!
//! ```
//! use petal::prelude::*;
//!
//! // A tiny CNN that learns whether the bright pixel is in the left or the right half.
//! let mut model = Sequential::new(&[4, 4, 1], 7)
//!     .add(Conv2dConfig { padding: Padding::Same, activation: Activation::Relu, ..Conv2dConfig::new(4, 3) })?
//!     .add(Pool2dConfig::max(2))?
//!     .add(FlattenConfig::default())?
//!     .add(DenseConfig::new(2))?
//!     .build()?;
//! let (mut images, mut labels) = (Vec::new(), Vec::new());
//! for i in 0..64 {
//!     let (row, col) = (i % 4, (i / 4) % 4);
//!     let mut image = vec![0.0; 16];
//!     image[row * 4 + col] = 1.0;
//!     images.extend(image);
//!     labels.push(usize::from(col >= 2));
//! }
//! let data = InMemoryDataset::new(Tensor::from_vec(&[64, 4, 4, 1], images)?, labels, 2)?;
//! // compile ...
//! let mut trainer = Trainer::new(&mut model, Adam::new(AdamConfig::new(0.05)))
//!     .loss(Loss::SparseCategoricalCrossentropy)
//!     .schedule(CosineDecay::over_training(0.05, 0.1))
//!     .callback(EarlyStopping::new(Monitor::new("val_loss"), 5, true))
//!     .metric(F1Score);
//! // ... and fit.
//! let config = FitConfig { epochs: 30, batch_size: 16, verbose: false, ..FitConfig::default() };
//! let history = trainer.fit(&data, Validation::Split(0.25), &config)?;
//! assert!(history.last("val_f1_score").is_some());
//! let scores = evaluate(&model, Loss::SparseCategoricalCrossentropy, &data, 64)?;
//! assert!(scores.accuracy > 0.9, "accuracy {}", scores.accuracy);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod doctor;

pub use petal_data as data;
pub use petal_nn as nn;
pub use petal_optim as optim;
pub use petal_tensor as tensor;
pub use petal_train as train;
pub use petal_viz as viz;
pub use petal_zoo as zoo;

/// The names a typical experiment uses: tensors and padding, layers and models, losses,
/// optimizers and schedules, datasets and loaders, the trainer with its validation,
/// callbacks and metrics, and the zoo's builders.
pub mod prelude {
    pub use petal_data::{
        BatchLoader, Dataset, ImageDataset, ImageFolder, ImageOptions, InMemoryDataset, Subset,
    };
    pub use petal_nn::layers::{
        Activation, ActivationConfig, AddConfig, BatchNormConfig, ConcatConfig, Conv2dConfig,
        DenseConfig, DepthwiseConv2dConfig, DropoutConfig, FlattenConfig, GlobalAvgPoolConfig,
        Initializer, Pool2dConfig, SeparableConv2dConfig,
    };
    pub use petal_nn::{Graph, Loss, Model, Regularizer, Sequential, Targets, Var};
    pub use petal_optim::{
        Adam, AdamConfig, AdamW, AdamWConfig, CosineDecay, ExponentialDecay, LrSchedule, Optimizer,
        RmsProp, RmsPropConfig, Sgd, SgdConfig, StepDecay,
    };
    pub use petal_tensor::{Padding, Tensor};
    pub use petal_train::callbacks::{
        Callback, CsvLogger, EarlyStopping, ModelCheckpoint, Monitor, ReduceLrOnPlateau,
    };
    pub use petal_train::metrics::{F1Score, Metric, Precision, Recall, TopKAccuracy};
    pub use petal_train::{evaluate, predict, FitConfig, History, Trainer, Validation};
    pub use petal_zoo::{bipyramidal, BipyramidalConfig, Options, Pooling};
}
