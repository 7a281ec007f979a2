//! Loss values against hand-computed numbers, and their gradients against finite
//! differences.

use petal_nn::{check_gradients, Loss, NnError, Targets, Var};
use petal_tensor::Tensor;
use proptest::prelude::*;

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

#[test]
fn soft_targets_give_the_weighted_sum_of_the_hard_cross_entropies() {
    // Row 0: logits (ln 3, 0, 0), p = (3/5, 1/5, 1/5), target 0.7 class 0 + 0.3 class 2.
    // Row 1: logits (0, 0, ln 2), p = (1/4, 1/4, 1/2), target 0.4 class 1 + 0.6 class 2.
    let logits = t(&[2, 3], &[3f32.ln(), 0.0, 0.0, 0.0, 0.0, 2f32.ln()]);
    let soft = t(&[2, 3], &[0.7, 0.0, 0.3, 0.0, 0.4, 0.6]);
    let row0 = -(0.7 * 0.6f32.ln() + 0.3 * 0.2f32.ln());
    let row1 = -(0.4 * 0.25f32.ln() + 0.6 * 0.5f32.ln());
    let by_hand = (row0 + row1) / 2.0;
    let categorical = Loss::CategoricalCrossentropy {
        label_smoothing: 0.0,
    };
    for loss in [categorical, Loss::SparseCategoricalCrossentropy] {
        let got = value(loss, &logits, Targets::Values(&soft));
        assert!((got - by_hand).abs() < 1e-6, "{loss:?}: {got} vs {by_hand}");
    }
    // The same as lambda * CE(label a) + (1 - lambda) * CE(label b) of each row,
    // the hard cross-entropies computed from labels.
    let ce = |row: usize, label: usize| {
        let one_row = t(&[1, 3], &logits.as_slice()[row * 3..row * 3 + 3]);
        value(categorical, &one_row, Targets::Labels(&[label]))
    };
    let weighted = (0.7 * ce(0, 0) + 0.3 * ce(0, 2) + 0.4 * ce(1, 1) + 0.6 * ce(1, 2)) / 2.0;
    assert!((weighted - by_hand).abs() < 1e-6, "{weighted} vs {by_hand}");
}

#[test]
fn cross_entropy_targets_that_are_not_distributions_are_errors() {
    let logits = t(&[2, 2], &[0.0; 4]);
    let cases: [(&[f32], &str); 3] = [
        (&[1.0, 0.0, 0.6, 0.6], "target row 1 sums to 1.2"),
        (&[1.2, -0.2, 0.5, 0.5], "target row 0 has -0.2 at class 1"),
        (
            &[1.0, 0.0, f32::NAN, 1.0],
            "target row 1 has NaN at class 0",
        ),
    ];
    for (values, expected) in cases {
        let targets = t(&[2, 2], values);
        for loss in [
            Loss::CategoricalCrossentropy {
                label_smoothing: 0.1,
            },
            Loss::SparseCategoricalCrossentropy,
        ] {
            let err = loss
                .compute(&Var::constant(logits.clone()), Targets::Values(&targets))
                .unwrap_err();
            assert!(matches!(err, NnError::Targets { .. }), "{err:?}");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}

/// `n x classes` logits in [-3, 3] and soft targets (positive weights normalized per row).
fn logits_and_soft_targets() -> impl Strategy<Value = (Tensor, Tensor)> {
    (1..5usize, 1..6usize).prop_flat_map(|(n, classes)| {
        (
            prop::collection::vec(-3.0f32..3.0, n * classes),
            prop::collection::vec(0.0f32..1.0, n * classes),
        )
            .prop_map(move |(logits, weights)| {
                let mut soft = Vec::with_capacity(weights.len());
                for row in weights.chunks(classes) {
                    let sum: f32 = row.iter().sum::<f32>() + 1e-3 * classes as f32;
                    soft.extend(row.iter().map(|w| (w + 1e-3) / sum));
                }
                (t(&[n, classes], &logits), t(&[n, classes], &soft))
            })
    })
}

proptest! {
    #[test]
    fn soft_target_cross_entropy_gradients_match_finite_differences(
        (logits, soft) in logits_and_soft_targets(),
        smoothing in 0.0f32..0.5,
    ) {
        for loss in [
            Loss::CategoricalCrossentropy { label_smoothing: smoothing },
            Loss::SparseCategoricalCrossentropy,
        ] {
            let checked = check_gradients(
                |v| loss.compute(&v[0], Targets::Values(&soft)),
                std::slice::from_ref(&logits),
                1e-2,
                1e-2,
            );
            prop_assert!(checked.is_ok(), "{:?}: {:?}", loss, checked);
        }
    }
}
