//! The general convolution: each image's patches are unrolled into a reused
//! `(positions, kh*kw*c/groups)` buffer, then one GEMM per group does the arithmetic.

use super::batch::{for_each_image, sum_over_images};
use super::ConvShape;
use crate::gemm::{gemm, MatMut, MatRef};
use crate::parallel::gemm_needs_threads;

/// Copies one group's patches of `image` into `columns`, one row per output position
/// (taps in (ky, kx, channel) order, matching the HWIO filter rows). Padding reads 0.
fn fill_columns(s: &ConvShape, image: &[f32], group: usize, columns: &mut [f32]) {
    let (cg, c, w) = (s.group_channels(), s.channels, s.cols.input);
    let mut rows = columns.chunks_exact_mut(s.patch_len());
    for oy in 0..s.rows.output {
        for ox in 0..s.cols.output {
            let mut taps = rows
                .next()
                .expect("one row per position")
                .chunks_exact_mut(cg);
            for ky in 0..s.rows.kernel {
                let iy = s.rows.input_index(oy, ky);
                for kx in 0..s.cols.kernel {
                    let dst = taps.next().expect("one tap per kernel cell");
                    match (iy, s.cols.input_index(ox, kx)) {
                        (Some(iy), Some(ix)) => {
                            let start = (iy * w + ix) * c + group * cg;
                            dst.copy_from_slice(&image[start..start + cg]);
                        }
                        _ => dst.fill(0.0),
                    }
                }
            }
        }
    }
}

/// The adjoint of [`fill_columns`]: adds each patch row back onto the pixels it came from.
fn add_columns(s: &ConvShape, columns: &[f32], group: usize, image_grad: &mut [f32]) {
    let (cg, c, w) = (s.group_channels(), s.channels, s.cols.input);
    let mut rows = columns.chunks_exact(s.patch_len());
    for oy in 0..s.rows.output {
        for ox in 0..s.cols.output {
            let mut taps = rows.next().expect("one row per position").chunks_exact(cg);
            for ky in 0..s.rows.kernel {
                let iy = s.rows.input_index(oy, ky);
                for kx in 0..s.cols.kernel {
                    let src = taps.next().expect("one tap per kernel cell");
                    if let (Some(iy), Some(ix)) = (iy, s.cols.input_index(ox, kx)) {
                        let start = (iy * w + ix) * c + group * cg;
                        for (d, g) in image_grad[start..start + cg].iter_mut().zip(src) {
                            *d += g;
                        }
                    }
                }
            }
        }
    }
}

/// Group `group`'s filter matrix `(kh*kw*c/groups, o/groups)`, a column block of the
/// HWIO filter seen as `(kh*kw*c/groups, o)`.
fn filter_block<'a>(s: &ConvShape, filter: &'a [f32], group: usize) -> MatRef<'a> {
    let og = s.group_filters();
    MatRef::new(&filter[group * og..], s.patch_len(), og, s.filters, 1)
}

/// Group `group`'s channels of one output (or output-gradient) image, `(positions, o/groups)`.
fn output_block<'a>(s: &ConvShape, image: &'a [f32], group: usize) -> MatRef<'a> {
    let og = s.group_filters();
    MatRef::new(&image[group * og..], s.positions(), og, s.filters, 1)
}

fn columns_len(s: &ConvShape) -> usize {
    s.positions() * s.patch_len()
}

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], y: &mut [f32]) {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (og, positions, patch) = (s.group_filters(), s.positions(), s.patch_len());
    for_each_image(
        y,
        s.output_image_len(),
        x,
        s.image_len(),
        columns_len(s),
        |yi, columns, xi| {
            for g in 0..s.groups {
                fill_columns(s, xi, g, columns);
                let out = MatMut::new(&mut yi[g * og..], positions, og, s.filters);
                gemm(
                    MatRef::row_major(columns, positions, patch),
                    filter_block(s, f, g),
                    out,
                    true,
                    threaded_gemm,
                );
            }
        },
    );
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32], dx: &mut [f32]) {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (positions, patch) = (s.positions(), s.patch_len());
    for_each_image(
        dx,
        s.image_len(),
        dy,
        s.output_image_len(),
        columns_len(s),
        |dxi, columns, dyi| {
            for g in 0..s.groups {
                let out = MatMut::row_major(columns, positions, patch);
                gemm(
                    output_block(s, dyi, g),
                    filter_block(s, f, g).t(),
                    out,
                    false,
                    threaded_gemm,
                );
                add_columns(s, columns, g, dxi);
            }
        },
    );
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (og, positions, patch) = (s.group_filters(), s.positions(), s.patch_len());
    let accumulate = |dw: &mut [f32], columns: &mut [f32], xi: &[f32], dyi: &[f32]| {
        for g in 0..s.groups {
            fill_columns(s, xi, g, columns);
            let out = MatMut::new(&mut dw[g * og..], patch, og, s.filters);
            gemm(
                MatRef::row_major(columns, positions, patch).t(),
                output_block(s, dyi, g),
                out,
                true,
                threaded_gemm,
            );
        }
    };
    sum_over_images(
        x,
        s.image_len(),
        dy,
        s.output_image_len(),
        s.filter_len(),
        columns_len(s),
        accumulate,
    )
}
