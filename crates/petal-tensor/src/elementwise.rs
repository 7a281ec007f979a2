//! Elementwise arithmetic with NumPy broadcasting, and the unary activations and math.

use std::mem::MaybeUninit;

use ndarray::{ArrayD, IxDyn, Zip};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use crate::error::{shape_mismatch, Result};
use crate::parallel::new_values_written;
use crate::Tensor;

/// Tensors with at least this many values are mapped on the rayon pool.
const PARALLEL_MIN_LEN: usize = 1 << 15;

/// A binary arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
}

impl BinaryOp {
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }
}

/// The shape two operands broadcast to (NumPy rules: align from the right; each pair of
/// extents must be equal or one of them 1).
///
/// ```
/// use petal_tensor::elementwise::broadcast_shape;
/// assert_eq!(broadcast_shape("add", &[4, 1, 3], &[5, 1]).unwrap(), vec![4, 5, 3]);
/// assert!(broadcast_shape("add", &[2, 3], &[4]).is_err());
/// ```
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let extent = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (extent(a, i), extent(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(shape_mismatch(
                op,
                a,
                b,
                format!("axis {i} cannot broadcast"),
            )),
        })
        .collect()
}

/// `a op b` with broadcasting.
///
/// ```
/// use petal_tensor::{elementwise::{binary, BinaryOp}, Tensor};
/// let a = Tensor::from_vec(&[2, 2], vec![1., 2., 3., 4.]).unwrap();
/// let bias = Tensor::from_vec(&[2], vec![10., 20.]).unwrap();
/// assert_eq!(binary(&a, &bias, BinaryOp::Add).unwrap().to_vec(), vec![11., 22., 13., 24.]);
/// ```
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    if a.shape() == b.shape() {
        return Tensor::from_vec(a.shape(), flat_binary(a.as_slice(), b.as_slice(), op));
    }
    let shape = broadcast_shape(op.name(), a.shape(), b.shape())?;
    let dim = IxDyn(&shape);
    let (av, bv) = (
        a.array().broadcast(dim.clone()).expect("shape checked"),
        b.array().broadcast(dim).expect("shape checked"),
    );
    let zip = Zip::from(&av).and(&bv);
    let out: ArrayD<f32> = if av.len() >= PARALLEL_MIN_LEN {
        zip.par_map_collect(|&x, &y| op.apply(x, y))
    } else {
        zip.map_collect(|&x, &y| op.apply(x, y))
    };
    Ok(Tensor::from_array(out))
}

/// [`binary`] on two operands of one shape (a residual sum, say): one flat pass over
/// the values, each operation with a loop of its own (matched per element, as
/// `op.apply` would be, a loop does not vectorize), instead of a broadcasting walk over
/// every axis (1.8% of EfficientNet-Lite0's inference went to that walk).
fn flat_binary(a: &[f32], b: &[f32], op: BinaryOp) -> Vec<f32> {
    match op {
        BinaryOp::Add => zip_map(a, b, |x, y| x + y),
        BinaryOp::Sub => zip_map(a, b, |x, y| x - y),
        BinaryOp::Mul => zip_map(a, b, |x, y| x * y),
        BinaryOp::Div => zip_map(a, b, |x, y| x / y),
    }
}

