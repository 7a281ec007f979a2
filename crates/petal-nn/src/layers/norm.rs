//! BatchNormalization, LayerNormalization and GroupNormalization, all over the last
//! (channel) axis with a learned scale `gamma` and offset `beta`.

use petal_tensor::norm::{batch_norm_apply, BatchStats};
use petal_tensor::Tensor;
use rand_chacha::ChaCha8Rng;

use super::{
    layer_error, same_shape, single, Context, InferenceStep, Layer, LayerConfig, LayerDescription,
    LayerKind,
};
use crate::error::Result;
use crate::{ParamId, ParamStore, Var};

/// `(x - mean) / sqrt(var + epsilon)` with mean and variance over `axes` (kept).
fn standardize(x: &Var, axes: &[usize], epsilon: f32) -> Result<Var> {
    let mean = x.mean(axes, true)?;
    let centered = x.sub(&mean)?;
    let variance = centered.square().mean(axes, true)?;
    let std = variance
        .add(&Var::constant(Tensor::scalar(epsilon)))?
        .sqrt();
    centered.div(&std)
}

fn channel_count(layer: &str, inputs: &[&[usize]]) -> Result<usize> {
    single(layer, inputs)?
        .last()
        .copied()
        .ok_or_else(|| layer_error(layer, "needs inputs with a channel axis"))
}

fn scale_and_shift(
    store: &mut ParamStore,
    name: &str,
    channels: usize,
) -> Result<(ParamId, ParamId)> {
    Ok((
        store.add(format!("{name}/gamma"), Tensor::ones(&[channels]), true)?,
        store.add(format!("{name}/beta"), Tensor::zeros(&[channels]), true)?,
    ))
}

/// Batch normalization (Keras' BatchNormalization): in training, normalizes with the
/// batch's statistics and moves `moving_mean`/`moving_variance` towards them by
/// `1 - momentum`; in inference (or when `gamma` is frozen), uses the moving statistics.
#[derive(Clone, Debug)]
pub struct BatchNormConfig {
    /// Weight of the old moving statistics in each update (Keras: 0.99).
    pub momentum: f32,
    /// Added to the variance (Keras: 1e-3).
    pub epsilon: f32,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            momentum: 0.99,
            epsilon: 1e-3,
            name: None,
        }
    }
}

/// A BatchNormalization layer.
pub struct BatchNorm {
    name: String,
    momentum: f32,
    epsilon: f32,
    gamma: ParamId,
    beta: ParamId,
    moving_mean: ParamId,
    moving_variance: ParamId,
}

impl LayerConfig for BatchNormConfig {
    named_config!("batch_normalization");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let c = channel_count(name, inputs)?;
        let (gamma, beta) = scale_and_shift(store, name, c)?;
        Ok(Box::new(BatchNorm {
            name: name.to_string(),
            momentum: self.momentum,
            epsilon: self.epsilon,
            gamma,
            beta,
            moving_mean: store.add(format!("{name}/moving_mean"), Tensor::zeros(&[c]), false)?,
            moving_variance: store.add(
                format!("{name}/moving_variance"),
                Tensor::ones(&[c]),
                false,
            )?,
        }))
    }
}

impl BatchNorm {
    fn moved(&self, ctx: &Context, id: ParamId, batch_value: &Tensor) -> Tensor {
        let old = ctx.store().value(id);
        let m = self.momentum;
        let values = old
            .as_slice()
            .iter()
            .zip(batch_value.as_slice())
            .map(|(o, b)| o * m + b * (1.0 - m))
            .collect();
        Tensor::from_vec(old.shape(), values).expect("same shape")
    }
}

