//! ONNX CNNs into Petal models: the graph walked node by node, each ONNX value becoming
//! a constant or a Petal graph node with its layout (ONNX's NCHW seen by Petal as
//! NHWC), the weights converted to Petal's layouts and loaded once the model is built.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use petal_nn::layers::LayerConfig;
use petal_nn::weights::assign_tensors;
use petal_nn::{Graph, Model, NodeId};
use petal_tensor::Tensor;

use super::proto::{DataType, GraphProto, NodeProto, TensorProto, ValueInfoProto};
use super::read::{constant, decode_model, Constant};
use crate::InteropError;

/// How [`import_onnx`] reads a file.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Height and width of the input images where the file leaves them dynamic (the
    /// file's own sizes win where it fixes them).
    pub input_size: Option<[usize; 2]>,
}

/// A model imported from ONNX, with what the file says about its input and output.
pub struct ImportedModel {
    /// The Petal model: NHWC input `(n, h, w, c)` like every Petal model, layers named
    /// after the ONNX nodes' modules (`features.0.0` for torch's
    /// `/features/features.0/features.0.0/Conv`), weights loaded and trainable.
    pub model: Model,
    /// The name of the ONNX graph's input (`input`).
    pub input_name: String,
    /// The ONNX input's shape as the file gives it (NCHW for images), `None` for a
    /// dynamic axis such as the batch.
    pub input_shape: Vec<Option<usize>>,
    /// The name of the ONNX graph's output (`logits`).
    pub output_name: String,
}

