//! Depthwise convolution (`groups == c`, each channel with its own `multiplier` filters):
//! a direct kernel over NHWC pixels whose inner loop runs along the channels.
//! Output channel `c * multiplier + j` reads input channel `c`.

use rayon::prelude::*;

use super::ConvShape;
use crate::parallel::{images_per_task, sum_partials};

/// Calls `visit(output_pixel, input_pixel, tap)` for every in-bounds (output, input)
/// pixel pair of one image; pixels and taps are flat indices.
fn for_each_tap(s: &ConvShape, mut visit: impl FnMut(usize, usize, usize)) {
    let (r, c) = (&s.rows, &s.cols);
    for oy in 0..r.output {
        for ox in 0..c.output {
            let out_pixel = oy * c.output + ox;
            for ky in 0..r.kernel {
                let Some(iy) = r.input_index(oy, ky) else {
                    continue;
                };
                for kx in 0..c.kernel {
                    if let Some(ix) = c.input_index(ox, kx) {
                        visit(out_pixel, iy * c.input + ix, ky * c.kernel + kx);
                    }
                }
            }
        }
    }
}

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], y: &mut [f32]) {
    let (c, o, m) = (s.channels, s.filters, s.group_filters());
    y.par_chunks_mut(s.output_image_len())
        .zip(x.par_chunks(s.image_len()))
        .for_each(|(yi, xi)| {
            for_each_tap(s, |out_pixel, in_pixel, tap| {
                let out = &mut yi[out_pixel * o..][..o];
                let pixel = &xi[in_pixel * c..][..c];
                let weights = &f[tap * o..][..o];
                if m == 1 {
                    for ((y, x), w) in out.iter_mut().zip(pixel).zip(weights) {
                        *y += x * w;
                    }
                } else {
                    for ((ys, x), ws) in out
                        .chunks_exact_mut(m)
                        .zip(pixel)
                        .zip(weights.chunks_exact(m))
                    {
                        for (y, w) in ys.iter_mut().zip(ws) {
                            *y += x * w;
                        }
                    }
                }
            });
        });
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32], dx: &mut [f32]) {
    let (c, o, m) = (s.channels, s.filters, s.group_filters());
    dx.par_chunks_mut(s.image_len())
        .zip(dy.par_chunks(s.output_image_len()))
        .for_each(|(dxi, dyi)| {
            for_each_tap(s, |out_pixel, in_pixel, tap| {
                let grad_out = &dyi[out_pixel * o..][..o];
                let grad_in = &mut dxi[in_pixel * c..][..c];
                let weights = &f[tap * o..][..o];
                if m == 1 {
                    for ((dx, g), w) in grad_in.iter_mut().zip(grad_out).zip(weights) {
                        *dx += g * w;
                    }
                } else {
                    for ((dx, gs), ws) in grad_in
                        .iter_mut()
                        .zip(grad_out.chunks_exact(m))
                        .zip(weights.chunks_exact(m))
                    {
                        *dx += gs.iter().zip(ws).map(|(g, w)| g * w).sum::<f32>();
                    }
                }
            });
        });
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (c, o, m) = (s.channels, s.filters, s.group_filters());
    let chunk = images_per_task(s.batch);
    let partials = x
        .par_chunks(chunk * s.image_len())
        .zip(dy.par_chunks(chunk * s.output_image_len()))
        .map(|(xs, dys)| {
            let mut dw = vec![0.0; s.filter_len()];
            for (xi, dyi) in xs
                .chunks(s.image_len())
                .zip(dys.chunks(s.output_image_len()))
            {
                for_each_tap(s, |out_pixel, in_pixel, tap| {
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
            }
            dw
        })
        .collect();
    sum_partials(partials, s.filter_len())
}
