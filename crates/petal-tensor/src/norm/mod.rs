//! Batch normalization over the last (channel) axis, fused: one pass for the batch
//! statistics, one for the output, and a backward that needs only the input, the
//! statistics and `gamma`.
//!
//! Shapes: `x (..., c)` seen as `rows x c`; `gamma`, `beta`, mean and variance `(c)`.

mod kernels;
#[cfg(test)]
mod tests;

use kernels::{gradient_sums, input_gradient, moments, scale_and_shift, InputGradient};

use crate::error::{shape_mismatch, Result};
use crate::Tensor;

/// The batch statistics a training step normalized with.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel (biased) variance.
    pub variance: Vec<f32>,
}

fn channels(op: &'static str, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<usize> {
    let c = x.shape().last().copied().unwrap_or(0);
    if c == 0 || gamma.shape() != [c] || beta.shape() != [c] {
        return Err(shape_mismatch(
            op,
            x.shape(),
            gamma.shape(),
            "gamma and beta need one value per channel (the last axis)",
        ));
    }
    Ok(c)
}

fn check_stats(op: &'static str, x: &Tensor, stats: &BatchStats, c: usize) -> Result<()> {
    if stats.mean.len() != c || stats.variance.len() != c {
        return Err(shape_mismatch(
            op,
            x.shape(),
            &[stats.mean.len()],
            "statistics need one value per channel",
        ));
    }
    Ok(())
}

/// Training-mode batch normalization: `gamma * (x - mean) / sqrt(var + eps) + beta` with
/// the batch's own per-channel mean and variance, which are returned too.
///
/// ```
/// use petal_tensor::{norm::batch_norm_train, Tensor};
/// let x = Tensor::from_vec(&[2, 1], vec![1.0, 3.0]).unwrap();
/// let (y, stats) = batch_norm_train(&x, &Tensor::ones(&[1]), &Tensor::zeros(&[1]), 0.0).unwrap();
/// assert_eq!(y.to_vec(), vec![-1.0, 1.0]);
/// assert_eq!((stats.mean, stats.variance), (vec![2.0], vec![1.0]));
/// ```
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    epsilon: f32,
) -> Result<(Tensor, BatchStats)> {
    batch_norm_train_in_parts(x, gamma, beta, epsilon, &whole_batch).map(|(y, stats, _)| (y, stats))
}

/// Replaces a part's per-channel sums with the sums over every part of a batch split
/// across processes (an allreduce, called in the same order on every process).
pub type SumOverParts<'a> = &'a dyn Fn(&mut [f64]);

/// The [`SumOverParts`] of a batch in one part: the sums stay as they are.
pub fn whole_batch(_sums: &mut [f64]) {}

/// [`batch_norm_train`] on one part `x` of a batch split across processes (synchronized
/// batch norm): the mean and variance are those of the whole batch, gathered through
/// `sum_over_parts`. Also returns this part's share of the batch's rows, for
/// [`batch_norm_backward_in_parts`].
///
/// ```
/// use petal_tensor::{norm::batch_norm_train_in_parts, Tensor};
/// // This part holds 1 and 3; the other part, 5 and 7 (its sums added by hand).
/// let x = Tensor::from_vec(&[2, 1], vec![1.0, 3.0]).unwrap();
/// let other_part = |sums: &mut [f64]| match sums.len() {
///     2 => { sums[0] += 12.0; sums[1] += 2.0 } // sum of values, rows
///     _ => sums[0] += 1.0 + 9.0,               // squared deviations from the mean 4
/// };
/// let (y, stats, share) =
///     batch_norm_train_in_parts(&x, &Tensor::ones(&[1]), &Tensor::zeros(&[1]), 0.0, &other_part)
///         .unwrap();
/// assert_eq!((stats.mean, stats.variance, share), (vec![4.0], vec![5.0], 0.5));
/// assert!((y.to_vec()[0] + 3.0 / 5f32.sqrt()).abs() < 1e-6);
/// ```
pub fn batch_norm_train_in_parts(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    epsilon: f32,
    sum_over_parts: SumOverParts,
) -> Result<(Tensor, BatchStats, f64)> {
    let c = channels("batch_norm_train", x, gamma, beta)?;
    let part = moments(x.as_slice(), c);
    // The channel sums and, last, the row count.
    let mut sums: Vec<f64> = part.mean.iter().map(|m| m * part.rows).collect();
    sums.push(part.rows);
    sum_over_parts(&mut sums);
    let rows = sums.pop().expect("the row count").max(1.0);
    let mean: Vec<f64> = sums.into_iter().map(|s| s / rows).collect();
    // Squared deviations from the batch's mean: the part's own, plus its rows' share of
    // the distance between the two means.
    let mut squares: Vec<f64> = part
        .deviations
        .iter()
        .zip(&part.mean)
        .zip(&mean)
        .map(|((d, part_mean), mean)| d + part.rows * (part_mean - mean) * (part_mean - mean))
        .collect();
    sum_over_parts(&mut squares);
    let variance: Vec<f32> = squares.into_iter().map(|s| (s / rows) as f32).collect();
    let mean: Vec<f32> = mean.into_iter().map(|m| m as f32).collect();
    let stats = BatchStats { mean, variance };
    let y = normalize(x, &stats, gamma, beta, epsilon);
    Ok((y, stats, part.rows / rows))
}

