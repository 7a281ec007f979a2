//! Max and average pooling over NHWC images, their backward passes, and global
//! average pooling.
//!
//! Shapes: input `(n, h, w, c)`, output `(n, oh, ow, c)` with `oh`, `ow` from the
//! window, stride and padding. Padding never wins a max and never counts in an
//! average (TensorFlow's rule).

use std::mem::MaybeUninit;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{invalid, shape_mismatch, Result, TensorError};
use crate::parallel::{images_per_task, new_image_groups, new_values_written, Start};
use crate::simd::{counting_from, load, write_new};
use crate::window::{AxisGeometry, Padding};
use crate::Tensor;
use pulp::{Simd, WithSimd};

/// Window, stride and padding of a 2-D pooling.
///
/// ```
/// use petal_tensor::Pool2dSpec;
/// let spec = Pool2dSpec::square(2); // Keras' MaxPooling2D(2): stride = window
/// assert_eq!(spec.stride, [2, 2]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dSpec {
    /// Window height and width.
    pub window: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Border handling.
    pub padding: Padding,
}

impl Pool2dSpec {
    /// A `size x size` window moving by `size`, no padding.
    pub fn square(size: usize) -> Self {
        Self {
            window: [size, size],
            stride: [size, size],
            padding: Padding::Valid,
        }
    }
}

struct PoolShape {
    batch: usize,
    channels: usize,
    rows: AxisGeometry,
    cols: AxisGeometry,
}

impl PoolShape {
    fn new(op: &'static str, input: &[usize], spec: &Pool2dSpec) -> Result<Self> {
        let &[n, h, w, c] = input else {
            return Err(invalid(
                op,
                format!("input must be 4-D (n, h, w, c), got {input:?}"),
            ));
        };
        if let Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } = spec.padding
        {
            if top.max(bottom) >= spec.window[0] || left.max(right) >= spec.window[1] {
                return Err(invalid(
                    op,
                    "explicit padding must be smaller than the window",
                ));
            }
        }
        let [pr, pc] = spec.padding.axes();
        Ok(Self {
            batch: n,
            channels: c,
            rows: AxisGeometry::new(op, h, spec.window[0], spec.stride[0], 1, pr)?,
            cols: AxisGeometry::new(op, w, spec.window[1], spec.stride[1], 1, pc)?,
        })
    }

    fn image_len(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }
    fn output_image_len(&self) -> usize {
        self.rows.output * self.cols.output * self.channels
    }
    fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.rows.output,
            self.cols.output,
            self.channels,
        ]
    }

    /// Calls `visit(output_pixel, input_pixels)` for each output pixel of one image with
    /// the in-bounds input pixels of its window (flat pixel indices).
    fn for_each_window(&self, mut visit: impl FnMut(usize, &[usize])) {
        let mut window = Vec::with_capacity(self.rows.kernel * self.cols.kernel);
        for oy in 0..self.rows.output {
            for ox in 0..self.cols.output {
                window.clear();
                for ky in 0..self.rows.kernel {
                    let Some(iy) = self.rows.input_index(oy, ky) else {
                        continue;
                    };
                    window.extend(
                        (0..self.cols.kernel)
                            .filter_map(|kx| self.cols.input_index(ox, kx))
                            .map(|ix| iy * self.cols.input + ix),
                    );
                }
                visit(oy * self.cols.output + ox, &window);
            }
        }
    }

    fn check_grad_out(&self, op: &'static str, grad_out: &Tensor) -> Result<()> {
        if grad_out.shape() != self.output_shape() {
            return Err(shape_mismatch(
                op,
                grad_out.shape(),
                &self.output_shape(),
                "output gradient must have the pooling's output shape",
            ));
        }
        Ok(())
    }
}

