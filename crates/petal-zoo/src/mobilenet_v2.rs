//! MobileNetV2 (width 1.0) as in torchvision.
//!
//! Layer names are torchvision's module names, so a parameter is `<module>/<param>`:
//! the stem `features.0.0` (conv), `features.0.1` (batch norm), `features.0.2` (ReLU6);
//! inverted residual block `i` (1..=17) `features.{i}.conv.{j}` with, when it expands,
//! `conv.0.{0,1,2}` (1x1 conv, BN, ReLU6), then the depthwise `conv.{o}.{0,1,2}`, the
//! projection `conv.{o+1}` and its batch norm `conv.{o+2}` (`o` = 1 when it expands, else
//! 0), and `features.{i}.add` for the residual sum; the last 1x1 conv `features.18.{0,1,2}`;
//! the top `avgpool`, `classifier.0` (dropout 0.2) and `classifier.1` (dense). Example:
//! `features.2.conv.1.0/depthwise_kernel`, `features.2.conv.3/moving_variance`.

use petal_nn::layers::{Activation, DropoutConfig};
use petal_nn::{Graph, Model, Result};

use crate::blocks::{Family, MbConv, MbConvNames};
use crate::options::{named_global_avg, Options};

const FAMILY: Family = Family::Torchvision;

/// (expand ratio, output channels, repeats, first stride) of each stage.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// MobileNetV2 (3,504,872 parameters with the ImageNet classifier).
///
/// ```
/// use petal_zoo::{mobilenet_v2, Options, Pooling};
/// let options = Options { include_top: false, pooling: Pooling::Avg, input_shape: [64, 64, 3], ..Options::default() };
/// assert_eq!(mobilenet_v2(&options)?.output_shape(), &[1280]);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub fn mobilenet_v2(options: &Options) -> Result<Model> {
    let mut graph = Graph::new(options.seed);
    let input = graph.input(&options.input_shape);
    let relu6 = Some(("features.0.2", Activation::Relu6));
    let stem = FAMILY.conv("features.0.0", 32, 3, 2);
    let mut x = FAMILY.conv_bn(&mut graph, input, &stem, "features.0.1", relu6)?;
    let mut index = 1;
    for &(expand_ratio, filters, repeats, first_stride) in &STAGES {
        for repeat in 0..repeats {
            let block = MbConv {
                expand_ratio,
                kernel: 3,
                stride: if repeat == 0 { first_stride } else { 1 },
                filters,
            };
            x = block.build(
                FAMILY,
                &mut graph,
                x,
                &block_names(index, expand_ratio != 1),
            )?;
            index += 1;
        }
    }
    let last = FAMILY.conv(&format!("features.{index}.0"), 1280, 1, 1);
    let bn = format!("features.{index}.1");
    let relu6 = format!("features.{index}.2");
    x = FAMILY.conv_bn(&mut graph, x, &last, &bn, Some((&relu6, Activation::Relu6)))?;
    options.finish(
        graph,
        x,
        |graph, x| {
            let x = graph.call(&named_global_avg("avgpool"), &[x])?;
            let dropout = DropoutConfig {
                name: Some("classifier.0".into()),
                ..DropoutConfig::new(0.2)
            };
            graph.call(&dropout, &[x])
        },
        "classifier.1",
    )
}

fn block_names(index: usize, expands: bool) -> MbConvNames {
    let p = format!("features.{index}.conv");
    let o = usize::from(expands);
    let step = |j: usize| [0, 1, 2].map(|k| format!("{p}.{j}.{k}"));
    MbConvNames {
        expand: step(0),
        depthwise: step(o),
        project: [format!("{p}.{}", o + 1), format!("{p}.{}", o + 2)],
        add: format!("features.{index}.add"),
    }
}