/// Reads the ONNX model at `path` into a Petal [`Model`] that predicts what the file
/// computes and can be trained further (freeze its layers with
/// [`Model::set_trainable`], add a new head with [`Model::into_graph`]).
///
/// The file's NCHW tensors become Petal's NHWC: the model takes `(n, h, w, c)` batches,
/// convolution kernels are converted to HWIO and the dense layer after a flatten has its
/// inputs reordered from (c, h, w) to (h, w, c). Operators: Conv (groups, depthwise,
/// strides, dilations, symmetric or not padding), BatchNormalization, Relu, Clip to
/// [0, 6] (ReLU6), Sigmoid, `x * Sigmoid(x)` (swish), HardSwish, Tanh, LeakyRelu,
/// MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul by a constant, Add (of two
/// values, or of a constant bias folded into the layer before), Concat on channels,
/// Flatten, Reshape to `[batch, -1]`, Transpose between NCHW and NHWC, Softmax, Dropout,
/// Identity and Constant, from operator set 11 on. A 4-D output comes out NHWC.
///
/// A file Petal cannot import is one [`InteropError::Onnx`] naming the file and listing
/// every problem: each unsupported operator with its nodes, a missing initializer, a
/// truncated file or a tensor shorter than its shape, external data.
///
/// ```no_run
/// use petal_interop::onnx::{import_onnx, ImportOptions};
/// let imported = import_onnx("mobilenet_v2.onnx".as_ref(), &ImportOptions::default())?;
/// assert_eq!(imported.model.input_shape(), &[224, 224, 3]);
/// assert_eq!(imported.input_shape, [None, Some(3), Some(224), Some(224)]);
/// # Ok::<(), petal_interop::InteropError>(())
/// ```
pub fn import_onnx(path: &Path, options: &ImportOptions) -> Result<ImportedModel, InteropError> {
    let bytes = std::fs::read(path).map_err(|source| InteropError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    import_onnx_bytes(&bytes, path, options)
}

/// [`import_onnx`] of a file's bytes already in memory; `path` names the file in errors.
pub fn import_onnx_bytes(
    bytes: &[u8],
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportedModel, InteropError> {
    let error = |reason: String| InteropError::Onnx {
        path: path.to_path_buf(),
        reason,
    };
    let (graph, opset) = decode_model(bytes).map_err(error)?;
    let unsupported = unsupported_operators(&graph);
    if !unsupported.is_empty() {
        return Err(error(format!(
            "unsupported operators: {}",
            unsupported.join(", ")
        )));
    }
    let (input, initializers) = graph_input(&graph).map_err(error)?;
    let mut importer = Importer::new(&graph, opset);
    let input_shape = importer
        .add_input(input, &initializers, options)
        .map_err(error)?;
    for node in &graph.node {
        importer.node(node);
    }
    let output = importer.output(&graph);
    if !importer.problems.is_empty() {
        let count = importer.problems.len();
        let list = importer.problems.join("; ");
        return Err(error(if count == 1 {
            list
        } else {
            format!("{count} problems: {list}")
        }));
    }
    let output = output.map_err(error)?;
    let Importer {
        graph: petal,
        weights,
        ..
    } = importer;
    let mut model = petal
        .build(output)
        .map_err(|e| error(format!("building the model: {e}")))?;
    assign_tensors(model.store_mut(), weights, path)?;
    Ok(ImportedModel {
        model,
        input_name: input.name.clone(),
        input_shape,
        output_name: graph
            .output
            .first()
            .map(|o| o.name.clone())
            .unwrap_or_default(),
    })
}

/// The operators the importer maps (default domain).
const SUPPORTED: [&str; 23] = [
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Clip",
    "Concat",
    "Constant",
    "Conv",
    "Dropout",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Transpose",
];

/// Every unsupported operator with the nodes that use it, in order of first use:
/// `LSTM (node lstm_1)`, `NonMaxSuppression (nodes nms_1, nms_2)`.
fn unsupported_operators(graph: &GraphProto) -> Vec<String> {
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    for (index, node) in graph.node.iter().enumerate() {
        let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
        if default_domain && SUPPORTED.contains(&node.op_type.as_str()) {
            continue;
        }
        let op = if default_domain {
            node.op_type.clone()
        } else {
            format!("{}.{}", node.domain, node.op_type)
        };
        let name = display_name(node, index);
        match found.iter_mut().find(|(o, _)| *o == op) {
            Some((_, nodes)) => nodes.push(name),
            None => found.push((op, vec![name])),
        }
    }
    found
        .into_iter()
        .map(|(op, nodes)| {
            let noun = if nodes.len() == 1 { "node" } else { "nodes" };
            format!("{op} ({noun} {})", nodes.join(", "))
        })
        .collect()
}

/// A node's name for messages: its own, or its position when it has none.
pub(super) fn display_name(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        node.name.clone()
    }
}

/// The initializers by name.
type Initializers<'g> = HashMap<&'g str, &'g TensorProto>;

/// The graph's one real input (inputs that are also initializers are weights, as older
/// exporters listed them) and the initializers by name.
fn graph_input(graph: &GraphProto) -> Result<(&ValueInfoProto, Initializers<'_>), String> {
    let initializers: HashMap<&str, _> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains_key(i.name.as_str()))
        .collect();
    match inputs.as_slice() {
        [input] => Ok((*input, initializers)),
        _ => Err(format!(
            "the graph has {} inputs ({}); Petal models take exactly one",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// How an ONNX value's axes relate to the Petal node holding it (batch axis first in
/// both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// ONNX `(n, c, h, w)`, Petal `(n, h, w, c)`.
    Nchw,
    /// ONNX `(n, h, w, c)`, Petal the same.
    Nhwc,
    /// ONNX `(n, c, 1, 1)` after a global pooling, Petal `(n, c)`.
    Pooled,
    /// ONNX `(n, c * h * w)` flattened in (c, h, w) order, Petal `(n, h * w * c)` in
    /// (h, w, c) order: a dense layer reading it reorders its inputs.
    Flat {
        /// The channels of the flattened maps.
        channels: usize,
    },
    /// ONNX `(n, f)`, Petal the same.
    Vector,
}

/// An ONNX value held by a Petal graph node.
#[derive(Clone, Debug)]
pub(super) struct Feature {
    /// The node.
    pub(super) node: NodeId,
    /// How its axes relate to the ONNX value's.
    pub(super) layout: Layout,
    /// The bias parameter of the layer whose linear output this is, which a following
    /// Add of a constant can fold into.
    pub(super) bias: Option<String>,
}

impl Feature {
    /// A value of `layout` at `node`, not foldable.
    pub(super) fn new(node: NodeId, layout: Layout) -> Self {
        Self {
            node,
            layout,
            bias: None,
        }
    }
}

/// What an ONNX value is to the importer.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// A constant (initializer or Constant node).
    Const(Constant),
    /// A tensor computed by the Petal graph.
    Feature(Feature),
    /// `Sigmoid(x)`, not yet a layer: `x * Sigmoid(x)` becomes one swish layer, any
    /// other use a sigmoid layer named `layer`.
    Sigmoid {
        /// `x`.
        input: Feature,
        /// The name for a sigmoid layer.
        layer: String,
    },
    /// An initializer that could not be read (reported when a node uses it).
    Unreadable(String),
    /// Produced by a node that failed (already reported).
    Failed,
}

/// Largest number of values per sample any imported tensor may have (256 MB of f32).
const MAX_SAMPLE_VALUES: usize = 1 << 26;

/// Whether a per-sample shape has at most [`MAX_SAMPLE_VALUES`] values.
fn fits(shape: &[usize]) -> bool {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .is_some_and(|n| n <= MAX_SAMPLE_VALUES)
}

/// The walk over the ONNX graph.
pub(super) struct Importer<'g> {
    /// The ONNX graph's nodes.
    nodes: &'g [NodeProto],
    /// The Petal graph being built.
    pub(super) graph: Graph,
    /// The default operator set's version.
    pub(super) opset: i64,
    /// Every ONNX value seen so far, by name.
    values: HashMap<String, Value>,
    /// The indices of the nodes reading each value, once per input that reads it.
    consumers: HashMap<&'g str, Vec<usize>>,
    /// The graph's outputs.
    outputs: &'g [ValueInfoProto],
    /// The values Constant nodes produce.
    constant_outputs: HashSet<&'g str>,
    /// Petal parameter name -> value, in Petal layout.
    pub(super) weights: BTreeMap<String, Tensor>,
    /// Layer names taken.
    names: HashSet<String>,
    /// Every problem found, `node <name> (<op>): <what>`.
    pub(super) problems: Vec<String>,
    /// Nodes walked so far.
    index: usize,
}

impl<'g> Importer<'g> {
    fn new(graph: &'g GraphProto, opset: i64) -> Self {
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, node) in graph.node.iter().enumerate() {
            for input in &node.input {
                consumers.entry(input).or_default().push(index);
            }
        }
        let constant_outputs = graph
            .node
            .iter()
            .filter(|n| n.op_type == "Constant")
            .flat_map(|n| n.output.iter().map(String::as_str))
            .collect();
        Self {
            nodes: &graph.node,
            graph: Graph::new(0),
            opset,
            values: HashMap::new(),
            consumers,
            outputs: &graph.output,
            constant_outputs,
            weights: BTreeMap::new(),
            names: HashSet::new(),
            problems: Vec::new(),
            index: 0,
        }
    }

    /// Declares the Petal input for the ONNX `input` and records the initializers;
    /// returns the ONNX input's shape.
    fn add_input(
        &mut self,
        input: &ValueInfoProto,
        initializers: &Initializers<'_>,
        options: &ImportOptions,
    ) -> Result<Vec<Option<usize>>, String> {
        for (name, tensor) in initializers {
            let value = match constant(tensor, name) {
                Ok(c) => Value::Const(c),
                Err(reason) => Value::Unreadable(reason),
            };
            self.values.insert(name.to_string(), value);
        }
        let tensor_type = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .ok_or_else(|| format!("input {} is not a tensor", input.name))?;
        if tensor_type.elem_type != DataType::Float as i32 {
            return Err(format!(
                "input {} has element type {}; Petal models take float32",
                input.name, tensor_type.elem_type
            ));
        }
        let dims: Vec<Option<usize>> = tensor_type
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| {
                        d.dim_value
                            .and_then(|v| usize::try_from(v).ok())
                            .filter(|&v| v > 0)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let fixed = |axis: usize, what: &str| {
            dims[axis].ok_or_else(|| {
                format!(
                    "input {} leaves its {what} axis dynamic; give it with ImportOptions::input_size",
                    input.name
                )
            })
        };
        // An input only ever transposed to NCHW is NHWC already.
        let nhwc = dims.len() == 4 && self.only_transposed_to_nchw(&input.name);
        let (shape, layout) = match dims.len() {
            4 => {
                let (c, h, w) = if nhwc { (3, 1, 2) } else { (1, 2, 3) };
                let size = |axis: usize, i: usize, what: &str| match options.input_size {
                    Some(size) if dims[axis].is_none() => Ok(size[i]),
                    _ => fixed(axis, what),
                };
                let (height, width) = (size(h, 0, "height")?, size(w, 1, "width")?);
                let channels = fixed(c, "channel")?;
                let layout = if nhwc { Layout::Nhwc } else { Layout::Nchw };
                (vec![height, width, channels], layout)
            }
            2 => (vec![fixed(1, "feature")?], Layout::Vector),
            n => {
                return Err(format!(
                    "input {} has {n} axes; Petal imports images (n, c, h, w) and vectors (n, f)",
                    input.name
                ))
            }
        };
        if !fits(&shape) {
            return Err(format!(
                "input {} of shape {shape:?} is too large",
                input.name
            ));
        }
        let node = self.graph.input(&shape);
        self.values.insert(
            input.name.clone(),
            Value::Feature(Feature::new(node, layout)),
        );
        Ok(dims)
    }

    /// The nodes reading `value`, once per input that reads it.
    fn consumers(&self, value: &str) -> impl Iterator<Item = &'g NodeProto> + '_ {
        let nodes = self.nodes;
        self.consumers
            .get(value)
            .into_iter()
            .flatten()
            .map(move |&index| &nodes[index])
    }

    /// Whether every reader of `value` is a Transpose to NCHW (`perm = [0, 3, 1, 2]`).
    fn only_transposed_to_nchw(&self, value: &str) -> bool {
        let mut readers = self.consumers(value).peekable();
        readers.peek().is_some()
            && readers.all(|n| {
                n.op_type == "Transpose"
                    && super::read::Attributes(n).ints("perm") == Some(&[0, 3, 1, 2])
            })
    }

    /// Maps one node, recording a problem (and failed outputs) when it cannot.
    fn node(&mut self, node: &NodeProto) {
        let index = self.index;
        self.index += 1;
        let mut failed = false;
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            match self.values.get(input) {
                Some(Value::Failed) => failed = true,
                Some(Value::Unreadable(reason)) => {
                    let reason = reason.clone();
                    self.problem(node, index, reason);
                    failed = true;
                }
                Some(_) => {}
                None => {
                    self.problem(
                        node,
                        index,
                        format!(
                            "input {input} is neither an initializer, the graph's input nor an \
                             earlier node's output (a missing initializer?)"
                        ),
                    );
                    failed = true;
                }
            }
        }
        let outputs = if failed {
            None
        } else {
            match self.map_node(node) {
                Ok(value) => Some(value),
                Err(reason) => {
                    self.problem(node, index, reason);
                    None
                }
            }
        };
        let value = outputs.unwrap_or(Value::Failed);
        if let Some(first) = node.output.first() {
            self.values.insert(first.clone(), value);
        }
    }

    fn problem(&mut self, node: &NodeProto, index: usize, reason: String) {
        self.problems.push(format!(
            "node {} ({}): {reason}",
            display_name(node, index),
            node.op_type
        ));
    }

    /// The value named by the node's `i`-th input, `None` when omitted.
    pub(super) fn input(&self, node: &NodeProto, i: usize) -> Option<&Value> {
        node.input
            .get(i)
            .filter(|name| !name.is_empty())
            .and_then(|name| self.values.get(name))
    }

    /// The node's `i`-th input as a Petal value (a pending sigmoid becomes its layer).
    pub(super) fn feature(&mut self, node: &NodeProto, i: usize) -> Result<Feature, String> {
        let name = node.input.get(i).cloned().unwrap_or_default();
        match self.values.get(&name).cloned() {
            Some(Value::Feature(f)) => Ok(f),
            Some(Value::Sigmoid { input, layer }) => {
                let config = petal_nn::layers::ActivationConfig {
                    activation: petal_nn::layers::Activation::Sigmoid,
                    name: Some(layer),
                };
                let node = self.call(&config, &[input.node])?;
                let feature = Feature::new(node, input.layout);
                self.values.insert(name, Value::Feature(feature.clone()));
                Ok(feature)
            }
            Some(Value::Const(_)) => Err(format!(
                "input {i} ({name}) is a constant where Petal needs a computed value"
            )),
            _ => Err(format!("input {i} ({name}) is missing")),
        }
    }

    /// The node's `i`-th input as a constant, `None` when omitted.
    pub(super) fn constant(&self, node: &NodeProto, i: usize) -> Result<Option<Constant>, String> {
        match self.input(node, i) {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some(c.clone())),
            Some(_) => Err(format!(
                "input {i} ({}) must be a constant (an initializer or a Constant node's output)",
                node.input[i]
            )),
        }
    }

    /// The node's `i`-th input as float values, required.
    pub(super) fn weight(&self, node: &NodeProto, i: usize, what: &str) -> Result<Tensor, String> {
        match self.constant(node, i)? {
            Some(Constant::Float(t)) => Ok(t),
            Some(Constant::Int(..)) => Err(format!(
                "the {what} ({}) is not a float tensor",
                node.input[i]
            )),
            None => Err(format!("the {what} (input {i}) is missing")),
        }
    }

    /// How many node inputs and graph outputs read `value`.
    pub(super) fn readers(&self, value: &str) -> usize {
        let outputs = self.outputs.iter().filter(|o| o.name == value).count();
        self.consumers.get(value).map_or(0, Vec::len) + outputs
    }

    /// Whether the only reader of the node's output is an Add of a constant, which a
    /// bias can take: the layer then gets one.
    pub(super) fn bias_follows(&self, node: &NodeProto) -> bool {
        let Some(output) = node.output.first() else {
            return false;
        };
        if self.readers(output) != 1 {
            return false;
        }
        let is_constant = |value: &String| {
            matches!(self.values.get(value), Some(Value::Const(_)))
                || self.constant_outputs.contains(value.as_str())
        };
        self.consumers(output)
            .any(|n| n.op_type == "Add" && n.input.iter().any(|i| i != output && is_constant(i)))
    }

    /// Calls `config` on `inputs`, checking the output's size.
    pub(super) fn call(
        &mut self,
        config: &dyn LayerConfig,
        inputs: &[NodeId],
    ) -> Result<NodeId, String> {
        let node = self.graph.call(config, inputs).map_err(|e| e.to_string())?;
        let shape = self.graph.shape(node);
        if !fits(shape) {
            return Err(format!("its output {shape:?} is too large"));
        }
        Ok(node)
    }

    /// A unique layer name for `node`: the module path torch's exporter puts in node
    /// names (`/features/features.0/features.0.0/Conv` -> `features.0.0`), else the node
    /// name, else the operator; numbered when taken.
    pub(super) fn layer_name(&mut self, node: &NodeProto) -> String {
        let parts: Vec<&str> = node.name.split('/').filter(|p| !p.is_empty()).collect();
        let base = match parts.as_slice() {
            [] => node.op_type.to_lowercase(),
            [name] => name.to_string(),
            [.., module, _] => module.to_string(),
        };
        let mut name = base.clone();
        let mut n = 0;
        while !self.names.insert(name.clone()) {
            n += 1;
            name = format!("{base}_{n}");
        }
        name
    }

    /// The graph's output node, materializing a pending sigmoid.
    fn output(&mut self, graph: &GraphProto) -> Result<NodeId, String> {
        let [output] = graph.output.as_slice() else {
            return Err(format!(
                "the graph has {} outputs; Petal models have exactly one",
                graph.output.len()
            ));
        };
        let probe = NodeProto {
            input: vec![output.name.clone()],
            ..NodeProto::default()
        };
        match self.values.get(&output.name) {
            Some(Value::Feature(_) | Value::Sigmoid { .. }) => Ok(self.feature(&probe, 0)?.node),
            Some(Value::Failed) => Err("the output could not be computed".into()),
            Some(_) => Err(format!("output {} is a constant", output.name)),
            None => Err(format!("output {} is produced by no node", output.name)),
        }
    }
}
