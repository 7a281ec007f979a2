//! ResNet18 and ResNet50 as in torchvision (ResNet v1.5: a bottleneck block strides in
//! its 3x3 convolution).
//!
//! Layer names are torchvision's module names, so a parameter is `<module>/<param>`:
//! `conv1/kernel`, `bn1/gamma`, `layer1.0.conv1/kernel`, `layer2.0.downsample.0/kernel`,
//! `layer2.0.downsample.1/moving_mean`, `fc/kernel`, `fc/bias`. Layers without parameters
//! are `relu`, `maxpool`, `layer{s}.{b}.relu{i}` (after `bn{i}`), `layer{s}.{b}.add`,
//! `layer{s}.{b}.relu` (after the sum) and `avgpool`.

use petal_nn::layers::{Activation, Pool2dConfig};
use petal_nn::{Graph, Model, NodeId, Result};

use crate::blocks::{activate, add, channels, Family};
use crate::options::{named_global_avg, Options};

const FAMILY: Family = Family::Torchvision;

/// The residual block of a ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// Two 3x3 convolutions (ResNet18/34).
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet50 and deeper).
    Bottleneck,
}

/// ResNet18 (11,689,512 parameters with the ImageNet classifier).
///
/// ```
/// use petal_zoo::{resnet18, Options};
/// let model = resnet18(&Options { include_top: false, input_shape: [64, 64, 3], ..Options::default() })?;
/// assert_eq!(model.output_shape(), &[2, 2, 512]);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub fn resnet18(options: &Options) -> Result<Model> {
    resnet(options, Block::Basic, [2, 2, 2, 2])
}

/// ResNet50 (25,557,032 parameters with the ImageNet classifier).
pub fn resnet50(options: &Options) -> Result<Model> {
    resnet(options, Block::Bottleneck, [3, 4, 6, 3])
}

fn resnet(options: &Options, block: Block, depths: [usize; 4]) -> Result<Model> {
    let mut graph = Graph::new(options.seed);
    let input = graph.input(&options.input_shape);
    let stem = FAMILY.conv("conv1", 64, 7, 2);
    let mut x = FAMILY.conv_bn(
        &mut graph,
        input,
        &stem,
        "bn1",
        Some(("relu", Activation::Relu)),
    )?;
    let maxpool = Pool2dConfig {
        strides: Some([2, 2]),
        padding: FAMILY.padding(3),
        name: Some("maxpool".into()),
        ..Pool2dConfig::max(3)
    };
    x = graph.call(&maxpool, &[x])?;
    for (stage, &depth) in depths.iter().enumerate() {
        for index in 0..depth {
            let stride = if stage > 0 && index == 0 { 2 } else { 1 };
            let prefix = format!("layer{}.{index}", stage + 1);
            x = residual_block(&mut graph, x, block, &prefix, 64 << stage, stride)?;
        }
    }
    options.finish(
        graph,
        x,
        |graph, x| graph.call(&named_global_avg("avgpool"), &[x]),
        "fc",
    )
}

/// One residual block named `prefix` (`layer2.0`): its convolutions `prefix.conv{i}`,
/// batch norms `prefix.bn{i}`, and a 1x1 `prefix.downsample.{0,1}` shortcut when the
/// shape changes.
fn residual_block(
    graph: &mut Graph,
    x: NodeId,
    block: Block,
    prefix: &str,
    width: usize,
    stride: usize,
) -> Result<NodeId> {
    // (kernel, stride, filters) of each convolution.
    let convs = match block {
        Block::Basic => vec![(3, stride, width), (3, 1, width)],
        Block::Bottleneck => vec![(1, 1, width), (3, stride, width), (1, 1, 4 * width)],
    };
    let out_channels = convs.last().map_or(width, |c| c.2);
    let mut body = x;
    for (i, &(kernel, stride, filters)) in convs.iter().enumerate() {
        let n = i + 1;
        let conv = FAMILY.conv(&format!("{prefix}.conv{n}"), filters, kernel, stride);
        let relu = format!("{prefix}.relu{n}");
        let activation = (n < convs.len()).then_some((relu.as_str(), Activation::Relu));
        body = FAMILY.conv_bn(graph, body, &conv, &format!("{prefix}.bn{n}"), activation)?;
    }
    let shortcut = if stride != 1 || channels(graph, x) != out_channels {
        let conv = FAMILY.conv(&format!("{prefix}.downsample.0"), out_channels, 1, stride);
        FAMILY.conv_bn(graph, x, &conv, &format!("{prefix}.downsample.1"), None)?
    } else {
        x
    };
    let sum = add(graph, shortcut, body, &format!("{prefix}.add"))?;
    activate(graph, sum, &format!("{prefix}.relu"), Activation::Relu)
}
