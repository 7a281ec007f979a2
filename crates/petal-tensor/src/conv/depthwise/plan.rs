//! Along one axis: which filter taps reach each position a pass writes, and the runs of
//! positions that the same taps reach (the blocks the kernels keep in registers).

use std::ops::Range;

use crate::window::AxisGeometry;

/// Block lengths, longest first: a run of positions sharing their taps is cut into
/// blocks of these lengths.
const BLOCK_LENS: [usize; 4] = [8, 4, 2, 1];

/// The longest block along a row.
pub(super) const MAX_BLOCK: usize = BLOCK_LENS[0];

/// The longest rows [`Plan::clipped`] cuts across the borders. On longer rows the
/// border blocks are few, and the masked loads of a clipped block cost more than they
/// save: 56x56x144 with a 5x5 window took 0.609 -> 0.659 ms (one image, one thread).
pub(super) const CLIPPED_TARGETS: usize = 4 * MAX_BLOCK;

/// One axis of a pass: the forward convolution (targets are output positions, each
/// reading `kernel` input positions) or its transpose (targets are input positions,
/// each reached from the output positions whose windows cover it), for the input
/// gradient.
#[derive(Clone, Copy, Debug)]
pub(super) struct Axis {
    geometry: AxisGeometry,
    transposed: bool,
}

impl Axis {
    pub fn new(geometry: AxisGeometry, transposed: bool) -> Self {
        Self {
            geometry,
            transposed,
        }
    }

    /// Positions the pass writes.
    pub fn targets(&self) -> usize {
        let g = &self.geometry;
        if self.transposed {
            g.input
        } else {
            g.output
        }
    }

    /// Positions the pass reads.
    pub fn sources(&self) -> usize {
        let g = &self.geometry;
        if self.transposed {
            g.output
        } else {
            g.input
        }
    }

    /// Targets between the neighbours of a block. Transposed with stride `s`, targets
    /// `s` apart are reached by the same taps (from neighbouring sources), so blocks
    /// run over one residue class of targets.
    pub fn target_step(&self) -> usize {
        if self.transposed {
            self.geometry.stride
        } else {
            1
        }
    }

    /// Sources between the neighbours of a block: one tap reads target `i`'s source
    /// plus `i * source_step`.
    pub fn source_step(&self) -> usize {
        if self.transposed {
            1
        } else {
            self.geometry.stride
        }
    }

    /// The source that tap `tap` connects to `target`, if any.
    fn source(&self, target: usize, tap: usize) -> Option<usize> {
        let g = &self.geometry;
        if !self.transposed {
            return g.input_index(target, tap);
        }
        // Output `o` reads input `o * stride + tap * dilation - pad_before`.
        let shifted = (target + g.pad_before).checked_sub(tap * g.dilation)?;
        (shifted % g.stride == 0)
            .then_some(shifted / g.stride)
            .filter(|&o| o < g.output)
    }

    /// `(tap, source)` for every tap that reaches `target`, taps in increasing order.
    fn taps(&self, target: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.geometry.kernel).filter_map(move |k| self.source(target, k).map(|s| (k, s)))
    }
}

/// `len` targets `target + i * target_step` that the same taps reach: each tap of
/// [`Plan::taps`] reads source `source + i * source_step` for the `i`-th. A block of
/// [`Plan::clipped`] is the exception: its targets take the whole window, some taps
/// of some targets falling in the padding, and it lists no taps (see `clip`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Block {
    pub target: usize,
    pub len: usize,
    /// The sources the block reads lie in this range.
    pub sources: Range<usize>,
    /// Whether its taps are neighbours reading neighbouring sources (`(k, s)`,
    /// `(k + 1, s + 1)`, ...): a window that slides along the axis, as every interior
    /// block of a convolution without dilation has.
    pub window: bool,
    /// For a block of [`Plan::clipped`]: the source column that the first tap of the
    /// block's first target reads, which may lie in the padding (below 0 or past the
    /// last source). Only the forward kernel (`kernels::Gather`) reads such
    /// blocks: it loads zeros for the columns in the padding.
    pub clip: Option<isize>,
    taps: Range<usize>,
}

/// Every target of an axis that some tap reaches, in blocks of at most `max_len`
/// ([`Plan::new`]), or of the forward pass in blocks across the borders
/// ([`Plan::clipped`]).
#[derive(Clone, Debug)]
pub(super) struct Plan {
    pub blocks: Vec<Block>,
    taps: Vec<(usize, usize)>,
    /// The axis's targets, reached by a tap or not.
    targets: usize,
}

