//! The passes of batch normalization over a channels-last `rows x c` slice, written so
//! that they vectorize: channels go in runs of [`LANES`] (fixed-size arrays, one vector
//! each) and a last few one by one. Sums run row after row in f32 over blocks of at most
//! [`BLOCK_ROWS`] rows, and each block is folded into f64 totals; the tasks of
//! [`ROWS_PER_TASK`] rows are combined in row order. Every channel is summed in one
//! fixed order, so the results depend neither on the vector width nor on the thread
//! count.
//!
//! Each task's pass is a [`WithSimd`] op run through [`Arch::dispatch`]: compiled once
//! per instruction set with everything inlined, so that its loops vectorize at the
//! CPU's widest width (see `crate::simd`).

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use std::mem::MaybeUninit;

use crate::parallel::new_values_written;

/// Rows per rayon task of the sums (a fixed split keeps them in one order on every run).
const ROWS_PER_TASK: usize = 4096;

/// Rows summed in f32 before their sums are folded into f64: few enough that f32
/// rounding stays near that of the values themselves.
const BLOCK_ROWS: usize = 128;

/// Channels in one run: an AVX-512 register of `f32` (two AVX2 ones).
const LANES: usize = 16;

/// Values per task of the element-wise passes (their split changes no result).
const VALUES_PER_MAP_TASK: usize = 1 << 16;

/// Channels `j..j + W` of `values` (a row, or one value per channel).
#[inline(always)]
fn run<const W: usize>(values: &[f32], j: usize) -> [f32; W] {
    values[j..j + W].try_into().expect("a run inside the row")
}

/// Calls `kernel::<LANES>(args…, j)` for each run of [`LANES`] channels starting at `j`,
/// then `kernel::<1>(args…, j)` for each channel `j` left over (a macro rather than a
/// function taking a closure, so that nothing stands between the kernel and the
/// dispatched op it is inlined into).
macro_rules! each_run {
    ($c:expr, $kernel:ident($($arg:expr),*)) => {{
        let runs_end = $c - $c % LANES;
        for j in (0..runs_end).step_by(LANES) {
            $kernel::<LANES>($($arg,)* j);
        }
        for j in runs_end..$c {
            $kernel::<1>($($arg,)* j);
        }
    }};
}

/// The rows of some part of a batch: their count and, per channel, the mean and the sum
/// of squared deviations from that mean.
#[derive(Clone, Debug)]
pub(super) struct Moments {
    /// Rows.
    pub rows: f64,
    /// Per-channel mean.
    pub mean: Vec<f64>,
    /// Per-channel sum of squared deviations from `mean`.
    pub deviations: Vec<f64>,
}

impl Moments {
    fn new(c: usize) -> Self {
        Self {
            rows: 0.0,
            mean: vec![0.0; c],
            deviations: vec![0.0; c],
        }
    }

    /// Adds the rows `other` describes (the pairwise update of Chan, Golub and LeVeque:
    /// no sum of squares about zero, so no cancellation when the mean is large).
    fn merge(&mut self, other: &Moments) {
        if other.rows == 0.0 {
            return;
        }
        let rows = self.rows + other.rows;
        let (weight, cross) = (other.rows / rows, self.rows * other.rows / rows);
        for (((mean, deviations), other_mean), other_deviations) in self
            .mean
            .iter_mut()
            .zip(&mut self.deviations)
            .zip(&other.mean)
            .zip(&other.deviations)
        {
            let delta = other_mean - *mean;
            *mean += delta * weight;
            *deviations += other_deviations + delta * delta * cross;
        }
        self.rows = rows;
    }
}

/// The [`Moments`] of the rows of `values` (`rows x c`).
pub(super) fn moments(values: &[f32], c: usize) -> Moments {
    let parts: Vec<Moments> = values
        .par_chunks(ROWS_PER_TASK * c)
        .map(|values| Arch::new().dispatch(TaskMoments { values, c }))
        .collect();
    parts.iter().fold(Moments::new(c), |mut total, part| {
        total.merge(part);
        total
    })
}

/// The moments of one task's rows, block by block.
struct TaskMoments<'a> {
    values: &'a [f32],
    c: usize,
}

impl WithSimd for TaskMoments<'_> {
    type Output = Moments;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Moments {
        let Self { values, c } = self;
        let (mut total, mut block_moments) = (Moments::new(c), Moments::new(c));
        for block in values.chunks(BLOCK_ROWS * c) {
            each_run!(c, block_run_moments(block, c, &mut block_moments));
            block_moments.rows = (block.len() / c) as f64;
            total.merge(&block_moments);
        }
        total
    }
}

