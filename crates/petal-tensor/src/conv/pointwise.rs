//! 1x1 convolution with stride 1 and no padding: the batch's pixels are the rows of
//! one GEMM, `(n*h*w, c) x (c, o)`.

use super::batch::Output;
use super::ConvShape;
use crate::elementwise::apply_to;
use crate::error::Result;
use crate::gemm::{gemm_in, MatMut, MatRef};
use crate::parallel::{new_batch, Start};

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    let pixels = s.batch * s.positions();
    let mut y = new_batch(pixels, s.filters, output.start, |_, _| {});
    gemm_in(
        s.precision,
        MatRef::row_major(x, pixels, s.channels)?,
        MatRef::row_major(f, s.channels, s.filters)?,
        MatMut::row_major(&mut y, pixels, s.filters)?,
        true,
        true,
    )?;
    if let Some(activation) = output.activation {
        apply_to(&mut y, activation);
    }
    Ok(y)
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    let pixels = s.batch * s.positions();
    let mut dx = new_batch(pixels, s.channels, Start::Zeros, |_, _| {});
    gemm_in(
        s.precision,
        MatRef::row_major(dy, pixels, s.filters)?,
        MatRef::row_major(f, s.channels, s.filters)?.t(),
        MatMut::row_major(&mut dx, pixels, s.channels)?,
        false,
        true,
    )?;
    Ok(dx)
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let pixels = s.batch * s.positions();
    let mut dw = vec![0.0; s.filter_len()];
    gemm_in(
        s.precision,
        MatRef::row_major(x, pixels, s.channels)?.t(),
        MatRef::row_major(dy, pixels, s.filters)?,
        MatMut::row_major(&mut dw, s.channels, s.filters)?,
        false,
        true,
    )?;
    Ok(dw)
}