/// Max pooling. Returns the pooled tensor and, for each output value, the index within
/// its image of the input value that won (what [`max_pool2d_backward`] needs).
///
/// ```
/// use petal_tensor::{pool::max_pool2d, Pool2dSpec, Tensor};
/// let x = Tensor::from_vec(&[1, 2, 2, 1], vec![1., 4., 3., 2.]).unwrap();
/// let (y, argmax) = max_pool2d(&x, &Pool2dSpec::square(2)).unwrap();
/// assert_eq!((y.to_vec(), argmax), (vec![4.0], vec![1]));
/// ```
pub fn max_pool2d(input: &Tensor, spec: &Pool2dSpec) -> Result<(Tensor, Vec<u32>)> {
    let pool = MaxPool::new("max_pool2d", input.shape(), spec)?;
    let images = input.as_slice().par_chunks(pool.0.image_len().max(1));
    let (best, best_at) = pool.new_batch(|pool_into| {
        images
            .enumerate()
            .for_each(|(i, image)| pool_into(i, image));
        Ok::<_, TensorError>(())
    })?;
    Ok((Tensor::from_vec(&pool.output_shape(), best)?, best_at))
}

/// A max pooling planned for one input shape, pooling an image at a time: what
/// [`max_pool2d`] runs on each image of a batch, and what a convolution fused with its
/// pooling runs on each image it has just computed.
pub(crate) struct MaxPool(PoolShape);

impl MaxPool {
    /// The pooling `spec` of `(n, h, w, c)` inputs; `op` names the caller in errors.
    pub fn new(op: &'static str, input: &[usize], spec: &Pool2dSpec) -> Result<Self> {
        PoolShape::new(op, input, spec).map(Self)
    }

    /// The pooled batch's shape, `(n, oh, ow, c)`.
    pub fn output_shape(&self) -> [usize; 4] {
        self.0.output_shape()
    }

    /// Values in one pooled image.
    pub fn output_image_len(&self) -> usize {
        self.0.output_image_len()
    }

    /// A new batch of pooled images: `work(pool_into)` calls `pool_into(i, image)` once
    /// for each image `i` of the batch, from any thread, and each call pools `image`
    /// into image `i`'s maxima and where each one is in the image (a flat index). Each
    /// image's memory is first written by the thread that pools it: nothing sets the
    /// whole batch beforehand on the calling thread. An error `work` returns comes
    /// back as it is; a batch of empty images runs nothing.
    ///
    /// # Panics
    ///
    /// If `work` returns `Ok` without having pooled every image.
    pub fn new_batch<E>(
        &self,
        work: impl FnOnce(&(dyn Fn(usize, &[f32]) + Sync)) -> std::result::Result<(), E>,
    ) -> std::result::Result<(Vec<f32>, Vec<u32>), E> {
        let image_len = self.output_image_len();
        let len = self.0.batch * image_len;
        let (mut best, mut best_at) = (Vec::with_capacity(len), Vec::with_capacity(len));
        if len == 0 {
            return Ok((best, best_at));
        }
        {
            // One slot per image, and whether it was pooled; a task locks each of its
            // own images once.
            let slots: Vec<_> = best.spare_capacity_mut()[..len]
                .chunks_mut(image_len)
                .zip(best_at.spare_capacity_mut()[..len].chunks_mut(image_len))
                .map(|(best, best_at)| Mutex::new((best, best_at, false)))
                .collect();
            let pool_into = |i: usize, image: &[f32]| {
                let mut slot = slots[i].lock().unwrap_or_else(|p| p.into_inner());
                let (best, best_at, pooled) = &mut *slot;
                pulp::Arch::new().dispatch(MaxPoolImage {
                    shape: &self.0,
                    image,
                    best,
                    best_at,
                });
                *pooled = true;
            };
            work(&pool_into)?;
            let pooled = |slot: &Mutex<(_, _, bool)>| slot.lock().is_ok_and(|s| s.2);
            assert!(
                slots.iter().all(pooled),
                "an image of the batch was not pooled"
            );
        }
        // SAFETY: the slots cover the first `len` values of both vectors, and
        // `MaxPoolImage` writes every value of the image it pools; every image was
        // pooled, checked just above.
        unsafe {
            best.set_len(len);
            best_at.set_len(len);
        }
        Ok((best, best_at))
    }
}

/// Max pooling of one image: for each window and each vector of channels, the maxima
/// and where they are stay in registers while the window's pixels go by, and are
/// written once. Ties go to the first pixel in row-major order; a window whose values
/// never beat -inf (all -inf or NaN) reports -inf at its first pixel.
struct MaxPoolImage<'a> {
    shape: &'a PoolShape,
    image: &'a [f32],
    best: &'a mut [MaybeUninit<f32>],
    best_at: &'a mut [MaybeUninit<u32>],
}

