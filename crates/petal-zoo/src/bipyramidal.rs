//! The bipyramidal CNN: feature maps shrink and filters grow, block by block.

use petal_nn::layers::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, DropoutConfig, FlattenConfig,
    GlobalAvgPoolConfig, Pool2dConfig, Regularizer,
};
use petal_nn::{LayerConfig, Model, Result, Sequential};
use petal_tensor::Padding;

/// The shape of a bipyramidal CNN.
///
/// Each block is `convs_per_block` x (conv `kernel`x`kernel` -> (batch norm) -> ReLU),
/// then 2x2 max-pooling and optional dropout; block `b` has `base_filters * 2^b`
/// filters. The head flattens (or averages each feature map, `global_pooling`), then
/// runs the `dense` layers (ReLU, optional dropout) and a final linear layer of
/// `classes` logits.
#[derive(Clone, Debug)]
pub struct BipyramidalConfig {
    /// Per-sample input shape `(h, w, c)`.
    pub input_shape: [usize; 3],
    /// Number of conv/pool blocks.
    pub blocks: usize,
    /// Filters of the first block.
    pub base_filters: usize,
    /// Convolutions before each pooling.
    pub convs_per_block: usize,
    /// Kernel size of every convolution.
    pub kernel: usize,
    /// Padding of every convolution.
    pub padding: Padding,
    /// Batch normalization (momentum 0.9) after each convolution.
    pub batch_norm: bool,
    /// Dropout rate after each block's pooling.
    pub block_dropout: Option<f32>,
    /// Global average pooling instead of flattening: one value per feature map, so the
    /// head has `filters x classes` weights rather than `h x w x filters x classes`.
    pub global_pooling: bool,
    /// Units of the hidden dense layers.
    pub dense: Vec<usize>,
    /// Dropout rate before each dense layer of the head.
    pub head_dropout: Option<f32>,
    /// Output classes (logits).
    pub classes: usize,
    /// L2 penalty on every kernel.
    pub l2: Option<f32>,
}

impl BipyramidalConfig {
    /// The lecture's MNIST network: two blocks of one 'same' 3x3 conv (32, 64 filters),
    /// a 128-unit dense layer, 10 classes.
    pub fn mnist() -> Self {
        Self {
            input_shape: [28, 28, 1],
            blocks: 2,
            base_filters: 32,
            convs_per_block: 1,
            kernel: 3,
            padding: Padding::Same,
            batch_norm: false,
            block_dropout: None,
            global_pooling: false,
            dense: vec![128],
            head_dropout: None,
            classes: 10,
            l2: None,
        }
    }
}

/// Builds the network described by `config`, initialized from `seed`.
///
/// ```
/// use petal_zoo::{bipyramidal, BipyramidalConfig};
/// let model = bipyramidal(&BipyramidalConfig::mnist(), 0)?;
/// assert_eq!(model.output_shape(), &[10]);
/// assert_eq!(model.store().trainable_count(), 421_642);
/// # Ok::<(), petal_nn::NnError>(())
/// ```
pub fn bipyramidal(config: &BipyramidalConfig, seed: u64) -> Result<Model> {
    let regularizer = config.l2.map(Regularizer::l2);
    let mut model = Sequential::new(&config.input_shape, seed);
    for block in 0..config.blocks {
        for _ in 0..config.convs_per_block {
            let activation = if config.batch_norm {
                Activation::Linear
            } else {
                Activation::Relu
            };
            model.push(&Conv2dConfig {
                padding: config.padding,
                activation,
                use_bias: !config.batch_norm,
                kernel_regularizer: regularizer,
                ..Conv2dConfig::new(config.base_filters << block, config.kernel)
            })?;
            if config.batch_norm {
                // Momentum 0.9 (PyTorch's 0.1): with a few dozen steps per epoch, Keras' 0.99
                // makes the moving statistics lag the quickly changing early activations,
                // and inference-mode validation looks much worse than training.
                model.push(&BatchNormConfig {
                    momentum: 0.9,
                    ..BatchNormConfig::default()
                })?;
                model.push(&petal_nn::layers::ActivationConfig::new(Activation::Relu))?;
            }
        }
        model.push(&Pool2dConfig::max(2))?;
        push_dropout(&mut model, config.block_dropout)?;
    }
    if config.global_pooling {
        model.push(&GlobalAvgPoolConfig::default())?;
    } else {
        model.push(&FlattenConfig::default())?;
    }
    for &units in &config.dense {
        push_dropout(&mut model, config.head_dropout)?;
        model.push(&DenseConfig {
            activation: Activation::Relu,
            kernel_regularizer: regularizer,
            ..DenseConfig::new(units)
        })?;
    }
    push_dropout(&mut model, config.head_dropout)?;
    model.push(&DenseConfig {
        kernel_regularizer: regularizer,
        ..DenseConfig::new(config.classes)
    })?;
    model.build()
}

fn push_dropout(model: &mut Sequential, rate: Option<f32>) -> Result<()> {
    match rate {
        Some(rate) => model.push(&DropoutConfig::new(rate) as &dyn LayerConfig),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petal_nn::layers::LayerKind;

    #[test]
    fn options_add_the_expected_layers() {
        let config = BipyramidalConfig {
            batch_norm: true,
            block_dropout: Some(0.25),
            head_dropout: Some(0.5),
            convs_per_block: 2,
            ..BipyramidalConfig::mnist()
        };
        let model = bipyramidal(&config, 1).unwrap();
        let kinds: Vec<LayerKind> = model.summary().rows.iter().map(|r| r.kind).collect();
        let count = |kind| kinds.iter().filter(|k| **k == kind).count();
        assert_eq!(count(LayerKind::BatchNorm), 4);
        assert_eq!(count(LayerKind::Dropout), 4);
        assert_eq!(model.summary().rows.last().unwrap().output_shape, vec![10]);
        // Batch-normalized convolutions drop their bias: BN's beta replaces it.
        assert!(model.store().id("conv2d/bias").is_none());
        assert_eq!(model.store().non_trainable_count(), 2 * (32 + 32 + 64 + 64));
    }

    #[test]
    fn global_pooling_feeds_one_value_per_feature_map_to_the_head() {
        let config = BipyramidalConfig {
            global_pooling: true,
            dense: vec![],
            ..BipyramidalConfig::mnist()
        };
        let model = bipyramidal(&config, 1).unwrap();
        let rows = model.summary().rows;
        let pooled = rows
            .iter()
            .find(|r| r.kind == LayerKind::GlobalAvgPool2d)
            .unwrap();
        assert_eq!(pooled.output_shape, vec![64]);
        let conv_params = 3 * 3 * 32 + 32 + 3 * 3 * 32 * 64 + 64;
        assert_eq!(model.store().trainable_count(), conv_params + 64 * 10 + 10);
    }
}
