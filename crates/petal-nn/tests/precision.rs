//! The dense (matmul) and convolution ops in bf16, inside `with_precision`: the output
//! and both gradients against f32 within bf16's rounding, and the backward pass in the
//! forward pass's precision wherever it runs (as under PyTorch's autocast).

use petal_nn::{Tape, Var};
use petal_tensor::{with_precision, within_bf16_rounding, Conv2dSpec, Precision, Tensor};

/// Values in [-1, 1) from a fixed hash of the index and `seed`.
fn values(shape: &[usize], seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    let data = (0..n as u32)
        .map(|i| {
            let h = (i ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761);
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(shape, data).unwrap()
}

fn abs(t: &Tensor) -> Tensor {
    Tensor::from_vec(t.shape(), t.as_slice().iter().map(|v| v.abs()).collect()).unwrap()
}

type Op = dyn Fn(&Var, &Var) -> Var;

/// `op(a, b)` recorded on a tape, run forward inside `forward` (a precision scope), and
/// the gradients of `sum(op(a, b) * g)` with respect to `a` and `b`, backward outside
/// it: `[output, grad a, grad b]`.
fn passes(
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
    op: &Op,
    forward: &dyn Fn(&dyn Fn() -> Var) -> Var,
) -> [Tensor; 3] {
    let tape = Tape::new();
    let (x, y) = (tape.leaf(a.clone()), tape.leaf(b.clone()));
    let out = forward(&|| op(&x, &y));
    let loss = out.mul(&Var::constant(g.clone())).unwrap().sum_all();
    let grads = loss.backward().unwrap();
    let grad = |v: &Var| grads.get(v).unwrap().clone();
    [out.value().clone(), grad(&x), grad(&y)]
}

fn in_f32(op: &dyn Fn() -> Var) -> Var {
    op()
}

fn in_bf16(op: &dyn Fn() -> Var) -> Var {
    with_precision(Precision::Bf16, op)
}

/// Checks `op` in bf16 (its backward pass outside the bf16 scope) against f32: each
/// result within the rounding of its two bf16 factors (2^-8 each, relative: 2 * 2^-8 +
/// 2^-16 of the sum of |products|) plus that of the f32 sums (2 * terms * epsilon, both
/// sides), `terms` the reduction length of each pass.
fn check(name: &str, a: &Tensor, b: &Tensor, g: &Tensor, op: &Op, terms: [usize; 3]) {
    let exact = passes(a, b, g, op, &in_f32);
    let bf16 = passes(a, b, g, op, &in_bf16);
    let magnitude = passes(&abs(a), &abs(b), &abs(g), op, &in_f32);
    for (pass, what) in ["output", "gradient of a", "gradient of b"]
        .iter()
        .enumerate()
    {
        let (got, want) = (bf16[pass].as_slice(), exact[pass].as_slice());
        if let Err(e) = within_bf16_rounding(got, want, magnitude[pass].as_slice(), terms[pass]) {
            panic!("{name} {what} {e}");
        }
        assert!(got != want, "{name} {what}: no bf16 rounding happened");
    }
    // The backward pass, run outside the scope, followed the forward's precision: the
    // same gradients as a backward pass inside it.
    let inside = with_precision(Precision::Bf16, || passes(a, b, g, op, &in_f32));
    for pass in 1..3 {
        assert_eq!(inside[pass].as_slice(), bf16[pass].as_slice(), "{name}");
    }
}

fn skipped() -> bool {
    match Precision::Bf16.supported() {
        Ok(_) => false,
        Err(e) => {
            println!("skipped: {e}");
            true
        }
    }
}

#[test]
fn bf16_dense_products_match_f32_within_bf16_rounding() {
    if skipped() {
        return;
    }
    let (m, k, n) = (16, 200, 24);
    let (a, b, g) = (values(&[m, k], 1), values(&[k, n], 2), values(&[m, n], 3));
    check(
        "matmul",
        &a,
        &b,
        &g,
        &|x, y| x.matmul(y).unwrap(),
        [k, n, m],
    );
}

#[test]
fn bf16_convolutions_match_f32_within_bf16_rounding() {
    if skipped() {
        return;
    }
    // 8 channels: im2col (too few channels for Winograd, too many for the small-patch
    // kernels); and a 1x1.
    let spec = Conv2dSpec::default();
    let conv = move |x: &Var, w: &Var| x.conv2d(w, None, &spec).unwrap();
    let (x, w) = (values(&[2, 8, 8, 8], 4), values(&[3, 3, 8, 12], 5));
    let g = values(&[2, 6, 6, 12], 6);
    check("conv 3x3", &x, &w, &g, &conv, [72, 108, 72]);
    let (x, w) = (values(&[3, 5, 5, 24], 7), values(&[1, 1, 24, 40], 8));
    let g = values(&[3, 5, 5, 40], 9);
    check("conv 1x1", &x, &w, &g, &conv, [24, 40, 75]);
}
