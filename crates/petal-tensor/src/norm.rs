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
    let c = channels("batch_norm_train", x, gamma, beta)?;
    let rows = (x.len() / c).max(1) as f64;
    let mean: Vec<f32> = channel_sums(x.as_slice(), c, |s, row| {
        s.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v))
    })
    .into_iter()
    .map(|s| (s / rows) as f32)
    .collect();
    let variance: Vec<f32> = channel_sums(x.as_slice(), c, |s, row| {
        s.iter_mut()
            .zip(row)
            .zip(&mean)
            .for_each(|((s, &v), &m)| *s += f64::from(v - m) * f64::from(v - m))
    })
    .into_iter()
    .map(|s| (s / rows) as f32)
    .collect();
    let stats = BatchStats { mean, variance };
    let y = normalize(x, &stats, gamma, beta, epsilon);
    Ok((y, stats))
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
    let rows = (x.len() / c).max(1) as f32;
    let dbeta: Vec<f32> = total[..c].iter().map(|&v| v as f32).collect();
    let dgamma: Vec<f32> = total[c..].iter().map(|&v| v as f32).collect();
    let mut dx = grad.clone();
    dx.as_mut_slice()
        .par_chunks_mut(ROWS_PER_TASK * c)
        .zip(xs.par_chunks(ROWS_PER_TASK * c))
        .for_each(|(drows, xrows)| {
            for (drow, xrow) in drows.chunks_exact_mut(c).zip(xrows.chunks_exact(c)) {
                for j in 0..c {
                    let xhat = (xrow[j] - stats.mean[j]) * inv_std[j];
                    drow[j] = gamma.as_slice()[j] * inv_std[j] / rows
                        * (rows * drow[j] - dbeta[j] - xhat * dgamma[j]);
                }
            }
        });
    Ok((
        dx,
        Tensor::from_vec(&[c], dgamma)?,
        Tensor::from_vec(&[c], dbeta)?,
    ))
}
