//! Property tests: for every differentiable op, the tape's gradients equal central
//! finite differences (`check_gradients`) on random shapes, values and settings.

use std::cell::RefCell;
use std::rc::Rc;

use petal_nn::{check_gradients, BatchParts, NnError, Result, Var};
use petal_tensor::elementwise::Unary;
use petal_tensor::{Conv2dSpec, Padding, Pool2dSpec, Tensor};
use proptest::prelude::*;

const EPS: f64 = 1e-2;
const TOLERANCE: f64 = 1e-2;

/// Deterministic pseudo-random values in [-1, 1) for a shape (xorshift on the seed).
fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = shape.iter().product();
    let values = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(shape, values).unwrap()
}

/// Random values moved at least `gap` away from every point in `kinks`.
fn away_from(shape: &[usize], seed: u64, scale: f32, kinks: &[f32], gap: f32) -> Tensor {
    let mut t = random(shape, seed);
    for v in t.as_mut_slice() {
        *v *= scale;
        for &k in kinks {
            if (*v - k).abs() < gap {
                *v = k + gap.copysign(*v - k);
            }
        }
    }
    t
}

/// Distinct values spaced 0.05 apart in a seeded order, so no max has a near tie.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let keys = random(shape, seed);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys.as_slice()[a].total_cmp(&keys.as_slice()[b]));
    let mut values = vec![0.0; keys.len()];
    for (rank, &i) in order.iter().enumerate() {
        values[i] = rank as f32 * 0.05 - keys.len() as f32 * 0.025;
    }
    Tensor::from_vec(shape, values).unwrap()
}

/// The other part of a split batch, fixed (for synchronized batch norm): its channel
/// sums and row count, then its squared deviations from the whole batch's mean, join
/// this part's; backward sums get nothing from it (its loss is not differentiated).
struct FixedOtherPart {
    values: Vec<f32>,
    channels: usize,
    mean: RefCell<Vec<f64>>,
}

impl BatchParts for FixedOtherPart {
    fn sum_over_parts(&self, sums: &mut [f64]) {
        let c = self.channels;
        let rows = || self.values.chunks_exact(c);
        if sums.len() == c + 1 {
            rows().for_each(|row| (0..c).for_each(|j| sums[j] += f64::from(row[j])));
            sums[c] += (self.values.len() / c) as f64;
            *self.mean.borrow_mut() = (0..c).map(|j| sums[j] / sums[c]).collect();
        } else if sums.len() == c {
            let mean = self.mean.borrow();
            rows().for_each(|row| {
                (0..c).for_each(|j| sums[j] += (f64::from(row[j]) - mean[j]).powi(2))
            });
        }
    }
}

fn check(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
) -> std::result::Result<(), TestCaseError> {
    match check_gradients(f, inputs, EPS, TOLERANCE) {
        Ok(report) => {
            prop_assert!(report.checked == inputs.iter().map(Tensor::len).sum::<usize>());
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(e.to_string())),
    }
}

/// The smallest gap, over the windows of a max pooling of `x`, between the largest
/// value of a window and the next (infinite when no window has two values).
fn smallest_winning_margin(x: &Tensor, pool: &Pool2dSpec) -> f32 {
    let (best, argmax) = petal_tensor::pool::max_pool2d(x, pool).unwrap();
    let image_len = x.len() / x.shape()[0];
    let pooled_len = best.len() / x.shape()[0];
    let mut without_winners = x.clone();
    for (i, &at) in argmax.iter().enumerate() {
        without_winners.as_mut_slice()[i / pooled_len * image_len + at as usize] =
            f32::NEG_INFINITY;
    }
    let (second, _) = petal_tensor::pool::max_pool2d(&without_winners, pool).unwrap();
    best.as_slice()
        .iter()
        .zip(second.as_slice())
        .map(|(b, s)| b - s)
        .fold(f32::INFINITY, f32::min)
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..4usize, 1..4)
}