impl WithSimd for MaxPoolImage<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            shape,
            image,
            best,
            best_at,
        } = self;
        let (c, lanes, width) = (shape.channels, S::F32_LANES, shape.cols.input);
        let vector_channels = c / lanes * lanes;
        for oy in 0..shape.rows.output {
            let rows = shape.rows.window_span(oy);
            for ox in 0..shape.cols.output {
                let cols = shape.cols.window_span(ox);
                // The window's pixels, each as the index of its first channel.
                let starts = rows
                    .clone()
                    .flat_map(|iy| cols.clone().map(move |ix| (iy * width + ix) * c));
                let out = (oy * shape.cols.output + ox) * c;
                let first_start = (rows.start * width + cols.start) * c;
                for ch0 in (0..vector_channels).step_by(lanes) {
                    let mut max = simd.splat_f32s(f32::NEG_INFINITY);
                    let mut max_start = simd.splat_u32s(first_start as u32);
                    for start in starts.clone() {
                        let v = load::<S>(&image[start + ch0..]);
                        let wins = simd.greater_than_f32s(v, max);
                        max = simd.select_f32s(wins, v, max);
                        max_start =
                            simd.select_u32s(wins, simd.splat_u32s(start as u32), max_start);
                    }
                    let at = simd.add_u32s(max_start, counting_from(simd, ch0 as u32));
                    write_new(&mut best[out + ch0..], max);
                    write_new(&mut best_at[out + ch0..], at);
                }
                for ch in vector_channels..c {
                    let (mut max, mut at) = (f32::NEG_INFINITY, first_start + ch);
                    for start in starts.clone() {
                        if image[start + ch] > max {
                            (max, at) = (image[start + ch], start + ch);
                        }
                    }
                    best[out + ch].write(max);
                    best_at[out + ch].write(at as u32);
                }
            }
        }
    }
}

/// Routes each output gradient to the input value that won its window (`argmax`, as
/// [`max_pool2d`] returns it); every other input gets zero.
///
/// When no two windows share a pixel (stride at least the window, Keras' default),
/// each input value is written once, in memory order; otherwise the gradients are
/// added to zeros, a pixel that wins two windows getting both. The Keras MNIST CNN
/// trains 3% faster for it (`cargo xtask bench --only keras-mnist-train`, 10 pairs
/// alternating with adding to zeros, medians 12628 -> 13034 images/s).
///
/// ```
/// use petal_tensor::{pool::{max_pool2d, max_pool2d_backward}, Pool2dSpec, Tensor};
/// let x = Tensor::from_vec(&[1, 2, 2, 1], vec![1., 4., 3., 2.])?;
/// let spec = Pool2dSpec::square(2);
/// let (_, argmax) = max_pool2d(&x, &spec)?;
/// let dx = max_pool2d_backward(&Tensor::ones(&[1, 1, 1, 1]), &argmax, x.shape(), &spec)?;
/// assert_eq!(dx.to_vec(), vec![0., 1., 0., 0.]);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn max_pool2d_backward(
    grad_out: &Tensor,
    argmax: &[u32],
    input_shape: &[usize],
    spec: &Pool2dSpec,
) -> Result<Tensor> {
    let gradient = PooledGradient::new("max_pool2d_backward", grad_out, argmax, input_shape, spec)?;
    Tensor::from_vec(input_shape, gradient.routed())
}

/// A max pooling's output gradient and where each window's maximum was (as
/// [`max_pool2d`] returns it), checked against the pooling's shapes: what
/// [`max_pool2d_backward`] routes, and what a convolution fused with its pooling
/// routes a band of rows at a time while its filter gradient reads them, so that the
/// full-size gradient never exists (see `conv2d_max_pooled_backward_filter`).
pub(crate) struct PooledGradient<'a> {
    shape: PoolShape,
    grads: &'a [f32],
    winners: &'a [u32],
}

