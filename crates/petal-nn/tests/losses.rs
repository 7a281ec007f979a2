//! Loss values against hand-computed numbers, and their gradients against finite
//! differences.

use petal_nn::{check_gradients, Loss, Targets, Var};
use petal_tensor::Tensor;

fn t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(shape, v.to_vec()).unwrap()
}

fn value(loss: Loss, output: &Tensor, targets: Targets<'_>) -> f32 {
    loss.compute(&Var::constant(output.clone()), targets)
        .unwrap()
        .value()
        .item()
        .unwrap()
}

#[test]
fn label_smoothing_moves_targets_towards_uniform() {
    // Logits (ln 3, 0): p = (0.75, 0.25). Target class 0 smoothed by 0.2 over 2 classes:
    // (0.9, 0.1). Loss = -(0.9 ln 0.75 + 0.1 ln 0.25).
    let logits = t(&[1, 2], &[3f32.ln(), 0.0]);
    let smoothed = Loss::CategoricalCrossentropy {
        label_smoothing: 0.2,
    };
    let expected = -(0.9 * 0.75f32.ln() + 0.1 * 0.25f32.ln());
    assert!((value(smoothed, &logits, Targets::Labels(&[0])) - expected).abs() < 1e-6);
    let plain = value(
        Loss::SparseCategoricalCrossentropy,
        &logits,
        Targets::Labels(&[0]),
    );
    assert!((plain + 0.75f32.ln()).abs() < 1e-6);
}

#[test]
fn binary_cross_entropy_from_logits_equals_from_probabilities() {
    let logits = t(&[2, 2], &[2.0, -1.0, 0.5, -3.0]);
    let probs: Tensor = logits.array().mapv(|x| 1.0 / (1.0 + (-x).exp())).into();
    let targets = t(&[2, 2], &[1.0, 0.0, 0.0, 1.0]);
    let a = value(
        Loss::BinaryCrossentropy { from_logits: true },
        &logits,
        Targets::Values(&targets),
    );
    let b = value(
        Loss::BinaryCrossentropy { from_logits: false },
        &probs,
        Targets::Values(&targets),
    );
    // By hand: mean of ln(1+e^-2), ln(1+e^-1), ln(1+e^0.5), ln(1+e^3).
    let expected = [-2.0f32, -1.0, 0.5, 3.0]
        .iter()
        .map(|z| (1.0 + z.exp()).ln())
        .sum::<f32>()
        / 4.0;
    assert!(
        (a - expected).abs() < 1e-5 && (b - expected).abs() < 1e-5,
        "{a} {b} {expected}"
    );
}

#[test]
fn mean_squared_error_and_its_shape_check() {
    let out = t(&[2], &[1.0, 3.0]);
    assert_eq!(
        value(
            Loss::MeanSquaredError,
            &out,
            Targets::Values(&t(&[2], &[0.0, 1.0]))
        ),
        2.5
    );
    let err = Loss::MeanSquaredError
        .compute(&Var::constant(out), Targets::Values(&t(&[3], &[0.0; 3])))
        .unwrap_err();
    assert!(
        err.to_string().contains("[2]") && err.to_string().contains("[3]"),
        "{err}"
    );
    let bad_label = Loss::SparseCategoricalCrossentropy.compute(
        &Var::constant(t(&[1, 2], &[0.0, 0.0])),
        Targets::Labels(&[5]),
    );
    assert!(bad_label.unwrap_err().to_string().contains("label 5"));
}

#[test]
fn loss_gradients_match_finite_differences() {
    let logits = t(&[2, 3], &[0.2, -1.0, 2.0, 0.5, 0.1, -0.3]);
    let targets = t(&[2, 3], &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    let losses = [
        Loss::CategoricalCrossentropy {
            label_smoothing: 0.1,
        },
        Loss::BinaryCrossentropy { from_logits: true },
        Loss::MeanSquaredError,
    ];
    for loss in losses {
        check_gradients(
            |v| loss.compute(&v[0], Targets::Values(&targets)),
            std::slice::from_ref(&logits),
            1e-2,
            1e-2,
        )
        .unwrap_or_else(|e| panic!("{loss:?}: {e}"));
    }
    let probs = t(&[2, 3], &[0.2, 0.7, 0.5, 0.9, 0.1, 0.4]);
    check_gradients(
        |v| {
            Loss::BinaryCrossentropy { from_logits: false }
                .compute(&v[0], Targets::Values(&targets))
        },
        &[probs],
        1e-3,
        1e-2,
    )
    .unwrap();
}
