//! Finding where a non-finite loss came from: the input, a parameter already broken by
//! an earlier update, or the first layer whose output is NaN or infinite. Runs only
//! after the loss went bad, re-running that batch's forward pass layer by layer.

use petal_nn::{Context, Model, Tape, Var};
use petal_tensor::Tensor;

use crate::error::Result;

fn finite(t: &Tensor) -> bool {
    t.as_slice().iter().all(|v| v.is_finite())
}

/// Where the non-finite values of a training pass on `x` first appear, as a phrase for
/// an error message. `seed` is the step's random seed, so dropout draws the same masks.
pub(crate) fn locate(model: &Model, x: &Var, seed: u64) -> Result<String> {
    if !finite(x.value()) {
        return Ok("the input batch itself holds NaN or infinite values".into());
    }
    let broken: Vec<&str> = model
        .store()
        .iter()
        .filter(|(_, p)| !finite(&p.value))
        .map(|(_, p)| p.name.as_str())
        .collect();
    let mut first = None;
    let tape = Tape::new();
    let ctx = Context::train(model.store(), &tape, seed);
    model.forward_observed(x, &ctx, &mut |layer, output| {
        if first.is_none() && !finite(output) {
            first = Some(layer.to_string());
        }
    })?;
    let mut text = match first {
        Some(layer) => format!("the first layer whose output is not finite is {layer:?}"),
        None => "every layer's output is finite: the loss itself overflowed".into(),
    };
    if !broken.is_empty() {
        text += &format!(
            " (parameters already non-finite before this step: {})",
            broken.join(", ")
        );
    }
    Ok(text)
}