impl<'a> PooledGradient<'a> {
    /// `grad_out` and `argmax` of a pooling `spec` of `input_shape`; `op` names the
    /// caller in errors.
    pub fn new(
        op: &'static str,
        grad_out: &'a Tensor,
        argmax: &'a [u32],
        input_shape: &[usize],
        spec: &Pool2dSpec,
    ) -> Result<Self> {
        let shape = PoolShape::new(op, input_shape, spec)?;
        shape.check_grad_out(op, grad_out)?;
        if argmax.len() != grad_out.len() {
            return Err(invalid(
                op,
                format!(
                    "{} argmax indices for {} gradients",
                    argmax.len(),
                    grad_out.len()
                ),
            ));
        }
        Ok(Self {
            shape,
            grads: grad_out.as_slice(),
            winners: argmax,
        })
    }

    /// The full-size input gradient: each output gradient routed to its winner, every
    /// other input zero (what [`max_pool2d_backward`] returns, as values).
    pub fn routed(&self) -> Vec<f32> {
        let s = &self.shape;
        let in_len = s.image_len();
        if self.windows_are_disjoint() {
            let per_task = images_per_task(s.batch) * in_len;
            let write = |offset: usize, part: &mut [MaybeUninit<f32>]| {
                for (k, dxi) in part.chunks_mut(in_len).enumerate() {
                    self.route_rows(offset / in_len + k, 0, dxi);
                }
            };
            // SAFETY: `route_rows` writes every value of each image, and the parts hold
            // whole images (`per_task` is a multiple of `in_len`).
            unsafe { new_values_written(s.batch * in_len, per_task, write) }
        } else {
            // Overlapping windows may share a winner: each image zeroed just before its
            // gradients are added, while it is in the cache.
            new_image_groups(
                s.batch,
                in_len,
                1,
                Start::Zeros,
                || (),
                |_, at, dxi| {
                    let (dyi, ai) = self.image(at);
                    for (g, &at) in dyi.iter().zip(ai) {
                        dxi[at as usize] += g;
                    }
                },
            )
        }
    }

    /// Whether no two windows share a pixel, so that [`Self::route_rows`] applies.
    pub fn windows_are_disjoint(&self) -> bool {
        self.shape.rows.windows_are_disjoint() && self.shape.cols.windows_are_disjoint()
    }

    /// Image `at`'s output gradient and winners.
    fn image(&self, at: usize) -> (&[f32], &[u32]) {
        let len = self.shape.output_image_len();
        (
            &self.grads[at * len..][..len],
            &self.winners[at * len..][..len],
        )
    }

    /// Writes the input gradient of image `at`'s rows from `first_row` on into `dx`
    /// (whole rows, `dx.len()` values), for windows apart.
    ///
    /// # Panics
    ///
    /// If `dx` is not whole rows: the callers rely on every value being written.
    pub fn route_rows(&self, at: usize, first_row: usize, dx: &mut [MaybeUninit<f32>]) {
        debug_assert!(self.windows_are_disjoint());
        let row_len = self.shape.cols.input * self.shape.channels;
        assert!(
            dx.is_empty() || (row_len > 0 && dx.len().is_multiple_of(row_len)),
            "{} values are not whole rows of {row_len}",
            dx.len()
        );
        pulp::Arch::new().dispatch(RouteToWinners {
            shape: &self.shape,
            image: self.image(at),
            first_row,
            dx,
        });
    }
}

/// The input gradient of rows of one image of a max pooling whose windows share no
/// pixel: each value written once, in memory order, the output gradient of its window
/// where it won and zero elsewhere (no zeroing pass before, no scattered adds after).
struct RouteToWinners<'a> {
    shape: &'a PoolShape,
    /// The image's output gradient and winners.
    image: (&'a [f32], &'a [u32]),
    /// The image row `dx` starts at.
    first_row: usize,
    /// Whole rows of the image's input gradient.
    dx: &'a mut [MaybeUninit<f32>],
}

