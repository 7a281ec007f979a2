//! Models: a functional [`Graph`] of layer calls (inputs, residual adds, concatenations)
//! or a [`Sequential`] stack, both built into a [`Model`] that owns the parameter store.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use petal_tensor::shape_ops::concat;
use petal_tensor::{Pool2dSpec, ScopedSettings, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::depth_first::InferenceFootprint;
use crate::error::{NnError, Result};
use crate::layers::{Context, Folded, Layer, LayerConfig, LayerDescription, LayerKind, PoolKind};
use crate::weights::{load_weights, save_weights, WeightsError};
use crate::{no_grad, ParamId, ParamStore, Var};

/// A value in a [`Graph`]: the model input or a layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeId(usize);

impl NodeId {
    /// The node's position in call order (the input is 0).
    pub fn index(self) -> usize {
        self.0
    }
}

/// One node of a built [`Model`], as [`Model::nodes`] lists them.
pub struct ModelNode<'a> {
    /// The node.
    pub id: NodeId,
    /// Its layer; `None` for the model input.
    pub layer: Option<&'a dyn Layer>,
    /// The nodes it reads, in the order the layer takes them.
    pub inputs: Vec<NodeId>,
    /// Its per-sample output shape.
    pub shape: &'a [usize],
}

struct Node {
    layer: Option<Box<dyn Layer>>,
    inputs: Vec<usize>,
    shape: Vec<usize>,
}

impl Node {
    /// Whether this node's work moved into the layer before it.
    fn is_folded(&self) -> bool {
        self.layer
            .as_ref()
            .is_some_and(|l| l.kind() == LayerKind::Folded)
    }
}

/// `observe(layer name, output)`, called after each layer ([`Model::forward_observed`]).
type Observer<'a> = dyn FnMut(&str, &Tensor) + 'a;

/// A convolution whose output only a max pooling reads (and the layers `folded` into
/// the convolution, which pass it through to no one): [`Model::forward`] runs the
/// convolution and the pooling as one op, and skips the folded layers.
#[derive(Clone, Debug)]
struct PoolFusion {
    pool: usize,
    spec: Pool2dSpec,
    folded: Vec<usize>,
}

/// The functional API: declare an input, call layers on nodes, pick the output.
///
/// ```
/// use petal_nn::layers::{Activation, AddConfig, Conv2dConfig, FlattenConfig, DenseConfig};
/// use petal_nn::Graph;
/// use petal_tensor::Padding;
/// let mut g = Graph::new(7);
/// let x = g.input(&[8, 8, 4]);
/// let conv = Conv2dConfig { padding: Padding::Same, activation: Activation::Relu, ..Conv2dConfig::new(4, 3) };
/// let y = g.call(&conv, &[x])?;
/// let residual = g.call(&AddConfig::default(), &[x, y])?; // a residual connection
/// let flat = g.call(&FlattenConfig::default(), &[residual])?;
/// let out = g.call(&DenseConfig::new(10), &[flat])?;
/// let model = g.build(out)?;
/// assert_eq!(model.output_shape(), &[10]);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub struct Graph {
    nodes: Vec<Node>,
    store: ParamStore,
    rng: ChaCha8Rng,
    name_counts: HashMap<&'static str, usize>,
}

