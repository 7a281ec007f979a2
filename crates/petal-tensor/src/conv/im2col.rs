//! The general convolution: patches are unrolled into a reused
//! `(positions, kh*kw*c/groups)` buffer, then one GEMM per group does the arithmetic.
//! The forward pass unrolls a block of an image's positions at a time, or of several
//! images' when one image has fewer ([`images_per_block`]).

use std::ops::Range;

use super::batch::{cache_block_rows, map_image_groups, map_images, sum_filter_gradient, Output};
use super::{ConvShape, Filter};
use crate::error::Result;
use crate::gemm::bf16::PackedRight;
use crate::gemm::{gemm_in, MatMut, MatRef, RightFactor};
use crate::parallel::{gemm_needs_threads, images_per_task};
use crate::Precision;

/// Walks the rows `positions` (output positions, row by row) of one group's patch
/// matrix `(positions, kh*kw*c/groups)` (taps in (ky, kx, channel) order, matching the
/// HWIO filter rows) in runs, from the first row asked for: `visit(column, pixel, len)`
/// says that the `len` values from flat index `column` of the matrix come from the
/// image's values from `pixel`, or are padding when `pixel` is `None`. With one group
/// and no dilation along the columns a window row's taps lie side by side in the
/// image, so an in-bounds window row is a single run.
fn for_each_run(
    s: &ConvShape,
    group: usize,
    positions: Range<usize>,
    mut visit: impl FnMut(usize, Option<usize>, usize),
) {
    let (cg, c, w) = (s.group_channels(), s.channels, s.cols.input);
    let (kw, row_len) = (s.cols.kernel, s.cols.kernel * s.group_channels());
    let whole_rows = cg == c && s.cols.dilation == 1;
    let mut column = 0;
    let (mut oy, mut ox) = (
        positions.start / s.cols.output,
        positions.start % s.cols.output,
    );
    for _ in positions {
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
        ox += 1;
        if ox == s.cols.output {
            (oy, ox) = (oy + 1, 0);
        }
    }
}

/// Copies one group's patches of `image` at the output `positions` into `columns`, one
/// row per position. Padding reads 0.
pub(super) fn fill_columns(
    s: &ConvShape,
    image: &[f32],
    group: usize,
    positions: Range<usize>,
    columns: &mut [f32],
) {
    for_each_run(s, group, positions, |column, pixel, len| {
        let dst = &mut columns[column..column + len];
        match pixel {
            Some(start) => copy_run(dst, &image[start..start + len]),
            None => dst.fill(0.0),
        }
    });
}