impl WithSimd for RouteToWinners<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Self {
            shape: s,
            image: (dy, argmax),
            first_row,
            dx,
        } = self;
        let c = s.channels;
        let row_len = s.cols.input * c;
        for (row, dx) in (first_row..).zip(dx.chunks_exact_mut(row_len)) {
            let oy = s.rows.covering_output(row);
            for (col, dx) in dx.chunks_exact_mut(c).enumerate() {
                let Some((oy, ox)) = oy.zip(s.cols.covering_output(col)) else {
                    dx.iter_mut().for_each(|v| _ = v.write(0.0));
                    continue;
                };
                let at = (oy * s.cols.output + ox) * c;
                let first = (row * row_len + col * c) as u32;
                let winners = dy[at..at + c].iter().zip(&argmax[at..at + c]);
                for (ch, (v, (&g, &won_at))) in dx.iter_mut().zip(winners).enumerate() {
                    // `0.0 + g`: the sum the scattered adds gave (-0.0 becomes 0.0).
                    v.write(if won_at == first + ch as u32 {
                        0.0 + g
                    } else {
                        0.0
                    });
                }
            }
        }
    }
}

/// Average pooling; each window's mean is over its in-bounds values only.
///
/// ```
/// use petal_tensor::{pool::avg_pool2d, Pool2dSpec, Tensor};
/// let x = Tensor::from_vec(&[1, 2, 2, 1], vec![1., 4., 3., 2.]).unwrap();
/// assert_eq!(avg_pool2d(&x, &Pool2dSpec::square(2)).unwrap().to_vec(), vec![2.5]);
/// ```
pub fn avg_pool2d(input: &Tensor, spec: &Pool2dSpec) -> Result<Tensor> {
    let s = PoolShape::new("avg_pool2d", input.shape(), spec)?;
    let c = s.channels;
    let mut out = Tensor::zeros(&s.output_shape());
    out.as_mut_slice()
        .par_chunks_mut(s.output_image_len().max(1))
        .zip(input.as_slice().par_chunks(s.image_len().max(1)))
        .for_each(|(yi, xi)| {
            s.for_each_window(|out_pixel, window| {
                let mean = &mut yi[out_pixel * c..][..c];
                for &pixel in window {
                    for (m, v) in mean.iter_mut().zip(&xi[pixel * c..][..c]) {
                        *m += v;
                    }
                }
                let scale = 1.0 / window.len() as f32;
                mean.iter_mut().for_each(|m| *m *= scale);
            });
        });
    Ok(out)
}

/// Spreads each output gradient evenly over the in-bounds values of its window.
pub fn avg_pool2d_backward(
    grad_out: &Tensor,
    input_shape: &[usize],
    spec: &Pool2dSpec,
) -> Result<Tensor> {
    let s = PoolShape::new("avg_pool2d_backward", input_shape, spec)?;
    s.check_grad_out("avg_pool2d_backward", grad_out)?;
    let c = s.channels;
    let mut grad_in = Tensor::zeros(input_shape);
    grad_in
        .as_mut_slice()
        .par_chunks_mut(s.image_len().max(1))
        .zip(grad_out.as_slice().par_chunks(s.output_image_len().max(1)))
        .for_each(|(dxi, dyi)| {
            s.for_each_window(|out_pixel, window| {
                let scale = 1.0 / window.len() as f32;
                let g = &dyi[out_pixel * c..][..c];
                for &pixel in window {
                    for (d, g) in dxi[pixel * c..][..c].iter_mut().zip(g) {
                        *d += g * scale;
                    }
                }
            });
        });
    Ok(grad_in)
}

/// Global average pooling: `(n, h, w, c) -> (n, c)`, the mean of each channel.
///
/// ```
/// use petal_tensor::{pool::global_avg_pool, Tensor};
/// let x = Tensor::from_vec(&[1, 2, 1, 2], vec![1., 10., 3., 20.]).unwrap();
/// assert_eq!(global_avg_pool(&x).unwrap().to_vec(), vec![2.0, 15.0]);
/// ```
pub fn global_avg_pool(input: &Tensor) -> Result<Tensor> {
    let &[n, h, w, c] = input.shape() else {
        return Err(invalid(
            "global_avg_pool",
            format!("input must be 4-D (n, h, w, c), got {:?}", input.shape()),
        ));
    };
    let scale = 1.0 / (h * w).max(1) as f32;
    let mut out = Tensor::zeros(&[n, c]);
    out.as_mut_slice()
        .par_chunks_mut(c.max(1))
        .zip(input.as_slice().par_chunks((h * w * c).max(1)))
        .for_each(|(mean, image)| {
            for pixel in image.chunks_exact(c.max(1)) {
                for (m, v) in mean.iter_mut().zip(pixel) {
                    *m += v;
                }
            }
            mean.iter_mut().for_each(|m| *m *= scale);
        });
    Ok(out)
}