/// A shape and a second shape that broadcasts against it (axes dropped or set to 1).
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|a| {
        let rank = a.len();
        (
            Just(a),
            0..=rank,
            prop::collection::vec(any::<bool>(), rank),
        )
            .prop_map(|(a, drop, ones)| {
                let b: Vec<usize> = a[drop..]
                    .iter()
                    .zip(&ones[drop..])
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .collect();
                (a, b)
            })
    })
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0..3usize, 0..3usize, 0..3usize, 0..3usize).prop_map(|(top, bottom, left, right)| {
            Padding::Explicit {
                top,
                bottom,
                left,
                right,
            }
        }),
    ]
}

fn pool_padding() -> impl Strategy<Value = Padding> {
    prop_oneof![Just(Padding::Valid), Just(Padding::Same)]
}

proptest! {
    // A fixed seed: CI checks the same 32 cases every run (finite differences in f32
    // are tolerance-bound; a random seed could turn an ill-conditioned draw into a red
    // run). Change the seed here to explore other cases.
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x9e37_79b9),
        ..ProptestConfig::with_cases(32)
    })]

    #[test]
    fn add_sub_mul_broadcast((a, b) in broadcast_pair(), swap in any::<bool>(), seed in any::<u64>()) {
        let (a, b) = if swap { (b, a) } else { (a, b) };
        let inputs = [random(&a, seed), random(&b, seed + 1)];
        check(|v| v[0].add(&v[1]), &inputs)?;
        check(|v| v[0].sub(&v[1]), &inputs)?;
        check(|v| v[0].mul(&v[1]), &inputs)?;
    }

    #[test]
    fn div_broadcast((a, b) in broadcast_pair(), swap in any::<bool>(), seed in any::<u64>()) {
        let (a, b) = if swap { (b, a) } else { (a, b) };
        let inputs = [random(&a, seed), away_from(&b, seed + 1, 2.0, &[0.0], 0.5)];
        check(|v| v[0].div(&v[1]), &inputs)?;
    }

    #[test]
    fn a_sum_with_a_fused_activation(
        s in shape(), seed in any::<u64>(),
        activation in prop_oneof![Just(Unary::Relu), Just(Unary::Relu6), Just(Unary::Sigmoid), Just(Unary::Tanh)],
    ) {
        // Sums spread past ReLU6's upper kink, each moved away from the kinks by the
        // second operand (the first is fixed, the second is the sum's distance to them).
        let a: Tensor = random(&s, seed).array().mapv(|v| v * 4.0).into();
        let sum = away_from(&s, seed + 1, 8.0, &[0.0, 6.0], 0.05);
        let b: Tensor = (sum.array() - a.array()).into();
        let constants = [Var::constant(a.clone()), Var::constant(b.clone())];
        let fused = constants[0].add_activated(&constants[1], activation).unwrap();
        let separate = constants[0].add(&constants[1]).unwrap().unary(activation);
        prop_assert_eq!(fused.value().to_vec(), separate.value().to_vec());
        check(|v| v[0].add_activated(&v[1], activation), &[a, b])?;
    }

    #[test]
    fn matmul(m in 1..5usize, k in 1..5usize, n in 1..5usize, seed in any::<u64>()) {
        check(|v| v[0].matmul(&v[1]), &[random(&[m, k], seed), random(&[k, n], seed + 1)])?;
    }

    #[test]
    fn smooth_unary_ops(s in shape(), seed in any::<u64>()) {
        let x = random(&s, seed).array().mapv(|v| v * 2.0).into();
        for op in [Unary::Neg, Unary::Exp, Unary::Square, Unary::Tanh, Unary::Sigmoid, Unary::Silu] {
            check(|v| Ok(v[0].unary(op)), std::slice::from_ref(&x))?;
        }
        check(|v| Ok(v[0].scale(-1.5)), std::slice::from_ref(&x))?;
        let positive: Tensor = random(&s, seed).array().mapv(|v| v + 1.5).into();
        check(|v| Ok(v[0].log()), std::slice::from_ref(&positive))?;
        check(|v| Ok(v[0].sqrt()), std::slice::from_ref(&positive))?;
    }

    #[test]
    fn piecewise_linear_activations(s in shape(), seed in any::<u64>(), alpha in 0.0f32..0.5) {
        let x = away_from(&s, seed, 8.0, &[0.0, 6.0], 0.05);
        check(|v| Ok(v[0].relu()), std::slice::from_ref(&x))?;
        check(|v| Ok(v[0].relu6()), std::slice::from_ref(&x))?;
        check(|v| Ok(v[0].abs()), std::slice::from_ref(&x))?;
        check(|v| Ok(v[0].leaky_relu(alpha)), std::slice::from_ref(&x))?;
        let x = away_from(&s, seed, 8.0, &[-3.0, 3.0], 0.05);
        check(|v| Ok(v[0].hard_swish()), std::slice::from_ref(&x))?;
    }

    #[test]
    fn conv2d(
        n in 1..3usize, h in 1..7usize, w in 1..7usize, groups in 1..3usize, cg in 1..3usize, og in 1..3usize,
        kh in 1..4usize, kw in 1..4usize, stride in (1..3usize, 1..3usize), dilation in (1..3usize, 1..3usize),
        padding in padding(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let spec = Conv2dSpec { stride: [stride.0, stride.1], padding, dilation: [dilation.0, dilation.1], groups };
        let (input, filter) = ([n, h, w, groups * cg], [kh, kw, cg, groups * og]);
        prop_assume!(petal_tensor::conv::conv2d_output_shape(&input, &filter, &spec).is_ok());
        let mut inputs = vec![random(&input, seed), random(&filter, seed + 1)];
        if with_bias {
            inputs.push(random(&[groups * og], seed + 2));
        }
        check(|v| v[0].conv2d(&v[1], v.get(2), &spec), &inputs)?;
    }

    #[test]
    fn conv2d_with_a_fused_activation(
        n in 1..3usize, hw in 2..6usize, c in 1..4usize, o in 1..4usize, stride in 1..3usize, padding in padding(),
        activation in prop_oneof![Just(Unary::Relu), Just(Unary::Relu6), Just(Unary::Sigmoid), Just(Unary::Tanh)],
        seed in any::<u64>(),
    ) {
        let spec = Conv2dSpec { stride: [stride, stride], padding, ..Conv2dSpec::default() };
        // Scaled so that pre-activations spread past ReLU6's upper kink; kinks are avoided
        // by checking the fused op against the separate conv + activation as well.
        let inputs = [random(&[n, hw, hw, c], seed).array().mapv(|v| v * 3.0).into(), random(&[3, 3, c, o], seed + 1), random(&[o], seed + 2)];
        prop_assume!(petal_tensor::conv::conv2d_output_shape(inputs[0].shape(), inputs[1].shape(), &spec).is_ok());
        let constants: Vec<Var> = inputs.iter().cloned().map(Var::constant).collect();
        let fused = constants[0].conv2d_activated(&constants[1], Some(&constants[2]), &spec, activation).unwrap();
        let separate = constants[0].conv2d(&constants[1], Some(&constants[2]), &spec).unwrap().unary(activation);
        prop_assert!(fused.value().max_abs_diff(separate.value()).unwrap() < 1e-6);
        let pre = constants[0].conv2d(&constants[1], Some(&constants[2]), &spec).unwrap();
        let near_kink = pre.value().as_slice().iter().any(|&p| [0.0f32, 6.0].iter().any(|k| (p - k).abs() < 0.05));
        prop_assume!(!(near_kink && matches!(activation, Unary::Relu | Unary::Relu6)));
        check(|v| v[0].conv2d_activated(&v[1], Some(&v[2]), &spec, activation), &inputs)?;
    }

    #[test]
    fn conv2d_with_a_fused_activation_and_max_pooling(
        n in 1..3usize, hw in 2..7usize, c in 1..4usize, o in 1..4usize, padding in padding(),
        activation in prop_oneof![Just(None), Just(Some(Unary::Relu)), Just(Some(Unary::Relu6)), Just(Some(Unary::Tanh))],
        window in 1..4usize, stride in 1..3usize, pool_padding in pool_padding(), seed in any::<u64>(),
    ) {
        let spec = Conv2dSpec { padding, ..Conv2dSpec::default() };
        let pool = Pool2dSpec { stride: [stride, stride], padding: pool_padding, ..Pool2dSpec::square(window) };
        let inputs = [random(&[n, hw, hw, c], seed).array().mapv(|v| v * 3.0).into(), random(&[3, 3, c, o], seed + 1), random(&[o], seed + 2)];
        let Ok(out) = petal_tensor::conv::conv2d_output_shape(inputs[0].shape(), inputs[1].shape(), &spec) else {
            return Ok(());
        };
        prop_assume!(petal_tensor::pool::avg_pool2d(&Tensor::zeros(&out), &pool).is_ok());
        let fused = |v: &[Var]| v[0].conv2d_max_pooled(&v[1], Some(&v[2]), &spec, activation, &pool);
        let constants: Vec<Var> = inputs.iter().cloned().map(Var::constant).collect();
        let pre = constants[0].conv2d(&constants[1], Some(&constants[2]), &spec).unwrap();
        let separate = activation.map_or(pre.clone(), |a| pre.unary(a)).max_pool2d(&pool).unwrap();
        prop_assert_eq!(fused(&constants).unwrap().value().to_vec(), separate.value().to_vec());
        // A finite difference moves a pre-activation by at most 0.03: skip draws where
        // that could cross a kink of the activation or change a window's winner.
        let kinks: &[f32] = match activation { Some(Unary::Relu) => &[0.0], Some(Unary::Relu6) => &[0.0, 6.0], _ => &[] };
        let near_kink = pre.value().as_slice().iter().any(|&p| kinks.iter().any(|k| (p - k).abs() < 0.1));
        prop_assume!(!near_kink && smallest_winning_margin(pre.value(), &pool) > 0.1);
        check(fused, &inputs)?;
    }

    #[test]
    fn depthwise_conv2d(n in 1..3usize, hw in 2..7usize, c in 1..5usize, multiplier in 1..3usize, stride in 1..3usize, padding in padding(), seed in any::<u64>()) {
        let spec = Conv2dSpec { stride: [stride, stride], padding, groups: c, ..Conv2dSpec::default() };
        let inputs = [random(&[n, hw, hw, c], seed), random(&[3, 3, 1, c * multiplier], seed + 1)];
        prop_assume!(petal_tensor::conv::conv2d_output_shape(inputs[0].shape(), inputs[1].shape(), &spec).is_ok());
        check(|v| v[0].conv2d(&v[1], None, &spec), &inputs)?;
    }

    #[test]
    // At least 6 samples per channel: with 2, every normalized value is +-1 and the
    // finite differences measure float noise, not the gradient.
    fn batch_norm(rows in 3..6usize, c in 1..4usize, extra in 2..4usize, seed in any::<u64>()) {
        let inputs = [random(&[rows, extra, c], seed).array().mapv(|v| v * 2.0 + 0.5).into(), random(&[c], seed + 1), random(&[c], seed + 2)];
        check(|v| Ok(v[0].batch_norm(&v[1], &v[2], 1e-3, None)?.0), &inputs)?;
        // Equal to the same normalization written with separate ops.
        let constants: Vec<Var> = inputs.iter().cloned().map(Var::constant).collect();
        let fused = constants[0].batch_norm(&constants[1], &constants[2], 1e-3, None).unwrap().0;
        let mean = constants[0].mean(&[0, 1], true).unwrap();
        let centered = constants[0].sub(&mean).unwrap();
        let std = centered.square().mean(&[0, 1], true).unwrap().add(&Var::constant(Tensor::scalar(1e-3))).unwrap().sqrt();
        let composite = centered.div(&std).unwrap().mul(&constants[1]).unwrap().add(&constants[2]).unwrap();
        prop_assert!(fused.value().max_abs_diff(composite.value()).unwrap() < 1e-4);
    }

    #[test]
    // One part of a batch split over processes, the other part fixed: its values join
    // the statistics, and since only this part's loss is differentiated, the other adds
    // nothing to the backward sums.
    fn synchronized_batch_norm(rows in 3..6usize, other_rows in 1..5usize, c in 2..4usize, seed in any::<u64>()) {
        let scaled = |t: Tensor| -> Tensor { t.array().mapv(|v| v * 2.0 + 0.5).into() };
        let inputs = [scaled(random(&[rows, 2, c], seed)), random(&[c], seed + 1), random(&[c], seed + 2)];
        let other = FixedOtherPart { values: scaled(random(&[other_rows, c], seed + 3)).to_vec(), channels: c, mean: RefCell::default() };
        let parts: Rc<dyn BatchParts> = Rc::new(other);
        check(|v| Ok(v[0].batch_norm(&v[1], &v[2], 1e-3, Some(parts.clone()))?.0), &inputs)?;
    }

    #[test]
    fn pooling(n in 1..3usize, h in 1..7usize, w in 1..7usize, c in 1..4usize, window in (1..4usize, 1..4usize), stride in (1..4usize, 1..4usize), padding in pool_padding(), seed in any::<u64>()) {
        let spec = Pool2dSpec { window: [window.0, window.1], stride: [stride.0, stride.1], padding };
        let x = distinct(&[n, h, w, c], seed);
        prop_assume!(petal_tensor::pool::avg_pool2d(&x, &spec).is_ok());
        check(|v| v[0].max_pool2d(&spec), std::slice::from_ref(&x))?;
        check(|v| v[0].avg_pool2d(&spec), std::slice::from_ref(&x))?;
        check(|v| v[0].global_avg_pool(), std::slice::from_ref(&x))?;
    }

    #[test]
    fn reductions(s in shape(), axis_mask in prop::collection::vec(any::<bool>(), 3), keep in any::<bool>(), seed in any::<u64>()) {
        let axes: Vec<usize> = (0..s.len()).filter(|&a| axis_mask[a]).collect();
        let x = distinct(&s, seed);
        check(|v| v[0].sum(&axes, keep), std::slice::from_ref(&x))?;
        check(|v| v[0].mean(&axes, keep), std::slice::from_ref(&x))?;
        let axis = axes.first().copied().unwrap_or(0);
        check(|v| v[0].max(axis, keep), std::slice::from_ref(&x))?;
    }

    #[test]
    fn softmax_and_log_softmax(s in shape(), axis in 0..3usize, seed in any::<u64>()) {
        let axis = axis % s.len();
        let x: Tensor = random(&s, seed).array().mapv(|v| v * 3.0).into();
        check(|v| v[0].softmax(axis), std::slice::from_ref(&x))?;
        check(|v| v[0].log_softmax(axis), std::slice::from_ref(&x))?;
    }

    #[test]
    fn softmax_cross_entropy(n in 1..5usize, classes in 1..6usize, seed in any::<u64>()) {
        let logits: Tensor = random(&[n, classes], seed).array().mapv(|v| v * 3.0).into();
        let targets = petal_tensor::reduce::softmax(&random(&[n, classes], seed + 1), 1).unwrap();
        check(|v| v[0].softmax_cross_entropy(&targets), &[logits])?;
    }

    #[test]
    fn reshape_and_permute(s in shape(), seed in any::<u64>(), order in Just(vec![0usize, 1, 2]).prop_shuffle()) {
        let x = random(&s, seed);
        let flat = [x.len()];
        check(|v| v[0].reshape(&flat), std::slice::from_ref(&x))?;
        let axes: Vec<usize> = order.into_iter().filter(|&a| a < s.len()).collect();
        check(|v| v[0].permute(&axes), std::slice::from_ref(&x))?;
    }

    #[test]
    fn concat_slice_pad(s in shape(), extra in 1..3usize, axis in 0..3usize, cut in any::<u64>(), pads in prop::collection::vec((0..3usize, 0..3usize), 3), seed in any::<u64>()) {
        let axis = axis % s.len();
        let mut other = s.clone();
        other[axis] = extra;
        let inputs = [random(&s, seed), random(&other, seed + 1)];
        check(|v| Var::concat(&[&v[0], &v[1]], axis), &inputs)?;
        let ranges: Vec<_> = s.iter().enumerate().map(|(i, &d)| {
            let start = (cut as usize >> (i * 4)) % d;
            start..d.max(start + 1)
        }).collect();
        check(|v| v[0].slice(&ranges), &inputs[..1])?;
        let pads: Vec<[usize; 2]> = pads[..s.len()].iter().map(|&(b, a)| [b, a]).collect();
        check(|v| v[0].pad(&pads, 0.5), &inputs[..1])?;
    }
}

