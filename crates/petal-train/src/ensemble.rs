//! Ensembles: average class probabilities over several models, or over several views of
//! the same samples (test-time augmentation).

use petal_data::augment::flip_horizontally;
use petal_data::{Dataset, Mapped};
use petal_nn::Model;
use petal_tensor::reduce::softmax;
use petal_tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::evaluate::{predict, scores_evaluation, Evaluation};

/// The mean of the models' softmax probabilities on every sample, with the labels.
pub fn ensemble_probabilities(
    models: &[&Model],
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<(Tensor, Vec<usize>)> {
    let members: Vec<(&Model, &dyn Dataset)> = models.iter().map(|&m| (m, data)).collect();
    mean_probabilities(&members, batch_size)
}

/// Accuracy of the averaged probabilities; the loss is the mean negative log-likelihood
/// of the true class.
pub fn ensemble_evaluate(
    models: &[&Model],
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<Evaluation> {
    let (probabilities, labels) = ensemble_probabilities(models, data, batch_size)?;
    Ok(probabilities_evaluation(&probabilities, labels))
}

/// Evaluates `model` on the images of `data` as they are, and with each image's
/// probabilities averaged with those of its mirror image (left to right): the simplest
/// test-time augmentation, for models trained with random horizontal flips. Two passes
/// over `data`; returns `(plain, flip_averaged)`.
pub fn evaluate_with_flips(
    model: &Model,
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<(Evaluation, Evaluation)> {
    let shape = data.sample_shape().to_vec();
    // A shape that is not an image is refused here, once; every sample the loader hands
    // the map below then has this shape's length, so its flip cannot fail.
    flip_horizontally(&mut vec![0.0; data.sample_len()], &shape)?;
    let mirrored = Mapped::new(data, move |image: &mut [f32]| {
        flip_horizontally(image, &shape).expect("sample shape checked above")
    });
    let (plain, labels) = mean_probabilities(&[(model, data)], batch_size)?;
    let (mirror, _) = mean_probabilities(&[(model, &mirrored)], batch_size)?;
    let mut averaged = plain.clone();
    averaged
        .as_mut_slice()
        .iter_mut()
        .zip(mirror.as_slice())
        .for_each(|(p, m)| *p = (*p + m) / 2.0);
    Ok((
        probabilities_evaluation(&plain, labels.clone()),
        probabilities_evaluation(&averaged, labels),
    ))
}

/// The mean over `members` of each model's softmax probabilities on its dataset (all
/// holding the same samples in the same order), with the labels.
fn mean_probabilities(
    members: &[(&Model, &dyn Dataset)],
    batch_size: usize,
) -> Result<(Tensor, Vec<usize>)> {
    let mut sum: Option<Tensor> = None;
    let mut labels = Vec::new();
    for (model, data) in members {
        let (logits, l) = predict(model, *data, batch_size)?;
        let classes = logits.ndim() - 1;
        let p = softmax(&logits, classes)?;
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
    let n = members.len() as f32;
    mean.as_mut_slice().iter_mut().for_each(|v| *v /= n);
    Ok((mean, labels))
}

/// The evaluation of averaged probabilities, the loss being the mean negative
/// log-likelihood of the true class.
fn probabilities_evaluation(probabilities: &Tensor, labels: Vec<usize>) -> Evaluation {
    let classes = probabilities.shape().last().copied().unwrap_or(1);
    let nll: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| -f64::from(probabilities.as_slice()[i * classes + l].max(1e-12)).ln())
        .sum::<f64>()
        / labels.len().max(1) as f64;
    scores_evaluation(nll, probabilities, labels)
}
