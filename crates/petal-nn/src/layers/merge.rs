//! Layers that join several inputs: Add (residual connections) and Concatenate.

use rand_chacha::ChaCha8Rng;

use super::{
    layer_error, Activation, Context, InferenceStep, Layer, LayerConfig, LayerDescription,
    LayerKind,
};
use crate::error::Result;
use crate::{ParamStore, Var};

/// Elementwise sum of inputs of one shape.
#[derive(Clone, Debug, Default)]
pub struct AddConfig {
    /// An explicit layer name.
    pub name: Option<String>,
}

/// Concatenation along the last (channel) axis.
#[derive(Clone, Debug, Default)]
pub struct ConcatConfig {
    /// An explicit layer name.
    pub name: Option<String>,
}

/// An Add or Concatenate layer.
pub struct Merge {
    name: String,
    concat: bool,
    /// The activation an Add took over from the layer after it
    /// ([`Model::fold_for_inference`](crate::Model::fold_for_inference)); `Linear` as built.
    activation: Activation,
}

fn merge_init(name: &str, concat: bool, inputs: &[&[usize]]) -> Result<Box<dyn Layer>> {
    let layer = Merge {
        name: name.to_string(),
        concat,
        activation: Activation::Linear,
    };
    layer.output_shape(inputs)?;
    Ok(Box::new(layer))
}

impl LayerConfig for AddConfig {
    named_config!("add");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        _: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        merge_init(name, false, inputs)
    }
}

impl LayerConfig for ConcatConfig {
    named_config!("concatenate");
    fn init(
        &self,
        name: &str,
        inputs: &[&[usize]],
        _: &mut ParamStore,
        _: &mut ChaCha8Rng,
    ) -> Result<Box<dyn Layer>> {
        merge_init(name, true, inputs)
    }
}

impl Layer for Merge {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> LayerKind {
        if self.concat {
            LayerKind::Concat
        } else {
            LayerKind::Add
        }
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let Some((first, rest)) = inputs.split_first().filter(|(_, rest)| !rest.is_empty()) else {
            return Err(layer_error(&self.name, "needs at least two inputs"));
        };
        let rank = first.len();
        let agree = |s: &[usize]| {
            if self.concat {
                s.len() == rank && s[..rank - 1] == first[..rank - 1]
            } else {
                s == *first
            }
        };
        if rank == 0 || !rest.iter().all(|s| agree(s)) {
            return Err(layer_error(
                &self.name,
                format!("input shapes {inputs:?} do not fit together"),
            ));
        }
        let mut out = first.to_vec();
        if self.concat {
            out[rank - 1] = inputs.iter().map(|s| s[rank - 1]).sum();
        }
        Ok(out)
    }
    fn forward(&self, inputs: &[&Var], _: &Context) -> Result<Var> {
        if self.concat {
            let axis = inputs
                .first()
                .map_or(0, |x| x.value().ndim().saturating_sub(1));
            return Var::concat(inputs, axis);
        }
        let Some((last, rest)) = inputs.split_last().filter(|(_, rest)| !rest.is_empty()) else {
            return Err(layer_error(&self.name, "needs at least two inputs"));
        };
        let sum = rest[1..]
            .iter()
            .try_fold(rest[0].clone(), |sum, x| sum.add(x))?;
        match self.activation.fusable() {
            // The last sum and the activation in one pass.
            Some(op) => sum.add_activated(last, op),
            None => self.activation.apply(sum.add(last)?),
        }
    }
    fn absorb(&self, step: &InferenceStep, _: &mut ParamStore) -> Option<Box<dyn Layer>> {
        match step {
            InferenceStep::Activation(activation)
                if !self.concat
                    && self.activation == Activation::Linear
                    && activation.fusable().is_some() =>
            {
                Some(Box::new(Merge {
                    name: self.name.clone(),
                    concat: false,
                    activation: *activation,
                }))
            }
            _ => None,
        }
    }
    fn describe(&self) -> Option<LayerDescription> {
        Some(match self.concat {
            true => LayerDescription::Concat,
            false => LayerDescription::Add {
                activation: self.activation,
            },
        })
    }
}
