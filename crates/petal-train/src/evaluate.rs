//! `evaluate` and `predict`: a model's outputs and figures on a dataset, in inference
//! mode. Called inside [`petal_tensor::with_precision`]`(Precision::Bf16, ..)`, their
//! convolution and dense products run in bf16 (as under PyTorch's `torch.autocast`).

use petal_data::{BatchLoader, Dataset};
use petal_nn::{Loss, Model, Targets, Var};
use petal_tensor::Tensor;

use crate::error::Result;
use crate::metrics::{accuracy, predicted_classes, top_k_accuracy, ConfusionMatrix};

/// The figures of a model on a dataset.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-5 accuracy (equal to 1 with 5 classes or fewer).
    pub top5_accuracy: f64,
    /// The label of each sample, in dataset order.
    pub labels: Vec<usize>,
    /// The predicted class of each sample.
    pub predicted: Vec<usize>,
}

impl Evaluation {
    /// The confusion matrix of the predictions; its methods give the per-class
    /// precision, recall and F1 and their macro averages.
    pub fn confusion_matrix(&self, classes: usize) -> ConfusionMatrix {
        ConfusionMatrix::new(classes, &self.labels, &self.predicted)
    }

    /// For each of the `classes` classes, the share of its samples classified correctly
    /// (0 for a class without samples).
    pub fn per_class_accuracy(&self, classes: usize) -> Vec<f64> {
        self.confusion_matrix(classes).per_class_accuracy()
    }
}

/// The model's outputs (logits) for every sample, in dataset order, with the labels. A
/// batch size of 0 is an error.
pub fn predict(
    model: &Model,
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<(Tensor, Vec<usize>)> {
    let loader = BatchLoader::new(data, batch_size)?;
    let mut outputs =
        Vec::with_capacity(data.len() * model.output_shape().iter().product::<usize>());
    let mut labels = Vec::with_capacity(data.len());
    for batch in loader.epoch(0) {
        let batch = batch?;
        outputs.extend_from_slice(model.predict(&batch.images)?.as_slice());
        labels.extend(batch.labels);
    }
    let shape: Vec<usize> = std::iter::once(labels.len())
        .chain(model.output_shape().iter().copied())
        .collect();
    Ok((Tensor::from_vec(&shape, outputs)?, labels))
}

/// Loss and accuracy of the model on a dataset (inference mode).
pub fn evaluate(
    model: &Model,
    loss: Loss,
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<Evaluation> {
    let (logits, labels) = predict(model, data, batch_size)?;
    evaluate_logits(loss, &logits, labels)
}

/// The evaluation of `logits` `(n, classes)` against `labels` under `loss`.
pub(crate) fn evaluate_logits(
    loss: Loss,
    logits: &Tensor,
    labels: Vec<usize>,
) -> Result<Evaluation> {
    let value = loss
        .compute(&Var::constant(logits.clone()), Targets::Labels(&labels))?
        .value()
        .item()?;
    Ok(scores_evaluation(f64::from(value), logits, labels))
}

/// The evaluation of scores (logits or probabilities) whose loss is already known.
pub(crate) fn scores_evaluation(loss: f64, scores: &Tensor, labels: Vec<usize>) -> Evaluation {
    Evaluation {
        loss,
        accuracy: accuracy(scores, &labels),
        top5_accuracy: top_k_accuracy(scores, &labels, 5),
        predicted: predicted_classes(scores),
        labels,
    }
}
