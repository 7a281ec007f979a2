//! The options every architecture takes (as `keras.applications`) and the model top they
//! decide: a classifier, or the bare features with optional global pooling.

use petal_nn::layers::{Activation, DenseConfig, FlattenConfig, GlobalAvgPoolConfig, Pool2dConfig};
use petal_nn::{Graph, Model, NodeId, Result};

/// What a model without its classifier ends with (`include_top: false`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooling {
    /// The last feature maps, `(h, w, c)`.
    #[default]
    None,
    /// Their global average, `(c)`: layer `avg_pool`.
    Avg,
    /// Their global maximum, `(c)`: layers `max_pool` (a window over the whole map) and
    /// `max_pool_flatten`.
    Max,
}

/// Options of an architecture builder, as in `keras.applications`.
///
/// ```
/// use petal_zoo::{Options, Pooling};
/// let features = Options { include_top: false, pooling: Pooling::Avg, ..Options::default() };
/// assert_eq!(features.input_shape, [224, 224, 3]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Whether the model ends with its classifier; else with [`Options::pooling`].
    pub include_top: bool,
    /// Per-sample input shape `(h, w, c)`.
    pub input_shape: [usize; 3],
    /// The end of a model without classifier (ignored when `include_top`).
    pub pooling: Pooling,
    /// Outputs of the classifier (used when `include_top`).
    pub classes: usize,
    /// Applied to the classifier's output: `None` gives logits, `Some(Activation::Softmax)`
    /// probabilities.
    pub classifier_activation: Option<Activation>,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for Options {
    /// ImageNet: 224x224 RGB inputs, the 1000-class classifier, logits, seed 0.
    fn default() -> Self {
        Self {
            include_top: true,
            input_shape: [224, 224, 3],
            pooling: Pooling::None,
            classes: 1000,
            classifier_activation: None,
            seed: 0,
        }
    }
}

impl Options {
    /// The model ends here: with `top` (the layers before the classifier) and a dense
    /// classifier called `classifier`, or with the chosen pooling.
    pub(crate) fn finish(
        &self,
        mut graph: Graph,
        features: NodeId,
        top: impl FnOnce(&mut Graph, NodeId) -> Result<NodeId>,
        classifier: &str,
    ) -> Result<Model> {
        let output = if self.include_top {
            let x = top(&mut graph, features)?;
            let dense = DenseConfig {
                activation: self.classifier_activation.unwrap_or_default(),
                name: Some(classifier.into()),
                ..DenseConfig::new(self.classes)
            };
            graph.call(&dense, &[x])?
        } else {
            match self.pooling {
                Pooling::None => features,
                Pooling::Avg => graph.call(&named_global_avg("avg_pool"), &[features])?,
                Pooling::Max => {
                    let (h, w) = (graph.shape(features)[0], graph.shape(features)[1]);
                    let pool = Pool2dConfig {
                        pool_size: [h, w],
                        name: Some("max_pool".into()),
                        ..Pool2dConfig::max(1)
                    };
                    let pooled = graph.call(&pool, &[features])?;
                    let flatten = FlattenConfig {
                        name: Some("max_pool_flatten".into()),
                    };
                    graph.call(&flatten, &[pooled])?
                }
            }
        };
        graph.build(output)
    }
}

/// Global average pooling called `name`.
pub(crate) fn named_global_avg(name: &str) -> GlobalAvgPoolConfig {
    GlobalAvgPoolConfig {
        name: Some(name.into()),
    }
}