/// Sums `grad` down to `shape`, undoing a broadcast: the gradient of a broadcast operand.
///
/// ```
/// use petal_tensor::{elementwise::sum_to_shape, Tensor};
/// let g = Tensor::ones(&[2, 3]);
/// assert_eq!(sum_to_shape(&g, &[3]).unwrap().to_vec(), vec![2.0; 3]);
/// assert_eq!(sum_to_shape(&g, &[2, 1]).unwrap().to_vec(), vec![3.0; 2]);
/// ```
pub fn sum_to_shape(grad: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if broadcast_shape("sum_to_shape", grad.shape(), shape)? != grad.shape() {
        return Err(shape_mismatch(
            "sum_to_shape",
            grad.shape(),
            shape,
            "the target does not broadcast to the gradient",
        ));
    }
    let lead = grad.ndim() - shape.len();
    let mut sum = grad.array().clone();
    for axis in (0..grad.ndim()).rev() {
        let keep = axis >= lead && shape[axis - lead] == grad.shape()[axis];
        if !keep {
            sum = sum
                .sum_axis(ndarray::Axis(axis))
                .insert_axis(ndarray::Axis(axis));
        }
    }
    Ok(Tensor::from_array(
        sum.into_shape_with_order(IxDyn(shape))
            .expect("same length"),
    ))
}

/// A unary function applied to every value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `e^x`
    Exp,
    /// natural logarithm
    Log,
    /// square root
    Sqrt,
    /// `x^2`
    Square,
    /// hyperbolic tangent
    Tanh,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `max(x, 0)`
    Relu,
    /// `min(max(x, 0), 6)`
    Relu6,
    /// `x` for positive inputs, `alpha * x` otherwise
    LeakyRelu(f32),
    /// `x * sigmoid(x)` (swish)
    Silu,
    /// `x * min(max(x + 3, 0), 6) / 6` (hard swish, MobileNetV3's)
    HardSwish,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Unary {
    /// The function's value at `x`.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Neg => -x,
            Unary::Abs => x.abs(),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Sqrt => x.sqrt(),
            Unary::Square => x * x,
            Unary::Tanh => x.tanh(),
            Unary::Sigmoid => sigmoid(x),
            Unary::Relu => relu(x),
            Unary::Relu6 => x.clamp(0.0, 6.0),
            Unary::LeakyRelu(alpha) => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Unary::Silu => x * sigmoid(x),
            Unary::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        }
    }

    /// The derivative at `x`, given the function's value `y` there.
    pub fn derivative(self, x: f32, y: f32) -> f32 {
        match self {
            Unary::Neg => -1.0,
            Unary::Abs => x.signum(),
            Unary::Exp => y,
            Unary::Log => 1.0 / x,
            Unary::Sqrt => 0.5 / y,
            Unary::Square => 2.0 * x,
            Unary::Tanh => 1.0 - y * y,
            Unary::Sigmoid => y * (1.0 - y),
            Unary::Relu => f32::from(x > 0.0),
            Unary::Relu6 => f32::from(x > 0.0 && x < 6.0),
            Unary::LeakyRelu(alpha) => {
                if x > 0.0 {
                    1.0
                } else {
                    alpha
                }
            }
            Unary::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            Unary::HardSwish => {
                if x <= -3.0 {
                    0.0
                } else if x >= 3.0 {
                    1.0
                } else {
                    (2.0 * x + 3.0) / 6.0
                }
            }
        }
    }
}

impl Unary {
    /// The derivative written in terms of the output `y` alone, for the functions where
    /// that is possible (so a fused kernel need not keep its input).
    pub fn derivative_from_output(self, y: f32) -> Option<f32> {
        match self {
            Unary::Relu => Some(f32::from(y > 0.0)),
            Unary::Relu6 => Some(f32::from(y > 0.0 && y < 6.0)),
            Unary::Sigmoid => Some(y * (1.0 - y)),
            Unary::Tanh => Some(1.0 - y * y),
            Unary::Exp => Some(y),
            _ => None,
        }
    }
}

/// Runs `$body` with `$f` bound to the activation `$op` as a function the compiler sees
/// whole: ReLU and ReLU6 (MobileNetV2's and EfficientNet-Lite's activation) as their
/// own formulas, the rest through [`Unary::apply`]. Behind the general `match`, matched
/// per element, a loop does not vectorize: ReLU6 through it held MobileNetV2's
/// inference at about 98 images/s against 150 (`xtask bench --only mobilenet-v2-infer`).
/// ReLU6's formula is written here again on purpose: `Unary::Relu6.apply` forced inline
/// measured 158-188 images/s against the clamp's 186-203.
macro_rules! with_activation {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            Unary::Relu => {
                let $f = relu;
                $body
            }
            Unary::Relu6 => {
                let $f = |v: f32| v.clamp(0.0, 6.0);
                $body
            }
            op => {
                let $f = move |v: f32| op.apply(v);
                $body
            }
        }
    };
}

