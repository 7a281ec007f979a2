//! Each built-in layer as ONNX nodes, in channels-first layout.
//!
//! Petal's feature maps are NHWC; ONNX's convolutions and pools are NCHW. The graph runs
//! NCHW from its input on (one Transpose at the input for NHWC files): weights take
//! PyTorch's layouts ([`to_pytorch_layout`]), concatenation joins axis 1, and a Flatten
//! of maps larger than 1x1 yields the values channels first, which the next Dense layer
//! absorbs by reordering its inputs, so
//! the graph has no Transpose between its layers. Only where a flattened value meets
//! anything else is it put back in Petal's order (a Reshape, a Transpose, a Flatten).

use std::collections::HashMap;

use petal_nn::layers::{Activation, ConvDescription, LayerDescription, PoolKind};
use petal_nn::ParamStore;
use petal_tensor::conv::conv2d_output_shape;
use petal_zoo::pretrained::to_pytorch_layout;

use super::builder::{float, int, ints, GraphBuilder};

/// How a value's axes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// `(n, features)`, in Petal's order.
    Features,
    /// `(n, c, h, w)`: Petal's `(h, w, c)` maps, channels first.
    Maps,
    /// `(n, c * h * w)`: maps flattened channels first, where Petal's order is `(h, w, c)`.
    FlattenedMaps([usize; 3]),
}

/// A value of the graph: its name and layout.
#[derive(Clone, Debug)]
pub(super) struct Value {
    pub name: String,
    pub layout: Layout,
}

/// Writes layers into a graph, reading their weights from the store.
pub(super) struct Translator<'a> {
    pub graph: GraphBuilder,
    store: &'a ParamStore,
    /// The opset written (HardSwish is an operator from opset 14).
    opset: i64,
    /// Flattened maps already put back in Petal's order, by the flattened value's name.
    reordered: HashMap<String, Value>,
    /// The initializers holding ReLU6's bounds, once a ReLU6 wrote them.
    relu6_bounds: Option<[String; 2]>,
}

type Outcome = Result<Value, String>;

impl<'a> Translator<'a> {
    pub fn new(store: &'a ParamStore, opset: i64) -> Self {
        Self {
            graph: GraphBuilder::default(),
            store,
            opset,
            reordered: HashMap::new(),
            relu6_bounds: None,
        }
    }