/// The function of an intermediate value `h` that the retained-gradient test differentiates:
/// `sum(sigmoid(h) * h * w)` for fixed weights `w`.
fn head(h: &Var, weights: &Tensor) -> Result<Var> {
    Ok(h.sigmoid()
        .mul(h)?
        .mul(&Var::constant(weights.clone()))?
        .sum_all())
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x9e37_79b9),
        ..ProptestConfig::with_cases(32)
    })]

    #[test]
    fn a_retained_gradient_is_the_finite_difference_gradient(s in shape(), seed in any::<u64>()) {
        let weights = random(&s, seed + 1);
        let tape = petal_nn::Tape::new();
        let x = tape.leaf(random(&s, seed));
        // h = tanh(x) * 2 + x: an op's output, not a leaf.
        let h = x.tanh().scale(2.0).add(&x).unwrap();
        h.retain_grad();
        let grads = head(&h, &weights).unwrap().backward().unwrap();
        let retained = grads.get(&h).expect("a retained gradient");
        prop_assert!(grads.get(&x).is_some(), "the gradient still reaches the leaf");

        let objective = |values: &Tensor| -> f64 {
            let out = head(&Var::constant(values.clone()), &weights).unwrap();
            f64::from(out.value().as_slice()[0])
        };
        let mut moved = h.value().clone();
        for i in 0..moved.len() {
            let original = moved.as_slice()[i];
            let (up, down) = ((f64::from(original) + EPS) as f32, (f64::from(original) - EPS) as f32);
            moved.as_mut_slice()[i] = up;
            let above = objective(&moved);
            moved.as_mut_slice()[i] = down;
            let below = objective(&moved);
            moved.as_mut_slice()[i] = original;
            let numeric = (above - below) / (f64::from(up) - f64::from(down));
            let analytic = f64::from(retained.as_slice()[i]);
            prop_assert!(
                (analytic - numeric).abs() <= TOLERANCE * (1.0 + numeric.abs()),
                "element {i}: tape {analytic}, finite differences {numeric}"
            );
        }
    }
}

#[test]
fn a_wrong_backward_is_rejected() {
    // y = x^2 recorded with the wrong derivative 3x instead of 2x.
    let wrong_square = |v: &[Var]| {
        let x = v[0].shared_value();
        let y = std::rc::Rc::new(petal_tensor::elementwise::map(&x, |t| t * t));
        Ok(Var::record_unary(y, &v[0], move |g| {
            let three_x = petal_tensor::elementwise::map(&x, |t| 3.0 * t);
            petal_tensor::elementwise::binary(g, &three_x, petal_tensor::elementwise::BinaryOp::Mul)
                .unwrap()
        }))
    };
    let x = Tensor::from_vec(&[3], vec![0.5, -1.0, 2.0]).unwrap();
    let err = check_gradients(wrong_square, std::slice::from_ref(&x), EPS, TOLERANCE).unwrap_err();
    assert!(
        matches!(err, NnError::GradientMismatch { input: 0, .. }),
        "{err}"
    );
    // The same op with the right derivative passes.
    check_gradients(|v| Ok(v[0].square()), &[x], EPS, TOLERANCE).unwrap();
}
