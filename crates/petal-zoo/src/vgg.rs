//! VGG16 as in torchvision (without batch norm).
//!
//! Layer names are torchvision's module names, so a parameter is `<module>/<param>`:
//! convolutions `features.{i}` for i in 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28
//! (each with its ReLU fused, so torchvision's ReLU modules `features.{i+1}` are not
//! layers of their own), max poolings `features.{4,9,16,23,30}`, then `flatten`, the
//! dense layers `classifier.0`, `classifier.3` (ReLU fused) and `classifier.6`, with
//! dropout 0.5 as `classifier.2` and `classifier.5`. Example: `features.28/kernel`,
//! `classifier.6/bias`.
//!
//! torchvision's adaptive average pooling to 7x7 before the classifier is the identity
//! for 224x224 inputs and is left out, so the classifier expects 224x224 inputs (other
//! input sizes change the size of `classifier.0`, as in Keras).

use petal_nn::layers::{
    Activation, Conv2dConfig, DenseConfig, DropoutConfig, FlattenConfig, Pool2dConfig,
};
use petal_nn::{Graph, Model, Result};

use crate::blocks::Family;
use crate::options::Options;

/// Filters of each 3x3 convolution per block; each block ends with a 2x2 max pooling.
const BLOCKS: [&[usize]; 5] = [
    &[64, 64],
    &[128, 128],
    &[256, 256, 256],
    &[512, 512, 512],
    &[512, 512, 512],
];

/// VGG16 (138,357,544 parameters with the ImageNet classifier).
///
/// ```
/// use petal_zoo::{vgg16, Options};
/// let model = vgg16(&Options { include_top: false, input_shape: [32, 32, 3], ..Options::default() })?;
/// assert_eq!(model.output_shape(), &[1, 1, 512]);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub fn vgg16(options: &Options) -> Result<Model> {
    let mut graph = Graph::new(options.seed);
    let mut x = graph.input(&options.input_shape);
    let mut index = 0;
    for block in BLOCKS {
        for &filters in block {
            let conv = Conv2dConfig {
                padding: Family::Torchvision.padding(3),
                activation: Activation::Relu,
                name: Some(format!("features.{index}")),
                ..Conv2dConfig::new(filters, 3)
            };
            x = graph.call(&conv, &[x])?;
            index += 2;
        }
        let pool = Pool2dConfig {
            name: Some(format!("features.{index}")),
            ..Pool2dConfig::max(2)
        };
        x = graph.call(&pool, &[x])?;
        index += 1;
    }
    options.finish(
        graph,
        x,
        |graph, x| {
            let flatten = FlattenConfig {
                name: Some("flatten".into()),
            };
            let mut x = graph.call(&flatten, &[x])?;
            for index in [0, 3] {
                let dense = DenseConfig {
                    activation: Activation::Relu,
                    name: Some(format!("classifier.{index}")),
                    ..DenseConfig::new(4096)
                };
                let dropout = DropoutConfig {
                    name: Some(format!("classifier.{}", index + 2)),
                    ..DropoutConfig::new(0.5)
                };
                x = graph.call(&dense, &[x])?;
                x = graph.call(&dropout, &[x])?;
            }
            Ok(x)
        },
        "classifier.6",
    )
}
