//! Sliding-window geometry shared by convolution and pooling: padding rules and the
//! output size along one spatial axis.

use std::ops::Range;

use crate::error::{invalid, Result};

/// How a sliding window treats the image border.
///
/// `Same` follows TensorFlow: the output has `ceil(input / stride)` positions and the
/// padding splits with the smaller half before (top/left) and the larger half after
/// (bottom/right). `Explicit` pads exactly as given (PyTorch's `padding=k//2` is
/// `Explicit` with equal sides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// No padding: only windows that fit inside the input.
    #[default]
    Valid,
    /// Pad so that the output has `ceil(input / stride)` positions.
    Same,
    /// Pad each side by the given number of pixels.
    Explicit {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
}

/// The resolved window geometry along one spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AxisGeometry {
    pub input: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_before: usize,
    pub output: usize,
}

impl AxisGeometry {
    /// Resolves one axis; `explicit` holds the (before, after) padding of `Padding::Explicit`.
    pub fn new(
        op: &'static str,
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        padding: AxisPadding,
    ) -> Result<Self> {
        if kernel == 0 || stride == 0 || dilation == 0 {
            return Err(invalid(
                op,
                format!("kernel {kernel}, stride {stride} and dilation {dilation} must all be at least 1"),
            ));
        }
        let span = (kernel - 1) * dilation + 1;
        let (pad_before, padded) = match padding {
            AxisPadding::Valid => (0, input),
            AxisPadding::Same => {
                let total = same_total(input, kernel, stride, dilation);
                (total / 2, input + total)
            }
            AxisPadding::Explicit(before, after) => (before, input + before + after),
        };
        if padded < span || input == 0 {
            return Err(invalid(
                op,
                format!(
                    "a window spanning {span} pixels does not fit an input of {input} pixels padded to {padded}"
                ),
            ));
        }
        Ok(Self {
            input,
            kernel,
            stride,
            dilation,
            pad_before,
            output: (padded - span) / stride + 1,
        })
    }

    /// How many input positions one window covers, its taps and the gaps between them.
    pub fn span(&self) -> usize {
        (self.kernel - 1) * self.dilation + 1
    }

    /// The input position that tap `tap` of output position `out` reads, or `None`
    /// when it falls in the padding.
    #[inline]
    pub fn input_index(&self, out: usize, tap: usize) -> Option<usize> {
        (out * self.stride + tap * self.dilation)
            .checked_sub(self.pad_before)
            .filter(|&i| i < self.input)
    }

    /// The output positions whose windows lie inside the input, every tap off the
    /// padding (`0..0` when none does).
    pub fn inside_outputs(&self) -> Range<usize> {
        let first = self.pad_before.div_ceil(self.stride);
        // The last tap of output `out` reads `out * stride - pad_before + (kernel - 1) * dilation`.
        let reach = (self.kernel - 1) * self.dilation;
        let end = match (self.input - 1 + self.pad_before).checked_sub(reach) {
            Some(last_start) => (last_start / self.stride + 1).min(self.output),
            None => 0,
        };
        if first < end {
            first..end
        } else {
            0..0
        }
    }

    /// For windows without dilation: the input positions the window of output position
    /// `out` covers, padding left out (never empty when the padding before is smaller
    /// than the window, which pooling checks).
    #[inline]
    pub fn window_span(&self, out: usize) -> Range<usize> {
        debug_assert!(self.dilation == 1);
        let first = out * self.stride;
        let end = (first + self.kernel).saturating_sub(self.pad_before);
        first.saturating_sub(self.pad_before)..end.min(self.input)
    }

    /// Whether no two windows share an input position (`stride >= span`).
    pub fn windows_are_disjoint(&self) -> bool {
        self.stride > (self.kernel - 1) * self.dilation
    }

    /// For windows without dilation that no two share an input position: the output
    /// position whose window reads input position `i`, or `None` if none does.
    pub fn covering_output(&self, i: usize) -> Option<usize> {
        debug_assert!(self.windows_are_disjoint() && self.dilation == 1);
        let padded = i + self.pad_before;
        let (out, tap) = (padded / self.stride, padded % self.stride);
        (tap < self.kernel && out < self.output).then_some(out)
    }
}

/// The padding along one axis.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AxisPadding {
    Valid,
    Same,
    Explicit(usize, usize),
}

/// The total 'same' padding along one axis of `input` pixels: enough for
/// `ceil(input / stride)` windows of `kernel` taps spaced by `dilation` (a zero kernel,
/// stride or dilation counts as 1).
fn same_total(input: usize, kernel: usize, stride: usize, dilation: usize) -> usize {
    let span = (kernel.max(1) - 1) * dilation.max(1) + 1;
    let stride = stride.max(1);
    let output = input.div_ceil(stride);
    ((output.max(1) - 1) * stride + span).saturating_sub(input)
}