/// The moments of channels `j..j + W` over a block of rows, from f32 sums of the
/// deviations from the block's first row (which keeps them small).
#[inline(always)]
fn block_run_moments<const W: usize>(block: &[f32], c: usize, moments: &mut Moments, j: usize) {
    let origin = run::<W>(block, j);
    let (mut sum, mut squares) = ([0f32; W], [0f32; W]);
    for row in block.chunks_exact(c) {
        let x = run::<W>(row, j);
        for i in 0..W {
            let d = x[i] - origin[i];
            sum[i] += d;
            squares[i] += d * d;
        }
    }
    let rows = (block.len() / c) as f64;
    for i in 0..W {
        let (sum, squares) = (f64::from(sum[i]), f64::from(squares[i]));
        moments.mean[j + i] = f64::from(origin[i]) + sum / rows;
        moments.deviations[j + i] = (squares - sum * sum / rows).max(0.0);
    }
}

/// Per channel, the sums over rows of `grad` and of `grad * (x - mean)`, in one vector
/// of `2c` values (`grad` and `x` both `rows x c`).
pub(super) fn gradient_sums(grad: &[f32], x: &[f32], mean: &[f32]) -> Vec<f64> {
    let c = mean.len();
    let parts: Vec<Vec<f64>> = grad
        .par_chunks(ROWS_PER_TASK * c)
        .zip(x.par_chunks(ROWS_PER_TASK * c))
        .map(|(grad, x)| Arch::new().dispatch(TaskGradientSums { grad, x, mean }))
        .collect();
    parts.iter().fold(vec![0.0; 2 * c], |mut total, part| {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
        total
    })
}

/// One task's [`gradient_sums`], block by block.
struct TaskGradientSums<'a> {
    grad: &'a [f32],
    x: &'a [f32],
    mean: &'a [f32],
}

impl WithSimd for TaskGradientSums<'_> {
    type Output = Vec<f64>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Vec<f64> {
        let Self { grad, x, mean } = self;
        let c = mean.len();
        let mut sums = vec![0.0; 2 * c];
        for (grad, x) in grad.chunks(BLOCK_ROWS * c).zip(x.chunks(BLOCK_ROWS * c)) {
            each_run!(c, block_run_gradient_sums(grad, x, mean, &mut sums));
        }
        sums
    }
}

/// Adds the block's sums of channels `j..j + W` to `sums` (see [`gradient_sums`]).
#[inline(always)]
fn block_run_gradient_sums<const W: usize>(
    grad: &[f32],
    x: &[f32],
    mean: &[f32],
    sums: &mut [f64],
    j: usize,
) {
    let c = mean.len();
    let mean = run::<W>(mean, j);
    let (mut sum_grad, mut sum_product) = ([0f32; W], [0f32; W]);
    for (grad, x) in grad.chunks_exact(c).zip(x.chunks_exact(c)) {
        let (g, x) = (run::<W>(grad, j), run::<W>(x, j));
        for i in 0..W {
            sum_grad[i] += g[i];
            sum_product[i] += g[i] * (x[i] - mean[i]);
        }
    }
    for i in 0..W {
        sums[j + i] += f64::from(sum_grad[i]);
        sums[c + j + i] += f64::from(sum_product[i]);
    }
}

/// `x * scale + shift`, per channel (`x` is `rows x c`; `scale`, `shift` have `c` values).
pub(super) fn scale_and_shift(x: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let c = scale.len();
    // Whole rows: each task's rows cover its part, which the writes below rely on.
    assert!(c > 0 && x.len().is_multiple_of(c), "rows of {c} channels");
    let task = (VALUES_PER_MAP_TASK / c).max(1) * c;
    let write = |offset: usize, out: &mut [MaybeUninit<f32>]| {
        let x = &x[offset..][..out.len()];
        Arch::new().dispatch(TaskScaleAndShift {
            out,
            x,
            scale,
            shift,
        })
    };
    // SAFETY: the task writes every value of its rows (`x` as long, or the slicing
    // panics; `task` is a whole number of rows).
    unsafe { new_values_written(x.len(), task, write) }
}

/// One task's [`scale_and_shift`].
struct TaskScaleAndShift<'a> {
    out: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    scale: &'a [f32],
    shift: &'a [f32],
}

impl WithSimd for TaskScaleAndShift<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self {
            out,
            x,
            scale,
            shift,
        } = self;
        let c = scale.len();
        for (out, x) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            each_run!(c, scale_and_shift_run(out, x, scale, shift));
        }
    }
}

