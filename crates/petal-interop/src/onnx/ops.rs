//! Each ONNX operator as Petal layers: attributes checked (anything Petal cannot do is
//! an error saying what), weights converted to Petal's layouts.

use petal_nn::layers::{
    Activation, ActivationConfig, AddConfig, BatchNormConfig, ConcatConfig, Conv2dConfig,
    DenseConfig, DepthwiseConv2dConfig, FlattenConfig, GlobalAvgPoolConfig, Pool2dConfig, PoolKind,
};
use petal_tensor::shape_ops::permute;
use petal_tensor::{Padding, Tensor};
use petal_zoo::pretrained::to_petal_layout;

use super::import::{Feature, Importer, Layout, Value};
use super::proto::NodeProto;
use super::read::{constant, Attributes, Constant};

/// Largest kernel, stride, dilation or padding accepted.
const MAX_WINDOW: i64 = 1 << 16;

impl Importer<'_> {
    /// The value of the node's first output.
    pub(super) fn map_node(&mut self, node: &NodeProto) -> Result<Value, String> {
        let attributes = Attributes(node);
        match node.op_type.as_str() {
            "Constant" => constant_node(&attributes),
            "Identity" | "Dropout" => self.pass_through(node),
            "Conv" => self.conv(node, &attributes),
            "BatchNormalization" => self.batch_norm(node, &attributes),
            "Relu" => self.activation(node, Activation::Relu),
            "Tanh" => self.activation(node, Activation::Tanh),
            "HardSwish" => self.activation(node, Activation::HardSwish),
            "LeakyRelu" => {
                let alpha = attributes.float("alpha", 0.01);
                self.activation(node, Activation::LeakyRelu(alpha))
            }
            "Clip" => self.clip(node),
            "Sigmoid" => Ok(Value::Sigmoid {
                input: self.feature(node, 0)?,
                layer: self.layer_name(node),
            }),
            "Softmax" => self.softmax(node, &attributes),
            "Mul" => self.swish(node),
            "MaxPool" | "AveragePool" => self.pool(node, &attributes),
            "GlobalAveragePool" => {
                let x = self.image(node, 0)?;
                let config = GlobalAvgPoolConfig {
                    name: Some(self.layer_name(node)),
                };
                let pooled = self.call(&config, &[x.node])?;
                Ok(Value::Feature(Feature::new(pooled, Layout::Pooled)))
            }
            "Gemm" => self.gemm(node, &attributes),
            "MatMul" => self.dense(node, None, None),
            "Add" => self.add(node),
            "Concat" => self.concat(node, &attributes),
            "Flatten" => match attributes.int("axis", 1) {
                1 => self.flatten(node),
                axis => Err(format!(
                    "axis {axis}: only a flatten from axis 1 (per sample) is supported"
                )),
            },
            "Reshape" => self.reshape(node),
            "Transpose" => self.transpose(node, &attributes),
            other => Err(format!("operator {other} is not supported")),
        }
    }

    /// Dropout and Identity: the input itself (Dropout's mask output is not kept).
    fn pass_through(&mut self, node: &NodeProto) -> Result<Value, String> {
        if node
            .output
            .get(1)
            .is_some_and(|mask| self.readers(mask) > 0)
        {
            return Err("Dropout's mask output is read; Petal's dropout has none".into());
        }
        match self.input(node, 0) {
            Some(Value::Const(c)) => Ok(Value::Const(c.clone())),
            _ => Ok(Value::Feature(self.feature(node, 0)?)),
        }
    }

    /// The node's `i`-th input as an NCHW image.
    fn image(&mut self, node: &NodeProto, i: usize) -> Result<Feature, String> {
        let x = self.feature(node, i)?;
        match x.layout {
            Layout::Nchw => Ok(x),
            other => Err(format!(
                "{} expects NCHW images, its input is {}",
                node.op_type,
                describe(other)
            )),
        }
    }

    /// An activation layer on the node's input, keeping its layout.
    fn activation(&mut self, node: &NodeProto, activation: Activation) -> Result<Value, String> {
        let x = self.feature(node, 0)?;
        let config = ActivationConfig {
            activation,
            name: Some(self.layer_name(node)),
        };
        let y = self.call(&config, &[x.node])?;
        Ok(Value::Feature(Feature::new(y, x.layout)))
    }

    /// Clip to [0, 6] (ReLU6) or [0, inf) (ReLU).
    fn clip(&mut self, node: &NodeProto) -> Result<Value, String> {
        let bound = |c: Option<Constant>, which: &str| match c {
            None => Ok(None),
            Some(Constant::Float(t)) if t.len() == 1 => Ok(Some(t.as_slice()[0])),
            Some(_) => Err(format!("the {which} bound is not one float")),
        };
        let min = bound(self.constant(node, 1)?, "lower")?;
        let max = bound(self.constant(node, 2)?, "upper")?;
        match (min, max) {
            (Some(0.0), Some(6.0)) => self.activation(node, Activation::Relu6),
            (Some(0.0), None) => self.activation(node, Activation::Relu),
            (min, max) => Err(format!(
                "Clip to [{}, {}]: only [0, 6] (ReLU6) and [0, inf) (ReLU) map to Petal activations",
                min.map_or("-inf".into(), |v| v.to_string()),
                max.map_or("inf".into(), |v| v.to_string())
            )),
        }
    }

    /// Softmax over the channels (the last axis in Petal).
    fn softmax(&mut self, node: &NodeProto, attributes: &Attributes<'_>) -> Result<Value, String> {
        let x = self.feature(node, 0)?;
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = attributes.int("axis", default);
        let over_channels = match x.layout {
            Layout::Vector | Layout::Flat { .. } => axis == 1 || axis == -1,
            // (n, c, 1, 1): before opset 13 axis 1 also covers just the channels.
            Layout::Pooled => axis == 1,
            Layout::Nchw => {
                axis == 1 && (self.opset >= 13 || self.graph.shape(x.node)[..2] == [1, 1])
            }
            Layout::Nhwc => axis == 3 || axis == -1,
        };
        if !over_channels {
            return Err(format!(
                "Softmax over axis {axis} of {}: only a softmax over the channels is supported",
                describe(x.layout)
            ));
        }
        self.activation(node, Activation::Softmax)
    }

    /// `x * Sigmoid(x)` as one swish layer.
    fn swish(&mut self, node: &NodeProto) -> Result<Value, String> {
        let (Some(a), Some(b)) = (self.input(node, 0), self.input(node, 1)) else {
            return Err("Mul needs two inputs".into());
        };
        let x = match (a, b) {
            (Value::Feature(x), Value::Sigmoid { input, .. })
            | (Value::Sigmoid { input, .. }, Value::Feature(x))
                if x.node == input.node =>
            {
                x.clone()
            }
            _ => {
                return Err(
                    "Mul is imported only as x * Sigmoid(x) (swish); other products have no Petal layer"
                        .into(),
                )
            }
        };
        let config = ActivationConfig {
            activation: Activation::Swish,
            name: Some(self.layer_name(node)),
        };
        let y = self.call(&config, &[x.node])?;
        Ok(Value::Feature(Feature::new(y, x.layout)))
    }

    /// Conv: a Conv2D (or DepthwiseConv2D) with the kernel in HWIO.
    fn conv(&mut self, node: &NodeProto, attributes: &Attributes<'_>) -> Result<Value, String> {
        let x = self.image(node, 0)?;
        let weight = self.weight(node, 1, "kernel")?;
        let bias = self.optional_weight(node, 2, "bias")?;
        let &[filters, per_group, kh, kw] = weight.shape() else {
            return Err(format!(
                "the kernel has shape {:?}; Petal convolutions are 2-D (out, in / groups, kh, kw)",
                weight.shape()
            ));
        };
        let channels = self.graph.shape(x.node)[2];
        let groups = usize::try_from(attributes.int("group", 1)).unwrap_or(0);
        if groups == 0 || per_group * groups != channels || !filters.is_multiple_of(groups) {
            return Err(format!(
                "group {groups} with a kernel of shape {:?} does not fit {channels} input channels",
                weight.shape()
            ));
        }
        if let Some(kernel) = attributes.ints("kernel_shape") {
            if kernel != [kh as i64, kw as i64] {
                return Err(format!(
                    "kernel_shape {kernel:?} differs from the kernel's {:?}",
                    [kh, kw]
                ));
            }
        }
        let strides = pair(attributes, "strides")?;
        let dilation = pair(attributes, "dilations")?;
        let padding = padding(attributes)?;
        if let Some(b) = &bias {
            if b.shape() != [filters] {
                return Err(format!(
                    "the bias has shape {:?}, not [{filters}]",
                    b.shape()
                ));
            }
        }
        let use_bias = bias.is_some() || self.bias_follows(node);
        let name = self.layer_name(node);
        let depthwise = groups == channels && groups > 1 && dilation == [1, 1];
        let y = if depthwise {
            let config = DepthwiseConv2dConfig {
                kernel_size: [kh, kw],
                strides,
                padding,
                depth_multiplier: filters / channels,
                use_bias,
                activation: Activation::Linear,
                name: Some(name.clone()),
            };
            self.call(&config, &[x.node])?
        } else {
            let config = Conv2dConfig {
                kernel_size: [kh, kw],
                strides,
                padding,
                dilation,
                groups,
                use_bias,
                name: Some(name.clone()),
                ..Conv2dConfig::new(filters, kh)
            };
            self.call(&config, &[x.node])?
        };
        let kernel =
            to_petal_layout(&weight, None).ok_or("the kernel cannot be converted to HWIO")?;
        let kernel_param = if depthwise {
            "depthwise_kernel"
        } else {
            "kernel"
        };
        self.weights
            .insert(format!("{name}/{kernel_param}"), kernel);
        let bias_param = use_bias.then(|| format!("{name}/bias"));
        if let Some(param) = &bias_param {
            let values = bias.unwrap_or_else(|| Tensor::zeros(&[filters]));
            self.weights.insert(param.clone(), values);
        }
        Ok(Value::Feature(Feature {
            node: y,
            layout: Layout::Nchw,
            bias: bias_param,
        }))
    }

    /// An optional float input.
    fn optional_weight(
        &self,
        node: &NodeProto,
        i: usize,
        what: &str,
    ) -> Result<Option<Tensor>, String> {
        match self.input(node, i) {
            None => Ok(None),
            Some(_) => self.weight(node, i, what).map(Some),
        }
    }

    /// BatchNormalization with the file's inference statistics.
    fn batch_norm(
        &mut self,
        node: &NodeProto,
        attributes: &Attributes<'_>,
    ) -> Result<Value, String> {
        if attributes.int("training_mode", 0) != 0 {
            return Err("training_mode 1: only inference-mode batch norms are imported".into());
        }
        if node.output.iter().skip(1).any(|o| self.readers(o) > 0) {
            return Err(
                "its running-statistics outputs are read; Petal keeps them inside the layer".into(),
            );
        }
        let x = self.feature(node, 0)?;
        let channels = match x.layout {
            Layout::Nchw | Layout::Pooled | Layout::Vector => {
                *self.graph.shape(x.node).last().expect("a channel axis")
            }
            other => {
                return Err(format!(
                    "a batch norm of {} (channels are not Petal's last axis)",
                    describe(other)
                ))
            }
        };
        let parts = ["scale", "bias", "mean", "variance"]
            .iter()
            .enumerate()
            .map(|(i, what)| {
                let t = self.weight(node, i + 1, what)?;
                if t.len() != channels {
                    return Err(format!(
                        "the {what} has {} values for {channels} channels",
                        t.len()
                    ));
                }
                Tensor::from_vec(&[channels], t.to_vec()).map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<Tensor>, String>>()?;
        let name = self.layer_name(node);
        let config = BatchNormConfig {
            momentum: attributes.float("momentum", 0.9),
            epsilon: attributes.float("epsilon", 1e-5),
            name: Some(name.clone()),
        };
        let y = self.call(&config, &[x.node])?;
        for (param, value) in ["gamma", "beta", "moving_mean", "moving_variance"]
            .iter()
            .zip(parts)
        {
            self.weights.insert(format!("{name}/{param}"), value);
        }
        Ok(Value::Feature(Feature::new(y, x.layout)))
    }

    /// MaxPool and AveragePool.
    fn pool(&mut self, node: &NodeProto, attributes: &Attributes<'_>) -> Result<Value, String> {
        let x = self.image(node, 0)?;
        let max = node.op_type == "MaxPool";
        let Some(&[kh, kw]) = attributes.ints("kernel_shape") else {
            return Err("kernel_shape must give a 2-D window".into());
        };
        let window = [window_size(kh)?, window_size(kw)?];
        let strides = pair(attributes, "strides")?;
        if pair(attributes, "dilations")? != [1, 1] {
            return Err("dilated pooling is not supported by Petal".into());
        }
        let padding = padding(attributes)?;
        let padded = !matches!(padding, Padding::Valid);
        if !max && padded && attributes.int("count_include_pad", 0) != 0 {
            return Err(
                "count_include_pad 1 with padding: Petal's average pooling leaves the padding out of the mean"
                    .into(),
            );
        }
        if attributes.int("ceil_mode", 0) != 0 {
            let shape = self.graph.shape(x.node);
            let (pads_h, pads_w) = match padding {
                Padding::Explicit {
                    top,
                    bottom,
                    left,
                    right,
                } => (top + bottom, left + right),
                _ => (0, 0),
            };
            let exact = |input: usize, pads: usize, k: usize, s: usize| {
                (input + pads)
                    .checked_sub(k)
                    .is_some_and(|span| span % s == 0)
            };
            if !(exact(shape[0], pads_h, window[0], strides[0])
                && exact(shape[1], pads_w, window[1], strides[1]))
            {
                return Err(
                    "ceil_mode 1 adds a partial window; Petal pools whole windows only".into(),
                );
            }
        }
        let config = Pool2dConfig {
            kind: if max { PoolKind::Max } else { PoolKind::Avg },
            pool_size: window,
            strides: Some(strides),
            padding,
            name: Some(self.layer_name(node)),
        };
        let y = self.call(&config, &[x.node])?;
        Ok(Value::Feature(Feature::new(y, Layout::Nchw)))
    }

    /// Gemm `A B' + C` with `B` constant, as a Dense layer.
    fn gemm(&mut self, node: &NodeProto, attributes: &Attributes<'_>) -> Result<Value, String> {
        let (alpha, beta) = (
            attributes.float("alpha", 1.0),
            attributes.float("beta", 1.0),
        );
        if alpha != 1.0 || beta != 1.0 {
            return Err(format!(
                "alpha {alpha} and beta {beta}: only alpha = beta = 1 is supported"
            ));
        }
        if attributes.int("transA", 0) != 0 {
            return Err("transA 1: the computed input must be (batch, features)".into());
        }
        let weight = self.weight(node, 1, "weight")?;
        let out_in = match (attributes.int("transB", 0), weight.shape()) {
            (0, [_, _]) => permute(&weight, &[1, 0]).map_err(|e| e.to_string())?,
            (_, [_, _]) => weight,
            (_, shape) => return Err(format!("the weight has shape {shape:?}, not 2-D")),
        };
        let bias = self.optional_weight(node, 2, "bias")?;
        self.dense(node, Some(out_in), bias)
    }

    /// A Dense layer of weight `out_in` (`(out, in)`, torch's layout) and `bias`, or for
    /// MatMul of the constant `(in, out)` second input.
    fn dense(
        &mut self,
        node: &NodeProto,
        out_in: Option<Tensor>,
        bias: Option<Tensor>,
    ) -> Result<Value, String> {
        let x = self.feature(node, 0)?;
        let out_in = match out_in {
            Some(w) => w,
            None => {
                let weight = self.weight(node, 1, "weight")?;
                if weight.shape().len() != 2 {
                    return Err(format!(
                        "the weight has shape {:?}, not 2-D",
                        weight.shape()
                    ));
                }
                permute(&weight, &[1, 0]).map_err(|e| e.to_string())?
            }
        };
        let flattened_channels = match x.layout {
            Layout::Vector | Layout::Pooled => None,
            Layout::Flat { channels } => Some(channels),
            other => {
                return Err(format!(
                    "{} of {}: flatten the maps first",
                    node.op_type,
                    describe(other)
                ))
            }
        };
        let &[units, inputs] = out_in.shape() else {
            return Err(format!(
                "the weight has shape {:?}, not 2-D",
                out_in.shape()
            ));
        };
        let features = self.graph.shape(x.node).iter().product::<usize>();
        if inputs != features {
            return Err(format!(
                "the weight takes {inputs} inputs, the value has {features}"
            ));
        }
        let bias = match bias {
            None => None,
            Some(b) if b.len() == units => {
                Some(Tensor::from_vec(&[units], b.to_vec()).map_err(|e| e.to_string())?)
            }
            Some(b) if b.len() == 1 => Some(Tensor::full(&[units], b.as_slice()[0])),
            Some(b) => {
                return Err(format!(
                    "the bias has shape {:?} for {units} outputs",
                    b.shape()
                ))
            }
        };
        let use_bias = bias.is_some() || self.bias_follows(node);
        let name = self.layer_name(node);
        let config = DenseConfig {
            use_bias,
            name: Some(name.clone()),
            ..DenseConfig::new(units)
        };
        let y = self.call(&config, &[x.node])?;
        let kernel = to_petal_layout(&out_in, flattened_channels)
            .ok_or("the weight cannot be reordered for the flattened maps")?;
        self.weights.insert(format!("{name}/kernel"), kernel);
        let bias_param = use_bias.then(|| format!("{name}/bias"));
        if let Some(param) = &bias_param {
            self.weights.insert(
                param.clone(),
                bias.unwrap_or_else(|| Tensor::zeros(&[units])),
            );
        }
        Ok(Value::Feature(Feature {
            node: y,
            layout: Layout::Vector,
            bias: bias_param,
        }))
    }

    /// Add of two computed values (a residual connection), or of a constant bias folded
    /// into the layer that computed the other.
    fn add(&mut self, node: &NodeProto) -> Result<Value, String> {
        let constants = [self.constant(node, 0), self.constant(node, 1)];
        match constants {
            [Ok(Some(_)), Ok(Some(_))] => {
                Err("adds two constants (fold constants before exporting)".into())
            }
            [Ok(Some(c)), _] => self.fold_bias(node, 1, c),
            [_, Ok(Some(c))] => self.fold_bias(node, 0, c),
            _ => {
                let (a, b) = (self.feature(node, 0)?, self.feature(node, 1)?);
                if a.layout != b.layout || self.graph.shape(a.node) != self.graph.shape(b.node) {
                    return Err(format!(
                        "adds values of different shapes ({} {:?} and {} {:?}); Petal adds equal shapes only",
                        describe(a.layout),
                        self.graph.shape(a.node),
                        describe(b.layout),
                        self.graph.shape(b.node)
                    ));
                }
                let config = AddConfig {
                    name: Some(self.layer_name(node)),
                };
                let y = self.call(&config, &[a.node, b.node])?;
                Ok(Value::Feature(Feature::new(y, a.layout)))
            }
        }
    }

    /// `x + c` where `x` (input `i`) is a layer's linear output: `c` goes into its bias.
    fn fold_bias(&mut self, node: &NodeProto, i: usize, c: Constant) -> Result<Value, String> {
        let x = self.feature(node, i)?;
        let Constant::Float(c) = c else {
            return Err("adds an integer constant".into());
        };
        let channels = *self.graph.shape(x.node).last().expect("a last axis");
        let per_channel = match x.layout {
            Layout::Nchw => matches!(c.shape(), [n, 1, 1] | [1, n, 1, 1] if *n == channels),
            Layout::Vector => matches!(c.shape(), [n] | [1, n] if *n == channels),
            _ => false,
        };
        let fits = per_channel || c.len() == 1;
        let param = x
            .bias
            .clone()
            .filter(|_| fits && self.readers(&node.input[i]) == 1);
        let Some(param) = param else {
            return Err(format!(
                "adds a constant of shape {:?} that cannot be folded into the bias of the layer before \
                 (it must follow a Conv, Gemm or MatMul read by nothing else, one value per channel)",
                c.shape()
            ));
        };
        let bias = self
            .weights
            .get_mut(&param)
            .expect("recorded with the layer");
        let values = c.as_slice();
        for (k, b) in bias.as_mut_slice().iter_mut().enumerate() {
            *b += values[if values.len() == 1 { 0 } else { k }];
        }
        Ok(Value::Feature(x))
    }

    /// Concat on the channel axis.
    fn concat(&mut self, node: &NodeProto, attributes: &Attributes<'_>) -> Result<Value, String> {
        let parts = (0..node.input.len())
            .map(|i| self.feature(node, i))
            .collect::<Result<Vec<Feature>, String>>()?;
        let layout = parts.first().ok_or("Concat of nothing")?.layout;
        let rank = match layout {
            Layout::Nchw | Layout::Nhwc | Layout::Pooled => 4,
            _ => 2,
        };
        let axis = attributes.int("axis", 1);
        let axis = if axis < 0 { axis + rank } else { axis };
        let channel_axis = match layout {
            Layout::Nhwc => 3,
            _ => 1,
        };
        if parts.iter().any(|p| p.layout != layout)
            || axis != channel_axis
            || matches!(layout, Layout::Flat { .. })
        {
            return Err(format!(
                "Concat on axis {axis} of {}: only a concatenation of like values on the channel axis is supported",
                describe(layout)
            ));
        }
        let config = ConcatConfig {
            name: Some(self.layer_name(node)),
        };
        let nodes: Vec<_> = parts.iter().map(|p| p.node).collect();
        let y = self.call(&config, &nodes)?;
        Ok(Value::Feature(Feature::new(y, layout)))
    }

    /// Flatten from axis 1 (also what a Reshape to `[batch, -1]` does).
    fn flatten(&mut self, node: &NodeProto) -> Result<Value, String> {
        let x = self.feature(node, 0)?;
        let layout = match x.layout {
            Layout::Vector | Layout::Flat { .. } => return Ok(Value::Feature(x)),
            Layout::Pooled => return Ok(Value::Feature(Feature::new(x.node, Layout::Vector))),
            Layout::Nhwc => Layout::Vector,
            Layout::Nchw => match self.graph.shape(x.node) {
                &[1, 1, _] => Layout::Vector,
                &[_, _, channels] => Layout::Flat { channels },
                other => return Err(format!("unexpected image shape {other:?}")),
            },
        };
        let config = FlattenConfig {
            name: Some(self.layer_name(node)),
        };
        let y = self.call(&config, &[x.node])?;
        Ok(Value::Feature(Feature::new(y, layout)))
    }

    /// Reshape to `[batch, -1]` (or `[batch, features]`): a flatten.
    fn reshape(&mut self, node: &NodeProto) -> Result<Value, String> {
        let shape = match self.constant(node, 1)? {
            Some(Constant::Int(values)) => values,
            _ => return Err("the target shape must be a constant int64 tensor".into()),
        };
        let x = self.feature(node, 0)?;
        let features = self.graph.shape(x.node).iter().product::<usize>() as i64;
        let is_flatten = match shape.as_slice() {
            [batch, rest] => *batch >= -1 && (*rest == -1 && *batch != -1 || *rest == features),
            _ => false,
        };
        if !is_flatten {
            return Err(format!(
                "Reshape to {shape:?}: only [batch, -1] (a flatten of each sample) is supported"
            ));
        }
        self.flatten(node)
    }

    /// Transpose between NCHW and NHWC (a change of layout, no layer).
    fn transpose(
        &mut self,
        node: &NodeProto,
        attributes: &Attributes<'_>,
    ) -> Result<Value, String> {
        let x = self.feature(node, 0)?;
        let perm = attributes.ints("perm").unwrap_or_default();
        let layout = match (x.layout, perm) {
            (Layout::Nchw, [0, 2, 3, 1]) => Layout::Nhwc,
            (Layout::Nhwc, [0, 3, 1, 2]) => Layout::Nchw,
            (Layout::Nchw | Layout::Nhwc | Layout::Pooled, [0, 1, 2, 3]) => x.layout,
            (Layout::Vector | Layout::Flat { .. }, [0, 1]) => x.layout,
            (layout, perm) => {
                return Err(format!(
                    "Transpose {perm:?} of {}: only NCHW <-> NHWC layout changes are supported",
                    describe(layout)
                ))
            }
        };
        Ok(Value::Feature(Feature::new(x.node, layout)))
    }
}

/// A Constant node's value.
fn constant_node(attributes: &Attributes<'_>) -> Result<Value, String> {
    if let Some(tensor) = attributes.tensor("value") {
        return constant(tensor, "value").map(Value::Const);
    }
    if let Some(values) = attributes.floats("value_floats") {
        let t = Tensor::from_vec(&[values.len()], values.to_vec()).map_err(|e| e.to_string())?;
        return Ok(Value::Const(Constant::Float(t)));
    }
    if let Some(values) = attributes.ints("value_ints") {
        return Ok(Value::Const(Constant::Int(values.to_vec())));
    }
    let node = attributes.0;
    if let Some(a) = node.attribute.iter().find(|a| a.name == "value_float") {
        return Ok(Value::Const(Constant::Float(Tensor::scalar(a.f))));
    }
    if let Some(a) = node.attribute.iter().find(|a| a.name == "value_int") {
        return Ok(Value::Const(Constant::Int(vec![a.i])));
    }
    Err("a Constant without a tensor, float or int value".into())
}

/// A 2-D attribute of sizes (strides, dilations), 1 when absent.
fn pair(attributes: &Attributes<'_>, name: &str) -> Result<[usize; 2], String> {
    match attributes.ints(name) {
        None => Ok([1, 1]),
        Some(&[a, b]) => Ok([window_size(a)?, window_size(b)?]),
        Some(other) => Err(format!("{name} {other:?}: Petal supports 2-D windows only")),
    }
}

/// A window size, stride or dilation: between 1 and [`MAX_WINDOW`].
fn window_size(v: i64) -> Result<usize, String> {
    if (1..=MAX_WINDOW).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("a window size, stride or dilation of {v}"))
    }
}