/// Applies `op` to every value in place (in parallel for large tensors).
pub fn apply_in_place(x: &mut Tensor, op: Unary) {
    apply_to(x.as_mut_slice(), op);
}

/// [`apply_in_place`] on a slice.
pub(crate) fn apply_to(values: &mut [f32], op: Unary) {
    if values.len() >= PARALLEL_MIN_LEN {
        values
            .par_chunks_mut(PARALLEL_MIN_LEN)
            .for_each(|chunk| apply_on_this_thread(chunk, op));
    } else {
        apply_on_this_thread(values, op);
    }
}

/// [`apply_in_place`] on a slice, on the calling thread (for kernels that already run
/// one task per thread).
pub(crate) fn apply_on_this_thread(values: &mut [f32], op: Unary) {
    Arch::new().dispatch(Apply { values, op });
}

/// Writes `out[i] = op(sums[i] + bias[i % bias.len()])` on the calling thread: the
/// last sweep of a kernel that computed a block's sums in scratch, so that its output is
/// written once, finished. No `bias` adds nothing; no `op` leaves the biased sums.
///
/// # Panics
///
/// When `sums` is not as long as `out`, or `out` not a whole number of `bias` rows.
pub(crate) fn write_finished_on_this_thread(
    out: &mut [MaybeUninit<f32>],
    sums: &[f32],
    bias: Option<&[f32]>,
    op: Option<Unary>,
) {
    let bias = bias.unwrap_or_default();
    assert_eq!(out.len(), sums.len(), "one sum per output value");
    assert!(
        bias.is_empty() || out.len().is_multiple_of(bias.len()),
        "{} values are not rows of {} biases",
        out.len(),
        bias.len()
    );
    Arch::new().dispatch(WriteFinished {
        out,
        sums,
        bias,
        op,
    });
}

/// [`write_finished_on_this_thread`] as a [`WithSimd`] op (see [`Apply`]).
struct WriteFinished<'a> {
    out: &'a mut [MaybeUninit<f32>],
    sums: &'a [f32],
    bias: &'a [f32],
    op: Option<Unary>,
}

impl WithSimd for WriteFinished<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            out,
            sums,
            bias,
            op,
        } = self;
        match op {
            None => write_biased_activated(simd, out, sums, bias, |v| v),
            Some(op) => with_activation!(op, |f| write_biased_activated(simd, out, sums, bias, f)),
        }
    }
}

/// `out[i] = f(sums[i] + bias[i % bias.len()])` (`f(sums[i])` with no bias), for
/// lengths [`write_finished_on_this_thread`] checked: every value of `out` is written,
/// which the callers' unsafe code relies on.
#[inline(always)]
fn write_biased_activated<S: Simd>(
    simd: S,
    out: &mut [MaybeUninit<f32>],
    sums: &[f32],
    bias: &[f32],
    f: impl Fn(f32) -> f32,
) {
    if bias.is_empty() {
        return MapValues {
            out,
            x: sums,
            f: &f,
        }
        .with_simd(simd);
    }
    let rows = out
        .chunks_exact_mut(bias.len())
        .zip(sums.chunks_exact(bias.len()));
    for (out, sums) in rows {
        for ((o, s), b) in out.iter_mut().zip(sums).zip(bias) {
            o.write(f(s + b));
        }
    }
}

/// [`apply_on_this_thread`] as a [`WithSimd`] op: compiled for each instruction set with
/// its loop inlined, so that it vectorizes at the CPU's widest vectors.
struct Apply<'a> {
    values: &'a mut [f32],
    op: Unary,
}