/// Backward of [`global_avg_pool`]: each pixel gets its channel's gradient / (h*w).
pub fn global_avg_pool_backward(grad_out: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
    let &[n, h, w, c] = input_shape else {
        return Err(invalid(
            "global_avg_pool_backward",
            format!("input must be 4-D, got {input_shape:?}"),
        ));
    };
    if grad_out.shape() != [n, c] {
        return Err(shape_mismatch(
            "global_avg_pool_backward",
            grad_out.shape(),
            input_shape,
            "gradient must be (n, c)",
        ));
    }
    let scale = 1.0 / (h * w).max(1) as f32;
    let mut grad_in = Tensor::zeros(input_shape);
    grad_in
        .as_mut_slice()
        .par_chunks_mut((h * w * c).max(1))
        .zip(grad_out.as_slice().par_chunks(c.max(1)))
        .for_each(|(image, g)| {
            for pixel in image.chunks_exact_mut(c.max(1)) {
                for (d, g) in pixel.iter_mut().zip(g) {
                    *d = g * scale;
                }
            }
        });
    Ok(grad_in)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Max pooling by the definition: scan each window row by row, the first strictly
    /// larger value wins.
    fn reference_max_pool(x: &Tensor, spec: &Pool2dSpec) -> (Vec<f32>, Vec<u32>) {
        let s = PoolShape::new("reference", x.shape(), spec).unwrap();
        let (c, len) = (s.channels, s.output_image_len());
        let (mut best, mut at) = (
            vec![f32::NEG_INFINITY; s.batch * len],
            vec![0; s.batch * len],
        );
        for n in 0..s.batch {
            let image = &x.as_slice()[n * s.image_len()..][..s.image_len()];
            s.for_each_window(|out_pixel, window| {
                for ch in 0..c {
                    let o = n * len + out_pixel * c + ch;
                    at[o] = (window[0] * c + ch) as u32;
                    for &pixel in window {
                        if image[pixel * c + ch] > best[o] {
                            best[o] = image[pixel * c + ch];
                            at[o] = (pixel * c + ch) as u32;
                        }
                    }
                }
            });
        }
        (best, at)
    }

    /// A pseudo-random value of `i` for `seed`, in 0..256.
    fn hash(i: usize, seed: u32) -> u32 {
        (i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 24
    }

    /// A batch of `shape` of values from a small set (making ties) and the pooling of
    /// `window` at `stride`, 'same' or 'valid'; `None` where the window does not fit.
    fn pooling_case(
        shape: [usize; 4],
        window: usize,
        stride: usize,
        same: bool,
        seed: u32,
    ) -> Option<(Tensor, Pool2dSpec)> {
        let spec = Pool2dSpec {
            stride: [stride, stride],
            padding: if same { Padding::Same } else { Padding::Valid },
            ..Pool2dSpec::square(window)
        };
        PoolShape::new("test", &shape, &spec).ok()?;
        let len = shape.iter().product();
        let values = (0..len).map(|i| hash(i, seed) as f32 % 7.0 - 3.0).collect();
        Some((Tensor::from_vec(&shape, values).unwrap(), spec))
    }

    #[test]
    fn portable_max_pool_matches_the_definition() {
        // The portable kernel (what CPUs without AVX2 run), with a scalar channel tail.
        let spec = Pool2dSpec::square(2);
        let values = (0..2 * 5 * 4 * 19)
            .map(|i| ((i * 37) % 11) as f32)
            .collect();
        let x = Tensor::from_vec(&[2, 5, 4, 19], values).unwrap();
        let s = PoolShape::new("test", x.shape(), &spec).unwrap();
        // Sentinels that no maximum equals: a value left unwritten fails the test.
        let mut best = vec![MaybeUninit::new(f32::NAN); 2 * s.output_image_len()];
        let mut best_at = vec![MaybeUninit::new(u32::MAX); best.len()];
        for ((best, best_at), image) in best
            .chunks_mut(s.output_image_len())
            .zip(best_at.chunks_mut(s.output_image_len()))
            .zip(x.as_slice().chunks(s.image_len()))
        {
            MaxPoolImage {
                shape: &s,
                image,
                best,
                best_at,
            }
            .with_simd(pulp::Scalar);
        }
        // SAFETY: every value was initialized (with a sentinel) when allocated.
        let best = best.iter().map(|v| unsafe { v.assume_init() }).collect();
        let best_at = best_at.iter().map(|v| unsafe { v.assume_init() }).collect();
        assert_eq!((best, best_at), reference_max_pool(&x, &spec));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Channel counts around the vector width take both the vector and the scalar
        /// lanes; values from a small set make ties, which the first pixel must win.
        #[test]
        fn max_pool_matches_the_definition(
            n in 1..3usize, h in 1..7usize, w in 1..7usize, c in 1..40usize,
            window in 1..4usize, stride in 1..3usize, same in any::<bool>(), seed in any::<u32>(),
        ) {
            let case = pooling_case([n, h, w, c], window, stride, same, seed);
            prop_assume!(case.is_some());
            let (x, spec) = case.unwrap();
            let (y, argmax) = max_pool2d(&x, &spec).unwrap();
            let (best, at) = reference_max_pool(&x, &spec);
            prop_assert_eq!(y.to_vec(), best);
            prop_assert_eq!(argmax, at);
        }

        /// Each output gradient reaches its window's winner, the other inputs get zero,
        /// bit for bit as adding the gradients to zeros: windows apart, side by side or
        /// overlapping, with padding and with input rows and columns no window reads.
        #[test]
        fn max_pool_backward_routes_each_gradient_to_its_winner(
            n in 1..3usize, h in 1..9usize, w in 1..9usize, c in 1..40usize,
            window in 1..4usize, stride in 1..5usize, same in any::<bool>(), seed in any::<u32>(),
        ) {
            let case = pooling_case([n, h, w, c], window, stride, same, seed);
            prop_assume!(case.is_some());
            let (x, spec) = case.unwrap();
            let (y, argmax) = max_pool2d(&x, &spec).unwrap();
            // Gradients of both signs, negative zeros among them.
            let grads = (0..y.len()).map(|i| (hash(i + 7, seed) % 9) as f32 * 0.5 - 2.0);
            let grads: Vec<f32> = grads.map(|g| if g == 0.0 { -0.0 } else { g }).collect();
            let dy = Tensor::from_vec(y.shape(), grads.clone()).unwrap();
            let (image_len, out_len) = (h * w * c, y.len() / n);
            let mut expected = vec![0.0f32; n * image_len];
            for (i, (&g, &at)) in grads.iter().zip(&argmax).enumerate() {
                expected[i / out_len * image_len + at as usize] += g;
            }
            for threads in [1, 2] {
                let dx = crate::parallel::pool_of(threads)
                    .install(|| max_pool2d_backward(&dy, &argmax, x.shape(), &spec))
                    .unwrap();
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(dx.as_slice()), bits(&expected), "{} threads", threads);
            }
            // The portable kernel (what CPUs without AVX2 run) where windows are apart.
            let gradient = PooledGradient::new("test", &dy, &argmax, x.shape(), &spec).unwrap();
            if gradient.windows_are_disjoint() {
                let mut dx = vec![MaybeUninit::new(f32::NAN); n * image_len];
                for (i, dx) in dx.chunks_mut(image_len).enumerate() {
                    let (shape, image) = (&gradient.shape, gradient.image(i));
                    RouteToWinners { shape, image, first_row: 0, dx }.with_simd(pulp::Scalar);
                }
                // SAFETY: every value was initialized (with NaN) when allocated.
                let dx: Vec<u32> = dx.iter().map(|v| unsafe { v.assume_init() }.to_bits()).collect();
                prop_assert_eq!(dx, expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
        }
    }

    /// A new batch is handed out only with every image pooled: a skipped image is a
    /// panic (never memory left unwritten), an error comes back as it is.
    #[test]
    fn a_new_batch_has_every_image_pooled() {
        let pool = MaxPool::new("test", &[2, 2, 2, 1], &Pool2dSpec::square(2)).unwrap();
        let (first, second) = ([1., 4., 3., 2.], [-1., -4., -3., -2.]);
        let batch = pool.new_batch(|pool_into| {
            pool_into(1, &second);
            pool_into(0, &first);
            Ok::<_, ()>(())
        });
        assert_eq!(batch, Ok((vec![4.0, -1.0], vec![1, 0])));
        assert_eq!(pool.new_batch(|_| Err("failed")), Err("failed"));
        let skipped = std::panic::catch_unwind(|| {
            let _ = pool.new_batch(|pool_into| {
                pool_into(0, &first);
                Ok::<_, ()>(())
            });
        });
        assert!(skipped.is_err());
    }

    #[test]
    fn same_max_pool_ignores_padding() {
        // 3x3 of negative values, window 2 stride 2 'same': 2x2 output, padding after.
        let x = Tensor::from_vec(&[1, 3, 3, 1], (1..=9).map(|v| -(v as f32)).collect()).unwrap();
        let spec = Pool2dSpec {
            padding: Padding::Same,
            ..Pool2dSpec::square(2)
        };
        let (y, argmax) = max_pool2d(&x, &spec).unwrap();
        assert_eq!(y.to_vec(), vec![-1.0, -3.0, -7.0, -9.0]);
        assert_eq!(argmax, vec![0, 2, 6, 8]);
        let avg = avg_pool2d(&x, &spec).unwrap();
        assert_eq!(avg.to_vec(), vec![-3.0, -4.5, -7.5, -9.0]);
        let g =
            max_pool2d_backward(&Tensor::ones(&[1, 2, 2, 1]), &argmax, x.shape(), &spec).unwrap();
        assert_eq!(g.to_vec(), vec![1., 0., 1., 0., 0., 0., 1., 0., 1.]);
    }

    /// A window whose values never beat -inf (all -inf, or NaN) reports -inf at its
    /// first pixel, in its own channel, and the backward pass routes its gradient there.
    #[test]
    fn a_window_of_minus_infinity_or_nan_reports_its_first_pixel() {
        let c = 19; // a vector of channels and a scalar tail
        let spec = Pool2dSpec::square(2);
        // A 2x4 image: its left window all -inf, its right one NaN.
        let value = |i: usize| {
            if (i / c) % 4 < 2 {
                f32::NEG_INFINITY
            } else {
                f32::NAN
            }
        };
        let x = Tensor::from_vec(&[1, 2, 4, c], (0..2 * 4 * c).map(value).collect()).unwrap();
        let (y, argmax) = max_pool2d(&x, &spec).unwrap();
        assert!(y.to_vec().iter().all(|&v| v == f32::NEG_INFINITY));
        let first_pixels = [0, 2];
        let at = |pixel: usize| (0..c).map(move |ch| (pixel * c + ch) as u32);
        assert_eq!(
            argmax,
            first_pixels.into_iter().flat_map(at).collect::<Vec<_>>()
        );
        let dx = max_pool2d_backward(&Tensor::ones(y.shape()), &argmax, x.shape(), &spec).unwrap();
        let routed = |i: usize| f32::from(first_pixels.contains(&(i / c)));
        assert_eq!(dx.to_vec(), (0..2 * 4 * c).map(routed).collect::<Vec<_>>());
    }

    #[test]
    fn bad_pool_arguments_are_errors() {
        assert!(max_pool2d(&Tensor::zeros(&[2, 2, 1]), &Pool2dSpec::square(2)).is_err());
        assert!(avg_pool2d(&Tensor::zeros(&[1, 1, 1, 1]), &Pool2dSpec::square(2)).is_err());
        let padded = Pool2dSpec {
            padding: Padding::Explicit {
                top: 2,
                bottom: 0,
                left: 0,
                right: 0,
            },
            ..Pool2dSpec::square(2)
        };
        assert!(max_pool2d(&Tensor::zeros(&[1, 4, 4, 1]), &padded).is_err());
        assert!(global_avg_pool_backward(&Tensor::zeros(&[1, 3]), &[1, 2, 2, 2]).is_err());
    }
}
