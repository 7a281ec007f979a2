//! LeNet-5 (LeCun et al., 1998) in its common modern form.
//!
//! Layers: `conv1` (6 5x5 filters, tanh), `pool1` (2x2 average), `conv2` (16 5x5
//! filters, tanh), `pool2` (2x2 average), then the top `flatten`, `fc1` (120, tanh),
//! `fc2` (84, tanh) and the classifier `predictions`. Parameters are `<layer>/kernel`
//! and `<layer>/bias`.

use petal_nn::layers::{Activation, Conv2dConfig, DenseConfig, FlattenConfig, Pool2dConfig};
use petal_nn::{Graph, Model, Result};

use crate::options::Options;

/// LeNet-5; on its classic 32x32x1 input with 10 classes it has 61,706 parameters.
///
/// ```
/// use petal_zoo::{lenet5, Options};
/// let model = lenet5(&Options { input_shape: [32, 32, 1], classes: 10, ..Options::default() })?;
/// assert_eq!(model.store().trainable_count(), 61_706);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub fn lenet5(options: &Options) -> Result<Model> {
    let mut graph = Graph::new(options.seed);
    let mut x = graph.input(&options.input_shape);
    for (i, filters) in [6, 16].into_iter().enumerate() {
        let conv = Conv2dConfig {
            activation: Activation::Tanh,
            name: Some(format!("conv{}", i + 1)),
            ..Conv2dConfig::new(filters, 5)
        };
        let pool = Pool2dConfig {
            name: Some(format!("pool{}", i + 1)),
            ..Pool2dConfig::avg(2)
        };
        x = graph.call(&conv, &[x])?;
        x = graph.call(&pool, &[x])?;
    }
    options.finish(
        graph,
        x,
        |graph, x| {
            let flatten = FlattenConfig {
                name: Some("flatten".into()),
            };
            let mut x = graph.call(&flatten, &[x])?;
            for (i, units) in [120, 84].into_iter().enumerate() {
                let dense = DenseConfig {
                    activation: Activation::Tanh,
                    name: Some(format!("fc{}", i + 1)),
                    ..DenseConfig::new(units)
                };
                x = graph.call(&dense, &[x])?;
            }
            Ok(x)
        },
        "predictions",
    )
}
