//! Loss functions over a model's output and the batch's targets.

use petal_tensor::loss::one_hot;
use petal_tensor::Tensor;

use crate::error::{NnError, Result};
use crate::Var;

/// What a batch's output is compared with.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class index per sample.
    Labels(&'a [usize]),
    /// A target value per output value (one-hot rows, probabilities, regression values).
    /// For the cross-entropies each row must be a probability distribution.
    Values(&'a Tensor),
}

/// A loss function (Keras' names). Classification losses take logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Softmax cross-entropy from logits, `-sum_k t_k ln softmax(x)_k` averaged over the
    /// batch, against target distributions: the one-hot rows of labels or soft
    /// (probability) targets given as values, such as the mixed labels of MixUp and
    /// CutMix. For a soft row `t = l e_a + (1 - l) e_b` it is `l CE(a) + (1 - l) CE(b)`.
    /// Targets are smoothed towards uniform by `label_smoothing`: `t * (1 - s) + s /
    /// classes`.
    ///
    /// ```
    /// use petal_nn::{Loss, Targets, Var};
    /// use petal_tensor::Tensor;
    /// let logits = Var::constant(Tensor::from_vec(&[1, 2], vec![3f32.ln(), 0.0])?); // p = (3/4, 1/4)
    /// let soft = Tensor::from_vec(&[1, 2], vec![0.7, 0.3])?;
    /// let loss = Loss::CategoricalCrossentropy { label_smoothing: 0.0 }
    ///     .compute(&logits, Targets::Values(&soft))?;
    /// let by_hand = -(0.7 * 0.75f32.ln() + 0.3 * 0.25f32.ln());
    /// assert!((loss.value().item()? - by_hand).abs() < 1e-6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    CategoricalCrossentropy {
        /// Smoothing factor in [0, 1).
        label_smoothing: f32,
    },
    /// Softmax cross-entropy from logits against class indices (given soft targets as
    /// values instead, the same as `CategoricalCrossentropy` without smoothing).
    SparseCategoricalCrossentropy,
    /// Binary cross-entropy, from logits (stable form) or from probabilities.
    BinaryCrossentropy {
        /// Whether the outputs are logits.
        from_logits: bool,
    },
    /// Mean of squared differences.
    MeanSquaredError,
}

fn dense_targets(targets: Targets<'_>, classes: usize) -> Result<Tensor> {
    match targets {
        Targets::Labels(labels) => Ok(one_hot(labels, classes)?),
        Targets::Values(t) => Ok(t.clone()),
    }
}

/// The targets of a cross-entropy as distributions: one-hot rows of labels, or values
/// whose every row (last axis) is non-negative and sums to 1 (within 1e-3).
fn distributions(loss: &'static str, targets: Targets<'_>, classes: usize) -> Result<Tensor> {
    let t = dense_targets(targets, classes)?;
    let row_len = t.shape().last().copied().unwrap_or(1).max(1);
    for (row, values) in t.as_slice().chunks(row_len).enumerate() {
        let sum: f32 = values.iter().sum();
        let problem = match values.iter().position(|&v| v.is_nan() || v < 0.0) {
            Some(class) => format!("has {} at class {class}", values[class]),
            None if (sum - 1.0).abs() > 1e-3 => format!("sums to {sum}"),
            None => continue,
        };
        return Err(NnError::Targets {
            loss,
            reason: format!(
                "target row {row} {problem}, but each row must be a probability distribution (non-negative values summing to 1)"
            ),
        });
    }
    Ok(t)
}

impl Loss {
    /// The mean loss over the batch, as a scalar value on the output's tape.
    ///
    /// ```
    /// use petal_nn::{Loss, Targets, Var};
    /// use petal_tensor::Tensor;
    /// let logits = Var::constant(Tensor::from_vec(&[1, 2], vec![0.0, 0.0])?);
    /// let loss = Loss::SparseCategoricalCrossentropy.compute(&logits, Targets::Labels(&[1]))?;
    /// assert!((loss.value().item()? - 2f32.ln()).abs() < 1e-6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compute(&self, output: &Var, targets: Targets<'_>) -> Result<Var> {
        let classes = output.value().shape().last().copied().unwrap_or(0);
        match *self {
            Loss::SparseCategoricalCrossentropy => output.softmax_cross_entropy(&distributions(
                "sparse_categorical_crossentropy",
                targets,
                classes,
            )?),
            Loss::CategoricalCrossentropy { label_smoothing: s } => {
                let t = distributions("categorical_crossentropy", targets, classes)?;
                let smoothed =
                    petal_tensor::elementwise::map(&t, |v| v * (1.0 - s) + s / classes as f32);
                output.softmax_cross_entropy(&smoothed)
            }
            Loss::BinaryCrossentropy { from_logits } => {
                let t = Var::constant(dense_targets(targets, classes)?);
                let per_value = if from_logits {
                    // max(x, 0) - x t + ln(1 + e^-|x|)
                    let softplus = output
                        .abs()
                        .neg()
                        .exp()
                        .add(&Var::constant(Tensor::scalar(1.0)))?
                        .log();
                    output.relu().sub(&output.mul(&t)?)?.add(&softplus)?
                } else {
                    let eps = Var::constant(Tensor::scalar(1e-7));
                    let one = Var::constant(Tensor::scalar(1.0));
                    let positive = t.mul(&output.add(&eps)?.log())?;
                    let negative = one.sub(&t)?.mul(&one.sub(output)?.add(&eps)?.log())?;
                    positive.add(&negative)?.neg()
                };
                mean_all(&per_value)
            }
            Loss::MeanSquaredError => {
                let t = dense_targets(targets, classes)?;
                if t.shape() != output.value().shape() {
                    return Err(NnError::Tensor(petal_tensor::TensorError::ShapeMismatch {
                        op: "mean_squared_error",
                        lhs: output.value().shape().to_vec(),
                        rhs: t.shape().to_vec(),
                        reason: "outputs and targets must have one shape".into(),
                    }));
                }
                mean_all(&output.sub(&Var::constant(t))?.square())
            }
        }
    }
}

fn mean_all(x: &Var) -> Result<Var> {
    let axes: Vec<usize> = (0..x.value().ndim()).collect();
    x.mean(&axes, false)
}
