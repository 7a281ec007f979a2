//! Checks a computation's tape gradients against central finite differences.

use petal_tensor::Tensor;

use crate::error::{NnError, Result};
use crate::{Tape, Var};

/// What [`check_gradients`] compared.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientReport {
    /// Number of input elements checked.
    pub checked: usize,
    /// The largest error seen, relative to `1 + |numeric|`.
    pub worst_error: f64,
}

/// Fixed weights in [-1, 1] that turn a non-scalar output into a scalar objective
/// `sum(output * weights)`, so every output element's gradient is exercised.
fn projection(len: usize) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn objective(output: &Tensor, weights: &[f32]) -> f64 {
    output
        .as_slice()
        .iter()
        .zip(weights)
        .map(|(&o, &w)| f64::from(o) * f64::from(w))
        .sum()
}

/// Compares the gradients that the tape computes for `f` at `inputs` with central
/// finite differences.
///
/// The objective is `sum(f(inputs) * r)` for fixed pseudo-random weights `r`. Each input
/// element is moved by `±eps` (in f32) and the objective is evaluated and differenced in
/// f64. An element passes when `|analytic - numeric| <= tolerance * (1 + |numeric|)`;
/// the first that does not is returned as [`NnError::GradientMismatch`].
///
/// ```
/// use petal_nn::check_gradients;
/// use petal_tensor::Tensor;
/// let x = Tensor::from_vec(&[3], vec![0.5, -1.0, 2.0]).unwrap();
/// let report = check_gradients(|v| Ok(v[0].tanh().mul(&v[0])?), &[x], 1e-2, 1e-2).unwrap();
/// assert_eq!(report.checked, 3);
/// ```
pub fn check_gradients(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    eps: f64,
    tolerance: f64,
) -> Result<GradientReport> {
    let tape = Tape::new();
    let leaves: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let output = f(&leaves)?;
    let weights = projection(output.value().len());
    let weighted = output.mul(&Var::constant(Tensor::from_vec(
        output.value().shape(),
        weights.clone(),
    )?))?;
    let grads = weighted.sum_all().backward()?;

    let evaluate = |inputs: &[Tensor]| -> Result<f64> {
        let constants: Vec<Var> = inputs.iter().cloned().map(Var::constant).collect();
        Ok(objective(f(&constants)?.value(), &weights))
    };
    let mut report = GradientReport {
        checked: 0,
        worst_error: 0.0,
    };
    let mut probe = inputs.to_vec();
    for (input, leaf) in leaves.iter().enumerate() {
        let zeros = Tensor::zeros(leaf.value().shape());
        let analytic = grads.get(leaf).unwrap_or(&zeros);
        for index in 0..leaf.value().len() {
            let original = probe[input].as_slice()[index];
            let up = (f64::from(original) + eps) as f32;
            let down = (f64::from(original) - eps) as f32;
            probe[input].as_mut_slice()[index] = up;
            let above = evaluate(&probe)?;
            probe[input].as_mut_slice()[index] = down;
            let below = evaluate(&probe)?;
            probe[input].as_mut_slice()[index] = original;

            let numeric = (above - below) / (f64::from(up) - f64::from(down));
            let tape_value = f64::from(analytic.as_slice()[index]);
            let error = (tape_value - numeric).abs() / (1.0 + numeric.abs());
            if error > tolerance || !error.is_finite() {
                return Err(NnError::GradientMismatch {
                    input,
                    index,
                    analytic: tape_value,
                    numeric,
                });
            }
            report.worst_error = report.worst_error.max(error);
            report.checked += 1;
        }
    }
    Ok(report)
}
