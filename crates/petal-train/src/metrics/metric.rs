//! The [`Metric`] trait, for figures `fit` logs on validation data at each epoch end,
//! and the built-in metrics: macro-averaged precision, recall and F1, and top-k
//! accuracy.

use petal_tensor::Tensor;

use super::{top_k_accuracy, ConfusionMatrix};

/// A figure computed from a model's scores (logits or probabilities, `(n, classes)`) and
/// the labels. Given to the trainer ([`Trainer::metric`](crate::Trainer::metric)), it is
/// computed on the validation data at each epoch end and logged in the
/// [`History`](crate::History) as `val_<name>`.
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_train::metrics::Metric;
///
/// /// The share of samples predicted as class 0.
/// struct ZeroShare;
///
/// impl Metric for ZeroShare {
///     fn name(&self) -> String {
///         "zero_share".into()
///     }
///     fn compute(&self, scores: &Tensor, labels: &[usize]) -> f64 {
///         let predicted = petal_train::metrics::predicted_classes(scores);
///         predicted.iter().filter(|&&c| c == 0).count() as f64 / labels.len().max(1) as f64
///     }
/// }
///
/// let scores = Tensor::from_vec(&[2, 2], vec![0.9, 0.1, 0.2, 0.8])?;
/// assert_eq!(ZeroShare.compute(&scores, &[0, 0]), 0.5);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub trait Metric {
    /// The name in the epoch logs, without the `val_` prefix (`precision`).
    fn name(&self) -> String;
    /// The figure for `scores` `(n, classes)` against `labels`.
    fn compute(&self, scores: &Tensor, labels: &[usize]) -> f64;
}

/// Precision averaged over the classes (scikit-learn's `precision_score(average="macro")`):
/// a class never predicted has precision 0. Logged as `val_precision`.
///
/// ```
/// use petal_tensor::Tensor;
/// use petal_train::metrics::{Metric, Precision};
/// // Predicted classes 0, 1, 1: class 0 precision 1, class 1 precision 1/2.
/// let scores = Tensor::from_vec(&[3, 2], vec![0.9, 0.1, 0.2, 0.8, 0.3, 0.7])?;
/// assert_eq!(Precision.compute(&scores, &[0, 1, 0]), 0.75);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Precision;

impl Metric for Precision {
    fn name(&self) -> String {
        "precision".into()
    }

    fn compute(&self, scores: &Tensor, labels: &[usize]) -> f64 {
        let matrix = ConfusionMatrix::from_scores(scores, labels);
        matrix.macro_average(&matrix.precision())
    }
}

/// Recall averaged over the classes (scikit-learn's `recall_score(average="macro")`).
/// Logged as `val_recall`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recall;

impl Metric for Recall {
    fn name(&self) -> String {
        "recall".into()
    }

    fn compute(&self, scores: &Tensor, labels: &[usize]) -> f64 {
        let matrix = ConfusionMatrix::from_scores(scores, labels);
        matrix.macro_average(&matrix.recall())
    }
}

/// F1 averaged over the classes (scikit-learn's `f1_score(average="macro")`: the mean
/// of the per-class F1, not the F1 of the mean precision and recall). Logged as
/// `val_f1_score`, Keras' name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct F1Score;

impl Metric for F1Score {
    fn name(&self) -> String {
        "f1_score".into()
    }

    fn compute(&self, scores: &Tensor, labels: &[usize]) -> f64 {
        let matrix = ConfusionMatrix::from_scores(scores, labels);
        matrix.macro_average(&matrix.f1())
    }
}

/// The share of samples whose label is among the `k` highest scores. Logged as
/// `val_top<k>_accuracy` (`val_top5_accuracy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopKAccuracy(pub usize);

impl Metric for TopKAccuracy {
    fn name(&self) -> String {
        format!("top{}_accuracy", self.0)
    }

    fn compute(&self, scores: &Tensor, labels: &[usize]) -> f64 {
        top_k_accuracy(scores, labels, self.0)
    }
}
