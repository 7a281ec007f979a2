//! Each optimizer against values computed by hand: three steps on the parameter
//! w = [1, 2] with the gradients g1 = [1, -2], g2 = [0.5, 1], g3 = [-1, 0].

use petal_nn::{ParamId, ParamStore};
use petal_optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, OptimError, Optimizer, RmsProp, RmsPropConfig, Sgd,
    SgdConfig,
};
use petal_tensor::Tensor;

const GRADS: [[f32; 2]; 3] = [[1.0, -2.0], [0.5, 1.0], [-1.0, 0.0]];

fn vector(values: &[f32]) -> Tensor {
    Tensor::from_vec(&[values.len()], values.to_vec()).unwrap()
}

/// The parameter after each of the three steps.
fn three_steps(optimizer: &mut dyn Optimizer) -> Vec<Vec<f32>> {
    let mut store = ParamStore::new();
    let w = store.add("w", vector(&[1.0, 2.0]), true).unwrap();
    GRADS
        .iter()
        .map(|g| {
            optimizer.step(&mut store, &[(w, vector(g))]).unwrap();
            store.value(w).to_vec()
        })
        .collect()
}

fn assert_steps(optimizer: &mut dyn Optimizer, expected: [[f64; 2]; 3]) {
    let got = three_steps(optimizer);
    for (step, (got, want)) in got.iter().zip(expected).enumerate() {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (f64::from(*g) - w).abs() < 2e-6,
                "step {}: got {got:?}, want {want:?}",
                step + 1
            );
        }
    }
    assert_eq!(optimizer.iterations(), 3);
}

#[test]
fn sgd_plain() {
    // lr 0.1: w -= 0.1 g
    // w1 = [1 - 0.1, 2 + 0.2] = [0.9, 2.2]
    // w2 = [0.9 - 0.05, 2.2 - 0.1] = [0.85, 2.1]
    // w3 = [0.85 + 0.1, 2.1 - 0] = [0.95, 2.1]
    assert_steps(
        &mut Sgd::new(SgdConfig::new(0.1)),
        [[0.9, 2.2], [0.85, 2.1], [0.95, 2.1]],
    );
}

#[test]
fn sgd_momentum() {
    // lr 0.1, momentum 0.9: v = 0.9 v + g, w -= 0.1 v
    // v1 = [1, -2]                              w1 = [0.9, 2.2]
    // v2 = [0.9 + 0.5, -1.8 + 1] = [1.4, -0.8]  w2 = [0.9 - 0.14, 2.2 + 0.08] = [0.76, 2.28]
    // v3 = [1.26 - 1, -0.72] = [0.26, -0.72]    w3 = [0.76 - 0.026, 2.28 + 0.072] = [0.734, 2.352]
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::new(0.1)
    });
    assert_steps(&mut sgd, [[0.9, 2.2], [0.76, 2.28], [0.734, 2.352]]);
}

#[test]
fn sgd_nesterov() {
    // lr 0.1, momentum 0.9, Nesterov: v = 0.9 v + g, d = g + 0.9 v, w -= 0.1 d
    // v1 = [1, -2],       d1 = [1.9, -3.8]                        w1 = [0.81, 2.38]
    // v2 = [1.4, -0.8],   d2 = [0.5 + 1.26, 1 - 0.72] = [1.76, 0.28]  w2 = [0.634, 2.352]
    // v3 = [0.26, -0.72], d3 = [-1 + 0.234, -0.648] = [-0.766, -0.648] w3 = [0.7106, 2.4168]
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::new(0.1)
    });
    assert_steps(&mut sgd, [[0.81, 2.38], [0.634, 2.352], [0.7106, 2.4168]]);
}

#[test]
fn sgd_weight_decay() {
    // lr 0.1, weight decay 0.1: g' = g + 0.1 w, w -= 0.1 g'
    // g1' = [1 + 0.1, -2 + 0.2] = [1.1, -1.8]               w1 = [0.89, 2.18]
    // g2' = [0.5 + 0.089, 1 + 0.218] = [0.589, 1.218]       w2 = [0.8311, 2.0582]
    // g3' = [-1 + 0.08311, 0.20582] = [-0.91689, 0.20582]   w3 = [0.922789, 2.037618]
    let mut sgd = Sgd::new(SgdConfig {
        weight_decay: 0.1,
        ..SgdConfig::new(0.1)
    });
    assert_steps(
        &mut sgd,
        [[0.89, 2.18], [0.8311, 2.0582], [0.922789, 2.037618]],
    );
}