/// `dst.copy_from_slice(src)`, with the window rows of 3x3 filters on grey and RGB
/// images (3 and 9 values) and of ResNet's 7x7 stem on RGB (21, as 16 + 5: copied
/// whole, it compiled to a `memcpy` call) copied inline. As `memcpy` calls these short
/// runs took about as long as a first layer's arithmetic; the stem took 17 ms for a
/// batch of 16 with its runs copied by `memcpy`, 13.5 ms inline.
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
        21 => {
            fixed::<16>(&mut dst[..16], &src[..16]);
            fixed::<5>(&mut dst[16..], &src[16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// The adjoint of [`fill_columns`]: adds each patch row back onto the pixels it came from.
fn add_columns(s: &ConvShape, columns: &[f32], group: usize, image_grad: &mut [f32]) {
    for_each_run(s, group, 0..s.positions(), |column, pixel, len| {
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
    // A filter of no values (no channels or no filters) starts nowhere.
    let start = (group * og).min(filter.len());
    MatRef::new(&filter[start..], s.patch_len(), og, s.filters, 1)
}

/// Group `group`'s channels of one output (or output-gradient) image, `(positions, o/groups)`.
fn output_block<'a>(s: &ConvShape, image: &'a [f32], group: usize) -> Result<MatRef<'a>> {
    let og = s.group_filters();
    MatRef::new(&image[group * og..], s.positions(), og, s.filters, 1)
}

fn columns_len(s: &ConvShape) -> usize {
    s.positions() * s.patch_len()
}

/// How many output positions of an image the forward pass unrolls and multiplies at a
/// time: a cache-sized block of patches ([`cache_block_rows`]), at most the image's.
pub(super) fn block_positions(s: &ConvShape) -> usize {
    cache_block_rows(s.patch_len()).min(s.positions()).max(1)
}

/// Each group's filter matrix ready for the forward products in the precision of `s`:
/// those `f` holds when a [`PreparedFilter`](super::PreparedFilter) packed them in that
/// precision, else made now.
pub(super) fn filter_factors<'a>(s: &ConvShape, f: Filter<'a>) -> Result<Vec<RightFactor<'a>>> {
    match f.packed {
        Some(packed) if s.precision == Precision::Bf16 => {
            Ok(packed.iter().map(RightFactor::Packed).collect())
        }
        _ => (0..s.groups)
            .map(|g| RightFactor::new(s.precision, filter_block(s, f.values.as_slice(), g)?))
            .collect(),
    }
}

/// Each group's filter matrix of the HWIO `f` packed as bf16 pairs, for a
/// [`PreparedFilter`](super::PreparedFilter) made in bf16 (on this path or the 1x1 one).
pub(super) fn packed_filters(s: &ConvShape, f: &[f32]) -> Result<Vec<PackedRight>> {
    (0..s.groups)
        .map(|g| PackedRight::new(filter_block(s, f, g)?))
        .collect()
}

/// How many images the forward pass unrolls and multiplies at once: one, unless an
/// image has fewer output positions than a block ([`cache_block_rows`]); then as many
/// as fill one (at most a task's share of the batch), so that each GEMM reads the
/// filter for more rows. ResNet18's last stride-2 layer (16x14x14x256 -> 512, 3x3) has
/// 49 positions an image and a 4.7 MB filter: the GEMMs of its shape, `(rows, 2304) x
/// (2304, 512)` over 784 rows on 2 threads, ran at 246 GFLOP/s 49 rows at a time, 286
/// with 98 and 310 with 392. It now takes 3 images (147 rows, a block being at least
/// 192): 7.77 -> 6.53-6.58 ms a batch of 16 on 2 threads.
pub(super) fn images_per_block(s: &ConvShape) -> usize {
    let fill = cache_block_rows(s.patch_len()) / s.positions().max(1);
    fill.min(images_per_task(s.batch)).max(1)
}

/// The forward pass, its output started and finished as `y` says.
pub(super) fn forward(s: &ConvShape, x: &[f32], f: Filter<'_>, y: Output<'_>) -> Result<Vec<f32>> {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (og, positions, patch) = (s.group_filters(), s.positions(), s.patch_len());
    let images = images_per_block(s);
    let block = match images {
        1 => block_positions(s),
        _ => (images * positions).max(1),
    };
    let filters = filter_factors(s, f)?;
    let inputs = (x, s.image_len());
    let out_len = s.output_image_len();
    map_image_groups(
        y,
        s.batch,
        out_len,
        inputs,
        images,
        block * patch,
        |ys, columns, xs| {
            let count = ys.len() / out_len.max(1);
            let rows_in_all = count * positions;
            for first in (0..rows_in_all).step_by(block) {
                let rows = block.min(rows_in_all - first);
                let columns = &mut columns[..rows * patch];
                for g in 0..s.groups {
                    // Rows `first..first + rows` of the group's images, image by image.
                    let mut row = first;
                    while row < first + rows {
                        let (image, position) = (row / positions, row % positions);
                        let len = (positions - position).min(first + rows - row);
                        let xi = &xs[image * s.image_len()..][..s.image_len()];
                        let at = (row - first) * patch;
                        let dst = &mut columns[at..at + len * patch];
                        fill_columns(s, xi, g, position..position + len, dst);
                        row += len;
                    }
                    let out = &mut ys[first * s.filters + g * og..];
                    filters[g].multiply(
                        MatRef::row_major(columns, rows, patch)?,
                        MatMut::new(out, rows, og, s.filters)?,
                        true,
                        threaded_gemm,
                    )?;
                }
            }
            Ok(())
        },
    )
}

pub(super) fn backward_input(s: &ConvShape, dy: &[f32], f: &[f32]) -> Result<Vec<f32>> {
    let threaded_gemm = gemm_needs_threads(s.batch);
    let (positions, patch) = (s.positions(), s.patch_len());
    let turned = (0..s.groups)
        .map(|g| RightFactor::new(s.precision, filter_block(s, f, g)?.t()))
        .collect::<Result<Vec<_>>>()?;
    map_images(
        Output::zeros(),
        s.batch,
        s.image_len(),
        dy,
        s.output_image_len(),
        columns_len(s),
        |dxi, columns, dyi| {
            for (g, turned) in turned.iter().enumerate() {
                let out = MatMut::row_major(columns, positions, patch)?;
                turned.multiply(output_block(s, dyi, g)?, out, false, threaded_gemm)?;
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
            fill_columns(s, xi, g, 0..positions, columns);
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
    sum_filter_gradient(s, x, dy, columns_len(s), accumulate)
}
