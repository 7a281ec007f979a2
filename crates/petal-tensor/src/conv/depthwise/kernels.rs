//! The register-blocked depthwise kernels (multiplier 1) and the walk over one image
//! that feeds them blocks of target pixels.

use super::lanes::{check_span, prefetch, Isa, Lanes, Portable, LANES};
use super::plan::{Axis, Block, Plan, MAX_BLOCK};
use crate::conv::ConvShape;
use crate::elementwise::Unary;
use std::marker::PhantomData;

use pulp::{Arch, Simd, WithSimd};

#[cfg(target_arch = "x86_64")]
use super::lanes::Avx512;

/// One image of [`Walk::run`] on the portable lanes as a [`WithSimd`] op: compiled for
/// each instruction set with the whole walk inlined, so that the lanes' loops
/// vectorize at the CPU's widest vectors.
struct PortableImage<'a, K> {
    walk: &'a Walk,
    out: &'a mut [f32],
    a: &'a [f32],
    b: &'a [f32],
    kernel: PhantomData<K>,
}

impl<K: BlockKernel> WithSimd for PortableImage<'_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.walk.image::<Portable, K>(self.out, self.a, self.b)
    }
}

/// How a pass walks one image: every target row, every block of target pixels along
/// the row, every block of [`LANES`] channels.
#[derive(Clone, Debug)]
pub(super) struct Walk {
    rows: Plan,
    cols: Plan,
    /// For each block of rows, the source rows its blocks prefetch: those the next
    /// block of rows reads and it does not (at stride 1, one row of three).
    prefetched_rows: Vec<Vec<usize>>,
    channels: usize,
    kernel_cols: usize,
    source_cols: usize,
    target_cols: usize,
    /// Values between the sources of neighbouring pixels of a block.
    source_step: usize,
    /// Source pixels between the sources of neighbouring pixels of a block.
    source_stride: usize,
    /// Values between neighbouring target pixels of a block.
    target_step: usize,
    /// The activation [`Gather`] applies to its results before it stores them, as the
    /// bounds of a clamp (ReLU, ReLU6), if any.
    clamp: Option<(f32, f32)>,
    /// Whether the walk takes one block of [`LANES`] channels through the whole image
    /// before the next ([`channels_outer`]), rather than every block of channels of a
    /// block of pixels before the next pixels.
    channels_outer: bool,
}

/// One block of target pixels and one block of channels, as a kernel sees it.
pub(super) struct At<'a, V: Lanes> {
    walk: &'a Walk,
    row_taps: &'a [(usize, usize)],
    col_taps: &'a [(usize, usize)],
    /// Offset of the first pixel's first channel of the block in the target image.
    target: usize,
    /// The block's first channel.
    channel: usize,
    /// The block's column taps, when they form a window sliding along the row
    /// ([`Block::window`](super::plan::Block)).
    window: Option<Window>,
    width: V::Width,
}

/// A window of `taps` neighbouring column taps from tap `kx` on, through which the
/// block's first pixel reads source column `first`. For a block of [`Plan::clipped`]
/// (`clipped`) the window is the filter's whole width and may reach into the padding
/// (`first` below 0, or columns past the row); other windows lie inside the row.
#[derive(Clone, Copy)]
struct Window {
    taps: usize,
    kx: usize,
    first: isize,
    clipped: bool,
}

impl<V: Lanes> At<'_, V> {
    /// The filter offset of tap `(ky, kx)` and the source offset that it reads for the
    /// block's first pixel (`sy` and `sx` from the plans), both at the block's first
    /// channel. The kernels visit the taps in a fixed order, rows then columns of the
    /// filter, in plain loops: a closure is compiled apart from the AVX-512 function
    /// it sits in once that function is large, and its intrinsics become calls.
    #[inline(always)]
    fn offsets(&self, (ky, sy): (usize, usize), (kx, sx): (usize, usize)) -> (usize, usize) {
        let w = self.walk;
        let tap = (ky * w.kernel_cols + kx) * w.channels + self.channel;
        (tap, (sy * w.source_cols + sx) * w.channels + self.channel)
    }
}