impl Padding {
    /// The padding `[top, left, bottom, right]` (ONNX's `pads` order) of a window of
    /// `kernel` taps spaced by `dilation`, moving by `stride` over an input of `size`
    /// (rows, columns): `Same` puts the larger half after.
    ///
    /// ```
    /// use petal_tensor::Padding;
    /// // 224 rows and columns, 3x3 stride 2: 112 outputs need one pixel, after.
    /// assert_eq!(Padding::Same.pads([224, 224], [3, 3], [2, 2], [1, 1]), [0, 0, 1, 1]);
    /// let explicit = Padding::Explicit { top: 1, bottom: 2, left: 3, right: 4 };
    /// assert_eq!(explicit.pads([8, 8], [3, 3], [1, 1], [1, 1]), [1, 3, 2, 4]);
    /// ```
    pub fn pads(
        self,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> [usize; 4] {
        match self {
            Padding::Valid => [0; 4],
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => [top, left, bottom, right],
            Padding::Same => {
                let [rows, columns] =
                    [0, 1].map(|a| same_total(size[a], kernel[a], stride[a], dilation[a]));
                [
                    rows / 2,
                    columns / 2,
                    rows - rows / 2,
                    columns - columns / 2,
                ]
            }
        }
    }

    /// The padding along the rows (`0`) and columns (`1`) axes.
    pub(crate) fn axes(self) -> [AxisPadding; 2] {
        match self {
            Padding::Valid => [AxisPadding::Valid; 2],
            Padding::Same => [AxisPadding::Same; 2],
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            } => [
                AxisPadding::Explicit(top, bottom),
                AxisPadding::Explicit(left, right),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_put_the_larger_half_of_same_padding_after() {
        // 224 input, 3x3 stride 2: output 112, total padding 1, all of it after.
        let same = Padding::Same;
        assert_eq!(same.pads([224, 224], [3, 3], [2, 2], [1, 1]), [0, 0, 1, 1]);
        // 5x5 stride 1: 2 on each side.
        assert_eq!(same.pads([7, 9], [5, 5], [1, 1], [1, 1]), [2, 2, 2, 2]);
        // Dilation 2 spans 5 taps for a 3x3 kernel.
        assert_eq!(same.pads([8, 8], [3, 3], [1, 1], [2, 2]), [2, 2, 2, 2]);
        let explicit = Padding::Explicit {
            top: 1,
            bottom: 2,
            left: 3,
            right: 4,
        };
        assert_eq!(explicit.pads([8, 8], [3, 3], [1, 1], [1, 1]), [1, 3, 2, 4]);
        let valid = Padding::Valid;
        assert_eq!(valid.pads([8, 8], [3, 3], [1, 1], [1, 1]), [0; 4]);
    }

    #[test]
    fn same_padding_puts_the_larger_half_after() {
        // 5 inputs, kernel 2, stride 2: 3 outputs, 1 pixel of padding, all of it after.
        let g = AxisGeometry::new("t", 5, 2, 2, 1, AxisPadding::Same).unwrap();
        assert_eq!((g.output, g.pad_before), (3, 0));
        // 4 inputs, kernel 3, stride 1: total padding 2, one on each side.
        let g = AxisGeometry::new("t", 4, 3, 1, 1, AxisPadding::Same).unwrap();
        assert_eq!((g.output, g.pad_before), (4, 1));
        // 6 inputs, kernel 3, stride 2: 3 outputs, total padding 1, after.
        let g = AxisGeometry::new("t", 6, 3, 2, 1, AxisPadding::Same).unwrap();
        assert_eq!((g.output, g.pad_before), (3, 0));
        assert_eq!(g.input_index(2, 2), None);
    }

    #[test]
    fn inside_outputs_are_those_whose_every_tap_reads_the_input() {
        let paddings = [
            AxisPadding::Valid,
            AxisPadding::Same,
            AxisPadding::Explicit(2, 0),
            AxisPadding::Explicit(0, 3),
            AxisPadding::Explicit(4, 4),
        ];
        for (input, kernel, stride, dilation) in (1..12)
            .flat_map(|i| (1..5).map(move |k| (i, k)))
            .flat_map(|(i, k)| (1..4).map(move |s| (i, k, s)))
            .flat_map(|(i, k, s)| (1..3).map(move |d| (i, k, s, d)))
        {
            for padding in paddings {
                let Ok(g) = AxisGeometry::new("t", input, kernel, stride, dilation, padding) else {
                    continue;
                };
                let inside: Vec<usize> = (0..g.output)
                    .filter(|&out| (0..kernel).all(|tap| g.input_index(out, tap).is_some()))
                    .collect();
                let range = g.inside_outputs();
                assert!(range.end <= g.output, "{g:?}: {range:?}");
                assert_eq!(range.collect::<Vec<_>>(), inside, "{g:?}");
            }
        }
    }

    #[test]
    fn valid_and_dilated_windows() {
        let g = AxisGeometry::new("t", 7, 3, 1, 2, AxisPadding::Valid).unwrap();
        assert_eq!(g.output, 3);
        assert_eq!(g.input_index(2, 2), Some(6));
        assert!(AxisGeometry::new("t", 2, 3, 1, 1, AxisPadding::Valid).is_err());
        assert!(AxisGeometry::new("t", 2, 3, 0, 1, AxisPadding::Valid).is_err());
    }
}