    /// The nodes of the layer `name` described by `layer`, reading `inputs` whose
    /// per-sample shapes (Petal's) are `shapes`.
    pub fn layer(
        &mut self,
        name: &str,
        layer: &LayerDescription,
        inputs: &[Value],
        shapes: &[&[usize]],
    ) -> Outcome {
        let one = || match (inputs, shapes) {
            ([x], [shape]) => Ok((x.clone(), *shape)),
            _ => Err(format!("takes one input, has {}", inputs.len())),
        };
        match layer {
            LayerDescription::Conv2d(conv) => {
                let (x, shape) = one()?;
                self.conv(name, conv, &x, shape)
            }
            LayerDescription::SeparableConv2d {
                depthwise,
                pointwise,
            } => {
                let (x, shape) = one()?;
                let first = (format!("{name}/depthwise"), depthwise);
                self.two_convs(first, (name, pointwise), &x, shape)
            }
            LayerDescription::ExpandDepthwise { expand, depthwise } => {
                let (x, shape) = one()?;
                let first = (format!("{name}/expand"), expand);
                self.two_convs(first, (name, depthwise), &x, shape)
            }
            LayerDescription::Dense {
                kernel,
                bias,
                activation,
            } => {
                let (x, _) = one()?;
                let flattened_channels = match x.layout {
                    Layout::Features => None,
                    Layout::FlattenedMaps([_, _, c]) => Some(c),
                    Layout::Maps => return Err("expects 1-D samples, got feature maps".into()),
                };
                // (out, in), read with transB.
                let out_in = to_pytorch_layout(self.store.value(*kernel), flattened_channels)
                    .ok_or("the kernel cannot be reordered for the flattened maps")?;
                let kernel =
                    self.graph
                        .floats(&format!("{name}/kernel"), out_in.shape(), out_in.as_slice());
                let mut operands = vec![x.name.as_str(), kernel.as_str()];
                let bias = bias.map(|b| self.weight(&format!("{name}/bias"), b));
                operands.extend(bias.as_deref());
                let y = self
                    .graph
                    .node("Gemm", name, &operands, vec![int("transB", 1)]);
                Ok(self.activation(name, *activation, features(y), false))
            }
            LayerDescription::BatchNorm {
                gamma,
                beta,
                moving_mean,
                moving_variance,
                epsilon,
            } => {
                let (x, _) = one()?;
                let x = self.in_petal_order(&x);
                let operands = [
                    ("gamma", gamma),
                    ("beta", beta),
                    ("moving_mean", moving_mean),
                    ("moving_variance", moving_variance),
                ]
                .map(|(what, &id)| self.weight(&format!("{name}/{what}"), id));
                let mut all = vec![x.name.as_str()];
                all.extend(operands.iter().map(String::as_str));
                let y = self.graph.node(
                    "BatchNormalization",
                    name,
                    &all,
                    vec![float("epsilon", *epsilon)],
                );
                Ok(Value {
                    name: y,
                    layout: x.layout,
                })
            }
            LayerDescription::Activation(activation) => {
                let (x, _) = one()?;
                Ok(self.activation(name, *activation, x, true))
            }
            LayerDescription::Pool { kind, spec } => {
                let (x, shape) = one()?;
                let [h, w, _] = spatial(shape)?;
                maps(&x)?;
                let pads = spec.padding.pads([h, w], spec.window, spec.stride, [1, 1]);
                let mut attributes = vec![
                    ints("kernel_shape", &spec.window),
                    ints("strides", &spec.stride),
                    ints("pads", &pads),
                ];
                let op = match kind {
                    PoolKind::Max => "MaxPool",
                    _ => {
                        // Petal's averages leave the padding out.
                        attributes.push(int("count_include_pad", 0));
                        "AveragePool"
                    }
                };
                let y = self.graph.node(op, name, &[&x.name], attributes);
                Ok(maps_value(y))
            }
            LayerDescription::GlobalAvgPool => {
                let (x, _) = one()?;
                maps(&x)?;
                let pooled = format!("{name}/pool");
                self.graph
                    .node("GlobalAveragePool", &pooled, &[&x.name], Vec::new());
                let y = self
                    .graph
                    .node("Flatten", name, &[&pooled], vec![int("axis", 1)]);
                Ok(features(y))
            }
            LayerDescription::Add { activation } => {
                let sum = self.add(name, inputs)?;
                Ok(self.activation(name, *activation, sum, false))
            }
            LayerDescription::Concat => {
                let inputs: Vec<Value> = match inputs.iter().all(|v| v.layout == Layout::Maps) {
                    true => inputs.to_vec(),
                    false => inputs.iter().map(|v| self.in_petal_order(v)).collect(),
                };
                let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
                let y = self
                    .graph
                    .node("Concat", name, &names, vec![int("axis", 1)]);
                Ok(Value {
                    name: y,
                    layout: inputs[0].layout,
                })
            }
            LayerDescription::Flatten => {
                let (x, shape) = one()?;
                if x.layout != Layout::Maps {
                    return Ok(x);
                }
                let [h, w, c] = spatial(shape)?;
                let y = self
                    .graph
                    .node("Flatten", name, &[&x.name], vec![int("axis", 1)]);
                Ok(Value {
                    name: y,
                    layout: match h * w {
                        1 => Layout::Features,
                        _ => Layout::FlattenedMaps([h, w, c]),
                    },
                })
            }
            LayerDescription::Dropout { .. } | LayerDescription::Folded => Ok(one()?.0),
        }
    }

