//! The general convolution: each image's patches are unrolled into a reused
//! `(positions, kh*kw*c/groups)` buffer, then one GEMM per group does the arithmetic.

use super::batch::{map_images, sum_over_images, Output};
use super::ConvShape;
use crate::error::Result;
use crate::gemm::{gemm_in, MatMut, MatRef};
use crate::parallel::gemm_needs_threads;

/// Walks one group's patch matrix `(positions, kh*kw*c/groups)` (taps in (ky, kx,
/// channel) order, matching the HWIO filter rows) in runs: `visit(column, pixel, len)`
/// says that the `len` values from flat index `column` of the matrix come from the
/// image's values from `pixel`, or are padding when `pixel` is `None`. With one group
/// and no dilation along the columns a window row's taps lie side by side in the
/// image, so an in-bounds window row is a single run.
fn for_each_run(s: &ConvShape, group: usize, mut visit: impl FnMut(usize, Option<usize>, usize)) {
    let (cg, c, w) = (s.group_channels(), s.channels, s.cols.input);
    let (kw, row_len) = (s.cols.kernel, s.cols.kernel * s.group_channels());
    let whole_rows = cg == c && s.cols.dilation == 1;
    let mut column = 0;
    for oy in 0..s.rows.output {
        for ox in 0..s.cols.output {
            let first_x = (ox * s.cols.stride).checked_sub(s.cols.pad_before);
            for ky in 0..s.rows.kernel {
                let Some(iy) = s.rows.input_index(oy, ky) else {
                    visit(column, None, row_len);
                    column += row_len;
                    continue;
                };
                match first_x {
                    Some(ix) if whole_rows && ix + kw <= w => {
                        visit(column, Some((iy * w + ix) * c), row_len);
                        column += row_len;
                    }
                    _ => {
                        for kx in 0..kw {
                            let pixel = s.cols.input_index(ox, kx);
                            visit(column, pixel.map(|ix| (iy * w + ix) * c + group * cg), cg);
                            column += cg;
                        }
                    }
                }
            }
        }
    }
}

/// Copies one group's patches of `image` into `columns`, one row per output position.
/// Padding reads 0.
pub(super) fn fill_columns(s: &ConvShape, image: &[f32], group: usize, columns: &mut [f32]) {
    for_each_run(s, group, |column, pixel, len| {
        let dst = &mut columns[column..column + len];
        match pixel {
            Some(start) => copy_run(dst, &image[start..start + len]),
            None => dst.fill(0.0),
        }
    });
}

/// `dst.copy_from_slice(src)`, with the window rows of 3x3 filters on grey and RGB
/// images (3 and 9 values) copied inline: as `memcpy` calls these short runs took
/// about as long as a first layer's arithmetic.
fn copy_run(dst: &mut [f32], src: &[f32]) {
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let (Ok(dst), Ok(src)) = (<&mut [f32; N]>::try_from(dst), <&[f32; N]>::try_from(src))
        else {
            unreachable!("called with runs of {N} values")
        };
        *dst = *src;
    }
    match dst.len() {
        3 => fixed::<3>(dst, src),
        9 => fixed::<9>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// The adjoint of [`fill_columns`]: adds each patch row back onto the pixels it came from.
fn add_columns(s: &ConvShape, columns: &[f32], group: usize, image_grad: &mut [f32]) {
    for_each_run(s, group, |column, pixel, len| {
        if let Some(start) = pixel {
            let src = &columns[column..column + len];
            for (d, g) in image_grad[start..start + len].iter_mut().zip(src) {
                *d += g;
            }
        }
    });
}

/// Group `group`'s filter matrix `(kh*kw*c/groups, o/groups)`, a column block of the
/// HWIO filter seen as `(kh*kw*c/groups, o)`.
fn filter_block<'a>(s: &ConvShape, filter: &'a [f32], group: usize) -> Result<MatRef<'a>> {
    let og = s.group_filters();
    MatRef::new(&filter[group * og..], s.patch_len(), og, s.filters, 1)
}

/// Group `group`'s channels of one output (or output-gradient) image, `(positions, o/groups)`.
fn output_block<'a>(s: &ConvShape, image: &'a [f32], group: usize) -> Result<MatRef<'a>> {
    let og = s.group_filters();
    MatRef::new(&image[group * og..], s.positions(), og, s.filters, 1)
}

fn columns_len(s: &ConvShape) -> usize {
    s.positions() * s.patch_len()
}

pub(super) fn forward(s: &ConvShape, x: &[f32], f: &[f32], output: Output<'_>) -> Result<Vec<f32>> {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (og, positions, patch) = (s.group_filters(), s.positions(), s.patch_len());
    map_images(
        output,
        s.batch,
        s.output_image_len(),
        x,
        s.image_len(),
        columns_len(s),
        |yi, columns, xi| {
            for g in 0..s.groups {
                fill_columns(s, xi, g, columns);
                let out = MatMut::new(&mut yi[g * og..], positions, og, s.filters)?;
                gemm_in(
                    s.precision,
                    MatRef::row_major(columns, positions, patch)?,
                    filter_block(s, f, g)?,
                    out,
                    true,
                    threaded_gemm,
                )?;
            }
            Ok(())
        },
    )
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (positions, patch) = (s.positions(), s.patch_len());
    map_images(
        Output::zeros(),
        s.batch,
        s.image_len(),
        dy,
        s.output_image_len(),
        columns_len(s),
        |dxi, columns, dyi| {
            for g in 0..s.groups {
                let out = MatMut::row_major(columns, positions, patch)?;
                gemm_in(
                    s.precision,
                    output_block(s, dyi, g)?,
                    filter_block(s, f, g)?.t(),
                    out,
                    false,
                    threaded_gemm,
                )?;
                add_columns(s, columns, g, dxi);
            }
            Ok(())
        },
    )
}

pub(super) fn backward_filter(s: &ConvShape, x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (og, positions, patch) = (s.group_filters(), s.positions(), s.patch_len());
    let accumulate = |dw: &mut [f32], columns: &mut [f32], xi: &[f32], dyi: &[f32]| {
        for g in 0..s.groups {
            fill_columns(s, xi, g, columns);
            let out = MatMut::new(&mut dw[g * og..], patch, og, s.filters)?;
            gemm_in(
                s.precision,
                MatRef::row_major(columns, positions, patch)?.t(),
                output_block(s, dyi, g)?,
                out,
                true,
                threaded_gemm,
            )?;
        }
        Ok(())
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