impl Graph {
    /// An empty graph whose layers draw their initial weights from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            nodes: Vec::new(),
            store: ParamStore::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            name_counts: HashMap::new(),
        }
    }

    /// The model input, with its per-sample shape (no batch axis). One input per model.
    pub fn input(&mut self, shape: &[usize]) -> NodeId {
        self.nodes.push(Node {
            layer: None,
            inputs: Vec::new(),
            shape: shape.to_vec(),
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Calls a new layer on `inputs`; shape errors name the layer.
    pub fn call(&mut self, config: &dyn LayerConfig, inputs: &[NodeId]) -> Result<NodeId> {
        let name = match config.name() {
            Some(name) => name.to_string(),
            None => {
                let count = self.name_counts.entry(config.stem()).or_insert(0);
                *count += 1;
                match *count {
                    1 => config.stem().to_string(),
                    n => format!("{}_{}", config.stem(), n - 1),
                }
            }
        };
        if inputs.iter().any(|n| n.0 >= self.nodes.len()) {
            return Err(NnError::Layer {
                layer: name,
                reason: "an input node is not in this graph".into(),
            });
        }
        let shapes: Vec<&[usize]> = inputs
            .iter()
            .map(|n| self.nodes[n.0].shape.as_slice())
            .collect();
        let layer = config.init(&name, &shapes, &mut self.store, &mut self.rng)?;
        let shape = layer.output_shape(&shapes)?;
        self.nodes.push(Node {
            layer: Some(layer),
            inputs: inputs.iter().map(|n| n.0).collect(),
            shape,
        });
        Ok(NodeId(self.nodes.len() - 1))
    }

    /// The per-sample shape of a node.
    pub fn shape(&self, node: NodeId) -> &[usize] {
        &self.nodes[node.0].shape
    }

    /// The finished model computing `output` from the input.
    pub fn build(self, output: NodeId) -> Result<Model> {
        let input_count = self.nodes.iter().filter(|n| n.layer.is_none()).count();
        if input_count != 1 || output.0 >= self.nodes.len() {
            return Err(NnError::Layer {
                layer: "model".into(),
                reason: format!("needs exactly one input, has {input_count}"),
            });
        }
        Ok(Model {
            nodes: self.nodes,
            store: self.store,
            output: output.0,
            rng: self.rng,
            name_counts: self.name_counts,
        })
    }
}

/// A stack of layers, each fed by the one before (Keras' Sequential).
///
/// ```
/// use petal_nn::layers::{Activation, Conv2dConfig, DenseConfig, FlattenConfig, Pool2dConfig};
/// use petal_nn::Sequential;
/// let model = Sequential::new(&[28, 28, 1], 42)
///     .add(Conv2dConfig { activation: Activation::Relu, ..Conv2dConfig::new(32, 3) })?
///     .add(Pool2dConfig::max(2))?
///     .add(FlattenConfig::default())?
///     .add(DenseConfig::new(10))?
///     .build()?;
/// assert_eq!(model.output_shape(), &[10]);
/// assert_eq!(model.store().trainable_count(), 3 * 3 * 32 + 32 + 13 * 13 * 32 * 10 + 10);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub struct Sequential {
    graph: Graph,
    last: NodeId,
}

impl Sequential {
    /// An empty stack for samples of `input_shape`, initialized from `seed`.
    pub fn new(input_shape: &[usize], seed: u64) -> Self {
        let mut graph = Graph::new(seed);
        let last = graph.input(input_shape);
        Self { graph, last }
    }

    /// Appends a layer (Keras' name, hence not `std::ops::Add`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, config: impl LayerConfig) -> Result<Self> {
        self.push(&config)?;
        Ok(self)
    }

    /// Appends a layer in place.
    pub fn push(&mut self, config: &dyn LayerConfig) -> Result<()> {
        self.last = self.graph.call(config, &[self.last])?;
        Ok(())
    }

    /// The finished model.
    pub fn build(self) -> Result<Model> {
        self.graph.build(self.last)
    }
}

/// A built network: its layers in call order and the parameters they use.
pub struct Model {
    nodes: Vec<Node>,
    store: ParamStore,
    output: usize,
    rng: ChaCha8Rng,
    name_counts: HashMap<&'static str, usize>,
}

