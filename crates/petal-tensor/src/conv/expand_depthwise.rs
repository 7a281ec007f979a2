//! A 1x1 convolution that expands the channels, then a depthwise convolution over its
//! output, a band of rows at a time: the start of MobileNetV2's and EfficientNet's
//! inverted residual blocks, at inference.
//!
//! Layer by layer, the expansion writes its whole output to memory and the depthwise
//! layer reads it back: 112x112x96 floats, 4.8 MB an image, in MobileNetV2's second
//! block, more than a core's L2. Here each image goes down in bands of depthwise output
//! rows. A band's expanded rows (the 1x1 product, bias and activation, the same kernels
//! as the 1x1 path) go to scratch, sized to stay in L2, and the depthwise kernel reads
//! them there. The rows that the next band also reads (its window's overlap) move to the
//! front of the scratch and are not computed again. Each value is computed as the two
//! layers compute it, in the same order: the outputs are the same bits.
//!
//! On the Intel Xeon of the benchmark page, the two ways alternating in one process (a
//! scratch program, 40 rounds of 5 calls, medians, 2 threads, bias and ReLU6 on both),
//! batch 2 / 16: MobileNetV2's 112x112x16 -> 96, 3x3 stride 2 -27% / -49%; 56x56x24 ->
//! 144, stride 1 -12% / -18%, stride 2 -22% / -38%; 28x28x32 -> 192 -14% / -21%;
//! EfficientNet-Lite0's 56x56x24 -> 144, 5x5 stride 2 -19% / -30%; 28x28x40 -> 240,
//! 5x5 -7% / -14%.

use std::ops::Range;

use super::batch::{map_images, Output};
use super::depthwise::{ImageForward, Isa};
use super::im2col::filter_factors;
use super::pointwise::FinishedProduct;
use super::{ConvPath, ConvShape, Filter};
use crate::elementwise::{apply_on_this_thread, Unary};
use crate::error::Result;
use crate::parallel::as_uninit;
use crate::window::AxisGeometry;

/// About how many bytes of expanded rows a band holds: well inside a core's L2, with
/// the 1x1 products' scratch beside them. (64 KiB to 512 KiB measured alike on whole
/// MobileNetV2 and EfficientNet-Lite0 predictions, within this machine's noise.)
const BAND_BYTES: usize = 256 * 1024;

/// The two layers' shapes: `expand` on the input, `depthwise` on its output.
pub(super) struct Shapes<'a> {
    pub expand: &'a ConvShape,
    pub depthwise: &'a ConvShape,
}

impl Shapes<'_> {
    /// Whether the fused pass runs them: a 1x1 layer with input channels, then a
    /// depthwise one with one filter per channel, every window of which reaches into
    /// the image (no band made only of padding).
    pub fn fusable(&self) -> bool {
        let r = &self.depthwise.rows;
        let last_window_end = (r.output.max(1) - 1) * r.stride + r.span();
        let inside = r.pad_before < r.span() && last_window_end < r.input + r.pad_before + r.span();
        self.expand.channels > 0
            && self.expand.path() == ConvPath::Pointwise
            && self.depthwise.path() == ConvPath::Depthwise
            && self.depthwise.group_filters() == 1
            && inside
    }
}

/// The depthwise layer's output, computed band by band from `x`: `expand` is
/// `(filter, output)` of the 1x1 layer, `depthwise` of the depthwise one (its start
/// and activation; neither pools).
pub(super) fn forward(
    shapes: Shapes<'_>,
    x: &[f32],
    (expand_filter, expand): (Filter<'_>, Output<'_>),
    (depthwise_filter, depthwise): (&[f32], Output<'_>),
) -> Result<Vec<f32>> {
    let Shapes {
        expand: s1,
        depthwise: s2,
    } = shapes;
    let factors = filter_factors(s1, expand_filter)?;
    let expansion = Expansion {
        product: FinishedProduct {
            filter: &factors[0],
            channels: s1.channels,
            filters: s1.filters,
            bias: expand.start.per_channel(s1.filters),
            activation: expand.activation,
        },
        cols: s1.cols.input,
    };
    let expanded_row = s2.cols.input * s2.channels;
    let out_row = s2.cols.output * s2.filters;
    let (bands, band_rows) = Bands::of(s2, expanded_row);
    let (passes, band_pass) = bands.passes(s2, depthwise.activation);
    let isa = Isa::detect();
    // The bands' passes apply the depthwise activation.
    let depthwise_out = Output {
        activation: None,
        ..depthwise
    };
    let scratch_len = 2 * band_rows * expanded_row;
    let kernel = |y: &mut [f32], scratch: &mut [f32], x: &[f32]| {
        let (expanded, sums) = scratch.split_at_mut(band_rows * expanded_row);
        // The expanded rows at the front of `expanded`.
        let mut held = 0..0;
        for band in 0..bands.count {
            let (outputs, needed) = bands.rows(s2, band);
            // Keep the rows this band shares with the last one (none when the stride
            // steps past the window), then expand the rest.
            let kept = needed.start.max(held.start)..held.end.clamp(needed.start, needed.end);
            if !kept.is_empty() {
                let from = kept.start - held.start..kept.end - held.start;
                expanded.copy_within(from.start * expanded_row..from.end * expanded_row, 0);
            }
            let at = kept.len() * expanded_row..needed.len() * expanded_row;
            expansion.write(x, kept.end..needed.end, &mut expanded[at], sums)?;
            let pass = &passes[band_pass[band]];
            let y = &mut y[outputs.start * out_row..outputs.end * out_row];
            pass.add(
                isa,
                y,
                &expanded[..needed.len() * expanded_row],
                depthwise_filter,
            );
            if let Some(activation) = pass.leftover() {
                apply_on_this_thread(y, activation);
            }
            held = needed;
        }
        Ok(())
    };
    let in_len = s1.image_len();
    map_images(
        depthwise_out,
        s1.batch,
        s2.output_image_len(),
        x,
        in_len,
        scratch_len,
        kernel,
    )
}

/// The 1x1 layer: its product, and the columns of its input images.
struct Expansion<'a> {
    product: FinishedProduct<'a>,
    cols: usize,
}

