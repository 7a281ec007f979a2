//! Petal models as ONNX files: [`ExportOnnx::export_onnx`].
//!
//! The graph reads one input named `input`, NCHW by default (the layout PyTorch's and
//! most runtimes' models take) or NHWC as Petal's own, and returns `logits` (with the
//! model's final softmax, when it has one); the batch axis is dynamic (`batch`). It
//! runs channels first throughout (see [`translate`]), so an NHWC file differs from an
//! NCHW one by a single Transpose after the input. Batch norms run as
//! `BatchNormalization` with their moving statistics; export a model folded by
//! [`Model::fold_for_inference`] to have them in the convolutions before them.
//! Layers that cannot describe themselves ([`Layer::describe`](petal_nn::Layer::describe),
//! e.g. custom ones) make the export fail, naming the layer.

mod builder;
mod translate;

use std::path::Path;

use petal_nn::{Model, ModelNode};
use prost::Message;

use self::builder::{batched_value, ints};
use self::translate::{Layout, Translator, Value};
use super::proto::{ModelProto, OperatorSetId};
use crate::InteropError;

/// The name of the graph's input.
pub const INPUT_NAME: &str = "input";
/// The name of the graph's output.
pub const OUTPUT_NAME: &str = "logits";

/// The axis order of an exported image model's input (and feature-map output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputLayout {
    /// `(batch, channels, height, width)`, as PyTorch's models take images.
    #[default]
    Nchw,
    /// `(batch, height, width, channels)`, as Petal's models take them.
    Nhwc,
}

/// How [`ExportOnnx::export_onnx`] writes a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    /// The input's axis order (ignored for models of 1-D samples).
    pub layout: InputLayout,
    /// The ONNX operator set, 13 to 21.
    pub opset: i64,
}

impl Default for ExportOptions {
    /// NCHW input, opset 17.
    fn default() -> Self {
        Self {
            layout: InputLayout::Nchw,
            opset: 17,
        }
    }
}

/// Why a model has no ONNX form.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The operator set asked for is outside the range Petal writes.
    #[error("opset {0} is not supported: Petal writes opsets 13 to 21")]
    Opset(i64),
    /// A layer (or the input) cannot be written.
    #[error("layer {layer}: {reason}")]
    Layer {
        /// The layer's name (`input` for the model input).
        layer: String,
        /// What is wrong.
        reason: String,
    },
}