/// The work for a block of `B` target pixels: `out`, `a` and `b` are what
/// [`Walk::run`] was given.
pub(super) trait BlockKernel {
    fn block<V: Lanes, const B: usize>(at: &At<'_, V>, out: &mut [f32], a: &[f32], b: &[f32]);
}

/// Forward pass and input gradient: `out` (target image) gets, for every target pixel,
/// the sum over its taps of `a` (source image) times `b` (filter). The `B` sums stay in
/// registers over all taps; each tap's weights are loaded once per block.
pub(super) struct Gather;

impl BlockKernel for Gather {
    #[inline(always)]
    fn block<V: Lanes, const B: usize>(
        at: &At<'_, V>,
        out: &mut [f32],
        source: &[f32],
        filter: &[f32],
    ) {
        let mut sums = [V::zero(); B];
        // The windows of the MobileNet and EfficientNet layers slide, their borders'
        // shorter ones and the whole ones across the borders too; other blocks take
        // their taps one by one.
        // A match, not `map_or`: a closure may be compiled apart (see `At::offsets`).
        let taps = match at.window {
            Some(window) => window.taps,
            None => 0,
        };
        match (taps, at.walk.source_stride) {
            (2, 1) => slide::<V, B, 2, 1>(at, &mut sums, source, filter),
            (2, 2) => slide::<V, B, 2, 2>(at, &mut sums, source, filter),
            (3, 1) => slide::<V, B, 3, 1>(at, &mut sums, source, filter),
            (3, 2) => slide::<V, B, 3, 2>(at, &mut sums, source, filter),
            (4, 1) => slide::<V, B, 4, 1>(at, &mut sums, source, filter),
            (4, 2) => slide::<V, B, 4, 2>(at, &mut sums, source, filter),
            (5, 1) => slide::<V, B, 5, 1>(at, &mut sums, source, filter),
            (5, 2) => slide::<V, B, 5, 2>(at, &mut sums, source, filter),
            _ => {
                for &row in at.row_taps {
                    for &col in at.col_taps {
                        let (tap, first) = at.offsets(row, col);
                        let weights = V::load(filter, tap, at.width);
                        let step = at.walk.source_step;
                        let x = V::load_strided::<B>(source, first, step, at.width);
                        for (sum, x) in sums.iter_mut().zip(x) {
                            *sum = sum.mul_add(x, weights);
                        }
                    }
                }
            }
        }
        store_sums(at, out, sums);
    }
}

/// Adds [`Gather`]'s `sums` to the block's target pixels in `out`, activated as the
/// walk says.
#[inline(always)]
fn store_sums<V: Lanes, const B: usize>(at: &At<'_, V>, out: &mut [f32], sums: [V; B]) {
    let (target, step) = (at.target, at.walk.target_step);
    let mut y = V::load_strided::<B>(out, target, step, at.width);
    // Loops, not closures: a closure is compiled apart from the AVX-512 function it
    // sits in, and its intrinsics became calls.
    for (y, sum) in y.iter_mut().zip(sums) {
        *y = y.add(sum);
    }
    if let Some((low, high)) = at.walk.clamp {
        for y in &mut y {
            *y = y.clamp(low, high);
        }
    }
    V::store_strided::<B>(y, out, target, step, at.width);
}

/// [`Gather`]'s sums for a block whose `N` column taps form a window, its pixels `S`
/// source columns apart: along each filter row, pixel `i` reads source column
/// `S * i + j` of the block's row through tap `j`. With `B`, `N` and `S` known to the
/// compiler the loops unroll into straight code, one bounds check per filter row
/// instead of one per tap, and a source vector that several pixels read is loaded once
/// (`S * (B - 1) + N` loads instead of `B * N`: 10 instead of 24 for a 3x3 window at
/// stride 1). Each pixel adds its taps in the order of [`At::offsets`]: the same
/// bits.
///
/// A block of [`Plan::clipped`] runs across a border: the columns its window reaches
/// in the padding (below 0 or past the row) read no memory and multiply zeros (masked
/// loads), so each pixel adds its other taps in the same order as in a block of its
/// own, plus products of zero: the same values, but for the sign of a sum of zero (and
/// NaN where a weight is infinite or NaN). Blocks inside the row run without masks.
#[inline(always)]
fn slide<V: Lanes, const B: usize, const N: usize, const S: usize>(
    at: &At<'_, V>,
    sums: &mut [V; B],
    source: &[f32],
    filter: &[f32],
) {
    let Some(window) = at.window else {
        unreachable!("Gather slides only windows")
    };
    let (span, operands) = (S * (B - 1) + N, (source, filter));
    if !window.clipped {
        return window_rows::<V, B, N, S, false>(at, sums, operands, window, 0..span);
    }
    // The block's source columns `first + c` for `c` in `low..high` lie in the row.
    let low = (-window.first).clamp(0, span as isize) as usize;
    let high = (at.walk.source_cols as isize - window.first).clamp(0, span as isize) as usize;
    match (low, high) {
        (0, high) if high == span => {
            window_rows::<V, B, N, S, false>(at, sums, operands, window, 0..span)
        }
        (low, high) if low < high => {
            window_rows::<V, B, N, S, true>(at, sums, operands, window, low..high)
        }
        _ => {}
    }
}

/// The loops of [`slide`] over the block's source columns `inside` (relative to the
/// window's `first`). Those outside read as zeros when `CLIPS`; else `inside` is the
/// whole span, `S * (B - 1) + N` columns, and the code has no masks.
#[inline(always)]
fn window_rows<V: Lanes, const B: usize, const N: usize, const S: usize, const CLIPS: bool>(
    at: &At<'_, V>,
    sums: &mut [V; B],
    (source, filter): (&[f32], &[f32]),
    Window { kx, first, .. }: Window,
    inside: std::ops::Range<usize>,
) {
    let w = at.walk;
    // A column in the padding loads no lanes: zeros, which add nothing to the sums.
    let padding = V::width(0);
    for &(ky, sy) in at.row_taps {
        let tap = (ky * w.kernel_cols + kx) * w.channels + at.channel;
        let weights = V::load_strided::<N>(filter, tap, w.channels, at.width);
        let row = (sy * w.source_cols) as isize + first;
        let start = (row + inside.start as isize) as usize * w.channels + at.channel;
        check_span::<V>(source.len(), start, w.channels, inside.len(), at.width);
        let row_start = source
            .as_ptr()
            .wrapping_offset(row * w.channels as isize + at.channel as isize);
        for (j, weight) in weights.into_iter().enumerate() {
            for (i, sum) in sums.iter_mut().enumerate() {
                let c = S * i + j;
                let width = match CLIPS && !inside.contains(&c) {
                    true => padding,
                    false => at.width,
                };
                // SAFETY: `check_span` above: the columns `inside` lie in `source`; the
                // others load no lanes.
                let x = unsafe { V::load_ptr(row_start.wrapping_add(c * w.channels), width) };
                *sum = sum.mul_add(x, weight);
            }
        }
    }
}

/// Filter gradient: `out` (the filter's gradient) gets, for every tap, the sum over the
/// block's pixels of `a` (input image) times `b` (output gradient image). The `B`
/// output gradients stay in registers over all taps; each tap's gradient is loaded and
/// stored once per block.
pub(super) struct FilterGradient;

impl BlockKernel for FilterGradient {
    #[inline(always)]
    fn block<V: Lanes, const B: usize>(
        at: &At<'_, V>,
        grad: &mut [f32],
        input: &[f32],
        grad_out: &[f32],
    ) {
        debug_assert!(
            !at.col_taps.is_empty(),
            "the filter gradient walks Plan::new's blocks, which list their taps"
        );
        let g = V::load_strided::<B>(grad_out, at.target, at.walk.target_step, at.width);
        for &row in at.row_taps {
            for &col in at.col_taps {
                let (tap, first) = at.offsets(row, col);
                let x = V::load_strided::<B>(input, first, at.walk.source_step, at.width);
                let mut sum = V::load(grad, tap, at.width);
                for (x, g) in x.into_iter().zip(g) {
                    sum = sum.mul_add(x, g);
                }
                sum.store(grad, tap, at.width);
            }
        }
    }
}

impl Walk {
    /// The walk of the forward pass and the filter gradient (`transposed == false`:
    /// targets are output pixels, sources input pixels) or of the input gradient
    /// (`transposed`: the other way round). The shape's multiplier must be 1.
    pub fn new(s: &ConvShape, transposed: bool) -> Self {
        let cols = Plan::new(&Axis::new(s.cols, transposed), MAX_BLOCK);
        Self::with_cols(s, transposed, cols)
    }

