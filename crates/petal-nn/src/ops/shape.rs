//! Reshape, permute, concat, slice and pad: gradients move back the way values came.

use std::ops::Range;
use std::rc::Rc;

use petal_tensor::shape_ops::{
    concat, inverse_permutation, pad, permute, reshape, slice, slice_backward, unpad_ranges,
};

use crate::error::Result;
use crate::Var;

impl Var {
    /// The same values under a new shape.
    pub fn reshape(&self, shape: &[usize]) -> Result<Var> {
        let value = reshape(self.value(), shape)?;
        let input_shape = self.value().shape().to_vec();
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            reshape(g, &input_shape).expect("same length")
        }))
    }

    /// Reorders the axes: output axis `i` is input axis `axes[i]`.
    pub fn permute(&self, axes: &[usize]) -> Result<Var> {
        let value = permute(self.value(), axes)?;
        let inverse = inverse_permutation(axes);
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            permute(g, &inverse).expect("a permutation")
        }))
    }

    /// Joins values along `axis`.
    pub fn concat(parts: &[&Var], axis: usize) -> Result<Var> {
        let tensors: Vec<_> = parts.iter().map(|p| p.value()).collect();
        let value = Rc::new(concat(&tensors, axis)?);
        let shapes: Vec<Vec<usize>> = tensors.iter().map(|t| t.shape().to_vec()).collect();
        Var::record("concat", value, parts, move |g, needs| {
            let mut start = 0;
            shapes
                .iter()
                .zip(needs)
                .map(|(shape, &need)| {
                    let ranges: Vec<Range<usize>> = shape
                        .iter()
                        .enumerate()
                        .map(|(a, &d)| if a == axis { start..start + d } else { 0..d })
                        .collect();
                    start += shape[axis];
                    need.then(|| slice(g, &ranges).expect("ranges inside the output"))
                })
                .collect()
        })
    }

    /// The sub-tensor selected by one range per axis.
    pub fn slice(&self, ranges: &[Range<usize>]) -> Result<Var> {
        let value = slice(self.value(), ranges)?;
        let (shape, ranges) = (self.value().shape().to_vec(), ranges.to_vec());
        Ok(Var::record_unary(Rc::new(value), self, move |g| {
            slice_backward(g, &shape, &ranges).expect("ranges checked in forward")
        }))
    }

    /// Pads each axis with `pads[axis] = [before, after]` copies of `value`.
    pub fn pad(&self, pads: &[[usize; 2]], value: f32) -> Result<Var> {
        let padded = pad(self.value(), pads, value)?;
        let ranges = unpad_ranges(self.value().shape(), pads);
        Ok(Var::record_unary(Rc::new(padded), self, move |g| {
            slice(g, &ranges).expect("ranges inside the padded shape")
        }))
    }
}