impl Model {
    /// Per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.nodes[0].shape
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.nodes[self.output].shape
    }

    /// The parameters.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The parameters, mutable (optimizers, loading).
    pub fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    /// Every node in call order (each reads only nodes before it), the input first:
    /// the model's graph for tools that walk it, such as the ONNX export.
    ///
    /// ```
    /// use petal_nn::layers::{AddConfig, DenseConfig};
    /// use petal_nn::Graph;
    /// let mut g = Graph::new(0);
    /// let x = g.input(&[4]);
    /// let y = g.call(&DenseConfig::new(4), &[x])?;
    /// let sum = g.call(&AddConfig::default(), &[x, y])?;
    /// let model = g.build(sum)?;
    /// let nodes = model.nodes();
    /// assert!(nodes[0].layer.is_none());
    /// assert_eq!(nodes[2].inputs, [x, y]);
    /// assert_eq!(model.output(), nodes[2].id);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn nodes(&self) -> Vec<ModelNode<'_>> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| ModelNode {
                id: NodeId(i),
                layer: node.layer.as_deref(),
                inputs: node.inputs.iter().map(|&j| NodeId(j)).collect(),
                shape: &node.shape,
            })
            .collect()
    }

    /// The node whose value the model returns.
    pub fn output(&self) -> NodeId {
        NodeId(self.output)
    }

    fn layers(&self) -> impl Iterator<Item = &dyn Layer> {
        self.nodes.iter().filter_map(|n| n.layer.as_deref())
    }

    /// Layer names in call order.
    pub fn layer_names(&self) -> Vec<&str> {
        self.layers().map(|l| l.name()).collect()
    }

    /// The parameters of the layer called `name`.
    pub fn layer_params(&self, name: &str) -> Option<Vec<ParamId>> {
        self.layers().find(|l| l.name() == name).map(|l| l.params())
    }

    /// Continues building on this model: its graph (layers, parameters, naming) and its
    /// output node, so that new layers can be called on it, e.g. a new head for transfer
    /// learning on a pretrained base.
    ///
    /// ```
    /// use petal_nn::layers::{DenseConfig, FlattenConfig};
    /// use petal_nn::Sequential;
    /// let base = Sequential::new(&[2, 2, 1], 0).add(FlattenConfig::default())?.build()?;
    /// let (mut graph, features) = base.into_graph();
    /// let head = graph.call(&DenseConfig::new(3), &[features])?;
    /// assert_eq!(graph.build(head)?.output_shape(), &[3]);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn into_graph(self) -> (Graph, NodeId) {
        let output = NodeId(self.output);
        (
            Graph {
                nodes: self.nodes,
                store: self.store,
                rng: self.rng,
                name_counts: self.name_counts,
            },
            output,
        )
    }

    /// Freezes (`false`) or unfreezes (`true`) the named layers. State that is never
    /// trained (BatchNorm's moving statistics) stays frozen. Unknown names are an error
    /// listing them, and then nothing changes.
    pub fn set_trainable(&mut self, layers: &[&str], trainable: bool) -> Result<()> {
        let known = self.layer_names();
        let unknown: Vec<&str> = layers
            .iter()
            .copied()
            .filter(|l| !known.contains(l))
            .collect();
        if !unknown.is_empty() {
            return Err(NnError::Layer {
                layer: unknown.join(", "),
                reason: "no such layer in this model".into(),
            });
        }
        let ids: Vec<ParamId> = self
            .layers()
            .filter(|l| layers.contains(&l.name()))
            .flat_map(|l| l.learnable_params())
            .collect();
        ids.into_iter()
            .for_each(|id| self.store.set_trainable(id, trainable));
        Ok(())
    }

    /// Freezes every layer up to and including `layer` (in call order) and unfreezes the
    /// rest: fine-tuning the top of a pretrained base.
    pub fn freeze_up_to(&mut self, layer: &str) -> Result<()> {
        let names: Vec<String> = self.layer_names().into_iter().map(str::to_string).collect();
        let Some(position) = names.iter().position(|n| n == layer) else {
            return Err(NnError::Layer {
                layer: layer.to_string(),
                reason: "no such layer in this model".into(),
            });
        };
        let (frozen, trained): (Vec<&str>, Vec<&str>) = (
            names[..=position].iter().map(String::as_str).collect(),
            names[position + 1..].iter().map(String::as_str).collect(),
        );
        self.set_trainable(&frozen, false)?;
        self.set_trainable(&trained, true)
    }

    /// The forward pass over a batch `(n, *input_shape)`, recording on the context's tape
    /// when training.
    ///
    /// A convolution whose output only a max pooling reads runs fused with that pooling
    /// ([`Var::conv2d_max_pooled`]): the same outputs and gradients (but for f32 rounding
    /// in the bias gradients, and the last bit with overlapping windows after a smooth
    /// activation), without storing the convolution's output.
    pub fn forward(&self, x: &Var, ctx: &Context) -> Result<Var> {
        self.forward_probed(x, ctx, &[], None).map(|(y, _)| y)
    }

    /// [`Model::forward`], calling `observe(layer name, output)` after each layer in call
    /// order: e.g. to find the first layer whose output is not finite. No convolution is
    /// fused with its pooling here, so that each layer's output exists (layers folded by
    /// [`Model::fold_for_inference`] stay folded).
    pub fn forward_observed(
        &self,
        x: &Var,
        ctx: &Context,
        observe: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<Var> {
        self.forward_probed(x, ctx, &[], Some(observe))
            .map(|(y, _)| y)
    }

    /// The forward pass that also returns the outputs of the named layers, in the order
    /// of `layers` (feature maps, Grad-CAM). When the pass is recorded, each returned
    /// output keeps its gradient ([`Var::retain_grad`]), so
    /// [`Gradients::get`](crate::Gradients::get) reports the gradient with respect to
    /// it, while gradients still flow on to the input and earlier parameters. A name
    /// that is not a layer of this model is an error naming it.
    ///
    /// In a model folded by [`Model::fold_for_inference`], the last layer folded into a
    /// convolution (or into a residual sum) is read from that layer's fused output
    /// (which it equals); the outputs folding removed (the convolution's own, a batch
    /// norm followed by a folded activation, a sum before its folded activation) are an
    /// error naming the layer to ask for instead (see [`Model::probed_layers`]).
    ///
    /// ```
    /// use petal_nn::layers::{Activation, DenseConfig};
    /// use petal_nn::{Context, Sequential, Tape};
    /// use petal_tensor::Tensor;
    /// let model = Sequential::new(&[2], 0)
    ///     .add(DenseConfig { activation: Activation::Relu, ..DenseConfig::new(3) })?
    ///     .add(DenseConfig::new(1))?
    ///     .build()?;
    /// let tape = Tape::new();
    /// let x = tape.leaf(Tensor::from_vec(&[1, 2], vec![0.5, -1.0])?);
    /// let ctx = Context::eval(model.store());
    /// let (y, outputs) = model.forward_with_outputs(&x, &ctx, &["dense"])?;
    /// let grads = y.backward()?;
    /// assert_eq!(outputs[0].value().shape(), &[1, 3]);
    /// assert!(grads.get(&outputs[0]).is_some() && grads.get(&x).is_some());
    /// assert!(model.forward_with_outputs(&x, &ctx, &["conv"]).is_err());
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn forward_with_outputs(
        &self,
        x: &Var,
        ctx: &Context,
        layers: &[&str],
    ) -> Result<(Var, Vec<Var>)> {
        let nodes = layers
            .iter()
            .map(|&name| {
                let node = self
                    .nodes
                    .iter()
                    .position(|n| n.layer.as_ref().is_some_and(|l| l.name() == name))
                    .ok_or_else(|| NnError::Layer {
                        layer: name.to_string(),
                        reason: "no such layer in this model".into(),
                    })?;
                self.output_node(node).map_err(|reason| NnError::Layer {
                    layer: name.to_string(),
                    reason,
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        self.forward_probed(x, ctx, &nodes, None)
    }

    /// The layers whose outputs [`Model::forward_with_outputs`] can return, in call
    /// order: every layer, except in a folded model the outputs folding removed.
    ///
    /// ```
    /// use petal_nn::layers::{Activation, ActivationConfig, BatchNormConfig, Conv2dConfig};
    /// use petal_nn::Sequential;
    /// let model = Sequential::new(&[6, 6, 2], 1)
    ///     .add(Conv2dConfig { use_bias: false, ..Conv2dConfig::new(4, 3) })?
    ///     .add(BatchNormConfig::default())?
    ///     .add(ActivationConfig::new(Activation::Relu))?
    ///     .build()?;
    /// assert_eq!(model.probed_layers(), ["conv2d", "batch_normalization", "activation"]);
    /// // Folded, the convolution computes the activation's output and nothing else.
    /// assert_eq!(model.fold_for_inference().probed_layers(), ["activation"]);
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn probed_layers(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.output_node(*i).is_ok())
            .filter_map(|(_, n)| n.layer.as_deref().map(|l| l.name()))
            .collect()
    }

    /// The layers folded into the layer of node `node`, in call order.
    fn folded_into(&self, node: usize) -> Vec<usize> {
        (node + 1..self.nodes.len())
            .filter(|&k| self.nodes[k].is_folded() && self.nodes[k].inputs == [node])
            .collect()
    }

    /// The node whose value is the output of the layer of node `node`: itself, or for the
    /// last layer folded into a convolution (or a sum) that layer; `Err(why)` when
    /// folding removed this output.
    fn output_node(&self, node: usize) -> std::result::Result<usize, String> {
        let name = |k: usize| self.nodes[k].layer.as_ref().map_or("input", |l| l.name());
        let (host, chain) = if self.nodes[node].is_folded() {
            let host = self.nodes[node].inputs[0];
            (host, self.folded_into(host))
        } else {
            (node, self.folded_into(node))
        };
        match chain.last() {
            None => Ok(node),
            Some(&last) if last == node => Ok(host),
            Some(&last) => Err(format!(
                "folded for inference: {} computes {}'s output in one pass, so {}'s no \
                 longer exists; ask for {}, or use the model before fold_for_inference",
                name(host),
                name(last),
                name(node),
                name(last)
            )),
        }
    }

    /// The forward pass, returning also the outputs of the nodes `probes` (keeping their
    /// gradients when recorded). With `observe`, calls `observe(layer name, output)`
    /// after each layer; without, fuses each convolution with the max pooling that alone
    /// reads it (unless the convolution's output is probed).
    fn forward_probed(
        &self,
        x: &Var,
        ctx: &Context,
        probes: &[usize],
        observe: Option<&mut Observer<'_>>,
    ) -> Result<(Var, Vec<Var>)> {
        self.forward_span((0, self.output), x, ctx, probes, observe)
    }

    /// [`Model::forward_probed`] over the nodes after `first` up to `last`, `x` the
    /// output of `first` (no node after `first` may read one before it): returns the
    /// output of `last`.
    fn forward_span(
        &self,
        (first, last): (usize, usize),
        x: &Var,
        ctx: &Context,
        probes: &[usize],
        mut observe: Option<&mut Observer<'_>>,
    ) -> Result<(Var, Vec<Var>)> {
        let shape = x.value().shape();
        let expected = &self.nodes[first].shape;
        if shape.len() != expected.len() + 1 || shape[1..] != *expected {
            let layer = self.nodes[first]
                .layer
                .as_ref()
                .map_or("input", |l| l.name());
            return Err(NnError::Layer {
                layer: layer.into(),
                reason: format!("expects batches of shape (n, {expected:?}), got {shape:?}"),
            });
        }
        let last_use = self.last_uses();
        let pooled_by = match observe {
            Some(_) => vec![None; self.nodes.len()],
            None => self.max_pool_readers(probes, last),
        };
        let mut values: Vec<Option<Var>> = vec![None; self.nodes.len()];
        let mut probed: Vec<Option<Var>> = vec![None; self.nodes.len()];
        // Outputs of max poolings computed by the convolution before them, and the layers
        // folded into such a convolution, which then have nothing to pass through.
        let mut pooled: Vec<Option<Var>> = vec![None; self.nodes.len()];
        let mut passed_over = vec![false; self.nodes.len()];
        values[first] = Some(x.clone());
        for (i, node) in self.nodes.iter().enumerate().take(last + 1).skip(first + 1) {
            let Some(layer) = &node.layer else { continue };
            if passed_over[i] {
                continue;
            }
            let y = match pooled[i].take() {
                Some(y) => Some(y),
                None => {
                    let inputs: Vec<&Var> = node
                        .inputs
                        .iter()
                        .map(|&j| values[j].as_ref().expect("computed earlier"))
                        .collect();
                    let fused = pooled_by[i].as_ref().and_then(|fusion| {
                        Some((
                            fusion,
                            layer.forward_max_pooled(&inputs, ctx, &fusion.spec)?,
                        ))
                    });
                    match fused {
                        Some((fusion, y)) => {
                            pooled[fusion.pool] = Some(y?);
                            fusion.folded.iter().for_each(|&k| passed_over[k] = true);
                            None
                        }
                        None => Some(layer.forward(&inputs, ctx)?),
                    }
                }
            };
            if let Some(y) = y {
                if let Some(observe) = observe.as_mut() {
                    observe(layer.name(), y.value());
                }
                if probes.contains(&i) {
                    y.retain_grad();
                    probed[i] = Some(y.clone());
                }
                // A value no layer reads (a folded layer's pass-through) is not kept.
                if last_use[i] != i || i == self.output {
                    values[i] = Some(y);
                }
            }
            // Values nobody reads again are dropped now (the tape keeps what backward
            // needs), so inference holds only the live feature maps and reuses memory.
            for &j in &node.inputs {
                if last_use[j] == i && j != self.output {
                    values[j] = None;
                }
            }
        }
        let outputs = probes
            .iter()
            .map(|&i| probed[i].clone().expect("a probed layer node"))
            .collect();
        Ok((
            values[last].take().expect("the last node's output"),
            outputs,
        ))
    }

    /// For each node, the max pooling that alone reads its output (besides layers
    /// folded into it by [`Model::fold_for_inference`], which pass it through to no
    /// one), when that output is neither probed, nor the model's, nor `last` (the end of
    /// a [`Model::forward_span`]).
    fn max_pool_readers(&self, probes: &[usize], last: usize) -> Vec<Option<PoolFusion>> {
        let (mut readers, mut folded) = (
            vec![Vec::new(); self.nodes.len()],
            vec![Vec::new(); self.nodes.len()],
        );
        for (k, node) in self.nodes.iter().enumerate() {
            let readers = if node.is_folded() {
                &mut folded
            } else {
                &mut readers
            };
            node.inputs.iter().for_each(|&j| readers[j].push(k));
        }
        (0..self.nodes.len())
            .map(|i| {
                let [k] = readers[i][..] else { return None };
                if i == self.output || i == last || probes.contains(&i) {
                    return None;
                }
                match self.nodes[k].layer.as_ref()?.describe()? {
                    LayerDescription::Pool {
                        kind: PoolKind::Max,
                        spec,
                    } => Some(PoolFusion {
                        pool: k,
                        spec,
                        folded: std::mem::take(&mut folded[i]),
                    }),
                    _ => None,
                }
            })
            .collect()
    }

    /// For each node, the index of the last node that reads it (itself if none does).
    fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.nodes.len()).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            for &j in &node.inputs {
                last[j] = last[j].max(i);
            }
        }
        last
    }

    /// This model for inference only, with every batch norm and activation that directly
    /// follows a convolution folded into it: the convolution's kernel and bias take the
    /// batch norm's moving statistics, the activation runs inside the convolution's
    /// kernel, and the folded layers pass their input through (they stay listed, of kind
    /// `Folded`). An activation (ReLU, ReLU6, sigmoid, tanh) that alone reads a residual
    /// sum (`Add`) folds into the sum the same way: ResNet's blocks end in one pass over
    /// their feature maps instead of two. A depthwise convolution that alone reads a 1x1
    /// convolution joins it in one layer ([`LayerKind::ExpandDepthwise`]), with its own
    /// batch norm and activation, which runs the two a band of rows at a time and never
    /// stores the expanded maps (MobileNetV2's and EfficientNet's inverted residual
    /// blocks). The outputs equal the unfolded model's in
    /// inference mode up to float rounding. Do not train or save a folded model in place
    /// of the original: its kernels already include the batch norms.
    ///
    /// ```
    /// use petal_nn::layers::{Activation, ActivationConfig, BatchNormConfig, Conv2dConfig, LayerKind};
    /// use petal_nn::Sequential;
    /// use petal_tensor::Tensor;
    /// let model = Sequential::new(&[6, 6, 2], 1)
    ///     .add(Conv2dConfig { use_bias: false, ..Conv2dConfig::new(4, 3) })?
    ///     .add(BatchNormConfig::default())?
    ///     .add(ActivationConfig::new(Activation::Relu6))?
    ///     .build()?;
    /// let x = Tensor::from_vec(&[1, 6, 6, 2], (0..72).map(|i| i as f32 / 72.0).collect())?;
    /// let expected = model.predict(&x)?;
    /// let folded = model.fold_for_inference();
    /// assert_eq!(folded.summary().rows.iter().filter(|r| r.kind == LayerKind::Folded).count(), 2);
    /// let got = folded.predict(&x)?;
    /// assert!(got.as_slice().iter().zip(expected.as_slice()).all(|(a, b)| (a - b).abs() < 1e-5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fold_for_inference(mut self) -> Model {
        for i in 1..self.nodes.len() {
            let (&[j], Some(layer)) = (self.nodes[i].inputs.as_slice(), &self.nodes[i].layer)
            else {
                continue;
            };
            let readers = self
                .nodes
                .iter()
                .filter(|n| n.inputs.contains(&j) && !n.is_folded())
                .count();
            let Some(step) = layer.inference_step(&self.store) else {
                continue;
            };
            let Some(previous) = &self.nodes[j].layer else {
                continue;
            };
            if readers != 1 || j == self.output {
                continue;
            }
            let Some(absorbed) = previous.absorb(&step, &mut self.store) else {
                continue;
            };
            let name = layer.name().to_string();
            self.nodes[j].layer = Some(absorbed);
            // The node now computes the folded layer's output (a depthwise convolution
            // may change the shape).
            self.nodes[j].shape = self.nodes[i].shape.clone();
            self.nodes[i].layer = Some(Box::new(Folded { name }));
            // Readers of the folded layer now read the convolution directly.
            for node in &mut self.nodes[i + 1..] {
                node.inputs
                    .iter_mut()
                    .filter(|k| **k == i)
                    .for_each(|k| *k = j);
            }
            if self.output == i {
                self.output = j;
            }
        }
        self
    }

    /// Inference on a batch: eval mode, no tape. The batch goes through the network a
    /// few images at a time where that keeps feature maps in the cache
    /// ([`InferenceFootprint::images_per_chunk`]), with the same results as one pass:
    /// the chunks run on the rayon pool under the caller's
    /// [`with_precision`](petal_tensor::with_precision) and 3x3 kernel settings. The
    /// layers after the feature maps become vectors (a classifier head) then run once
    /// over the whole batch, reading their weights once ([`InferenceFootprint::head`]).
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let batch = x.shape().first().copied().unwrap_or(0);
        let footprint = InferenceFootprint::of(self);
        let chunk = footprint.images_per_chunk(batch);
        if chunk >= batch {
            return self.predict_span((0, self.output), x);
        }
        let chunks_end = footprint.head.map_or(self.output, NodeId::index);
        let image_len = x.len() / batch;
        // The chunks run on the pool's threads, under the caller's precision and kernels.
        let settings = ScopedSettings::current();
        let outputs = x
            .as_slice()
            .par_chunks(chunk * image_len)
            .map(|images| {
                let mut shape = x.shape().to_vec();
                shape[0] = images.len() / image_len;
                let images = Tensor::from_vec(&shape, images.to_vec())?;
                settings.run(|| self.predict_span((0, chunks_end), &images))
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = concat(&outputs.iter().collect::<Vec<_>>(), 0)?;
        match footprint.head {
            Some(head) => self.predict_span((head.index(), self.output), &outputs),
            None => Ok(outputs),
        }
    }

    /// [`Model::forward_span`] in inference: eval mode, no tape.
    fn predict_span(&self, span: (usize, usize), x: &Tensor) -> Result<Tensor> {
        let ctx = Context::eval(&self.store);
        no_grad(|| self.forward_span(span, &Var::constant(x.clone()), &ctx, &[], None))
            .map(|(y, _)| y.value().clone())
    }

    /// The sum of every layer's weight penalty, if any layer has one.
    pub fn penalty(&self, ctx: &Context) -> Result<Option<Var>> {
        let mut total: Option<Var> = None;
        for layer in self.layers() {
            if let Some(p) = layer.penalty(ctx)? {
                total = Some(match total {
                    Some(t) => t.add(&p)?,
                    None => p,
                });
            }
        }
        Ok(total)
    }

    /// Writes state updates (BatchNorm moving statistics) recorded by a training pass.
    pub fn apply_updates(&mut self, updates: Vec<(ParamId, Tensor)>) -> Result<()> {
        updates
            .into_iter()
            .try_for_each(|(id, value)| self.store.set_value(id, value))
    }

    /// Saves every parameter as safetensors.
    pub fn save_weights(&self, path: &Path) -> std::result::Result<(), WeightsError> {
        save_weights(&self.store, path)
    }

    /// Loads parameters saved by [`Model::save_weights`]; reports every mismatch at once.
    pub fn load_weights(&mut self, path: &Path) -> std::result::Result<(), WeightsError> {
        load_weights(&mut self.store, path)
    }

    /// Per-layer output shapes, parameter counts and FLOPs.
    pub fn summary(&self) -> Summary {
        let rows = self
            .nodes
            .iter()
            .filter_map(|node| {
                let layer = node.layer.as_deref()?;
                let inputs: Vec<&[usize]> = node
                    .inputs
                    .iter()
                    .map(|&j| self.nodes[j].shape.as_slice())
                    .collect();
                Some(SummaryRow {
                    name: layer.name().to_string(),
                    kind: layer.kind(),
                    output_shape: node.shape.clone(),
                    params: layer
                        .params()
                        .iter()
                        .map(|&id| self.store.value(id).len())
                        .sum(),
                    flops: layer.flops(&inputs),
                })
            })
            .collect();
        Summary {
            rows,
            trainable: self.store.trainable_count(),
            non_trainable: self.store.non_trainable_count(),
        }
    }
}