impl WithSimd for Apply<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Self { values, op } = self;
        with_activation!(op, |f| values.iter_mut().for_each(|v| *v = f(*v)))
    }
}

fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    } // NaN stays NaN
}

/// The gradient through `op` from its output: `grad * op'(y)`, for the functions whose
/// [`Unary::derivative_from_output`] exists.
pub fn unary_backward_from_output(y: &Tensor, grad: &Tensor, op: Unary) -> Result<Tensor> {
    if y.shape() != grad.shape() || op.derivative_from_output(0.5).is_none() {
        return Err(shape_mismatch("unary_backward_from_output", y.shape(), grad.shape(), format!("needs one shape and an activation whose derivative follows from its output ({op:?})")));
    }
    let values = match op {
        Unary::Relu => zip_map(grad.as_slice(), y.as_slice(), |g, y| g * f32::from(y > 0.0)),
        // A loop of its own, as in `Apply`: matched per element it would not vectorize.
        Unary::Relu6 => zip_map(grad.as_slice(), y.as_slice(), |g, y| {
            g * f32::from(y > 0.0 && y < 6.0)
        }),
        _ => zip_map(grad.as_slice(), y.as_slice(), |g, y| {
            g * op.derivative_from_output(y).unwrap_or(0.0)
        }),
    };
    Tensor::from_vec(y.shape(), values)
}

/// `op(a + b)` for `a` and `b` of one shape, in one pass over the three tensors (a
/// residual sum and the activation after it, as in ResNet's blocks).
///
/// ```
/// use petal_tensor::elementwise::{add_activated, Unary};
/// use petal_tensor::Tensor;
/// let a = Tensor::from_vec(&[3], vec![1.0, -2.0, 5.0])?;
/// let b = Tensor::from_vec(&[3], vec![0.5, 1.0, 4.0])?;
/// assert_eq!(add_activated(&a, &b, Unary::Relu6)?.to_vec(), [1.5, 0.0, 6.0]);
/// # Ok::<(), petal_tensor::TensorError>(())
/// ```
pub fn add_activated(a: &Tensor, b: &Tensor, op: Unary) -> Result<Tensor> {
    if a.shape() != b.shape() {
        return Err(shape_mismatch(
            "add_activated",
            a.shape(),
            b.shape(),
            "needs two tensors of one shape",
        ));
    }
    let (x, y) = (a.as_slice(), b.as_slice());
    let values = with_activation!(op, |f| zip_map(x, y, |x, y| f(x + y)));
    Tensor::from_vec(a.shape(), values)
}

/// `f(a[i], b[i])` for every `i` (`a` and `b` of one length), in parallel chunks, each
/// task writing its chunk of the new output.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let write = |offset: usize, out: &mut [MaybeUninit<f32>]| {
        let (a, b) = (&a[offset..][..out.len()], &b[offset..][..out.len()]);
        Arch::new().dispatch(ZipMap { out, a, b, f: &f })
    };
    // SAFETY: `ZipMap` writes every value of `out` (`a` and `b` are as long, or the
    // slicing above panics).
    unsafe { new_values_written(a.len(), PARALLEL_MIN_LEN, write) }
}

/// One task of [`zip_map`] as a [`WithSimd`] op (see [`Apply`]).
struct ZipMap<'a, F> {
    out: &'a mut [MaybeUninit<f32>],
    a: &'a [f32],
    b: &'a [f32],
    f: &'a F,
}

impl<F: Fn(f32, f32) -> f32> WithSimd for ZipMap<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Self { out, a, b, f } = self;
        for (o, (a, b)) in out.iter_mut().zip(a.iter().zip(b)) {
            o.write(f(*a, *b));
        }
    }
}