#[inline(always)]
fn scale_and_shift_run<const W: usize>(
    out: &mut [MaybeUninit<f32>],
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    j: usize,
) {
    let (x, scale, shift) = (run::<W>(x, j), run::<W>(scale, j), run::<W>(shift, j));
    let out: &mut [MaybeUninit<f32>; W] =
        (&mut out[j..j + W]).try_into().expect("a run in the row");
    for i in 0..W {
        out[i].write(x[i] * scale[i] + shift[i]);
    }
}

/// Per-channel coefficients of the input gradient of batch normalization.
pub(super) struct InputGradient {
    /// Factor of the output gradient.
    pub gain: Vec<f32>,
    /// Factor of the centered input `x - mean`.
    pub slope: Vec<f32>,
    /// Per-channel mean of the input.
    pub mean: Vec<f32>,
    /// Added last.
    pub offset: Vec<f32>,
}

/// `gain * grad + slope * (x - mean) + offset`, per channel (`grad`, `x` are `rows x c`).
pub(super) fn input_gradient(grad: &[f32], x: &[f32], k: &InputGradient) -> Vec<f32> {
    let c = k.gain.len();
    // Whole rows: each task's rows cover its part, which the writes below rely on.
    assert!(c > 0 && x.len().is_multiple_of(c), "rows of {c} channels");
    let task = (VALUES_PER_MAP_TASK / c).max(1) * c;
    let write = |offset: usize, out: &mut [MaybeUninit<f32>]| {
        let (grad, x) = (&grad[offset..][..out.len()], &x[offset..][..out.len()]);
        Arch::new().dispatch(TaskInputGradient { out, grad, x, k })
    };
    // SAFETY: the task writes every value of its rows (`grad` and `x` as long, or the
    // slicing panics; `task` is a whole number of rows).
    unsafe { new_values_written(x.len(), task, write) }
}

/// One task's [`input_gradient`].
struct TaskInputGradient<'a> {
    out: &'a mut [MaybeUninit<f32>],
    grad: &'a [f32],
    x: &'a [f32],
    k: &'a InputGradient,
}

impl WithSimd for TaskInputGradient<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let Self { out, grad, x, k } = self;
        let c = k.gain.len();
        let rows = out.chunks_exact_mut(c).zip(grad.chunks_exact(c));
        for ((out, grad), x) in rows.zip(x.chunks_exact(c)) {
            each_run!(c, input_gradient_run(out, grad, x, k));
        }
    }
}

#[inline(always)]
fn input_gradient_run<const W: usize>(
    out: &mut [MaybeUninit<f32>],
    grad: &[f32],
    x: &[f32],
    k: &InputGradient,
    j: usize,
) {
    let (g, x) = (run::<W>(grad, j), run::<W>(x, j));
    let (gain, slope) = (run::<W>(&k.gain, j), run::<W>(&k.slope, j));
    let (mean, offset) = (run::<W>(&k.mean, j), run::<W>(&k.offset, j));
    let out: &mut [MaybeUninit<f32>; W] =
        (&mut out[j..j + W]).try_into().expect("a run in the row");
    for i in 0..W {
        out[i].write(gain[i] * g[i] + slope[i] * (x[i] - mean[i]) + offset[i]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows x c` values with a per-channel offset, so that the sums cancel.
    fn values(rows: usize, c: usize, seed: u32) -> Vec<f32> {
        (0..rows * c)
            .map(|i| {
                let wave = ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32;
                (i % c) as f32 * 10.0 + wave / (1u32 << 24) as f32
            })
            .collect()
    }

    #[test]
    fn the_sums_are_the_same_bits_at_every_vector_width() {
        // One task: two whole blocks and a part, a run of 16 channels and 5 left over.
        let (rows, c) = (300, 21);
        let (x, grad) = (values(rows, c, 1), values(rows, c, 2));
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let scalar = TaskMoments { values: &x, c }.with_simd(pulp::Scalar);
        let widest = Arch::new().dispatch(TaskMoments { values: &x, c });
        assert_eq!(bits(&scalar.mean), bits(&widest.mean));
        assert_eq!(bits(&scalar.deviations), bits(&widest.deviations));
        let mean: Vec<f32> = scalar.mean.iter().map(|&m| m as f32).collect();
        let task = || TaskGradientSums {
            grad: &grad,
            x: &x,
            mean: &mean,
        };
        assert_eq!(
            bits(&task().with_simd(pulp::Scalar)),
            bits(&Arch::new().dispatch(task()))
        );
    }
}
