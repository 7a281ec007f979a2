//! Max and average pooling over NHWC images, their backward passes, and global
//! average pooling.
//!
//! Shapes: input `(n, h, w, c)`, output `(n, oh, ow, c)` with `oh`, `ow` from the
//! window, stride and padding. Padding never wins a max and never counts in an
//! average (TensorFlow's rule).

use rayon::prelude::*;

use crate::error::{invalid, shape_mismatch, Result};
use crate::window::{AxisGeometry, Padding};
use crate::Tensor;

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
    let s = PoolShape::new("max_pool2d", input.shape(), spec)?;
    let c = s.channels;
    let mut out = Tensor::full(&s.output_shape(), f32::NEG_INFINITY);
    let mut argmax = vec![0u32; out.len()];
    out.as_mut_slice()
        .par_chunks_mut(s.output_image_len().max(1))
        .zip(argmax.par_chunks_mut(s.output_image_len().max(1)))
        .zip(input.as_slice().par_chunks(s.image_len().max(1)))
        .for_each(|((yi, ai), xi)| {
            s.for_each_window(|out_pixel, window| {
                let best = &mut yi[out_pixel * c..][..c];
                let best_at = &mut ai[out_pixel * c..][..c];
                for &pixel in window {
                    let values = &xi[pixel * c..][..c];
                    let first = (pixel * c) as u32;
                    // Selects, not branches, so that the loop runs on vectors.
                    for (ch, ((b, at), &v)) in best
                        .iter_mut()
                        .zip(best_at.iter_mut())
                        .zip(values)
                        .enumerate()
                    {
                        let wins = v > *b;
                        *b = if wins { v } else { *b };
                        *at = if wins { first + ch as u32 } else { *at };
                    }
                }
            });
        });
    Ok((out, argmax))
}

/// Routes each output gradient to the input value that won its window.
pub fn max_pool2d_backward(
    grad_out: &Tensor,
    argmax: &[u32],
    input_shape: &[usize],
    spec: &Pool2dSpec,
) -> Result<Tensor> {
    let s = PoolShape::new("max_pool2d_backward", input_shape, spec)?;
    s.check_grad_out("max_pool2d_backward", grad_out)?;
    if argmax.len() != grad_out.len() {
        return Err(invalid(
            "max_pool2d_backward",
            format!(
                "{} argmax indices for {} gradients",
                argmax.len(),
                grad_out.len()
            ),
        ));
    }
    let mut grad_in = Tensor::zeros(input_shape);
    grad_in
        .as_mut_slice()
        .par_chunks_mut(s.image_len().max(1))
        .zip(grad_out.as_slice().par_chunks(s.output_image_len().max(1)))
        .zip(argmax.par_chunks(s.output_image_len().max(1)))
        .for_each(|((dxi, dyi), ai)| {
            for (g, &at) in dyi.iter().zip(ai) {
                dxi[at as usize] += g;
            }
        });
    Ok(grad_in)
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
    use super::*;

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
