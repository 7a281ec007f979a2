//! Petal's weights in ONNX's layouts: kernels HWIO to OIHW, batch norms folded into the
//! filters before them, dense rows in channels-first order, and padding as explicit pads.

use petal_tensor::Padding;

/// A convolution kernel `(height, width, in, out)` as ONNX's `(out, in, height, width)`.
pub(super) fn hwio_to_oihw(values: &[f32], [kh, kw, ci, co]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (index, &value) in values.iter().enumerate() {
        let o = index % co;
        let i = index / co % ci;
        let x = index / (co * ci) % kw;
        let y = index / (co * ci * kw);
        out[((o * ci + i) * kh + y) * kw + x] = value;
    }
    out
}

/// Folds `y = x * scale + shift` per output channel into an OIHW kernel and its bias
/// (zero when the convolution had none).
pub(super) fn fold_affine(
    kernel: &mut [f32],
    bias: Option<Vec<f32>>,
    scale: &[f32],
    shift: &[f32],
) -> Vec<f32> {
    let per_filter = kernel.len() / scale.len();
    for (filter, s) in kernel.chunks_exact_mut(per_filter).zip(scale) {
        filter.iter_mut().for_each(|w| *w *= s);
    }
    let bias = bias.unwrap_or_else(|| vec![0.0; scale.len()]);
    bias.iter()
        .zip(scale)
        .zip(shift)
        .map(|((b, s), t)| b * s + t)
        .collect()
}

/// A dense kernel `(h * w * c, units)` whose rows follow Petal's `(h, w, c)` flattening,
/// reordered for inputs flattened channels first, `(c, h, w)`.
pub(super) fn rows_channels_first(
    kernel: &[f32],
    [height, width, channels]: [usize; 3],
) -> Vec<f32> {
    let units = kernel.len() / (height * width * channels);
    let mut out = Vec::with_capacity(kernel.len());
    for c in 0..channels {
        for position in 0..height * width {
            let row = position * channels + c;
            out.extend_from_slice(&kernel[row * units..(row + 1) * units]);
        }
    }
    out
}

/// ONNX's `pads` (`[top, left, bottom, right]`) for a window of `kernel` taps spaced by
/// `dilation`, moving by `stride` over an input of `size` (rows, columns) with Petal's
/// `padding`: TensorFlow's 'same' puts the larger half after.
pub(super) fn pads(
    padding: Padding,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> [usize; 4] {
    match padding {
        Padding::Valid => [0; 4],
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => [top, left, bottom, right],
        Padding::Same => {
            let total = |axis: usize| {
                let span = (kernel[axis] - 1) * dilation[axis] + 1;
                let output = size[axis].div_ceil(stride[axis]);
                ((output.max(1) - 1) * stride[axis] + span).saturating_sub(size[axis])
            };
            let (rows, columns) = (total(0), total(1));
            [
                rows / 2,
                columns / 2,
                rows - rows / 2,
                columns - columns / 2,
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_move_from_hwio_to_oihw() {
        // (kh, kw, in, out) = (1, 2, 2, 3), values numbered in HWIO order.
        let shape = [1, 2, 2, 3];
        let hwio: Vec<f32> = (0..12).map(|k| k as f32).collect();
        let oihw = hwio_to_oihw(&hwio, shape);
        for o in 0..3 {
            for i in 0..2 {
                for x in 0..2 {
                    let petal = hwio[(x * 2 + i) * 3 + o];
                    assert_eq!(oihw[(o * 2 + i) * 2 + x], petal);
                }
            }
        }
    }

    #[test]
    fn folding_scales_each_filter_and_shifts_its_bias() {
        let mut kernel = vec![1.0, 2.0, 3.0, 4.0];
        let bias = fold_affine(&mut kernel, None, &[2.0, -1.0], &[0.5, 1.0]);
        assert_eq!(kernel, [2.0, 4.0, -3.0, -4.0]);
        assert_eq!(bias, [0.5, 1.0]);
        let mut kernel = vec![1.0, 1.0];
        let bias = fold_affine(&mut kernel, Some(vec![3.0, 4.0]), &[2.0, 3.0], &[1.0, 0.0]);
        assert_eq!(bias, [7.0, 12.0]);
    }

    #[test]
    fn dense_rows_follow_channels_first_order() {
        // (h, w, c) = (1, 2, 2), one unit: row r of Petal's order holds r.
        let kernel = [0.0, 1.0, 2.0, 3.0]; // rows (p0 c0) (p0 c1) (p1 c0) (p1 c1)
        assert_eq!(
            rows_channels_first(&kernel, [1, 2, 2]),
            [0.0, 2.0, 1.0, 3.0]
        );
    }

    #[test]
    fn same_padding_puts_the_larger_half_after() {
        // 224 input, 3x3 stride 2: output 112, total padding 1, all of it after.
        assert_eq!(
            pads(Padding::Same, [224, 224], [3, 3], [2, 2], [1, 1]),
            [0, 0, 1, 1]
        );
        // 5x5 stride 1: 2 on each side.
        assert_eq!(
            pads(Padding::Same, [7, 9], [5, 5], [1, 1], [1, 1]),
            [2, 2, 2, 2]
        );
        // Dilation 2 spans 5 taps for a 3x3 kernel.
        assert_eq!(
            pads(Padding::Same, [8, 8], [3, 3], [1, 1], [2, 2]),
            [2, 2, 2, 2]
        );
        let explicit = Padding::Explicit {
            top: 1,
            bottom: 2,
            left: 3,
            right: 4,
        };
        assert_eq!(pads(explicit, [8, 8], [3, 3], [1, 1], [1, 1]), [1, 3, 2, 4]);
        assert_eq!(pads(Padding::Valid, [8, 8], [3, 3], [1, 1], [1, 1]), [0; 4]);
    }
}
