//! Operations that move values without arithmetic: reshape, permute, concat, slice, pad.

use std::ops::Range;

use ndarray::{Axis, IxDyn, Slice};

use crate::error::{invalid, shape_mismatch, Result};
use crate::Tensor;

/// The same values under a new shape with the same number of elements.
///
/// ```
/// use petal_tensor::{shape_ops::reshape, Tensor};
/// let x = Tensor::zeros(&[2, 3, 4]);
/// assert_eq!(reshape(&x, &[6, 4]).unwrap().shape(), &[6, 4]);
/// assert!(reshape(&x, &[5, 5]).is_err());
/// ```
pub fn reshape(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if shape.iter().product::<usize>() != x.len() {
        return Err(shape_mismatch(
            "reshape",
            x.shape(),
            shape,
            "the element counts differ",
        ));
    }
    Tensor::from_vec(shape, x.to_vec())
}

/// Reorders the axes: output axis `i` is input axis `axes[i]`.
///
/// ```
/// use petal_tensor::{shape_ops::permute, Tensor};
/// let x = Tensor::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
/// assert_eq!(permute(&x, &[1, 0]).unwrap().to_vec(), vec![1., 4., 2., 5., 3., 6.]);
/// ```
pub fn permute(x: &Tensor, axes: &[usize]) -> Result<Tensor> {
    let mut seen = vec![false; x.ndim()];
    for &a in axes {
        if a >= x.ndim() || std::mem::replace(&mut seen[a], true) {
            return Err(invalid(
                "permute",
                format!(
                    "{axes:?} is not a permutation of the axes of {:?}",
                    x.shape()
                ),
            ));
        }
    }
    if axes.len() != x.ndim() {
        return Err(invalid(
            "permute",
            format!(
                "{axes:?} is not a permutation of the axes of {:?}",
                x.shape()
            ),
        ));
    }
    Ok(Tensor::from_array(
        x.array().view().permuted_axes(IxDyn(axes)).to_owned(),
    ))
}

/// The inverse permutation: `permute(permute(x, p), inverse_permutation(p)) == x`.
pub fn inverse_permutation(axes: &[usize]) -> Vec<usize> {
    let mut inverse = vec![0; axes.len()];
    for (i, &a) in axes.iter().enumerate() {
        inverse[a] = i;
    }
    inverse
}

/// Joins tensors along `axis`; all other extents must agree.
///
/// ```
/// use petal_tensor::{shape_ops::concat, Tensor};
/// let a = Tensor::ones(&[2, 1]);
/// let b = Tensor::zeros(&[2, 2]);
/// assert_eq!(concat(&[&a, &b], 1).unwrap().to_vec(), vec![1., 0., 0., 1., 0., 0.]);
/// ```
pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let Some(first) = parts.first() else {
        return Err(invalid("concat", "nothing to concatenate"));
    };
    if axis >= first.ndim() {
        return Err(invalid(
            "concat",
            format!("axis {axis} is out of range for shape {:?}", first.shape()),
        ));
    }
    for p in parts {
        let same_rank = p.ndim() == first.ndim();
        if !same_rank || (0..p.ndim()).any(|i| i != axis && p.shape()[i] != first.shape()[i]) {
            return Err(shape_mismatch(
                "concat",
                first.shape(),
                p.shape(),
                format!("extents must agree on every axis but {axis}"),
            ));
        }
    }
    let views: Vec<_> = parts.iter().map(|p| p.array().view()).collect();
    Ok(Tensor::from_array(
        ndarray::concatenate(Axis(axis), &views).expect("shapes checked"),
    ))
}

/// The sub-tensor `x[ranges[0], ranges[1], ...]`, one range per axis.
///
/// ```
/// use petal_tensor::{shape_ops::slice, Tensor};
/// let x = Tensor::from_vec(&[2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
/// assert_eq!(slice(&x, &[1..2, 0..2]).unwrap().to_vec(), vec![4., 5.]);
/// assert!(slice(&x, &[0..3, 0..1]).is_err());
/// ```
pub fn slice(x: &Tensor, ranges: &[Range<usize>]) -> Result<Tensor> {
    check_ranges("slice", x.shape(), ranges)?;
    let mut view = x.array().view();
    for (axis, r) in ranges.iter().enumerate() {
        view.slice_axis_inplace(Axis(axis), Slice::from(r.clone()));
    }
    Ok(Tensor::from_array(view.to_owned()))
}

fn check_ranges(op: &'static str, shape: &[usize], ranges: &[Range<usize>]) -> Result<()> {
    let fits = ranges.len() == shape.len()
        && ranges
            .iter()
            .zip(shape)
            .all(|(r, &d)| r.start <= r.end && r.end <= d);
    if fits {
        Ok(())
    } else {
        Err(invalid(
            op,
            format!("ranges {ranges:?} do not fit shape {shape:?}"),
        ))
    }
}

/// Backward of [`slice`]: a zero tensor of `input_shape` with `grad` written into `ranges`.
pub fn slice_backward(
    grad: &Tensor,
    input_shape: &[usize],
    ranges: &[Range<usize>],
) -> Result<Tensor> {
    check_ranges("slice_backward", input_shape, ranges)?;
    let sliced: Vec<usize> = ranges.iter().map(|r| r.end - r.start).collect();
    if grad.shape() != sliced {
        return Err(shape_mismatch(
            "slice_backward",
            grad.shape(),
            &sliced,
            "gradient must have the slice's shape",
        ));
    }
    let mut out = Tensor::zeros(input_shape).into_array();
    let mut view = out.view_mut();
    for (axis, r) in ranges.iter().enumerate() {
        view.slice_axis_inplace(Axis(axis), Slice::from(r.clone()));
    }
    view.assign(grad.array());
    Ok(Tensor::from_array(out))
}

/// Pads each axis with `pads[axis] = [before, after]` copies of `value`.
///
/// ```
/// use petal_tensor::{shape_ops::pad, Tensor};
/// let x = Tensor::ones(&[1, 2]);
/// assert_eq!(pad(&x, &[[0, 0], [1, 2]], 0.0).unwrap().to_vec(), vec![0., 1., 1., 0., 0.]);
/// ```
pub fn pad(x: &Tensor, pads: &[[usize; 2]], value: f32) -> Result<Tensor> {
    if pads.len() != x.ndim() {
        return Err(invalid(
            "pad",
            format!(
                "{} padding pairs for a tensor of shape {:?}",
                pads.len(),
                x.shape()
            ),
        ));
    }
    let shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(pads)
        .map(|(d, [b, a])| b + d + a)
        .collect();
    let mut out = Tensor::full(&shape, value).into_array();
    let mut view = out.view_mut();
    for (axis, (&d, [b, _])) in x.shape().iter().zip(pads).enumerate() {
        view.slice_axis_inplace(Axis(axis), Slice::from(*b..b + d));
    }
    view.assign(x.array());
    Ok(Tensor::from_array(out))
}

/// The ranges that select the original values out of a padded tensor (pad's backward
/// is a [`slice`] with them).
pub fn unpad_ranges(input_shape: &[usize], pads: &[[usize; 2]]) -> Vec<Range<usize>> {
    input_shape
        .iter()
        .zip(pads)
        .map(|(&d, [b, _])| *b..b + d)
        .collect()
}
