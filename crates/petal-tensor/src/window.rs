//! Sliding-window geometry shared by convolution and pooling: padding rules and the
//! output size along one spatial axis.

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
                let output = input.div_ceil(stride);
                let total = ((output.max(1) - 1) * stride + span).saturating_sub(input);
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

    /// The input position that tap `tap` of output position `out` reads, or `None`
    /// when it falls in the padding.
    #[inline]
    pub fn input_index(&self, out: usize, tap: usize) -> Option<usize> {
        (out * self.stride + tap * self.dilation)
            .checked_sub(self.pad_before)
            .filter(|&i| i < self.input)
    }
}

/// The padding along one axis.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AxisPadding {
    Valid,
    Same,
    Explicit(usize, usize),
}

impl Padding {
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
    fn valid_and_dilated_windows() {
        let g = AxisGeometry::new("t", 7, 3, 1, 2, AxisPadding::Valid).unwrap();
        assert_eq!(g.output, 3);
        assert_eq!(g.input_index(2, 2), Some(6));
        assert!(AxisGeometry::new("t", 2, 3, 1, 1, AxisPadding::Valid).is_err());
        assert!(AxisGeometry::new("t", 2, 3, 0, 1, AxisPadding::Valid).is_err());
    }
}
