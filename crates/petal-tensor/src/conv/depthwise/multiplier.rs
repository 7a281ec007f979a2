//! Depthwise convolution with any channel multiplier `m`: a direct kernel over NHWC
//! pixels whose inner loop runs along the channels, one tap at a time. Output channel
//! `c * m + j` reads input channel `c`. Multiplier 1 takes the register-blocked
//! kernels instead.

use super::super::batch::{map_images, sum_filter_gradient, Output};
use super::super::ConvShape;
use crate::error::Result;

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    let (c, o, m) = (s.channels, s.filters, s.group_filters());
    let (out_len, in_len) = (s.output_image_len(), s.image_len());
    map_images(output, s.batch, out_len, x, in_len, 0, |yi, _, xi| {
        s.for_each_tap(|out_pixel, in_pixel, tap| {
            let out = &mut yi[out_pixel * o..][..o];
            let pixel = &xi[in_pixel * c..][..c];
            let weights = &f[tap * o..][..o];
            for ((ys, x), ws) in out
                .chunks_exact_mut(m)
                .zip(pixel)
                .zip(weights.chunks_exact(m))
            {
                for (y, w) in ys.iter_mut().zip(ws) {
                    *y += x * w;
                }
            }
        });
        Ok(())
    })
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    let (c, o, m) = (s.channels, s.filters, s.group_filters());
    map_images(
        Output::zeros(),
        s.batch,
        s.image_len(),
        dy,
        s.output_image_len(),
        0,
        |dxi, _, dyi| {
            s.for_each_tap(|out_pixel, in_pixel, tap| {
                let grad_out = &dyi[out_pixel * o..][..o];
                let grad_in = &mut dxi[in_pixel * c..][..c];
                let weights = &f[tap * o..][..o];
                for ((dx, gs), ws) in grad_in
                    .iter_mut()
                    .zip(grad_out.chunks_exact(m))
                    .zip(weights.chunks_exact(m))
                {
                    *dx += gs.iter().zip(ws).map(|(g, w)| g * w).sum::<f32>();
                }
            });
            Ok(())
        },
    )
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let (c, o, m) = (s.channels, s.filters, s.group_filters());
    let accumulate = |dw: &mut [f32], _: &mut [f32], xi: &[f32], dyi: &[f32]| {
        s.for_each_tap(|out_pixel, in_pixel, tap| {
            let grad_out = &dyi[out_pixel * o..][..o];
            let pixel = &xi[in_pixel * c..][..c];
            let grad_w = &mut dw[tap * o..][..o];
            for ((dws, gs), x) in grad_w
                .chunks_exact_mut(m)
                .zip(grad_out.chunks_exact(m))
                .zip(pixel)
            {
                for (dw, g) in dws.iter_mut().zip(gs) {
                    *dw += x * g;
                }
            }
        });
        Ok(())
    };
    sum_filter_gradient(s, x, dy, 0, accumulate)
}