#[test]
fn adam() {
    // lr 0.1, beta1 0.9, beta2 0.999, eps 1e-7.
    // Step 1: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2: w -= 0.1 g / (|g| + 1e-7)
    //   w1 = [0.9, 2.1] (to 1e-8)
    // Step 2, corrections 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999:
    //   w[0]: m = 0.09 + 0.05 = 0.14, v = 0.000999 + 0.00025 = 0.001249,
    //         m_hat = 0.736842, v_hat = 0.624812, sqrt = 0.790451, step 0.093218 -> 0.806782
    //   w[1]: m = -0.18 + 0.1 = -0.08, v = 0.003996 + 0.001 = 0.004996,
    //         m_hat = -0.421053, v_hat = 2.499250, sqrt = 1.580902, step -0.026634 -> 2.126634
    // Step 3, corrections 0.271, 0.002997001:
    //   w[0]: m = 0.126 - 0.1 = 0.026, v = 0.001247751 + 0.001 = 0.002247751,
    //         m_hat = 0.095941, v_hat = 0.75, sqrt = 0.866025, step 0.011078 -> 0.795704
    //   w[1]: m = -0.072, v = 0.004991004, m_hat = -0.265683, v_hat = 1.665333,
    //         sqrt = 1.290478, step -0.020588 -> 2.147222
    let mut adam = Adam::new(AdamConfig::new(0.1));
    assert_steps(
        &mut adam,
        [[0.9, 2.1], [0.806782, 2.126634], [0.795704, 2.147222]],
    );
}

#[test]
fn adamw() {
    // As Adam (same moments and steps), but first w *= 1 - lr * wd = 1 - 0.1 * 0.1 = 0.99:
    // w1 = [0.99 - 0.1, 1.98 + 0.1] = [0.89, 2.08]
    // w2 = [0.8811 - 0.093218, 2.0592 + 0.026634] = [0.787882, 2.085834]
    // w3 = [0.780003 - 0.011078, 2.064976 + 0.020588] = [0.768925, 2.085563]
    let mut adamw = AdamW::new(AdamWConfig {
        weight_decay: 0.1,
        ..AdamWConfig::new(0.1)
    });
    assert_steps(
        &mut adamw,
        [[0.89, 2.08], [0.787882, 2.085834], [0.768925, 2.085563]],
    );
}

#[test]
fn rmsprop_plain() {
    // lr 0.1, rho 0.9: v = 0.9 v + 0.1 g^2, w -= 0.1 g / (sqrt(v) + 1e-7)
    // v1 = [0.1, 0.4], sqrt = [0.316228, 0.632456], steps [0.316228, -0.316228]
    //   w1 = [0.683772, 2.316228]
    // v2 = [0.09 + 0.025, 0.36 + 0.1] = [0.115, 0.46], sqrt = [0.339116, 0.678233],
    //   steps [0.05 / 0.339116, 0.1 / 0.678233] = [0.147442, 0.147442]  w2 = [0.536330, 2.168786]
    // v3 = [0.1035 + 0.1, 0.414] = [0.2035, 0.414], steps [-0.1 / 0.451110, 0] = [-0.221675, 0]
    //   w3 = [0.758006, 2.168786]
    let mut rms = RmsProp::new(RmsPropConfig::new(0.1));
    assert_steps(
        &mut rms,
        [
            [0.683772, 2.316228],
            [0.536330, 2.168786],
            [0.758006, 2.168786],
        ],
    );
}

#[test]
fn rmsprop_centered() {
    // As plain, plus mg = 0.9 mg + 0.1 g and denominator sqrt(v - mg^2):
    // mg1 = [0.1, -0.2], v1 - mg1^2 = [0.09, 0.36], sqrt [0.3, 0.6], steps [1/3, -1/3]
    //   w1 = [0.666667, 2.333333]
    // mg2 = [0.14, -0.08], v2 - mg2^2 = [0.115 - 0.0196, 0.46 - 0.0064] = [0.0954, 0.4536],
    //   sqrt [0.308869, 0.673498], steps [0.161881, 0.148478]  w2 = [0.504786, 2.184855]
    // mg3 = [0.026, -0.072], v3 - mg3^2 = [0.2035 - 0.000676, ...] = [0.202824, ...],
    //   steps [-0.1 / 0.450360, 0] = [-0.222045, 0]  w3 = [0.726831, 2.184855]
    let mut rms = RmsProp::new(RmsPropConfig {
        centered: true,
        ..RmsPropConfig::new(0.1)
    });
    assert_steps(
        &mut rms,
        [
            [0.666667, 2.333333],
            [0.504786, 2.184855],
            [0.726831, 2.184855],
        ],
    );
}