/// Models that can be written as ONNX.
///
/// ```
/// use petal_interop::onnx::{ExportOnnx, ExportOptions};
/// use petal_nn::layers::{Activation, Conv2dConfig, FlattenConfig, DenseConfig};
/// use petal_nn::Sequential;
/// let model = Sequential::new(&[8, 8, 1], 0)
///     .add(Conv2dConfig { activation: Activation::Relu, ..Conv2dConfig::new(4, 3) })?
///     .add(FlattenConfig::default())?
///     .add(DenseConfig::new(10))?
///     .build()?;
/// let onnx = model.to_onnx(&ExportOptions::default())?;
/// let graph = onnx.graph.as_ref().unwrap();
/// let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
/// assert_eq!(ops, ["Conv", "Relu", "Flatten", "Gemm"]);
/// let path = std::env::temp_dir().join("petal-doctest-small.onnx");
/// model.export_onnx(&path, &ExportOptions::default())?;
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ExportOnnx {
    /// The ONNX model, in memory.
    fn to_onnx(&self, options: &ExportOptions) -> Result<ModelProto, ExportError>;

    /// Writes the ONNX model to `path`, atomically (a failed export leaves no file, and an
    /// existing file stays whole until replaced).
    fn export_onnx(&self, path: &Path, options: &ExportOptions) -> Result<(), InteropError> {
        let model = self
            .to_onnx(options)
            .map_err(|source| InteropError::Export {
                path: path.to_path_buf(),
                source,
            })?;
        petal_tensor::fs::write_atomically(path, &model.encode_to_vec()).map_err(|source| {
            InteropError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

impl ExportOnnx for Model {
    fn to_onnx(&self, options: &ExportOptions) -> Result<ModelProto, ExportError> {
        let ir_version = match options.opset {
            13..=18 => 8,
            19..=20 => 9,
            21 => 10,
            other => return Err(ExportError::Opset(other)),
        };
        Ok(ModelProto {
            ir_version,
            opset_import: vec![OperatorSetId {
                domain: String::new(),
                version: options.opset,
            }],
            producer_name: "petal".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(graph(self, options)?),
        })
    }
}

fn layer_error(layer: &str, reason: impl Into<String>) -> ExportError {
    ExportError::Layer {
        layer: layer.to_string(),
        reason: reason.into(),
    }
}

/// The model's graph.
fn graph(model: &Model, options: &ExportOptions) -> Result<super::proto::GraphProto, ExportError> {
    let nodes = model.nodes();
    let output = model.output().index();
    let live = live_nodes(&nodes, output);
    let mut translator = Translator::new(model.store(), options.opset);
    let mut values: Vec<Option<Value>> = vec![None; nodes.len()];
    let (input, first) = graph_input(&mut translator, model.input_shape(), options.layout)?;
    values[0] = Some(first);
    for node in nodes.iter().filter(|n| live[n.id.index()]) {
        let Some(layer) = node.layer else { continue };
        let name = layer.name();
        if [INPUT_NAME, OUTPUT_NAME].contains(&name) {
            return Err(layer_error(
                name,
                "this name is reserved for the graph's input and output",
            ));
        }
        let read = |k: usize| {
            values[node.inputs[k].index()]
                .clone()
                .expect("computed earlier")
        };
        let description = layer.describe().ok_or_else(|| {
            layer_error(
                name,
                format!(
                    "{} layers cannot describe themselves, so they have no ONNX form",
                    layer.kind()
                ),
            )
        })?;
        let inputs: Vec<Value> = (0..node.inputs.len()).map(read).collect();
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|j| nodes[j.index()].shape).collect();
        let y = translator
            .layer(name, &description, &inputs, &shapes)
            .map_err(|reason| layer_error(name, reason))?;
        values[node.id.index()] = Some(y);
    }
    let last = values[output].as_ref().expect("the output is live");
    let mut value = translator.in_petal_order(last);
    let out_shape = model.output_shape();
    let out_dims = match (value.layout, options.layout) {
        (Layout::Maps, InputLayout::Nhwc) => {
            value.name = translator.graph.node(
                "Transpose",
                "output/nhwc",
                &[&value.name],
                vec![ints("perm", &[0, 2, 3, 1])],
            );
            out_shape.to_vec()
        }
        (Layout::Maps, InputLayout::Nchw) => channels_first(out_shape),
        _ => out_shape.to_vec(),
    };
    if value.name == INPUT_NAME {
        translator
            .graph
            .node("Identity", OUTPUT_NAME, &[INPUT_NAME], Vec::new());
    } else {
        translator.graph.rename(&value.name, OUTPUT_NAME);
    }
    Ok(translator
        .graph
        .finish("petal", input, batched_value(OUTPUT_NAME, &out_dims)))
}

/// The graph's input, and the value the first layer reads (transposed to NCHW for an
/// NHWC input).
fn graph_input(
    translator: &mut Translator,
    shape: &[usize],
    layout: InputLayout,
) -> Result<(super::proto::ValueInfoProto, Value), ExportError> {
    let value = |name: String, layout| Value { name, layout };
    match (shape.len(), layout) {
        (1, _) => Ok((
            batched_value(INPUT_NAME, shape),
            value(INPUT_NAME.into(), Layout::Features),
        )),
        (3, InputLayout::Nchw) => Ok((
            batched_value(INPUT_NAME, &channels_first(shape)),
            value(INPUT_NAME.into(), Layout::Maps),
        )),
        (3, InputLayout::Nhwc) => {
            let nchw = translator.graph.node(
                "Transpose",
                "input/nchw",
                &[INPUT_NAME],
                vec![ints("perm", &[0, 3, 1, 2])],
            );
            Ok((batched_value(INPUT_NAME, shape), value(nchw, Layout::Maps)))
        }
        _ => Err(layer_error(
            INPUT_NAME,
            format!("samples of shape {shape:?}: only 1-D samples and (height, width, channels) images export"),
        )),
    }
}

/// `(h, w, c)` as `(c, h, w)`.
fn channels_first(shape: &[usize]) -> Vec<usize> {
    vec![shape[2], shape[0], shape[1]]
}

/// Which nodes the output depends on (folding leaves dead pass-through layers behind).
fn live_nodes(nodes: &[ModelNode], output: usize) -> Vec<bool> {
    let mut live = vec![false; nodes.len()];
    live[output] = true;
    for i in (0..nodes.len()).rev() {
        if live[i] {
            nodes[i].inputs.iter().for_each(|j| live[j.index()] = true);
        }
    }
    live
}
