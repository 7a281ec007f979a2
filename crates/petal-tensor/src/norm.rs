//! Batch normalization over the last (channel) axis, fused: one pass for the batch
//! statistics, one for the output, and a backward that needs only the input, the
//! statistics and `gamma`.
//!
//! Shapes: `x (..., c)` seen as `rows x c`; `gamma`, `beta`, mean and variance `(c)`.

use rayon::prelude::*;

use crate::error::{shape_mismatch, Result};
use crate::Tensor;

/// Rows per rayon task (a fixed split keeps the sums in one order on every run).
const ROWS_PER_TASK: usize = 4096;

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

/// Per-channel sums of `f(row values)` over all rows, added task by task in order.
fn channel_sums(values: &[f32], c: usize, f: impl Fn(&mut [f64], &[f32]) + Sync) -> Vec<f64> {
    let partials: Vec<Vec<f64>> = values
        .par_chunks(ROWS_PER_TASK * c)
        .map(|rows| {
            let mut sums = vec![0.0; c];
            rows.chunks_exact(c).for_each(|row| f(&mut sums, row));
            sums
        })
        .collect();
    partials.into_iter().fold(vec![0.0; c], |mut total, part| {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
        total
    })
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
    let part_rows = (x.len() / c) as f64;
    // The channel sums and, last, the row count.
    let mut sums = channel_sums(x.as_slice(), c, |s, row| {
        s.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v))
    });
    sums.push(part_rows);
    sum_over_parts(&mut sums);
    let rows = sums.pop().expect("the row count").max(1.0);
    let mean: Vec<f32> = sums.into_iter().map(|s| (s / rows) as f32).collect();
    let mut squares = channel_sums(x.as_slice(), c, |s, row| {
        s.iter_mut()
            .zip(row)
            .zip(&mean)
            .for_each(|((s, &v), &m)| *s += f64::from(v - m) * f64::from(v - m))
    });
    sum_over_parts(&mut squares);
    let variance: Vec<f32> = squares.into_iter().map(|s| (s / rows) as f32).collect();
    let stats = BatchStats { mean, variance };
    let y = normalize(x, &stats, gamma, beta, epsilon);
    Ok((y, stats, part_rows / rows))
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
    if stats.mean.len() != c || stats.variance.len() != c {
        return Err(shape_mismatch(
            "batch_norm_apply",
            x.shape(),
            &[stats.mean.len()],
            "statistics need one value per channel",
        ));
    }
    Ok(normalize(x, stats, gamma, beta, epsilon))
}

fn normalize(
    x: &Tensor,
    stats: &BatchStats,
    gamma: &Tensor,
    beta: &Tensor,
    epsilon: f32,
) -> Tensor {
    let c = stats.mean.len();
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
    let mut y = x.clone();
    y.as_mut_slice()
        .par_chunks_mut(ROWS_PER_TASK * c)
        .for_each(|rows| {
            rows.chunks_exact_mut(c).for_each(|row| {
                row.iter_mut()
                    .zip(&scale)
                    .zip(&shift)
                    .for_each(|((v, s), t)| *v = *v * s + t)
            })
        });
    y
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
    let inv_std: Vec<f32> = stats
        .variance
        .iter()
        .map(|v| 1.0 / (v + epsilon).sqrt())
        .collect();
    let (g, xs) = (grad.as_slice(), x.as_slice());
    // Sums over rows of dy and dy * xhat, in one pass over both tensors.
    let sums: Vec<Vec<f64>> = g
        .par_chunks(ROWS_PER_TASK * c)
        .zip(xs.par_chunks(ROWS_PER_TASK * c))
        .map(|(gr, xr)| {
            let mut s = vec![0.0; 2 * c];
            for (grow, xrow) in gr.chunks_exact(c).zip(xr.chunks_exact(c)) {
                for j in 0..c {
                    let xhat = (xrow[j] - stats.mean[j]) * inv_std[j];
                    s[j] += f64::from(grow[j]);
                    s[c + j] += f64::from(grow[j] * xhat);
                }
            }
            s
        })
        .collect();
    let total = sums.into_iter().fold(vec![0.0; 2 * c], |mut t, p| {
        t.iter_mut().zip(p).for_each(|(t, p)| *t += p);
        t
    });
    let dbeta: Vec<f32> = total[..c].iter().map(|&v| v as f32).collect();
    let dgamma: Vec<f32> = total[c..].iter().map(|&v| v as f32).collect();
    let mut weighted: Vec<f64> = total.iter().map(|v| v * share).collect();
    sum_over_parts(&mut weighted);
    let [sum_dy, sum_dy_xhat] = [&weighted[..c], &weighted[c..]].map(|sums| {
        sums.iter()
            .map(|&v| (v / share) as f32)
            .collect::<Vec<f32>>()
    });
    let rows = ((x.len() / c) as f64 / share).max(1.0) as f32;
    let mut dx = grad.clone();
    dx.as_mut_slice()
        .par_chunks_mut(ROWS_PER_TASK * c)
        .zip(xs.par_chunks(ROWS_PER_TASK * c))
        .for_each(|(drows, xrows)| {
            for (drow, xrow) in drows.chunks_exact_mut(c).zip(xrows.chunks_exact(c)) {
                for j in 0..c {
                    let xhat = (xrow[j] - stats.mean[j]) * inv_std[j];
                    drow[j] = gamma.as_slice()[j] * inv_std[j] / rows
                        * (rows * drow[j] - sum_dy[j] - xhat * sum_dy_xhat[j]);
                }
            }
        });
    Ok((
        dx,
        Tensor::from_vec(&[c], dgamma)?,
        Tensor::from_vec(&[c], dbeta)?,
    ))
}