    /// Two convolutions one after the other (a separable one, or a folded 1x1 and
    /// depthwise pair): `first` named `(name, conv)` reads `x` of per-sample `shape`.
    fn two_convs(
        &mut self,
        (first_name, first): (String, &ConvDescription),
        (name, second): (&str, &ConvDescription),
        x: &Value,
        shape: &[usize],
    ) -> Outcome {
        let mid = self.conv(&first_name, first, x, shape)?;
        let [h, w, c] = spatial(shape)?;
        let kernel_shape = self.store.value(first.kernel).shape();
        let mid_shape = conv2d_output_shape(&[1, h, w, c], kernel_shape, &first.spec)
            .map_err(|e| e.to_string())?;
        self.conv(name, second, &mid, &mid_shape[1..])
    }

    /// A convolution and its activation.
    fn conv(&mut self, name: &str, conv: &ConvDescription, x: &Value, shape: &[usize]) -> Outcome {
        maps(x)?;
        let [h, w, _] = spatial(shape)?;
        let oihw = to_pytorch_layout(self.store.value(conv.kernel), None)
            .filter(|k| k.ndim() == 4)
            .ok_or("the kernel is not 4-D")?;
        let [kh, kw] = [oihw.shape()[2], oihw.shape()[3]];
        let kernel = self
            .graph
            .floats(&format!("{name}/kernel"), oihw.shape(), oihw.as_slice());
        let bias = conv.bias.map(|b| self.weight(&format!("{name}/bias"), b));
        let mut operands = vec![x.name.as_str(), kernel.as_str()];
        operands.extend(bias.as_deref());
        let spec = &conv.spec;
        let attributes = vec![
            ints("kernel_shape", &[kh, kw]),
            ints("strides", &spec.stride),
            ints("dilations", &spec.dilation),
            int("group", spec.groups as i64),
            ints(
                "pads",
                &spec
                    .padding
                    .pads([h, w], [kh, kw], spec.stride, spec.dilation),
            ),
        ];
        let y = self.graph.node("Conv", name, &operands, attributes);
        Ok(self.activation(name, conv.activation, maps_value(y), false))
    }

