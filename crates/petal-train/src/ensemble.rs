//! Ensembles: average several models' class probabilities.

use petal_data::Dataset;
use petal_nn::Model;
use petal_tensor::reduce::softmax;
use petal_tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::fit::{predict, scores_evaluation, Evaluation};

/// The mean of the models' softmax probabilities on every sample, with the labels.
pub fn ensemble_probabilities(
    models: &[&Model],
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<(Tensor, Vec<usize>)> {
    let mut sum: Option<Tensor> = None;
    let mut labels = Vec::new();
    for model in models {
        let (logits, l) = predict(model, data, batch_size)?;
        let classes = logits.ndim() - 1;
        let p = softmax(&logits, classes).map_err(petal_nn::NnError::from)?;
        labels = l;
        sum = Some(match sum {
            None => p,
            Some(mut s) => {
                s.as_mut_slice()
                    .iter_mut()
                    .zip(p.as_slice())
                    .for_each(|(s, p)| *s += p);
                s
            }
        });
    }
    let mut mean =
        sum.ok_or_else(|| TrainError::Config("an ensemble needs at least one model".into()))?;
    let n = models.len() as f32;
    mean.as_mut_slice().iter_mut().for_each(|v| *v /= n);
    Ok((mean, labels))
}

/// Accuracy of the averaged probabilities; the loss is the mean negative log-likelihood
/// of the true class.
pub fn ensemble_evaluate(
    models: &[&Model],
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<Evaluation> {
    let (probabilities, labels) = ensemble_probabilities(models, data, batch_size)?;
    let classes = probabilities.shape().last().copied().unwrap_or(1);
    let nll: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| -f64::from(probabilities.as_slice()[i * classes + l].max(1e-12)).ln())
        .sum::<f64>()
        / labels.len().max(1) as f64;
    Ok(scores_evaluation(nll, &probabilities, labels))
}