impl Layer for BatchNorm {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::BatchNorm
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        same_shape(&self.name, inputs)
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var> {
        let x = single(&self.name, inputs)?;
        let (gamma, beta) = (ctx.param(self.gamma), ctx.param(self.beta));
        let frozen = !ctx.store().get(self.gamma).trainable;
        if ctx.is_training() && !frozen {
            let (y, stats) =
                x.batch_norm(&gamma, &beta, self.epsilon, ctx.batch_parts().cloned())?;
            let [mean, variance] = [stats.mean, stats.variance]
                .map(|v| Tensor::from_vec(&[v.len()], v).expect("one value per channel"));
            ctx.update_state(self.moving_mean, self.moved(ctx, self.moving_mean, &mean));
            ctx.update_state(
                self.moving_variance,
                self.moved(ctx, self.moving_variance, &variance),
            );
            return Ok(y);
        }
        let stats = BatchStats {
            mean: ctx.store().value(self.moving_mean).to_vec(),
            variance: ctx.store().value(self.moving_variance).to_vec(),
        };
        if [x, &gamma, &beta].iter().all(|v| v.node().is_none()) {
            // Inference: nothing to record, so one fused pass over the input.
            let y = batch_norm_apply(x.value(), &stats, gamma.value(), beta.value(), self.epsilon)?;
            return Ok(Var::constant(y));
        }
        // A frozen BatchNorm inside a recorded computation: the fused kernel's arithmetic,
        // `x * scale + shift`, written with ops so that a trainable beta gets its gradient.
        let eps = self.epsilon;
        let channel = |values: Vec<f32>| {
            Var::constant(Tensor::from_vec(&[values.len()], values).expect("one value per channel"))
        };
        let scale = gamma.div(&channel(
            stats.variance.iter().map(|v| (v + eps).sqrt()).collect(),
        ))?;
        let shift = beta.sub(&channel(stats.mean).mul(&scale)?)?;
        x.mul(&scale)?.add(&shift)
    }
    fn params(&self) -> Vec<ParamId> {
        vec![
            self.gamma,
            self.beta,
            self.moving_mean,
            self.moving_variance,
        ]
    }
    fn learnable_params(&self) -> Vec<ParamId> {
        vec![self.gamma, self.beta]
    }
    fn inference_step(&self, store: &ParamStore) -> Option<InferenceStep> {
        let values = |id| store.value(id).as_slice();
        let scale: Vec<f32> = values(self.gamma)
            .iter()
            .zip(values(self.moving_variance))
            .map(|(g, v)| g / (v + self.epsilon).sqrt())
            .collect();
        let shift = values(self.beta)
            .iter()
            .zip(values(self.moving_mean))
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Some(InferenceStep::ChannelAffine { scale, shift })
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::BatchNorm {
            gamma: self.gamma,
            beta: self.beta,
            moving_mean: self.moving_mean,
            moving_variance: self.moving_variance,
            epsilon: self.epsilon,
        })
    }
}

/// Layer normalization over each sample's last axis (Keras' LayerNormalization).
#[derive(Clone, Debug)]
pub struct LayerNormConfig {
    /// Added to the variance (Keras: 1e-3).
    pub epsilon: f32,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        Self {
            epsilon: 1e-3,
            name: None,
        }
    }
}

/// Group normalization: channels split into `groups`, each normalized over the
/// sample's spatial positions and its channels (Keras' GroupNormalization).
#[derive(Clone, Debug)]
pub struct GroupNormConfig {
    /// Number of channel groups; must divide the channels.
    pub groups: usize,
    /// Added to the variance (Keras: 1e-3).
    pub epsilon: f32,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl GroupNormConfig {
    /// Group normalization with `groups` groups.
    pub fn new(groups: usize) -> Self {
        Self {
            groups,
            epsilon: 1e-3,
            name: None,
        }
    }
}

/// A LayerNormalization or GroupNormalization layer (per-sample statistics).
pub struct Normalization {
    name: String,
    groups: Option<usize>,
    epsilon: f32,
    gamma: ParamId,
    beta: ParamId,
}

impl LayerConfig for LayerNormConfig {
    named_config!("layer_normalization");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let (gamma, beta) = scale_and_shift(store, name, channel_count(name, inputs)?)?;
        Ok(Box::new(Normalization {
            name: name.to_string(),
            groups: None,
            epsilon: self.epsilon,
            gamma,
            beta,
        }))
    }
}

impl LayerConfig for GroupNormConfig {
    named_config!("group_normalization");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let c = channel_count(name, inputs)?;
        if self.groups == 0 || c % self.groups != 0 {
            return Err(layer_error(
                name,
                format!("{} groups must divide {c} channels", self.groups),
            ));
        }
        let (gamma, beta) = scale_and_shift(store, name, c)?;
        Ok(Box::new(Normalization {
            name: name.to_string(),
            groups: Some(self.groups),
            epsilon: self.epsilon,
            gamma,
            beta,
        }))
    }
}

impl Layer for Normalization {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        match self.groups {
            None => LayerKind::LayerNorm,
            Some(_) => LayerKind::GroupNorm,
        }
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        same_shape(&self.name, inputs)
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var> {
        let x = single(&self.name, inputs)?;
        let shape = x.value().shape().to_vec();
        let rank = shape.len();
        let normalized = match self.groups {
            None => standardize(x, &[rank - 1], self.epsilon)?,
            Some(groups) => {
                // (n, ..., c) -> (n, ..., groups, c / groups), statistics over all but n and groups.
                let mut grouped = shape[..rank - 1].to_vec();
                grouped.extend([groups, shape[rank - 1] / groups]);
                let axes: Vec<usize> = (1..rank - 1).chain([rank]).collect();
                standardize(&x.reshape(&grouped)?, &axes, self.epsilon)?.reshape(&shape)?
            }
        };
        normalized
            .mul(&ctx.param(self.gamma))?
            .add(&ctx.param(self.beta))
    }
    fn params(&self) -> Vec<ParamId> {
        vec![self.gamma, self.beta]
    }
}