/// `gamma * (x - mean) / sqrt(variance + eps) + beta` with given statistics (inference
/// uses the moving ones).
pub fn batch_norm_apply(
    x: &Tensor,
    stats: &BatchStats,
    gamma: &Tensor,
    beta: &Tensor,
    epsilon: f32,
) -> Result<Tensor> {
    let c = channels("batch_norm_apply", x, gamma, beta)?;
    check_stats("batch_norm_apply", x, stats, c)?;
    Ok(normalize(x, stats, gamma, beta, epsilon))
}

fn normalize(
    x: &Tensor,
    stats: &BatchStats,
    gamma: &Tensor,
    beta: &Tensor,
    epsilon: f32,
) -> Tensor {
    let scale: Vec<f32> = stats
        .variance
        .iter()
        .zip(gamma.as_slice())
        .map(|(v, g)| g / (v + epsilon).sqrt())
        .collect();
    let shift: Vec<f32> = stats
        .mean
        .iter()
        .zip(&scale)
        .zip(beta.as_slice())
        .map(|((m, s), b)| b - m * s)
        .collect();
    Tensor::from_vec(x.shape(), scale_and_shift(x.as_slice(), &scale, &shift))
        .expect("one value per input value")
}

/// Gradients of [`batch_norm_train`] with respect to `x`, `gamma` and `beta`.
pub fn batch_norm_backward(
    grad: &Tensor,
    x: &Tensor,
    stats: &BatchStats,
    gamma: &Tensor,
    epsilon: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm_backward_in_parts(grad, x, stats, gamma, epsilon, 1.0, &whole_batch)
}

/// Gradients of [`batch_norm_train_in_parts`] for this part, `share` being the part's
/// share of the batch's rows it returned.
///
/// Each part's loss is the mean over its own samples and the parts' gradients are then
/// averaged weighted by their shares, as data-parallel training does; so the input
/// gradient gathers every part's sums of `dy` and `dy * xhat` weighted by its share
/// (relative to this part's). `gamma` and `beta` get this part's own sums, which the
/// averaging then combines.
pub fn batch_norm_backward_in_parts(
    grad: &Tensor,
    x: &Tensor,
    stats: &BatchStats,
    gamma: &Tensor,
    epsilon: f32,
    share: f64,
    sum_over_parts: SumOverParts,
) -> Result<(Tensor, Tensor, Tensor)> {
    let c = channels("batch_norm_backward", x, gamma, gamma)?;
    if grad.shape() != x.shape() {
        return Err(shape_mismatch(
            "batch_norm_backward",
            grad.shape(),
            x.shape(),
            "the gradient must have the input's shape",
        ));
    }
    check_stats("batch_norm_backward", x, stats, c)?;
    let inv_std: Vec<f64> = stats
        .variance
        .iter()
        .map(|v| 1.0 / f64::from(v + epsilon).sqrt())
        .collect();
    // Per channel, the sums over rows of dy and of dy * (x - mean); the latter times
    // inv_std is the sum of dy * xhat.
    let mut total = gradient_sums(grad.as_slice(), x.as_slice(), &stats.mean);
    total[c..]
        .iter_mut()
        .zip(&inv_std)
        .for_each(|(s, inv_std)| *s *= inv_std);
    let dbeta: Vec<f32> = total[..c].iter().map(|&v| v as f32).collect();
    let dgamma: Vec<f32> = total[c..].iter().map(|&v| v as f32).collect();
    let mut weighted: Vec<f64> = total.iter().map(|v| v * share).collect();
    sum_over_parts(&mut weighted);
    let rows = ((x.len() / c) as f64 / share).max(1.0);
    // dx = gamma * inv_std / rows * (rows * dy - sum_dy - xhat * sum_dy_xhat), as
    // gain * dy + slope * (x - mean) + offset.
    let gain: Vec<f64> = gamma
        .as_slice()
        .iter()
        .zip(&inv_std)
        .map(|(&g, inv_std)| f64::from(g) * inv_std)
        .collect();
    let per_row = |sums: &[f64], j: usize| sums[j] / share / rows;
    let coefficients = InputGradient {
        gain: gain.iter().map(|&g| g as f32).collect(),
        slope: (0..c)
            .map(|j| (-gain[j] * inv_std[j] * per_row(&weighted[c..], j)) as f32)
            .collect(),
        mean: stats.mean.clone(),
        offset: (0..c)
            .map(|j| (-gain[j] * per_row(&weighted[..c], j)) as f32)
            .collect(),
    };
    let dx = Tensor::from_vec(
        x.shape(),
        input_gradient(grad.as_slice(), x.as_slice(), &coefficients),
    )?;
    Ok((
        dx,
        Tensor::from_vec(&[c], dgamma)?,
        Tensor::from_vec(&[c], dbeta)?,
    ))
}