impl Expansion<'_> {
    /// Writes the expanded `rows` of `image` into `out`, finished (bias, activation), as
    /// the 1x1 path does, the product through `sums`.
    fn write(
        &self,
        image: &[f32],
        rows: Range<usize>,
        out: &mut [f32],
        sums: &mut [f32],
    ) -> Result<()> {
        let row_len = self.cols * self.product.channels;
        let inputs = &image[rows.start * row_len..rows.end * row_len];
        // SAFETY: `out` is initialized, and the product writes only valid values into it.
        self.product.write(inputs, unsafe { as_uninit(out) }, sums)
    }
}

/// An image's depthwise output rows in bands of `rows` (the last one shorter).
struct Bands {
    count: usize,
    rows: usize,
}

impl Bands {
    /// The bands of `s` whose expanded rows, `row_len` values each, fit [`BAND_BYTES`]
    /// (at least one output row a band), and how many expanded rows a band reads at most.
    fn of(s: &ConvShape, row_len: usize) -> (Self, usize) {
        let r = &s.rows;
        let read = |outputs: usize| ((outputs.max(1) - 1) * r.stride + r.span()).min(r.input);
        let fit = (BAND_BYTES / (row_len.max(1) * size_of::<f32>())).max(1);
        let rows = (1..=r.output.max(1))
            .take_while(|&n| n == 1 || read(n) <= fit)
            .last()
            .unwrap_or(1);
        let bands = Bands {
            count: r.output.div_ceil(rows),
            rows,
        };
        (bands, read(rows))
    }

    /// Band `band`'s output rows and the expanded rows it reads (inside the image).
    fn rows(&self, s: &ConvShape, band: usize) -> (Range<usize>, Range<usize>) {
        let r = &s.rows;
        let outputs = band * self.rows..((band + 1) * self.rows).min(r.output);
        let first = (outputs.start * r.stride).saturating_sub(r.pad_before);
        let end = ((outputs.end - 1) * r.stride + r.span())
            .saturating_sub(r.pad_before)
            .min(r.input);
        (outputs, first..end)
    }

    /// The depthwise pass of each band (a shape of its own: one image of the band's
    /// expanded rows, padded only where the image is): the distinct passes, and each
    /// band's index among them. Bands away from the image's top and bottom share one.
    fn passes(&self, s: &ConvShape, activation: Option<Unary>) -> (Vec<ImageForward>, Vec<usize>) {
        let mut passes: Vec<(AxisGeometry, ImageForward)> = Vec::new();
        let which = (0..self.count)
            .map(|band| {
                let (outputs, read) = self.rows(s, band);
                let rows = AxisGeometry {
                    input: read.len(),
                    // The padding the band's first window reaches into, if any.
                    pad_before: s
                        .rows
                        .pad_before
                        .saturating_sub(outputs.start * s.rows.stride),
                    output: outputs.len(),
                    ..s.rows
                };
                if let Some(i) = passes.iter().position(|(r, _)| *r == rows) {
                    return i;
                }
                let band_shape = ConvShape {
                    batch: 1,
                    rows,
                    ..*s
                };
                passes.push((rows, ImageForward::new(&band_shape, activation)));
                passes.len() - 1
            })
            .collect();
        (passes.into_iter().map(|(_, pass)| pass).collect(), which)
    }
}
