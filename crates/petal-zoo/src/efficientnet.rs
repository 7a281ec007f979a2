//! EfficientNet-Lite0: EfficientNet-B0 without squeeze-excitation, with ReLU6 and a fixed
//! stem and head, as trained in TensorFlow ('same' padding, BatchNorm epsilon 1e-3).
//!
//! Layer names follow Keras' EfficientNet, so a parameter is `<layer>/<param>`: the stem
//! `stem_conv`, `stem_bn`, `stem_activation`; block `b` of stage `s` is `block{s}{b}`
//! (`block1a`, `block2a`, `block2b`, ..., `block7a`: 16 blocks) with the layers
//! `_expand_conv`, `_expand_bn`, `_expand_activation` (when it expands), `_dwconv`, `_bn`,
//! `_activation`, `_project_conv`, `_project_bn` and `_add` (when residual); the head
//! `top_conv`, `top_bn`, `top_activation`; the classifier `avg_pool`, `top_dropout`
//! (0.2) and `predictions`. Example: `block2a_dwconv/depthwise_kernel`,
//! `top_bn/moving_mean`, `predictions/kernel`.

use petal_nn::layers::{Activation, DropoutConfig};
use petal_nn::{Graph, Model, Result};

use crate::blocks::{Family, MbConv, MbConvNames};
use crate::options::{named_global_avg, Options};

const FAMILY: Family = Family::TensorFlow;

/// (repeats, kernel, first stride, expand ratio, output channels) of each stage.
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// The blocks in order, each with its name (`block2b`).
pub(crate) fn blocks() -> Vec<(String, MbConv)> {
    STAGES
        .iter()
        .enumerate()
        .flat_map(
            |(stage, &(repeats, kernel, stride, expand_ratio, filters))| {
                (0..repeats).map(move |repeat| {
                    let letter = char::from(b'a' + repeat as u8);
                    let block = MbConv {
                        expand_ratio,
                        kernel,
                        stride: if repeat == 0 { stride } else { 1 },
                        filters,
                    };
                    (format!("block{}{letter}", stage + 1), block)
                })
            },
        )
        .collect()
}

/// EfficientNet-Lite0 (4,652,008 parameters with the ImageNet classifier). Pretrained
/// weights expect inputs `(pixel - 127) / 128`, see
/// [`crate::pretrained::Preprocessing::EfficientNetLite`].
///
/// ```
/// use petal_zoo::{efficientnet_lite0, Options};
/// let model = efficientnet_lite0(&Options { include_top: false, input_shape: [64, 64, 3], ..Options::default() })?;
/// assert_eq!(model.output_shape(), &[2, 2, 1280]);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub fn efficientnet_lite0(options: &Options) -> Result<Model> {
    let relu6 = Activation::Relu6;
    let mut graph = Graph::new(options.seed);
    let input = graph.input(&options.input_shape);
    let stem = FAMILY.conv("stem_conv", 32, 3, 2);
    let mut x = FAMILY.conv_bn(
        &mut graph,
        input,
        &stem,
        "stem_bn",
        Some(("stem_activation", relu6)),
    )?;
    for (name, block) in blocks() {
        let step = |parts: [&str; 3]| parts.map(|part| format!("{name}_{part}"));
        let names = MbConvNames {
            expand: step(["expand_conv", "expand_bn", "expand_activation"]),
            depthwise: step(["dwconv", "bn", "activation"]),
            project: [format!("{name}_project_conv"), format!("{name}_project_bn")],
            add: format!("{name}_add"),
        };
        x = block.build(FAMILY, &mut graph, x, &names)?;
    }
    let head = FAMILY.conv("top_conv", 1280, 1, 1);
    x = FAMILY.conv_bn(
        &mut graph,
        x,
        &head,
        "top_bn",
        Some(("top_activation", relu6)),
    )?;
    options.finish(
        graph,
        x,
        |graph, x| {
            let x = graph.call(&named_global_avg("avg_pool"), &[x])?;
            let dropout = DropoutConfig {
                name: Some("top_dropout".into()),
                ..DropoutConfig::new(0.2)
            };
            graph.call(&dropout, &[x])
        },
        "predictions",
    )
}