/// The padding of a Conv or pooling node (`pads` is top, left, bottom, right).
fn padding(attributes: &Attributes<'_>) -> Result<Padding, String> {
    match attributes.string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => {}
        Some("VALID") => return Ok(Padding::Valid),
        Some("SAME_UPPER") => return Ok(Padding::Same),
        Some(other) => {
            return Err(format!(
                "auto_pad {other}: Petal pads SAME_UPPER (the larger half at the end) or VALID"
            ))
        }
    }
    match attributes.ints("pads") {
        None | Some(&[0, 0, 0, 0]) => Ok(Padding::Valid),
        Some(&[top, left, bottom, right]) => {
            let size = |v: i64| {
                usize::try_from(v)
                    .ok()
                    .filter(|&v| v as i64 <= MAX_WINDOW)
                    .ok_or(format!(
                        "pads {v}: padding must be between 0 and {MAX_WINDOW}"
                    ))
            };
            Ok(Padding::Explicit {
                top: size(top)?,
                bottom: size(bottom)?,
                left: size(left)?,
                right: size(right)?,
            })
        }
        Some(other) => Err(format!("pads {other:?}: Petal supports 2-D windows only")),
    }
}

/// A layout in words, for messages.
fn describe(layout: Layout) -> &'static str {
    match layout {
        Layout::Nchw => "NCHW images",
        Layout::Nhwc => "NHWC images",
        Layout::Pooled => "globally pooled (n, c, 1, 1) maps",
        Layout::Flat { .. } => "flattened maps",
        Layout::Vector => "(n, features) vectors",
    }
}
