//! Reductions along axes (sum, mean, max, argmax) and the numerically stable softmax
//! and log-softmax with their backward passes.

use ndarray::{Axis, Zip};

use crate::error::{invalid, Result};
use crate::Tensor;

fn check_axes(op: &'static str, x: &Tensor, axes: &[usize]) -> Result<Vec<usize>> {
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != axes.len() || sorted.last().is_some_and(|&a| a >= x.ndim()) {
        return Err(invalid(
            op,
            format!(
                "axes {axes:?} are not distinct axes of a tensor of shape {:?}",
                x.shape()
            ),
        ));
    }
    Ok(sorted)
}

/// The shape after reducing `axes` (kept as extent 1 with `keep_dims`).
pub fn reduced_shape(shape: &[usize], axes: &[usize], keep_dims: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| match (axes.contains(&i), keep_dims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// Sum over `axes`.
///
/// ```
/// use petal_tensor::{reduce::sum_axes, Tensor};
/// let x = Tensor::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
/// assert_eq!(sum_axes(&x, &[1], false).unwrap().to_vec(), vec![6., 15.]);
/// assert_eq!(sum_axes(&x, &[0, 1], true).unwrap().shape(), &[1, 1]);
/// ```
pub fn sum_axes(x: &Tensor, axes: &[usize], keep_dims: bool) -> Result<Tensor> {
    let axes = check_axes("sum", x, axes)?;
    let mut sum = x.array().clone();
    for &axis in axes.iter().rev() {
        sum = sum.sum_axis(Axis(axis));
    }
    let shape = reduced_shape(x.shape(), &axes, keep_dims);
    Ok(Tensor::from_array(
        sum.into_shape_with_order(shape).expect("same length"),
    ))
}

/// Mean over `axes`.
pub fn mean_axes(x: &Tensor, axes: &[usize], keep_dims: bool) -> Result<Tensor> {
    let count: usize = check_axes("mean", x, axes)?
        .iter()
        .map(|&a| x.shape()[a])
        .product();
    let sum = sum_axes(x, axes, keep_dims)?;
    Ok(crate::elementwise::map(&sum, |v| v / count.max(1) as f32))
}

/// Splits a shape around `axis` into (outer, extent, inner) so that element
/// `(o, i, j)` of the lane decomposition is at `o * extent * inner + i * inner + j`.
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Maximum along `axis`, with the flat index in `x` of each maximum (the first on ties).
///
/// ```
/// use petal_tensor::{reduce::max_axis, Tensor};
/// let x = Tensor::from_vec(&[2, 3], vec![1., 9., 3., 7., 5., 6.]).unwrap();
/// let (m, at) = max_axis(&x, 1, false).unwrap();
/// assert_eq!((m.to_vec(), at), (vec![9., 7.], vec![1, 3]));
/// ```
pub fn max_axis(x: &Tensor, axis: usize, keep_dims: bool) -> Result<(Tensor, Vec<usize>)> {
    check_axes("max", x, &[axis])?;
    let (outer, extent, inner) = around(x.shape(), axis);
    if extent == 0 {
        return Err(invalid(
            "max",
            format!("axis {axis} of {:?} is empty", x.shape()),
        ));
    }
    let data = x.as_slice();
    let mut values = Vec::with_capacity(outer * inner);
    let mut indices = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for j in 0..inner {
            let base = o * extent * inner + j;
            let best = (0..extent)
                .map(|i| base + i * inner)
                .reduce(|b, k| if data[k] > data[b] { k } else { b })
                .expect("extent > 0");
            values.push(data[best]);
            indices.push(best);
        }
    }
    let shape = reduced_shape(x.shape(), &[axis], keep_dims);
    Ok((Tensor::from_vec(&shape, values)?, indices))
}

/// Index of the maximum along `axis` (the first on ties), one per lane, row-major over
/// the remaining axes.
///
/// ```
/// use petal_tensor::{reduce::argmax, Tensor};
/// let logits = Tensor::from_vec(&[2, 3], vec![0.1, 2.0, -1.0, 5.0, 0.0, 4.9]).unwrap();
/// assert_eq!(argmax(&logits, 1).unwrap(), vec![1, 0]);
/// ```
pub fn argmax(x: &Tensor, axis: usize) -> Result<Vec<usize>> {
    let (_, flat) = max_axis(x, axis, false)?;
    let (_, extent, inner) = around(x.shape(), axis);
    Ok(flat
        .into_iter()
        .map(|k| k / inner.max(1) % extent)
        .collect())
}

/// Softmax along `axis`, computed as `exp(x - max) / sum` so large logits do not overflow.
///
/// ```
/// use petal_tensor::{reduce::softmax, Tensor};
/// let x = Tensor::from_vec(&[1, 2], vec![1000.0, 1000.0]).unwrap();
/// assert_eq!(softmax(&x, 1).unwrap().to_vec(), vec![0.5, 0.5]);
/// ```
pub fn softmax(x: &Tensor, axis: usize) -> Result<Tensor> {
    let mut out = log_softmax(x, axis)?;
    out.as_mut_slice().iter_mut().for_each(|v| *v = v.exp());
    Ok(out)
}

/// Log-softmax along `axis`: `x - max - ln(sum(exp(x - max)))`.
pub fn log_softmax(x: &Tensor, axis: usize) -> Result<Tensor> {
    check_axes("log_softmax", x, &[axis])?;
    let mut out = x.clone().into_array();
    Zip::from(out.lanes_mut(Axis(axis))).for_each(|mut lane| {
        let max = lane.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let log_sum = lane.fold(0.0, |s, &v| s + (v - max).exp()).ln();
        lane.mapv_inplace(|v| v - max - log_sum);
    });
    Ok(Tensor::from_array(out))
}

/// Backward of [`softmax`]: `y * (grad - sum(grad * y))` along `axis`, given `y = softmax(x)`.
pub fn softmax_backward(y: &Tensor, grad: &Tensor, axis: usize) -> Result<Tensor> {
    check_axes("softmax_backward", y, &[axis])?;
    let mut out = grad.clone().into_array();
    Zip::from(out.lanes_mut(Axis(axis)))
        .and(y.array().lanes(Axis(axis)))
        .for_each(|mut g, y| {
            let dot: f32 = g.iter().zip(y).map(|(g, y)| g * y).sum();
            Zip::from(&mut g)
                .and(&y)
                .for_each(|g, &y| *g = y * (*g - dot));
        });
    Ok(Tensor::from_array(out))
}

/// Backward of [`log_softmax`]: `grad - softmax(x) * sum(grad)` along `axis`, given
/// `log_y = log_softmax(x)`.
pub fn log_softmax_backward(log_y: &Tensor, grad: &Tensor, axis: usize) -> Result<Tensor> {
    check_axes("log_softmax_backward", log_y, &[axis])?;
    let mut out = grad.clone().into_array();
    Zip::from(out.lanes_mut(Axis(axis)))
        .and(log_y.array().lanes(Axis(axis)))
        .for_each(|mut g, log_y| {
            let total = g.sum();
            Zip::from(&mut g)
                .and(&log_y)
                .for_each(|g, &l| *g -= l.exp() * total);
        });
    Ok(Tensor::from_array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_over_several_axes() {
        let x = Tensor::from_vec(&[2, 2, 2], (0..8).map(|v| v as f32).collect()).unwrap();
        assert_eq!(
            sum_axes(&x, &[0, 2], false).unwrap().to_vec(),
            vec![10., 18.]
        );
        assert_eq!(mean_axes(&x, &[2], true).unwrap().shape(), &[2, 2, 1]);
        assert_eq!(
            mean_axes(&x, &[1], false).unwrap().to_vec(),
            vec![1., 2., 5., 6.]
        );
        assert!(sum_axes(&x, &[3], false).is_err());
        assert!(sum_axes(&x, &[1, 1], false).is_err());
        let (m, at) = max_axis(&x, 0, true).unwrap();
        assert_eq!((m.shape().to_vec(), at), (vec![1, 2, 2], vec![4, 5, 6, 7]));
        assert_eq!(argmax(&x, 1).unwrap(), vec![1, 1, 1, 1]);
    }

    #[test]
    fn softmax_lanes_sum_to_one_on_any_axis() {
        let x = Tensor::from_vec(&[2, 3], vec![1., 2., 3., -50., 0., 50.]).unwrap();
        let y = softmax(&x, 0).unwrap();
        for c in 0..3 {
            assert!((y.as_slice()[c] + y.as_slice()[3 + c] - 1.0).abs() < 1e-6);
        }
        let log_y = log_softmax(&x, 1).unwrap();
        assert!((log_y.as_slice()[5]).abs() < 1e-6);
    }
}
