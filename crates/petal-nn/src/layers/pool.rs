//! Pooling layers: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D.

use petal_tensor::{Padding, Pool2dSpec};
use rand_chacha::ChaCha8Rng;

use super::{
    batched, layer_error, single, Context, Layer, LayerConfig, LayerDescription, LayerKind,
};
use crate::error::Result;
use crate::{ParamStore, Var};

/// Which pooling a [`Pool`] layer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value of each window.
    Max,
    /// The mean of each window (padding excluded).
    Avg,
    /// The mean of each channel over the whole image: `(h, w, c) -> (c)`.
    GlobalAvg,
}

/// Max or average pooling (Keras' MaxPooling2D / AveragePooling2D).
///
/// ```
/// use petal_nn::layers::{Pool2dConfig, PoolKind};
/// let pool = Pool2dConfig::max(2); // stride defaults to the window, as in Keras
/// assert_eq!((pool.kind, pool.strides), (PoolKind::Max, None));
/// ```
#[derive(Clone, Debug)]
pub struct Pool2dConfig {
    /// Max or average.
    pub kind: PoolKind,
    /// Window height and width.
    pub pool_size: [usize; 2],
    /// Step between windows; `None` means the window size.
    pub strides: Option<[usize; 2]>,
    /// Border handling.
    pub padding: Padding,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl Pool2dConfig {
    /// Max pooling over `size x size` windows.
    pub fn max(size: usize) -> Self {
        Self {
            kind: PoolKind::Max,
            pool_size: [size, size],
            strides: None,
            padding: Padding::Valid,
            name: None,
        }
    }
    /// Average pooling over `size x size` windows.
    pub fn avg(size: usize) -> Self {
        Self {
            kind: PoolKind::Avg,
            ..Self::max(size)
        }
    }
}

/// Global average pooling (Keras' GlobalAveragePooling2D).
#[derive(Clone, Debug, Default)]
pub struct GlobalAvgPoolConfig {
    /// An explicit layer name.
    pub name: Option<String>,
}

/// A pooling layer.
pub struct Pool {
    name: String,
    kind: PoolKind,
    spec: Pool2dSpec,
}

impl LayerConfig for Pool2dConfig {
    fn stem(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pooling2d",
            PoolKind::Avg => "average_pooling2d",
            PoolKind::GlobalAvg => "global_average_pooling2d",
        }
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        _: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let spec = Pool2dSpec {
            window: self.pool_size,
            stride: self.strides.unwrap_or(self.pool_size),
            padding: self.padding,
        };
        let layer = Pool {
            name: name.to_string(),
            kind: self.kind,
            spec,
        };
        layer.output_shape(inputs)?;
        Ok(Box::new(layer))
    }
}

impl LayerConfig for GlobalAvgPoolConfig {
    named_config!("global_average_pooling2d");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        Pool2dConfig {
            kind: PoolKind::GlobalAvg,
            ..Pool2dConfig::max(1)
        }
        .init(name, inputs, store, rng)
    }
}

impl Layer for Pool {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        match self.kind {
            PoolKind::Max => LayerKind::MaxPool2d,
            PoolKind::Avg => LayerKind::AvgPool2d,
            PoolKind::GlobalAvg => LayerKind::GlobalAvgPool2d,
        }
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let input = single(&self.name, inputs)?;
        let &[_, _, c] = input else {
            return Err(layer_error(
                &self.name,
                format!("expects (height, width, channels) inputs, got {input:?}"),
            ));
        };
        if self.kind == PoolKind::GlobalAvg {
            return Ok(vec![c]);
        }
        let probe = petal_tensor::Tensor::zeros(&batched(1, input));
        let out = petal_tensor::pool::avg_pool2d(&probe, &self.spec)
            .map_err(|e| layer_error(&self.name, e.to_string()))?;
        Ok(out.shape()[1..].to_vec())
    }
    fn forward(&self, inputs: &[&Var], _: &Context) -> Result<Var> {
        let x = single(&self.name, inputs)?;
        match self.kind {
            PoolKind::Max => x.max_pool2d(&self.spec),
            PoolKind::Avg => x.avg_pool2d(&self.spec),
            PoolKind::GlobalAvg => x.global_avg_pool(),
        }
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(match self.kind {
            PoolKind::GlobalAvg => LayerDescription::GlobalAvgPool,
            kind => LayerDescription::Pool {
                kind,
                spec: self.spec,
            },
        })
    }
}