impl Plan {
    pub fn new(axis: &Axis, max_len: usize) -> Self {
        let (step, source_step) = (axis.target_step(), axis.source_step());
        let mut plan = Self {
            blocks: Vec::new(),
            taps: Vec::new(),
            targets: axis.targets(),
        };
        for class in 0..step.min(axis.targets()) {
            let mut target = class;
            while target < axis.targets() {
                let first = plan.taps.len();
                plan.taps.extend(axis.taps(target));
                let taps = first..plan.taps.len();
                let shares_taps = |i: usize| {
                    let shifted = plan.taps[taps.clone()]
                        .iter()
                        .map(|&(k, s)| (k, s + i * source_step));
                    axis.taps(target + i * step).eq(shifted)
                };
                let mut run = 1;
                while run < max_len && target + run * step < axis.targets() && shares_taps(run) {
                    run += 1;
                }
                let len = BLOCK_LENS.into_iter().find(|&l| l <= run).unwrap_or(1);
                let block_taps = &plan.taps[taps.clone()];
                let window = block_taps
                    .windows(2)
                    .all(|pair| pair[1] == (pair[0].0 + 1, pair[0].1 + 1));
                let sources = block_taps.iter().map(|&(_, s)| s);
                if let (Some(low), Some(high)) = (sources.clone().min(), sources.max()) {
                    let end = high + (len - 1) * source_step + 1;
                    plan.blocks.push(Block {
                        target,
                        len,
                        sources: low..end,
                        window,
                        clip: None,
                        taps,
                    });
                } else {
                    plan.taps.truncate(first);
                }
                target += len * step;
            }
        }
        // Interleave the residue classes: the blocks of a row in the order of their
        // pixels in memory.
        plan.blocks.sort_by_key(|b| b.target);
        plan
    }

    /// The forward pass's targets in blocks of up to [`MAX_BLOCK`] that run across the
    /// borders: each block takes the whole window, and the kernel loads zeros for the
    /// columns in the padding. [`Plan::new`] cuts a border target into a block of its own
    /// (its taps differ from its neighbours'), so on the small maps of the late layers
    /// (7 columns of a 5x5 window: 6 blocks, for 3 columns in the interior) the blocks
    /// are short and the kernel's work per block small. `None` unless the axis is a
    /// forward one, without dilation, with a window of 2 to 5 taps at stride 1 or 2
    /// (the windows the kernels slide), at most [`CLIPPED_TARGETS`] targets, and every
    /// target reached by some tap.
    pub fn clipped(axis: &Axis) -> Option<Self> {
        let g = &axis.geometry;
        let slides = (2..=5).contains(&g.kernel) && (1..=2).contains(&g.stride);
        if axis.transposed || g.dilation != 1 || !slides || g.output > CLIPPED_TARGETS {
            return None;
        }
        let reached = |t: usize| axis.taps(t).next().is_some();
        if !(0..g.output).all(reached) {
            return None;
        }
        let mut blocks = Vec::new();
        let mut target = 0;
        for len in clipped_lens(g.output) {
            let first = (target * g.stride) as isize - g.pad_before as isize;
            let end = first + ((len - 1) * g.stride + g.kernel) as isize;
            let clamp = |c: isize| c.clamp(0, g.input as isize) as usize;
            blocks.push(Block {
                target,
                len,
                sources: clamp(first)..clamp(end),
                window: true,
                clip: Some(first),
                taps: 0..0,
            });
            target += len;
        }
        Some(Self {
            blocks,
            taps: Vec::new(),
            targets: g.output,
        })
    }

    /// Whether the blocks hold every target of the axis (none lies where no tap
    /// reaches, as with padding wider than the filter).
    pub fn reaches_every_target(&self) -> bool {
        self.blocks.iter().map(|b| b.len).sum::<usize>() == self.targets
    }

    /// `(tap, source of the block's first target)` for every tap reaching `block`.
    pub fn taps(&self, block: &Block) -> &[(usize, usize)] {
        &self.taps[block.taps.clone()]
    }
}