    /// The walk of the forward pass: [`Walk::new`], its columns in blocks that run
    /// across the borders where the kernels can ([`Plan::clipped`]).
    pub fn forward(s: &ConvShape) -> Self {
        let axis = Axis::new(s.cols, false);
        let cols = Plan::clipped(&axis).unwrap_or_else(|| Plan::new(&axis, MAX_BLOCK));
        Self::with_cols(s, false, cols)
    }

    /// The walk over images of `s` with the columns cut as `cols` says.
    fn with_cols(s: &ConvShape, transposed: bool, cols: Plan) -> Self {
        let (rows, axis) = (Axis::new(s.rows, transposed), Axis::new(s.cols, transposed));
        let rows = Plan::new(&rows, 1);
        Self {
            prefetched_rows: rows_to_prefetch(&rows),
            rows,
            cols,
            channels: s.channels,
            kernel_cols: s.cols.kernel,
            source_cols: axis.sources(),
            target_cols: axis.targets(),
            source_step: axis.source_step() * s.channels,
            source_stride: axis.source_step(),
            target_step: axis.target_step() * s.channels,
            clamp: None,
            channels_outer: channels_outer(s, transposed),
        }
    }

    /// This walk with [`Gather`] applying `activation` to every target pixel as it
    /// stores it, if `activation` is a clamp (ReLU, ReLU6) and the walk reaches every
    /// target pixel; otherwise unchanged, and `activation` is handed back for a pass of
    /// its own.
    pub fn activating(mut self, activation: Option<Unary>) -> (Self, Option<Unary>) {
        let clamp = match activation {
            Some(Unary::Relu) => (0.0, f32::INFINITY),
            Some(Unary::Relu6) => (0.0, 6.0),
            _ => return (self, activation),
        };
        if !(self.rows.reaches_every_target() && self.cols.reaches_every_target()) {
            return (self, activation);
        }
        self.clamp = Some(clamp);
        (self, None)
    }