/// One line of a [`Summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Layer name.
    pub name: String,
    /// Layer kind.
    pub kind: LayerKind,
    /// Per-sample output shape.
    pub output_shape: Vec<usize>,
    /// Parameters (trainable and not).
    pub params: usize,
    /// FLOPs per sample.
    pub flops: u64,
}

/// A model's layer table with totals; `Display` prints it like Keras' `summary()`.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// One row per layer.
    pub rows: Vec<SummaryRow>,
    /// Trainable parameter count.
    pub trainable: usize,
    /// Non-trainable parameter count.
    pub non_trainable: usize,
}

impl Summary {
    /// FLOPs per sample of the whole model.
    pub fn flops(&self) -> u64 {
        self.rows.iter().map(|r| r.flops).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = "-".repeat(86);
        writeln!(
            f,
            "{:<36} {:<22} {:>12} {:>12}",
            "Layer (type)", "Output shape", "Params", "FLOPs"
        )?;
        writeln!(f, "{line}")?;
        for r in &self.rows {
            let shape = format!(
                "(None, {})",
                r.output_shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            writeln!(
                f,
                "{:<36} {:<22} {:>12} {:>12}",
                format!("{} ({})", r.name, r.kind),
                shape,
                r.params,
                r.flops
            )?;
        }
        writeln!(f, "{line}")?;
        writeln!(f, "Total params: {}", self.trainable + self.non_trainable)?;
        writeln!(f, "Trainable params: {}", self.trainable)?;
        writeln!(f, "Non-trainable params: {}", self.non_trainable)?;
        write!(f, "FLOPs per sample: {}", self.flops())
    }
}
