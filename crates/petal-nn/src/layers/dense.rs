//! Dense, Flatten and Dropout.

use petal_tensor::elementwise::{binary, BinaryOp};
use petal_tensor::gemm::matmul;
use petal_tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{
    layer_error, same_shape, single, Activation, Context, Initializer, Layer, LayerConfig,
    LayerDescription, LayerKind, Regularizer,
};
use crate::error::Result;
use crate::{ParamId, ParamStore, Var};

/// A fully connected layer `x W + b` on 1-D samples (Keras' Dense); weights `(in, out)`.
#[derive(Clone, Debug)]
pub struct DenseConfig {
    /// Output size.
    pub units: usize,
    /// Applied to the output.
    pub activation: Activation,
    /// Whether to add a bias.
    pub use_bias: bool,
    /// Kernel initializer (Glorot uniform).
    pub kernel_initializer: Initializer,
    /// Bias initializer (zeros).
    pub bias_initializer: Initializer,
    /// Optional L1/L2 penalty on the kernel.
    pub kernel_regularizer: Option<Regularizer>,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl DenseConfig {
    /// `units` outputs, no activation, with bias.
    pub fn new(units: usize) -> Self {
        Self {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            name: None,
        }
    }
}

/// A Dense layer.
pub struct Dense {
    name: String,
    inputs: usize,
    units: usize,
    kernel: ParamId,
    bias: Option<ParamId>,
    activation: Activation,
    regularizer: Option<Regularizer>,
}

impl LayerConfig for DenseConfig {
    named_config!("dense");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        store: &mut ParamStore,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        let &[n] = single(name, inputs)? else {
            return Err(layer_error(
                name,
                format!(
                    "expects 1-D samples (add a Flatten first), got {:?}",
                    inputs[0]
                ),
            ));
        };
        let kernel = store.add(
            format!("{name}/kernel"),
            self.kernel_initializer
                .tensor(&[n, self.units], n, self.units, rng),
            true,
        )?;
        let bias = match self.use_bias {
            true => Some(
                store.add(
                    format!("{name}/bias"),
                    self.bias_initializer
                        .tensor(&[self.units], n, self.units, rng),
                    true,
                )?,
            ),
            false => None,
        };
        Ok(Box::new(Dense {
            name: name.to_string(),
            inputs: n,
            units: self.units,
            kernel,
            bias,
            activation: self.activation,
            regularizer: self.kernel_regularizer,
        }))
    }
}

impl Dense {
    /// `x` times the stored kernel plus the bias, for a pass that records nothing: the
    /// weights read where they are stored, not copied into the pass (a classifier's
    /// 1280x1000 kernel is 5 MB, and a prediction in chunks runs it once per chunk).
    fn constant_output(&self, x: &Var, store: &ParamStore) -> Result<Var> {
        let mut y = matmul(x.value(), store.value(self.kernel), false, false)?;
        if let Some(b) = self.bias {
            y = binary(&y, store.value(b), BinaryOp::Add)?;
        }
        Ok(Var::constant(y))
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Dense
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        match single(&self.name, inputs)? {
            [n] if *n == self.inputs => Ok(vec![self.units]),
            other => Err(layer_error(
                &self.name,
                format!("expects samples of shape [{}], got {other:?}", self.inputs),
            )),
        }
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var> {
        let x = single(&self.name, inputs)?;
        if ctx.records_nothing(x, &self.params()) {
            return self.activation.apply(self.constant_output(x, ctx.store())?);
        }
        let mut y = x.matmul(&ctx.param(self.kernel))?;
        if let Some(b) = self.bias {
            y = y.add(&ctx.param(b))?;
        }
        self.activation.apply(y)
    }
    fn params(&self) -> Vec<ParamId> {
        std::iter::once(self.kernel).chain(self.bias).collect()
    }
    fn flops(&self, _: &[&[usize]]) -> u64 {
        2 * (self.inputs * self.units) as u64
    }
    fn penalty(&self, ctx: &Context) -> Result<Option<Var>> {
        Ok(self.regularizer.map(|r| r.penalty(&ctx.param(self.kernel))))
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::Dense {
            kernel: self.kernel,
            bias: self.bias,
            activation: self.activation,
        })
    }
}

/// Flattens each sample to 1-D.
#[derive(Clone, Debug, Default)]
pub struct FlattenConfig {
    /// An explicit layer name.
    pub name: Option<String>,
}

/// A Flatten layer.
pub struct Flatten {
    name: String,
}

impl LayerConfig for FlattenConfig {
    named_config!("flatten");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        _: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        single(name, inputs)?;
        Ok(Box::new(Flatten {
            name: name.to_string(),
        }))
    }
}

impl Layer for Flatten {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Flatten
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        Ok(vec![single(&self.name, inputs)?.iter().product()])
    }
    fn forward(&self, inputs: &[&Var], _: &Context) -> Result<Var> {
        let x = single(&self.name, inputs)?;
        let shape = x.value().shape();
        x.reshape(&[shape[0], shape[1..].iter().product()])
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::Flatten)
    }
}

/// Inverted dropout: in training, zeroes each value with probability `rate` and scales
/// the rest by `1 / (1 - rate)`; in inference, the identity.
#[derive(Clone, Debug)]
pub struct DropoutConfig {
    /// Probability of dropping a value, in [0, 1).
    pub rate: f32,
    /// An explicit layer name.
    pub name: Option<String>,
}

impl DropoutConfig {
    /// Dropout with probability `rate`.
    pub fn new(rate: f32) -> Self {
        Self { rate, name: None }
    }
}

/// A Dropout layer.
pub struct Dropout {
    name: String,
    rate: f32,
}

impl LayerConfig for DropoutConfig {
    named_config!("dropout");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        _: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        single(name, inputs)?;
        if !(0.0..1.0).contains(&self.rate) {
            return Err(layer_error(
                name,
                format!("rate {} must be in [0, 1)", self.rate),
            ));
        }
        Ok(Box::new(Dropout {
            name: name.to_string(),
            rate: self.rate,
        }))
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Dropout
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        same_shape(&self.name, inputs)
    }
    fn forward(&self, inputs: &[&Var], ctx: &Context) -> Result<Var> {
        let x = single(&self.name, inputs)?;
        if !ctx.is_training() || self.rate == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.rate;
        let mut mask = ctx.uniform(x.value().len());
        mask.par_iter_mut()
            .for_each(|u| *u = if *u < keep { 1.0 / keep } else { 0.0 });
        x.mul(&Var::constant(Tensor::from_vec(x.value().shape(), mask)?))
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(LayerDescription::Dropout { rate: self.rate })
    }
}