/// The lengths [`Plan::clipped`] cuts `targets` into: blocks of 7 where that leaves
/// none shorter (the 7, 14 and 28 columns of the late layers), else of 8, then 7, 4, 2, 1.
fn clipped_lens(targets: usize) -> Vec<usize> {
    if !targets.is_multiple_of(MAX_BLOCK) && targets.is_multiple_of(7) {
        return vec![7; targets / 7];
    }
    let mut lens = Vec::new();
    let mut left = targets;
    for len in [MAX_BLOCK, 7, 4, 2, 1] {
        while left >= len {
            lens.push(len);
            left -= len;
        }
    }
    lens
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::AxisPadding;

    fn axis(input: usize, kernel: usize, stride: usize, padding: AxisPadding, t: bool) -> Axis {
        let g = AxisGeometry::new("test", input, kernel, stride, 1, padding).unwrap();
        Axis::new(g, t)
    }

    /// Every (target, tap, source) triple a plan covers, each exactly once.
    fn triples(axis: &Axis, plan: &Plan) -> Vec<(usize, usize, usize)> {
        let mut all = Vec::new();
        for block in &plan.blocks {
            for i in 0..block.len {
                for &(k, s) in plan.taps(block) {
                    assert!(block.sources.contains(&(s + i * axis.source_step())));
                    all.push((
                        block.target + i * axis.target_step(),
                        k,
                        s + i * axis.source_step(),
                    ));
                }
            }
        }
        all.sort_unstable();
        all
    }

    #[test]
    fn plans_cover_every_connection_once() {
        for transposed in [false, true] {
            for (input, kernel, stride, padding) in [
                (112, 3, 1, AxisPadding::Same),
                (112, 3, 2, AxisPadding::Same),
                (13, 5, 2, AxisPadding::Same),
                (7, 5, 1, AxisPadding::Valid),
                (3, 5, 1, AxisPadding::Same),
                (9, 1, 3, AxisPadding::Explicit(2, 1)),
            ] {
                let axis = axis(input, kernel, stride, padding, transposed);
                let plan = Plan::new(&axis, 8);
                // The same connections, forward order: output o reads input i.
                let g = axis.geometry;
                let mut expected: Vec<_> = (0..g.output)
                    .flat_map(|o| {
                        (0..kernel).filter_map(move |k| g.input_index(o, k).map(|i| (o, k, i)))
                    })
                    .map(|(o, k, i)| if transposed { (i, k, o) } else { (o, k, i) })
                    .collect();
                expected.sort_unstable();
                assert_eq!(triples(&axis, &plan), expected, "{axis:?}");
            }
        }
    }

    #[test]
    fn clipped_plans_cut_rows_across_the_borders() {
        let lens_and_clips = |input, kernel, stride, padding| {
            let axis = axis(input, kernel, stride, padding, false);
            let plan = Plan::clipped(&axis).expect("a window the kernels slide");
            let g = axis.geometry;
            let mut next = 0;
            for b in &plan.blocks {
                // Contiguous, whole windows, from where the first tap reads.
                assert_eq!(b.target, next);
                assert!(b.window && plan.taps(b).is_empty());
                let first = (b.target * stride) as isize - g.pad_before as isize;
                assert_eq!(b.clip, Some(first));
                let read = first.max(0) as usize
                    ..(first + ((b.len - 1) * stride + kernel) as isize).clamp(0, input as isize)
                        as usize;
                assert_eq!(b.sources, read);
                next += b.len;
            }
            assert!(plan.reaches_every_target());
            let lens: Vec<_> = plan.blocks.iter().map(|b| b.len).collect();
            (lens, plan.blocks[0].clip)
        };
        // EfficientNet-Lite0's 7x7 and 14x14 maps: one or two blocks of 7 a row.
        assert_eq!(
            lens_and_clips(7, 5, 1, AxisPadding::Same),
            (vec![7], Some(-2))
        );
        assert_eq!(lens_and_clips(14, 5, 1, AxisPadding::Same).0, [7, 7]);
        assert_eq!(lens_and_clips(28, 5, 2, AxisPadding::Same).0, [7, 7]);
        assert_eq!(lens_and_clips(56, 3, 2, AxisPadding::Same).0, [7; 4]);
        assert_eq!(lens_and_clips(20, 3, 1, AxisPadding::Same).0, [8, 8, 4]);
        assert_eq!(lens_and_clips(32, 3, 1, AxisPadding::Same).0, [8; 4]);
        assert_eq!(
            lens_and_clips(13, 3, 1, AxisPadding::Valid),
            (vec![8, 2, 1], Some(0))
        );
        // Not for the transpose, long rows, dilation, windows the kernels do not
        // slide, or a target no tap reaches.
        let none = |axis: Axis| Plan::clipped(&axis).is_none();
        assert!(none(axis(33, 3, 1, AxisPadding::Same, false)));
        assert!(none(axis(14, 3, 1, AxisPadding::Same, true)));
        assert!(none(axis(14, 7, 1, AxisPadding::Same, false)));
        assert!(none(axis(14, 3, 3, AxisPadding::Same, false)));
        assert!(none(axis(3, 3, 1, AxisPadding::Explicit(4, 0), false)));
        let g = AxisGeometry::new("test", 14, 3, 1, 2, AxisPadding::Same).unwrap();
        assert!(none(Axis::new(g, false)));
    }

    #[test]
    fn interiors_run_in_long_blocks() {
        let plan = Plan::new(&axis(112, 3, 1, AxisPadding::Same, false), 8);
        let lens: Vec<_> = plan.blocks.iter().map(|b| b.len).collect();
        // One border column each side, 110 interior columns: 13 x 8 + 4 + 2.
        assert_eq!(lens.len(), 2 + 13 + 2);
        assert_eq!(lens[1..14], [8; 13]);
        // Every block reads a window of neighbouring sources: 3 inside, 2 at the borders.
        let window_taps: Vec<_> = plan
            .blocks
            .iter()
            .map(|b| b.window.then(|| plan.taps(b).len()))
            .collect();
        assert_eq!(window_taps[0], Some(2));
        assert!(window_taps[1..16].iter().all(|&taps| taps == Some(3)));
        assert_eq!(window_taps[16], Some(2));
        // Transposed, the taps of a block read sources in the opposite order: no window.
        let transposed = Plan::new(&axis(112, 3, 1, AxisPadding::Same, true), 8);
        assert!(transposed.blocks.iter().all(|b| !b.window));
        let rows = Plan::new(&axis(112, 3, 2, AxisPadding::Same, true), 1);
        assert!(rows.blocks.iter().all(|b| b.len == 1));
        assert_eq!(rows.blocks.len(), 112);
    }
}