    /// Adds the sums of kernel `K` for one image to `out`, with the vector code `isa`.
    pub fn run<K: BlockKernel>(&self, isa: Isa, out: &mut [f32], a: &[f32], b: &[f32]) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only `Isa::detect` builds `Isa::Avx512`, after finding AVX-512F.
            Isa::Avx512(_) => unsafe { self.image_avx512::<K>(out, a, b) },
            Isa::Portable => Arch::new().dispatch(PortableImage::<K> {
                walk: self,
                out,
                a,
                b,
                kernel: PhantomData,
            }),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn image_avx512<K: BlockKernel>(&self, out: &mut [f32], a: &[f32], b: &[f32]) {
        self.image::<Avx512, K>(out, a, b)
    }

    #[inline(always)]
    fn image<V: Lanes, K: BlockKernel>(&self, out: &mut [f32], a: &[f32], b: &[f32]) {
        if !self.channels_outer {
            return self.image_by_pixels::<V, K>(out, a, b);
        }
        for channel in (0..self.channels).step_by(LANES) {
            for row in &self.rows.blocks {
                for block in &self.cols.blocks {
                    self.block::<V, K>(row, block, channel, out, a, b);
                }
            }
        }
    }

    /// [`Walk::image`] a block of pixels at a time, all its channels before the next.
    #[inline(always)]
    fn image_by_pixels<V: Lanes, K: BlockKernel>(&self, out: &mut [f32], a: &[f32], b: &[f32]) {
        for (row, prefetched_rows) in self.rows.blocks.iter().zip(&self.prefetched_rows) {
            for block in &self.cols.blocks {
                // The sources the same block of the next row reads, on their way to the
                // cache while this block computes: the kernels read 16 channels of
                // pixels a stride apart, a pattern the hardware prefetchers follow badly.
                for &sy in prefetched_rows {
                    let first = sy * self.source_cols;
                    let pixels = first + block.sources.start..first + block.sources.end;
                    prefetch(a, pixels.start * self.channels..pixels.end * self.channels);
                }
                // The channel blocks of one pixel block one after another, while its
                // sources are in the L1 cache.
                for channel in (0..self.channels).step_by(LANES) {
                    self.block::<V, K>(row, block, channel, out, a, b);
                }
            }
        }
    }