#[test]
fn rmsprop_momentum() {
    // As plain (same steps s), with buf = 0.5 buf + s, w -= buf:
    // buf1 = [0.316228, -0.316228]                                       w1 = [0.683772, 2.316228]
    // buf2 = [0.158114 + 0.147442, -0.158114 + 0.147442] = [0.305556, -0.010672]
    //                                                                     w2 = [0.378216, 2.326900]
    // buf3 = [0.152778 - 0.221675, -0.005336] = [-0.068897, -0.005336]   w3 = [0.447113, 2.332236]
    let mut rms = RmsProp::new(RmsPropConfig {
        momentum: 0.5,
        ..RmsPropConfig::new(0.1)
    });
    assert_steps(
        &mut rms,
        [
            [0.683772, 2.316228],
            [0.378216, 2.326900],
            [0.447113, 2.332236],
        ],
    );
}

#[test]
fn defaults_are_keras_and_pytorch() {
    assert_eq!(
        SgdConfig::default(),
        SgdConfig {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0
        }
    );
    assert_eq!(
        AdamConfig::default(),
        AdamConfig {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7
        }
    );
    assert_eq!(AdamWConfig::default().weight_decay, 0.004);
    assert_eq!(AdamWConfig::default().adam, AdamConfig::default());
    let rms = RmsPropConfig::default();
    assert_eq!(
        (
            rms.learning_rate,
            rms.rho,
            rms.momentum,
            rms.epsilon,
            rms.centered
        ),
        (1e-3, 0.9, 0.0, 1e-7, false)
    );
    assert_eq!(Adam::default().learning_rate(), 1e-3);
}

/// A store with a trainable `w` and a frozen `frozen`, both [1, 2].
fn two_params() -> (ParamStore, ParamId, ParamId) {
    let mut store = ParamStore::new();
    let w = store.add("w", vector(&[1.0, 2.0]), true).unwrap();
    let frozen = store.add("frozen", vector(&[1.0, 2.0]), false).unwrap();
    (store, w, frozen)
}

#[test]
fn frozen_parameters_are_untouched() {
    let optimizers: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(SgdConfig {
            momentum: 0.9,
            ..SgdConfig::new(0.1)
        })),
        Box::new(Adam::new(AdamConfig::new(0.1))),
        Box::new(AdamW::new(AdamWConfig::new(0.1))),
        Box::new(RmsProp::new(RmsPropConfig::new(0.1))),
    ];
    for mut optimizer in optimizers {
        let (mut store, w, frozen) = two_params();
        for _ in 0..2 {
            optimizer
                .step(
                    &mut store,
                    &[(w, vector(&[1.0, 1.0])), (frozen, vector(&[1.0, 1.0]))],
                )
                .unwrap();
        }
        assert_eq!(store.value(frozen).to_vec(), vec![1.0, 2.0]);
        assert_ne!(store.value(w).to_vec(), vec![1.0, 2.0]);
        // No slots are kept for the frozen parameter either.
        assert!(optimizer
            .state(&store)
            .slots
            .iter()
            .all(|(name, _)| !name.ends_with("/frozen")));
    }
}

#[test]
fn lr_scale_shrinks_one_parameters_step() {
    // lr 0.1, gradient [1, 1]: the unscaled step is 0.1, the scaled one 0.1 * 0.1 = 0.01.
    let mut store = ParamStore::new();
    let head = store.add("head", vector(&[1.0, 1.0]), true).unwrap();
    let base = store.add("base", vector(&[1.0, 1.0]), true).unwrap();
    let mut sgd = Sgd::new(SgdConfig::new(0.1));
    sgd.set_lr_scale(base, 0.1);
    sgd.step(
        &mut store,
        &[(head, vector(&[1.0, 1.0])), (base, vector(&[1.0, 1.0]))],
    )
    .unwrap();
    let head_step = 1.0 - store.value(head).as_slice()[0];
    let base_step = 1.0 - store.value(base).as_slice()[0];
    assert!((head_step - 0.1).abs() < 1e-7);
    assert!((base_step - 0.01).abs() < 1e-7);
    assert!((head_step / base_step - 10.0).abs() < 1e-4);
}