/// Applies `f` to every value, in parallel for large tensors.
pub fn map(x: &Tensor, f: impl Fn(f32) -> f32 + Sync) -> Tensor {
    let write = |offset: usize, out: &mut [MaybeUninit<f32>]| {
        let x = &x.as_slice()[offset..][..out.len()];
        Arch::new().dispatch(MapValues { out, x, f: &f })
    };
    // SAFETY: `MapValues` writes every value of `out` (`x` is as long, or the slicing
    // above panics).
    let values = unsafe { new_values_written(x.len(), PARALLEL_MIN_LEN, write) };
    Tensor::from_vec(x.shape(), values).expect("one value per input value")
}

/// `out[i] = f(x[i])` as a [`WithSimd`] op (see [`Apply`]): one task of [`map`], or
/// [`write_finished_on_this_thread`]'s sweep where there is no bias.
struct MapValues<'a, F> {
    out: &'a mut [MaybeUninit<f32>],
    x: &'a [f32],
    f: &'a F,
}

impl<F: Fn(f32) -> f32> WithSimd for MapValues<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Self { out, x, f } = self;
        for (o, x) in out.iter_mut().zip(x) {
            o.write(f(*x));
        }
    }
}

/// `op` applied to every value.
///
/// ```
/// use petal_tensor::{elementwise::{unary, Unary}, Tensor};
/// let x = Tensor::from_vec(&[3], vec![-1., 3., 9.]).unwrap();
/// assert_eq!(unary(&x, Unary::Relu6).to_vec(), vec![0., 3., 6.]);
/// ```
pub fn unary(x: &Tensor, op: Unary) -> Tensor {
    with_activation!(op, |f| map(x, f))
}