    /// Kernel `K` on the pixels of `block` in the target row `row`, for the [`LANES`]
    /// channels from `channel` on.
    #[inline(always)]
    fn block<V: Lanes, K: BlockKernel>(
        &self,
        row: &Block,
        block: &Block,
        channel: usize,
        out: &mut [f32],
        a: &[f32],
        b: &[f32],
    ) {
        let col_taps = self.cols.taps(block);
        let first_pixel = row.target * self.target_cols + block.target;
        let window = match (block.clip, col_taps.first()) {
            (Some(first), _) => Some(Window {
                taps: self.kernel_cols,
                kx: 0,
                first,
                clipped: true,
            }),
            (None, Some(&(kx, sx))) if block.window => Some(Window {
                taps: col_taps.len(),
                kx,
                first: sx as isize,
                clipped: false,
            }),
            _ => None,
        };
        let at = At {
            walk: self,
            row_taps: self.rows.taps(row),
            col_taps,
            target: first_pixel * self.channels + channel,
            channel,
            window,
            width: V::width((self.channels - channel).min(LANES)),
        };
        dispatch_len::<V, K>(block, &at, out, a, b);
    }
}

/// Whether a walk over images of `s` takes the channels outermost, one block of
/// [`LANES`] through the whole image before the next: for the forward pass and the
/// filter gradient (not `transposed`) when an input image fits a core's L2 cache
/// ([`CHANNELS_OUTER_IMAGE_BYTES`]) and has at least 64 channels. A block of pixels
/// then finds the source rows of its channels in the L1 cache, where they were for the
/// block before it, and the filter gradient keeps its 16 channels' taps there. Taking
/// every channel of a block of pixels before the next instead, a 5x5 window reads 12
/// pixels of 5 rows of all channels at once (34.5 KB at 144 channels, 161 KB at 672),
/// more than L1 holds.
///
/// One image, one thread, both orders alternating in one process (a scratch program,
/// medians of 60 rounds of 5 calls, ms, pixels first -> channels first, forward
/// with its rows cut across the borders at every width): 7x7x1152 5x5 0.048 -> 0.039, 14x14x672 5x5
/// 0.120 -> 0.094, 28x28x240 5x5 0.192 -> 0.130, 56x56x144 5x5 0.649 -> 0.497 and 3x3
/// 0.345 -> 0.251; but 112x112x32 3x3 0.275 -> 0.309 and 112x112x96 3x3 stride 2 0.414 ->
/// 0.703, which the rule leaves in pixel order (2 blocks of channels; a 4.8 MB image;
/// inside the fused expansion, whose bands of 256 KiB stay in L2, the latter takes the
/// channels first, measured only as part of whole networks).
/// The input gradient (transposed) took 12-16% longer at 56x56x144 channels first and
/// keeps the pixel order.
fn channels_outer(s: &ConvShape, transposed: bool) -> bool {
    let image_bytes = s.image_len() * std::mem::size_of::<f32>();
    !transposed && image_bytes <= CHANNELS_OUTER_IMAGE_BYTES && s.channels >= 4 * LANES
}

/// The largest input image [`channels_outer`] takes channels first: a core's L2 cache.
const CHANNELS_OUTER_IMAGE_BYTES: usize = 2 << 20;

/// For each block of `rows`, the source rows that the next block reads and it does not.
fn rows_to_prefetch(rows: &Plan) -> Vec<Vec<usize>> {
    let reads = |r: usize| rows.taps(&rows.blocks[r]).iter().map(|&(_, sy)| sy);
    (0..rows.blocks.len())
        .map(|r| match r + 1 < rows.blocks.len() {
            true => reads(r + 1)
                .filter(|&sy| !reads(r).any(|read| read == sy))
                .collect(),
            false => Vec::new(),
        })
        .collect()
}

/// Runs `K` compiled for the block's length.
#[inline(always)]
fn dispatch_len<V: Lanes, K: BlockKernel>(
    block: &Block,
    at: &At<'_, V>,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
) {
    match block.len {
        8 => K::block::<V, 8>(at, out, a, b),
        7 => K::block::<V, 7>(at, out, a, b),
        4 => K::block::<V, 4>(at, out, a, b),
        2 => K::block::<V, 2>(at, out, a, b),
        _ => K::block::<V, 1>(at, out, a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::Conv2dSpec;
    use crate::window::Padding;

    /// `len` values in `scale * [-50, 50]`, irregular enough that no two taps cancel.
    fn values(len: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * scale)
            .collect()
    }

    /// `walk` with every block taking its taps one at a time instead of sliding.
    fn one_tap_at_a_time(walk: &Walk) -> Walk {
        let mut walk = walk.clone();
        walk.cols.blocks.iter_mut().for_each(|b| b.window = false);
        walk
    }

    /// Sliding windows give the bits of the taps taken one by one: 3x3 and 5x5 windows
    /// at stride 1 and 2 and their borders' shorter ones, blocks of every length, a
    /// channel tail, each vector code.
    #[test]
    fn sliding_windows_give_the_bits_of_one_tap_at_a_time() {
        let mut border_taps = std::collections::BTreeSet::new();
        for kernel in [3, 5] {
            for stride in [1, 2] {
                let spec = Conv2dSpec {
                    stride: [stride, stride],
                    padding: Padding::Same,
                    groups: 40,
                    ..Conv2dSpec::default()
                };
                let s = ConvShape::new(&[1, 9, 37, 40], &[kernel, kernel, 1, 40], &spec).unwrap();
                let walk = Walk::new(&s, false);
                let windows = walk
                    .cols
                    .blocks
                    .iter()
                    .filter(|b| b.window && walk.cols.taps(b).len() == kernel);
                let lens: Vec<_> = windows.map(|b| b.len).collect();
                assert!(
                    lens.contains(&8) && lens.contains(&1),
                    "{kernel}x{kernel} s{stride}: {lens:?}"
                );
                // The border pixels' shorter windows (2 taps of a 3x3 filter, 3 or 4 of
                // a 5x5 one).
                border_taps.extend(
                    walk.cols
                        .blocks
                        .iter()
                        .filter(|b| b.window && walk.cols.taps(b).len() < kernel)
                        .map(|b| walk.cols.taps(b).len()),
                );
                let (x, f) = (values(s.image_len(), 0.01), values(s.filter_len(), 0.003));
                for isa in Isa::available() {
                    let run = |walk: &Walk| {
                        let mut out = values(s.output_image_len(), 0.1);
                        walk.run::<Gather>(isa, &mut out, &x, &f);
                        out
                    };
                    let (got, want) = (run(&walk), run(&one_tap_at_a_time(&walk)));
                    let what = format!("{kernel}x{kernel} stride {stride} {isa:?}");
                    assert!(got == want, "{what}: not the same bits");
                }
            }
        }
        assert_eq!(border_taps.into_iter().collect::<Vec<_>>(), [2, 3, 4]);
    }

    /// Blocks across the borders give the values of the taps taken one by one (a
    /// padding column adds a product of zero: the sign of a zero sum may differ, so
    /// values are compared, not bits), and the two orders of the walk the same bits,
    /// forward and filter gradient.
    #[test]
    fn clipped_blocks_and_both_orders_give_the_sums_of_one_tap_at_a_time() {
        let shapes = [
            (7, 7, 5, 1, Padding::Same),
            (14, 14, 5, 2, Padding::Same),
            (9, 29, 3, 1, Padding::Same),
            (9, 32, 3, 2, Padding::Same),
            (6, 13, 3, 1, Padding::Valid),
            (7, 15, 3, 2, Padding::Valid),
            (5, 11, 2, 1, Padding::Same),
            (8, 9, 4, 2, Padding::Same),
            (
                5,
                10,
                4,
                1,
                Padding::Explicit {
                    top: 1,
                    bottom: 2,
                    left: 3,
                    right: 1,
                },
            ),
        ];
        for (h, w, kernel, stride, padding) in shapes {
            let spec = Conv2dSpec {
                stride: [stride, stride],
                padding,
                groups: 72,
                ..Conv2dSpec::default()
            };
            let s = ConvShape::new(&[1, h, w, 72], &[kernel, kernel, 1, 72], &spec).unwrap();
            let clipped = Walk::forward(&s);
            assert!(clipped.cols.blocks.iter().all(|b| b.clip.is_some()));
            let one_by_one = one_tap_at_a_time(&Walk::new(&s, false));
            let (x, f) = (values(s.image_len(), 0.01), values(s.filter_len(), 0.003));
            let dy = values(s.output_image_len(), 0.02);
            for isa in Isa::available() {
                let run = |walk: &Walk, channels_outer: bool| {
                    let walk = Walk {
                        channels_outer,
                        ..walk.clone()
                    };
                    let mut out = values(s.output_image_len(), 0.1);
                    walk.run::<Gather>(isa, &mut out, &x, &f);
                    out
                };
                let what = format!("{h}x{w} {kernel}x{kernel} stride {stride} {isa:?}");
                let want = run(&one_by_one, false);
                assert!(run(&clipped, false) == want, "{what}: other values");
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                for walk in [&clipped, &one_by_one] {
                    assert_eq!(bits(run(walk, true)), bits(run(walk, false)), "{what}");
                }
                let filter_gradient = |channels_outer: bool| {
                    let walk = Walk {
                        channels_outer,
                        ..Walk::new(&s, false)
                    };
                    let mut grad = vec![0.0; s.filter_len()];
                    walk.run::<FilterGradient>(isa, &mut grad, &x, &dy);
                    bits(grad)
                };
                assert_eq!(filter_gradient(true), filter_gradient(false), "{what}");
            }
        }
    }

    /// Forward passes and filter gradients of images up to L2 with 64 channels or more
    /// take the channels outermost; input gradients and larger or narrower images do
    /// not.
    #[test]
    fn small_images_of_many_channels_walk_one_block_of_channels_at_a_time() {
        let walk = |side: usize, channels: usize, transposed: bool| {
            let spec = Conv2dSpec {
                padding: Padding::Same,
                groups: channels,
                ..Conv2dSpec::default()
            };
            let s = ConvShape::new(&[2, side, side, channels], &[3, 3, 1, channels], &spec);
            Walk::new(&s.unwrap(), transposed).channels_outer
        };
        assert!(walk(7, 1152, false));
        assert!(walk(56, 144, false));
        assert!(!walk(56, 144, true));
        assert!(!walk(112, 32, false));
        assert!(!walk(112, 96, false));
    }

    /// Each block of rows prefetches the source rows the next one reads and it does
    /// not: one row of three at stride 1, two at stride 2, none after the last.
    #[test]
    fn each_row_prefetches_only_the_next_rows_new_sources() {
        let prefetched = |stride: usize| {
            let spec = Conv2dSpec {
                stride: [stride, stride],
                padding: Padding::Same,
                groups: 16,
                ..Conv2dSpec::default()
            };
            let s = ConvShape::new(&[1, 6, 6, 16], &[3, 3, 1, 16], &spec).unwrap();
            Walk::new(&s, false).prefetched_rows
        };
        let expected: [&[usize]; 6] = [&[2], &[3], &[4], &[5], &[], &[]];
        assert_eq!(prefetched(1), expected);
        // Output rows read inputs 0-2, 2-4 and 4-5 (the padding goes after).
        let expected: [&[usize]; 3] = [&[3, 4], &[5], &[]];
        assert_eq!(prefetched(2), expected);
    }

    /// The kernel applies ReLU and ReLU6 where it reaches every output pixel; other
    /// activations, and outputs it does not reach, keep a pass of their own.
    #[test]
    fn the_kernel_activates_only_what_it_writes() {
        let shape = |padding| {
            let spec = Conv2dSpec {
                padding,
                groups: 16,
                ..Conv2dSpec::default()
            };
            ConvShape::new(&[2, 6, 5, 16], &[3, 3, 1, 16], &spec).unwrap()
        };
        let same = shape(Padding::Same);
        let wide = shape(Padding::Explicit {
            top: 3,
            bottom: 5,
            left: 1,
            right: 1,
        });
        let left_over = |s: &ConvShape, activation| Walk::new(s, false).activating(activation).1;
        assert_eq!(left_over(&same, Some(Unary::Relu6)), None);
        assert_eq!(left_over(&same, Some(Unary::Relu)), None);
        assert_eq!(left_over(&same, Some(Unary::Sigmoid)), Some(Unary::Sigmoid));
        assert_eq!(left_over(&same, None), None);
        assert_eq!(left_over(&wide, Some(Unary::Relu6)), Some(Unary::Relu6));
    }
}