    /// `activation` applied to `x`: as the node `name` when it is the layer itself
    /// (`own_layer`), else as `name/<function>` after the layer's main node.
    fn activation(
        &mut self,
        name: &str,
        activation: Activation,
        x: Value,
        own_layer: bool,
    ) -> Value {
        let node_name = |function: &str| match own_layer {
            true => name.to_string(),
            false => format!("{name}/{function}"),
        };
        let y = match activation {
            Activation::Linear => return x,
            Activation::Relu => self
                .graph
                .node("Relu", &node_name("relu"), &[&x.name], Vec::new()),
            Activation::Relu6 => {
                let graph = &mut self.graph;
                let [low, high] = self.relu6_bounds.get_or_insert_with(|| {
                    [("relu6_min", 0.0), ("relu6_max", 6.0)]
                        .map(|(bound, value)| graph.floats(bound, &[], &[value]))
                });
                self.graph.node(
                    "Clip",
                    &node_name("relu6"),
                    &[&x.name, low, high],
                    Vec::new(),
                )
            }
            Activation::Sigmoid => {
                self.graph
                    .node("Sigmoid", &node_name("sigmoid"), &[&x.name], Vec::new())
            }
            Activation::Tanh => self
                .graph
                .node("Tanh", &node_name("tanh"), &[&x.name], Vec::new()),
            // The channels (Petal's last axis) are axis 1 in both layouts.
            Activation::Softmax => self.graph.node(
                "Softmax",
                &node_name("softmax"),
                &[&x.name],
                vec![int("axis", 1)],
            ),
            Activation::Swish => {
                let swish = node_name("swish");
                let sigmoid = self.graph.node(
                    "Sigmoid",
                    &format!("{swish}/sigmoid"),
                    &[&x.name],
                    Vec::new(),
                );
                self.graph
                    .node("Mul", &swish, &[&x.name, &sigmoid], Vec::new())
            }
            Activation::HardSwish if self.opset >= 14 => self.graph.node(
                "HardSwish",
                &node_name("hard_swish"),
                &[&x.name],
                Vec::new(),
            ),
            // Before opset 14: x * HardSigmoid(x) with HardSwish's slope and offset.
            Activation::HardSwish => {
                let hard_swish = node_name("hard_swish");
                let gate = self.graph.node(
                    "HardSigmoid",
                    &format!("{hard_swish}/hard_sigmoid"),
                    &[&x.name],
                    vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)],
                );
                self.graph
                    .node("Mul", &hard_swish, &[&x.name, &gate], Vec::new())
            }
            Activation::LeakyRelu(alpha) => self.graph.node(
                "LeakyRelu",
                &node_name("leaky_relu"),
                &[&x.name],
                vec![float("alpha", alpha)],
            ),
        };
        Value {
            name: y,
            layout: x.layout,
        }
    }

    /// The sum of `inputs`, one `Add` per input after the first.
    fn add(&mut self, name: &str, inputs: &[Value]) -> Outcome {
        let inputs: Vec<Value> = match inputs.iter().all(|v| v.layout == inputs[0].layout) {
            true => inputs.to_vec(),
            false => inputs.iter().map(|v| self.in_petal_order(v)).collect(),
        };
        let Some((first, rest)) = inputs.split_first().filter(|(_, rest)| !rest.is_empty()) else {
            return Err("needs at least two inputs".into());
        };
        let mut sum = first.name.clone();
        for (k, x) in rest.iter().enumerate() {
            let node_name = match k + 2 == inputs.len() {
                true => name.to_string(),
                false => format!("{name}/{}", k + 1),
            };
            sum = self
                .graph
                .node("Add", &node_name, &[&sum, &x.name], Vec::new());
        }
        Ok(Value {
            name: sum,
            layout: first.layout,
        })
    }

    /// `x` with flattened maps back in Petal's `(h, w, c)` order; other values as they are.
    pub fn in_petal_order(&mut self, x: &Value) -> Value {
        let Layout::FlattenedMaps([h, w, c]) = x.layout else {
            return x.clone();
        };
        if let Some(done) = self.reordered.get(&x.name) {
            return done.clone();
        }
        let name = &x.name;
        let shape = self
            .graph
            .int64s(&format!("{name}/chw_shape"), &[0, c as i64, (h * w) as i64]);
        let chw = self.graph.node(
            "Reshape",
            &format!("{name}/chw"),
            &[name, &shape],
            Vec::new(),
        );
        let hwc = self.graph.node(
            "Transpose",
            &format!("{name}/hwc"),
            &[&chw],
            vec![ints("perm", &[0, 2, 1])],
        );
        let flat = self.graph.node(
            "Flatten",
            &format!("{name}/hwc_flat"),
            &[&hwc],
            vec![int("axis", 1)],
        );
        let value = features(flat);
        self.reordered.insert(x.name.clone(), value.clone());
        value
    }

    /// A parameter as an initializer, as stored.
    fn weight(&mut self, name: &str, id: petal_nn::ParamId) -> String {
        let value = self.store.value(id);
        self.graph.floats(name, value.shape(), value.as_slice())
    }
}

fn features(name: String) -> Value {
    Value {
        name,
        layout: Layout::Features,
    }
}

fn maps_value(name: String) -> Value {
    Value {
        name,
        layout: Layout::Maps,
    }
}

/// Fails unless `x` holds feature maps.
fn maps(x: &Value) -> Result<(), String> {
    match x.layout {
        Layout::Maps => Ok(()),
        _ => Err("expects (height, width, channels) feature maps, got 1-D samples".into()),
    }
}

/// A per-sample `(h, w, c)` shape.
fn spatial(shape: &[usize]) -> Result<[usize; 3], String> {
    <[usize; 3]>::try_from(shape)
        .map_err(|_| format!("expects (height, width, channels) inputs, got {shape:?}"))
}
