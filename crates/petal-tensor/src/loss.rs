//! Softmax cross-entropy, fused so that it stays finite for any logits.

use crate::error::{invalid, shape_mismatch, Result};
use crate::reduce::log_softmax;
use crate::Tensor;

/// Mean softmax cross-entropy of `logits (n, classes)` against target distributions
/// `targets (n, classes)` (one-hot or smoothed). Returns the loss and its gradient with
/// respect to the logits, `(softmax(logits) - targets) / n`.
///
/// ```
/// use petal_tensor::{loss::softmax_cross_entropy, Tensor};
/// let logits = Tensor::from_vec(&[1, 2], vec![0.0, 0.0]).unwrap();
/// let targets = Tensor::from_vec(&[1, 2], vec![1.0, 0.0]).unwrap();
/// let (loss, grad) = softmax_cross_entropy(&logits, &targets).unwrap();
/// assert!((loss - 2f32.ln()).abs() < 1e-6);
/// assert_eq!(grad.to_vec(), vec![-0.5, 0.5]);
/// ```
pub fn softmax_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<(f32, Tensor)> {
    if logits.ndim() != 2 || logits.shape() != targets.shape() {
        return Err(shape_mismatch(
            "softmax_cross_entropy",
            logits.shape(),
            targets.shape(),
            "logits and targets must both be (batch, classes)",
        ));
    }
    let n = logits.shape()[0].max(1) as f32;
    let log_p = log_softmax(logits, 1)?;
    let loss: f64 = log_p
        .as_slice()
        .iter()
        .zip(targets.as_slice())
        .map(|(l, t)| f64::from(-l * t))
        .sum();
    let grad: Vec<f32> = log_p
        .as_slice()
        .iter()
        .zip(targets.as_slice())
        .map(|(l, t)| (l.exp() - t) / n)
        .collect();
    Ok((loss as f32 / n, Tensor::from_vec(logits.shape(), grad)?))
}

/// One-hot rows `(labels.len(), classes)` for integer class labels.
///
/// ```
/// use petal_tensor::loss::one_hot;
/// assert_eq!(one_hot(&[2, 0], 3).unwrap().to_vec(), vec![0., 0., 1., 1., 0., 0.]);
/// assert!(one_hot(&[3], 3).is_err());
/// ```
pub fn one_hot(labels: &[usize], classes: usize) -> Result<Tensor> {
    let mut rows = vec![0.0; labels.len() * classes];
    for (i, &label) in labels.iter().enumerate() {
        if label >= classes {
            return Err(invalid(
                "one_hot",
                format!("label {label} at position {i} is outside 0..{classes}"),
            ));
        }
        rows[i * classes + label] = 1.0;
    }
    Tensor::from_vec(&[labels.len(), classes], rows)
}