/// The gradient through `op`: `grad * op'(x)`, where `y` must be `unary(x, op)` from
/// the forward pass. ReLU, ReLU6, the sigmoid, tanh, exp and the square root read only
/// `y`; the others only `x`.
pub fn unary_backward(x: &Tensor, y: &Tensor, grad: &Tensor, op: Unary) -> Result<Tensor> {
    if x.shape() != grad.shape() || y.shape() != grad.shape() {
        return Err(shape_mismatch(
            "unary_backward",
            x.shape(),
            grad.shape(),
            "input and gradient must have one shape",
        ));
    }
    let g = grad.as_slice();
    // Each function named, so that a new one must say which value its derivative reads
    // (a test holds every function to `Unary::derivative` with both).
    let values = match op {
        Unary::Relu | Unary::Relu6 | Unary::Sigmoid | Unary::Tanh | Unary::Exp => {
            return unary_backward_from_output(y, grad, op);
        }
        Unary::Sqrt => zip_map(g, y.as_slice(), |g, y| g * op.derivative(f32::NAN, y)),
        Unary::Neg
        | Unary::Abs
        | Unary::Log
        | Unary::Square
        | Unary::LeakyRelu(_)
        | Unary::Silu
        | Unary::HardSwish => zip_map(g, x.as_slice(), |g, x| g * op.derivative(x, f32::NAN)),
    };
    Tensor::from_vec(x.shape(), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_central_differences() {
        for op in EVERY_UNARY {
            for x in [0.3f32, 1.7, 4.2, 7.5] {
                let h = 1e-3;
                let numeric = (op.apply(x + h) - op.apply(x - h)) / (2.0 * h);
                let analytic = op.derivative(x, op.apply(x));
                assert!(
                    (numeric - analytic).abs() < 2e-2 * (1.0 + analytic.abs()),
                    "{op:?} at {x}: {numeric} vs {analytic}"
                );
            }
        }
    }

    /// The same bits, any NaN counting as one (a vector unit may flip a NaN's sign).
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter()
            .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
            .collect()
    }

    /// `g * op'(y)` value by value, through the derivative's scalar formula.
    fn gradient_by_formula(y: &Tensor, g: &Tensor, op: Unary) -> Vec<f32> {
        (y.as_slice().iter().zip(g.as_slice()))
            .map(|(&y, &g)| g * op.derivative_from_output(y).unwrap())
            .collect()
    }

    #[test]
    fn the_vectorized_loops_give_each_activation_and_its_gradient_bit_for_bit() {
        let edges = [
            f32::NAN,
            f32::NEG_INFINITY,
            -7.0,
            -0.0,
            0.0,
            1e-30,
            3.0,
            6.0,
            6.5,
        ];
        let x: Vec<f32> = (0..37)
            .map(|i| edges[i % edges.len()] + i as f32 * 0.01)
            .collect();
        for op in [Unary::Relu, Unary::Relu6, Unary::Sigmoid, Unary::Tanh] {
            let expected: Vec<f32> = x.iter().map(|&v| op.apply(v)).collect();
            let mut applied = x.clone();
            apply_on_this_thread(&mut applied, op);
            assert_eq!(bits(&applied), bits(&expected), "{op:?}");

            let y = Tensor::from_vec(&[x.len()], expected.clone()).unwrap();
            let g = Tensor::from_vec(&[x.len()], x.iter().map(|v| v + 0.5).collect()).unwrap();
            let gradient = unary_backward_from_output(&y, &g, op).unwrap().to_vec();
            let expected_gradient = gradient_by_formula(&y, &g, op);
            assert_eq!(
                bits(&gradient),
                bits(&expected_gradient),
                "{op:?}'s gradient"
            );
        }
    }

    /// Every activation.
    const EVERY_UNARY: [Unary; 13] = [
        Unary::Neg,
        Unary::Abs,
        Unary::Exp,
        Unary::Log,
        Unary::Sqrt,
        Unary::Square,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Relu,
        Unary::Relu6,
        Unary::LeakyRelu(0.1),
        Unary::Silu,
        Unary::HardSwish,
    ];

    /// `unary` and `unary_backward` on `x` against the scalar formulas, bit for bit.
    fn assert_unary_matches_the_formulas(x: &Tensor) {
        let g = map(x, |v| 0.5 - v);
        for op in EVERY_UNARY {
            let y = unary(x, op);
            assert_eq!(y.shape(), x.shape());
            let want: Vec<f32> = x.as_slice().iter().map(|&v| op.apply(v)).collect();
            assert_eq!(bits(y.as_slice()), bits(&want), "{op:?}");
            let dx = unary_backward(x, &y, &g, op).unwrap();
            let want: Vec<f32> = (x.as_slice().iter().zip(&want).zip(g.as_slice()))
                .map(|((&x, &y), &g)| g * op.derivative(x, y))
                .collect();
            assert_eq!(bits(dx.as_slice()), bits(&want), "{op:?}'s gradient");
        }
    }

    #[test]
    fn every_activation_and_its_gradient_match_the_scalar_formulas_over_parallel_chunks() {
        let edges = [
            f32::NAN,
            f32::NEG_INFINITY,
            -7.0,
            -3.0,
            -0.0,
            0.0,
            1e-30,
            3.0,
            6.0,
        ];
        // Past two parallel chunks, so that the chunk seams are crossed; the edges
        // themselves (-0.0 among them) first, then shifted copies of them.
        let len = (2 * PARALLEL_MIN_LEN).next_multiple_of(37) + 37;
        let x: Vec<f32> = (edges.iter().copied())
            .chain((edges.len()..len).map(|i| edges[i % edges.len()] + (i % 101) as f32 * 0.07))
            .collect();
        assert_unary_matches_the_formulas(&Tensor::from_vec(&[len / 37, 37], x).unwrap());
    }

    #[test]
    fn finished_sums_are_biased_per_row_then_activated() {
        let sums: Vec<f32> = (0..21).map(|i| i as f32 * 0.75 - 6.5).collect();
        let bias = [0.25, -1.0, 3.0];
        let finish = |bias: Option<&[f32]>, op: Option<Unary>| {
            let mut out = vec![MaybeUninit::new(f32::NAN); sums.len()];
            write_finished_on_this_thread(&mut out, &sums, bias, op);
            // SAFETY: `out` started initialized (NaN), and writing keeps it so.
            out.iter()
                .map(|v| unsafe { v.assume_init() })
                .collect::<Vec<f32>>()
        };
        let biased = |i: usize| sums[i] + bias[i % 3];
        for op in EVERY_UNARY {
            let want: Vec<f32> = (0..sums.len()).map(|i| op.apply(biased(i))).collect();
            assert_eq!(bits(&finish(Some(&bias), Some(op))), bits(&want), "{op:?}");
            let want: Vec<f32> = sums.iter().map(|&s| op.apply(s)).collect();
            assert_eq!(
                bits(&finish(None, Some(op))),
                bits(&want),
                "{op:?}, no bias"
            );
        }
        let want: Vec<f32> = (0..sums.len()).map(biased).collect();
        assert_eq!(finish(Some(&bias), None), want);
        assert_eq!(finish(None, None), sums);
    }

    #[test]
    #[should_panic(expected = "not rows of 4 biases")]
    fn finished_sums_must_be_whole_rows_of_biases() {
        let mut out = vec![MaybeUninit::new(0.0); 6];
        write_finished_on_this_thread(&mut out, &[1.0; 6], Some(&[0.0; 4]), None);
    }

    #[test]
    fn activations_of_empty_and_scalar_tensors_keep_their_shapes() {
        assert_unary_matches_the_formulas(&Tensor::zeros(&[0, 5]));
        assert_unary_matches_the_formulas(&Tensor::from_vec(&[], vec![-0.0]).unwrap());
        assert_eq!(unary(&Tensor::zeros(&[0, 5]), Unary::Relu).shape(), [0, 5]);
        assert_eq!(
            unary(&Tensor::from_vec(&[], vec![2.0]).unwrap(), Unary::Neg).to_vec(),
            [-2.0]
        );
    }

    #[test]
    fn output_derivatives_agree_with_input_derivatives() {
        for op in [
            Unary::Relu,
            Unary::Relu6,
            Unary::Sigmoid,
            Unary::Tanh,
            Unary::Exp,
        ] {
            for x in [-1.5f32, 0.3, 2.0, 7.0] {
                let y = op.apply(x);
                let from_output = op.derivative_from_output(y).unwrap();
                assert!(
                    (from_output - op.derivative(x, y)).abs() < 1e-6,
                    "{op:?} at {x}"
                );
            }
        }
        assert_eq!(Unary::Silu.derivative_from_output(1.0), None);
        let y = Tensor::from_vec(&[3], vec![0.0, 2.0, 6.0]).unwrap();
        let g = Tensor::ones(&[3]);
        assert_eq!(
            unary_backward_from_output(&y, &g, Unary::Relu6)
                .unwrap()
                .to_vec(),
            vec![0.0, 1.0, 0.0]
        );
        assert!(unary_backward_from_output(&y, &g, Unary::Silu).is_err());
    }

    /// Past one parallel chunk (`zip_map` writes its output chunk by chunk, the last
    /// shorter): every value is the scalar formula's, on 1 and 2 threads.
    #[test]
    fn gradients_from_outputs_cover_every_chunk() {
        let len = 2 * PARALLEL_MIN_LEN + 5;
        let y: Vec<f32> = (0..len).map(|i| (i % 17) as f32 * 0.5 - 2.0).collect();
        let g: Vec<f32> = (0..len).map(|i| (i % 13) as f32 - 6.0).collect();
        let (y, g) = (
            Tensor::from_vec(&[len], y).unwrap(),
            Tensor::from_vec(&[len], g).unwrap(),
        );
        for threads in [1, 2] {
            let pool = crate::parallel::pool_of(threads);
            for op in [Unary::Relu, Unary::Relu6, Unary::Sigmoid] {
                let got = pool.install(|| unary_backward_from_output(&y, &g, op).unwrap());
                let want = gradient_by_formula(&y, &g, op);
                assert_eq!(got.to_vec(), want, "{op:?} on {threads} threads");
            }
        }
    }

    /// Past one parallel chunk, on 1 and 2 threads: the sum then the activation, the
    /// same bits as the two separate ops; tensors of two shapes are an error.
    #[test]
    fn a_sum_and_its_activation_in_one_pass_match_the_two_ops() {
        let len = 2 * PARALLEL_MIN_LEN + 5;
        let a: Vec<f32> = (0..len).map(|i| (i % 17) as f32 * 0.75 - 5.0).collect();
        let b: Vec<f32> = (0..len).map(|i| (i % 13) as f32 * 0.5 - 2.0).collect();
        let (a, b) = (
            Tensor::from_vec(&[len], a).unwrap(),
            Tensor::from_vec(&[len], b).unwrap(),
        );
        for threads in [1, 2] {
            let pool = crate::parallel::pool_of(threads);
            for op in [Unary::Relu, Unary::Relu6, Unary::Sigmoid, Unary::Tanh] {
                let got = pool.install(|| add_activated(&a, &b, op).unwrap());
                let mut want = binary(&a, &b, BinaryOp::Add).unwrap();
                apply_in_place(&mut want, op);
                assert_eq!(got.to_vec(), want.to_vec(), "{op:?} on {threads} threads");
            }
        }
        let short = Tensor::zeros(&[len - 1]);
        let err = add_activated(&a, &short, Unary::Relu).unwrap_err();
        assert!(err.to_string().contains("add_activated"), "{err}");
    }

    /// Operands of one shape take the flat pass: past one parallel chunk, on 1 and 2
    /// threads, every value is the scalar operation's, in the operands' shape.
    #[test]
    fn binary_ops_on_one_shape_give_each_values_operation() {
        let len = 2 * PARALLEL_MIN_LEN + 5;
        let a: Vec<f32> = (0..len).map(|i| (i % 17) as f32 * 0.75 - 5.0).collect();
        let b: Vec<f32> = (0..len).map(|i| (i % 13) as f32 * 0.5 + 0.25).collect();
        let shape = [5, len / 5];
        let (ta, tb) = (
            Tensor::from_vec(&shape, a[..shape[0] * shape[1]].to_vec()).unwrap(),
            Tensor::from_vec(&shape, b[..shape[0] * shape[1]].to_vec()).unwrap(),
        );
        for threads in [1, 2] {
            let pool = crate::parallel::pool_of(threads);
            for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
                let got = pool.install(|| binary(&ta, &tb, op).unwrap());
                assert_eq!(got.shape(), &shape);
                let want: Vec<f32> = a.iter().zip(&b).map(|(&x, &y)| op.apply(x, y)).collect();
                assert_eq!(
                    got.to_vec(),
                    want[..got.len()],
                    "{op:?} on {threads} threads"
                );
            }
        }
    }

    #[test]
    fn broadcasting_binary_ops() {
        let a = Tensor::from_vec(&[2, 1], vec![1., 2.]).unwrap();
        let b = Tensor::from_vec(&[3], vec![1., 2., 4.]).unwrap();
        assert_eq!(
            binary(&a, &b, BinaryOp::Div).unwrap().to_vec(),
            vec![1., 0.5, 0.25, 2., 1., 0.5]
        );
        assert_eq!(binary(&a, &b, BinaryOp::Sub).unwrap().shape(), &[2, 3]);
        let err = binary(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[2]), BinaryOp::Mul)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mul") && err.contains("[2, 3]") && err.contains("[2]"),
            "{err}"
        );
        assert!(sum_to_shape(&Tensor::zeros(&[2, 3]), &[4]).is_err());
    }
}