#[test]
fn learning_rate_can_be_changed_between_steps() {
    let mut store = ParamStore::new();
    let w = store.add("w", vector(&[1.0]), true).unwrap();
    let mut sgd = Sgd::default();
    assert_eq!(sgd.learning_rate(), 0.01);
    sgd.set_learning_rate(0.5);
    assert_eq!(sgd.learning_rate(), 0.5);
    sgd.step(&mut store, &[(w, vector(&[1.0]))]).unwrap(); // 1 - 0.5 * 1
    assert_eq!(store.value(w).to_vec(), vec![0.5]);
    assert_eq!(sgd.config().learning_rate, 0.5);
}

#[test]
fn a_parameter_that_starts_late_gets_a_bias_corrected_first_step() {
    // Adam's bias correction counts each parameter's own updates: `late`, first trained
    // at the 6th step, moves by lr * g / |g| = 0.1 like any first Adam step.
    let (mut store, w, late) = two_params();
    store.set_trainable(late, false);
    let mut adam = Adam::new(AdamConfig::new(0.1));
    for _ in 0..5 {
        adam.step(
            &mut store,
            &[(w, vector(&[1.0, 1.0])), (late, vector(&[1.0, 1.0]))],
        )
        .unwrap();
    }
    store.set_trainable(late, true);
    adam.step(
        &mut store,
        &[(w, vector(&[1.0, 1.0])), (late, vector(&[1.0, 1.0]))],
    )
    .unwrap();
    let moved = store.value(late).to_vec();
    assert!(
        (moved[0] - 0.9).abs() < 1e-6 && (moved[1] - 1.9).abs() < 1e-6,
        "{moved:?}"
    );
    assert_eq!(adam.iterations(), 6);
}

#[test]
fn a_gradient_of_the_wrong_shape_is_an_error_and_changes_nothing() {
    let (mut store, w, frozen) = two_params();
    let mut adam = Adam::default();
    let err = adam
        .step(
            &mut store,
            &[(frozen, vector(&[1.0, 1.0])), (w, vector(&[1.0, 1.0, 1.0]))],
        )
        .unwrap_err();
    assert!(
        matches!(&err, OptimError::GradientShape { name, param, grad }
        if name == "w" && param == &[2] && grad == &[3])
    );
    let message = err.to_string();
    assert!(
        message.contains("\"w\"") && message.contains("[3]") && message.contains("[2]"),
        "{message}"
    );
    assert_eq!(store.value(w).to_vec(), vec![1.0, 2.0]);
    assert_eq!(adam.iterations(), 0);
}

#[test]
fn duplicate_and_foreign_gradients_are_errors() {
    let (mut store, w, _) = two_params();
    let mut sgd = Sgd::default();
    let err = sgd
        .step(
            &mut store,
            &[(w, vector(&[1.0, 1.0])), (w, vector(&[1.0, 1.0]))],
        )
        .unwrap_err();
    assert!(
        matches!(&err, OptimError::DuplicateGradient { name } if name == "w"),
        "{err}"
    );

    let mut bigger = ParamStore::new();
    for name in ["a", "b", "c"] {
        bigger.add(name, vector(&[0.0]), true).unwrap();
    }
    let foreign = bigger.id("c").unwrap();
    let err = sgd
        .step(&mut store, &[(foreign, vector(&[1.0]))])
        .unwrap_err();
    assert!(matches!(err, OptimError::UnknownParameter { .. }), "{err}");
    assert_eq!(sgd.iterations(), 0);
}

#[test]
fn adam_minimises_a_quadratic() {
    // loss = sum((w - target)^2), gradient 2 (w - target)
    let target = [3.0f32, -1.0, 0.5];
    let mut store = ParamStore::new();
    let w = store.add("w", Tensor::zeros(&[3]), true).unwrap();
    let loss = |store: &ParamStore| -> f32 {
        store
            .value(w)
            .as_slice()
            .iter()
            .zip(target)
            .map(|(x, t)| (x - t) * (x - t))
            .sum()
    };
    let mut adam = Adam::new(AdamConfig::new(0.1));
    let mut losses = vec![loss(&store)];
    for _ in 0..300 {
        let grad: Vec<f32> = store
            .value(w)
            .as_slice()
            .iter()
            .zip(target)
            .map(|(x, t)| 2.0 * (x - t))
            .collect();
        adam.step(&mut store, &[(w, vector(&grad))]).unwrap();
        losses.push(loss(&store));
    }
    assert!(
        losses[10] < losses[0] && losses[100] < losses[10],
        "{:?}",
        &losses[..12]
    );
    assert!(losses[300] < 1e-3, "final loss {}", losses[300]);
}
