//! Convolutions whose patch (`kh * kw * c`) is small, like a network's first layer on
//! grey or RGB images: a direct kernel. im2col would copy a handful of values per tap
//! and hand GEMM an inner dimension too short to run at speed; here each tap's input
//! channels scale a row of `o` filter weights into the output pixel, vectorized along
//! the filters.

use super::batch::{for_each_image, sum_over_images};
use super::ConvShape;

/// Patches up to this long take the direct path.
pub(super) const MAX_PATCH: usize = 32;

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], y: &mut [f32]) {
    let (c, o) = (s.channels, s.filters);
    for_each_image(y, s.output_image_len(), x, s.image_len(), 0, |yi, _, xi| {
        s.for_each_tap(|out_pixel, in_pixel, tap| {
            let out = &mut yi[out_pixel * o..][..o];
            let weights = &f[tap * c * o..][..c * o];
            for (&v, row) in xi[in_pixel * c..][..c].iter().zip(weights.chunks_exact(o)) {
                for (y, w) in out.iter_mut().zip(row) {
                    *y += v * w;
                }
            }
        });
    });
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32], dx: &mut [f32]) {
    let (c, o) = (s.channels, s.filters);
    for_each_image(
        dx,
        s.image_len(),
        dy,
        s.output_image_len(),
        0,
        |dxi, _, dyi| {
            s.for_each_tap(|out_pixel, in_pixel, tap| {
                let grad_out = &dyi[out_pixel * o..][..o];
                let weights = &f[tap * c * o..][..c * o];
                for (d, row) in dxi[in_pixel * c..][..c]
                    .iter_mut()
                    .zip(weights.chunks_exact(o))
                {
                    *d += grad_out.iter().zip(row).map(|(g, w)| g * w).sum::<f32>();
                }
            });
        },
    );
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (c, o) = (s.channels, s.filters);
    let accumulate = |dw: &mut [f32], _: &mut [f32], xi: &[f32], dyi: &[f32]| {
        s.for_each_tap(|out_pixel, in_pixel, tap| {
            let grad_out = &dyi[out_pixel * o..][..o];
            let grad_w = &mut dw[tap * c * o..][..c * o];
            for (&v, row) in xi[in_pixel * c..][..c]
                .iter()
                .zip(grad_w.chunks_exact_mut(o))
            {
                for (d, g) in row.iter_mut().zip(grad_out) {
                    *d += v * g;
                }
            }
        });
    };
    sum_over_images(
        x,
        s.image_len(),
        dy,
        s.output_image_len(),
        s.filter_len(),
        0,
        accumulate,
    )
}
