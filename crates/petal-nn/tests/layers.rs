//! Keras-style layer tests: output shape, parameter counts, save/load round trip, and
//! one gradient step that lowers the loss, for every layer.

use petal_nn::layers::*;
use petal_nn::{
    no_grad, Context, Graph, InferenceFootprint, LayerConfig, Loss, Model, ParamId, Sequential,
    Tape, Targets, Var,
};
use petal_tensor::conv::{with_kernel_3x3, Kernel3x3};
use petal_tensor::{with_precision, Padding, Precision, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn batch(shape: &[usize], seed: u32) -> Tensor {
    let len = shape.iter().product();
    let values = (0..len)
        .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) >> 16)
        .map(|v| v as f32 / 65536.0 - 0.5)
        .collect();
    Tensor::from_vec(shape, values).unwrap()
}

/// The loss of `model` on a fixed batch after `steps` plain gradient-descent steps.
fn loss_after_steps(model: &mut Model, x: &Tensor, labels: &[usize], steps: usize) -> f32 {
    let mut loss = 0.0;
    for step in 0..=steps {
        let tape = Tape::new();
        let ctx = Context::train(model.store(), &tape, step as u64);
        let logits = model.forward(&Var::constant(x.clone()), &ctx).unwrap();
        let mut value = Loss::SparseCategoricalCrossentropy
            .compute(&logits, Targets::Labels(labels))
            .unwrap();
        if let Some(penalty) = model.penalty(&ctx).unwrap() {
            value = value.add(&penalty).unwrap();
        }
        loss = value.value().item().unwrap();
        if step == steps {
            break;
        }
        let grads = ctx.param_grads(&value.backward().unwrap());
        let updates = ctx.take_updates();
        drop(ctx);
        model.apply_updates(updates).unwrap();
        for (id, g) in grads {
            let w = model.store_mut().value_mut(id);
            w.as_mut_slice()
                .iter_mut()
                .zip(g.as_slice())
                .for_each(|(w, g)| *w -= 0.05 * g);
        }
    }
    loss
}

/// Builds input -> layer -> flatten -> dense(3) and checks the layer's behaviour.
fn check_layer(
    config: impl LayerConfig,
    input: &[usize],
    output: &[usize],
    trainable: usize,
    non_trainable: usize,
) {
    let mut model = Sequential::new(input, 3)
        .add(config)
        .and_then(|m| m.add(FlattenConfig::default()))
        .and_then(|m| m.add(DenseConfig::new(3)))
        .and_then(Sequential::build)
        .unwrap();
    let summary = model.summary();
    let row = &summary.rows[0];
    assert_eq!(row.output_shape, output, "{} output shape", row.name);
    let ids = model.layer_params(&row.name).unwrap();
    let count = |flag: bool| {
        ids.iter()
            .filter(|&&id| model.store().get(id).trainable == flag)
            .map(|&id| model.store().value(id).len())
            .sum::<usize>()
    };
    assert_eq!(
        (count(true), count(false)),
        (trainable, non_trainable),
        "{} parameter counts",
        row.name
    );

    // Save, scramble, load: every value comes back.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    model.save_weights(&path).unwrap();
    let saved: Vec<Tensor> = model.store().iter().map(|(_, p)| p.value.clone()).collect();
    let ids: Vec<_> = model.store().iter().map(|(id, _)| id).collect();
    for &id in &ids {
        let zeros = Tensor::zeros(model.store().value(id).shape());
        model.store_mut().set_value(id, zeros).unwrap();
    }
    model.load_weights(&path).unwrap();
    for (id, value) in ids.iter().zip(&saved) {
        assert_eq!(model.store().value(*id), value);
    }

    let x = batch(&[4].iter().chain(input).copied().collect::<Vec<_>>(), 9);
    let labels = [0, 1, 2, 1];
    let before = loss_after_steps(&mut model, &x, &labels, 0);
    let after = loss_after_steps(&mut model, &x, &labels, 3);
    assert!(after < before, "{}: loss {before} -> {after}", row.name);
}

#[test]
fn conv2d_layers() {
    check_layer(
        Conv2dConfig::new(4, 3),
        &[6, 6, 2],
        &[4, 4, 4],
        3 * 3 * 2 * 4 + 4,
        0,
    );
    let same = Conv2dConfig {
        padding: Padding::Same,
        strides: [2, 2],
        activation: Activation::Relu,
        ..Conv2dConfig::new(4, 3)
    };
    check_layer(same, &[5, 5, 2], &[3, 3, 4], 3 * 3 * 2 * 4 + 4, 0);
    let grouped = Conv2dConfig {
        groups: 2,
        dilation: [2, 2],
        use_bias: false,
        ..Conv2dConfig::new(4, 2)
    };
    check_layer(grouped, &[5, 5, 4], &[3, 3, 4], 2 * 2 * 2 * 4, 0);
    let depthwise = DepthwiseConv2dConfig {
        depth_multiplier: 2,
        padding: Padding::Same,
        ..DepthwiseConv2dConfig::new(3)
    };
    check_layer(depthwise, &[4, 4, 3], &[4, 4, 6], 3 * 3 * 6 + 6, 0);
    check_layer(
        SeparableConv2dConfig::new(5, 3),
        &[5, 5, 2],
        &[3, 3, 5],
        3 * 3 * 2 + 2 * 5 + 5,
        0,
    );
}

#[test]
fn pooling_layers() {
    check_layer(Pool2dConfig::max(2), &[5, 5, 2], &[2, 2, 2], 0, 0);
    check_layer(
        Pool2dConfig {
            padding: Padding::Same,
            strides: Some([1, 1]),
            ..Pool2dConfig::avg(3)
        },
        &[4, 4, 2],
        &[4, 4, 2],
        0,
        0,
    );
    check_layer(GlobalAvgPoolConfig::default(), &[4, 4, 3], &[3], 0, 0);
}

#[test]
fn dense_flatten_dropout_activation() {
    check_layer(
        DenseConfig {
            activation: Activation::Tanh,
            ..DenseConfig::new(5)
        },
        &[6],
        &[5],
        6 * 5 + 5,
        0,
    );
    check_layer(FlattenConfig::default(), &[2, 3, 2], &[12], 0, 0);
    check_layer(DropoutConfig::new(0.5), &[8], &[8], 0, 0);
    for activation in [
        Activation::Relu,
        Activation::Relu6,
        Activation::Sigmoid,
        Activation::Softmax,
        Activation::Swish,
        Activation::HardSwish,
        Activation::LeakyRelu(0.2),
    ] {
        check_layer(ActivationConfig::new(activation), &[6], &[6], 0, 0);
    }
}

#[test]
fn normalization_layers() {
    check_layer(BatchNormConfig::default(), &[3, 3, 4], &[3, 3, 4], 8, 8);
    check_layer(LayerNormConfig::default(), &[3, 4], &[3, 4], 8, 0);
    check_layer(GroupNormConfig::new(2), &[3, 3, 4], &[3, 3, 4], 8, 0);
}

/// A 3x3 convolution to `filters` channels with 'same' padding and `activation`.
fn same_3x3(filters: usize, activation: Activation) -> Conv2dConfig {
    Conv2dConfig {
        padding: Padding::Same,
        activation,
        ..Conv2dConfig::new(filters, 3)
    }
}

#[test]
fn merge_layers_in_a_graph() {
    for concat in [false, true] {
        let mut g = Graph::new(1);
        let x = g.input(&[4, 4, 2]);
        let a = g.call(&same_3x3(2, Activation::Linear), &[x]).unwrap();
        let merged = if concat {
            g.call(&ConcatConfig::default(), &[x, a])
        } else {
            g.call(&AddConfig::default(), &[x, a])
        }
        .unwrap();
        assert_eq!(g.shape(merged), if concat { [4, 4, 4] } else { [4, 4, 2] });
        let flat = g.call(&FlattenConfig::default(), &[merged]).unwrap();
        let out = g.call(&DenseConfig::new(3), &[flat]).unwrap();
        let mut model = g.build(out).unwrap();
        let x = batch(&[4, 4, 4, 2], 5);
        let before = loss_after_steps(&mut model, &x, &[0, 1, 2, 0], 0);
        assert!(loss_after_steps(&mut model, &x, &[0, 1, 2, 0], 3) < before);
    }
    let mut g = Graph::new(1);
    let x = g.input(&[4, 4, 2]);
    let y = g.call(&Pool2dConfig::max(2), &[x]).unwrap();
    let err = g
        .call(
            &AddConfig {
                name: Some("residual".into()),
            },
            &[x, y],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("residual") && err.contains("[4, 4, 2]") && err.contains("[2, 2, 2]"),
        "{err}"
    );
}

#[test]
fn batch_norm_uses_batch_statistics_in_training_and_moving_ones_in_eval() {
    let mut model = Sequential::new(&[2], 0)
        .add(BatchNormConfig {
            momentum: 0.5,
            ..Default::default()
        })
        .unwrap()
        .build()
        .unwrap();
    let x = Tensor::from_vec(&[2, 2], vec![1.0, 10.0, 3.0, 30.0]).unwrap();
    let tape = Tape::new();
    let ctx = Context::train(model.store(), &tape, 0);
    let y = model.forward(&Var::constant(x.clone()), &ctx).unwrap();
    // Batch mean (2, 20), variance (1, 100): outputs are -1 and +1 (up to epsilon).
    for (got, want) in y.value().as_slice().iter().zip([-1.0, -1.0, 1.0, 1.0]) {
        assert!((got - want).abs() < 1e-3, "{got}");
    }
    let updates = ctx.take_updates();
    drop(ctx);
    model.apply_updates(updates).unwrap();
    let mean = model.store().id("batch_normalization/moving_mean").unwrap();
    assert_eq!(model.store().value(mean).to_vec(), vec![1.0, 10.0]); // 0.5 * 0 + 0.5 * batch mean
                                                                     // Eval uses the moving statistics: (x - 1) / sqrt(0.5 * 1 + 0.5 * 1 + eps).
    let eval = model.predict(&x).unwrap();
    assert!((eval.as_slice()[0] - 0.0).abs() < 1e-6);
    // A frozen BatchNorm behaves as in inference even while training.
    let gamma = model.store().id("batch_normalization/gamma").unwrap();
    model.store_mut().set_trainable(gamma, false);
    let tape = Tape::new();
    let ctx = Context::train(model.store(), &tape, 0);
    let frozen = model.forward(&Var::constant(x.clone()), &ctx).unwrap();
    assert_eq!(frozen.value(), &eval);
    assert!(ctx.take_updates().is_empty());
}

#[test]
fn dropout_is_inverted_in_training_and_off_in_eval() {
    let model = Sequential::new(&[1000], 0)
        .add(DropoutConfig::new(0.25))
        .unwrap()
        .build()
        .unwrap();
    let x = Tensor::ones(&[1, 1000]);
    assert_eq!(model.predict(&x).unwrap(), x);
    let tape = Tape::new();
    let y = model
        .forward(&Var::constant(x), &Context::train(model.store(), &tape, 11))
        .unwrap();
    let kept = y.value().as_slice().iter().filter(|&&v| v != 0.0).count();
    assert!((700..800).contains(&kept), "kept {kept}");
    assert!(y
        .value()
        .as_slice()
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
}

#[test]
fn l2_penalty_adds_to_the_loss() {
    let config = DenseConfig {
        kernel_regularizer: Some(Regularizer::l2(0.5)),
        kernel_initializer: Initializer::Ones,
        ..DenseConfig::new(2)
    };
    let model = Sequential::new(&[3], 0)
        .add(config)
        .unwrap()
        .build()
        .unwrap();
    let tape = Tape::new();
    let penalty = model
        .penalty(&Context::train(model.store(), &tape, 0))
        .unwrap()
        .unwrap();
    assert_eq!(penalty.value().item().unwrap(), 0.5 * 6.0);
}

#[test]
fn the_mnist_cnn_summary_matches_hand_counts() {
    let same_relu = |filters| same_3x3(filters, Activation::Relu);
    let model = Sequential::new(&[28, 28, 1], 0)
        .add(same_relu(32))
        .unwrap()
        .add(Pool2dConfig::max(2))
        .unwrap()
        .add(same_relu(64))
        .unwrap()
        .add(Pool2dConfig::max(2))
        .unwrap()
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig {
            activation: Activation::Relu,
            ..DenseConfig::new(128)
        })
        .unwrap()
        .add(DenseConfig::new(10))
        .unwrap()
        .build()
        .unwrap();
    let summary = model.summary();
    let rows: Vec<(&str, Vec<usize>, usize, u64)> = summary
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.output_shape.clone(), r.params, r.flops))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "conv2d",
                vec![28, 28, 32],
                3 * 3 * 32 + 32,
                2 * 28 * 28 * 32 * 9
            ),
            ("max_pooling2d", vec![14, 14, 32], 0, 0),
            (
                "conv2d_1",
                vec![14, 14, 64],
                3 * 3 * 32 * 64 + 64,
                2 * 14 * 14 * 64 * 288
            ),
            ("max_pooling2d_1", vec![7, 7, 64], 0, 0),
            ("flatten", vec![3136], 0, 0),
            ("dense", vec![128], 3136 * 128 + 128, 2 * 3136 * 128),
            ("dense_1", vec![10], 128 * 10 + 10, 2 * 1280),
        ]
    );
    assert_eq!((summary.trainable, summary.non_trainable), (421_642, 0));
    assert_eq!(summary.flops(), 8_482_304);
    let text = summary.to_string();
    assert!(
        text.contains("conv2d_1 (Conv2D)")
            && text.contains("(None, 7, 7, 64)")
            && text.contains("Total params: 421642"),
        "{text}"
    );
}

#[test]
fn bad_layer_configurations_name_the_layer() {
    let err = Sequential::new(&[28, 28, 1], 0)
        .add(DenseConfig::new(10))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("dense") && err.contains("Flatten"), "{err}");
    let err = Sequential::new(&[2, 2, 1], 0)
        .add(Conv2dConfig {
            name: Some("big".into()),
            ..Conv2dConfig::new(4, 5)
        })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("big"), "{err}");
    let model = Sequential::new(&[3], 0)
        .add(DenseConfig::new(2))
        .unwrap()
        .build()
        .unwrap();
    let err = model
        .predict(&Tensor::zeros(&[1, 4]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("input") && err.contains("[1, 4]"), "{err}");
}

#[test]
fn freezing_layers_keeps_them_fixed_and_moving_statistics_frozen() {
    let mut model = Sequential::new(&[4, 4, 2], 0)
        .add(Conv2dConfig::new(3, 3))
        .unwrap()
        .add(BatchNormConfig::default())
        .unwrap()
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(3))
        .unwrap()
        .build()
        .unwrap();
    model.freeze_up_to("batch_normalization").unwrap();
    let trainable: Vec<(String, bool)> = model
        .store()
        .iter()
        .map(|(_, p)| (p.name.clone(), p.trainable))
        .collect();
    assert_eq!(
        trainable
            .iter()
            .filter(|(_, t)| *t)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["dense/kernel", "dense/bias"]
    );
    let frozen: Vec<Tensor> = model
        .store()
        .iter()
        .filter(|(_, p)| !p.trainable)
        .map(|(_, p)| p.value.clone())
        .collect();
    let x = batch(&[4, 4, 4, 2], 3);
    let before = loss_after_steps(&mut model, &x, &[0, 1, 2, 0], 0);
    assert!(loss_after_steps(&mut model, &x, &[0, 1, 2, 0], 3) < before);
    let after: Vec<Tensor> = model
        .store()
        .iter()
        .filter(|(_, p)| !p.trainable)
        .map(|(_, p)| p.value.clone())
        .collect();
    assert_eq!(
        frozen, after,
        "frozen layers (BatchNorm in inference mode) do not change"
    );

    model
        .set_trainable(&["conv2d", "batch_normalization"], true)
        .unwrap();
    let moving = model.store().id("batch_normalization/moving_mean").unwrap();
    assert!(!model.store().get(moving).trainable);
    assert!(
        model
            .store()
            .get(model.store().id("conv2d/kernel").unwrap())
            .trainable
    );
    let err = model
        .set_trainable(&["conv2d", "nope"], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    assert!(
        model
            .store()
            .get(model.store().id("conv2d/kernel").unwrap())
            .trainable,
        "nothing changed on error"
    );
}

#[test]
fn batch_norm_moving_statistics_converge_to_the_batch_statistics() {
    let mut model = Sequential::new(&[3, 3, 2], 0)
        .add(BatchNormConfig {
            momentum: 0.9,
            ..Default::default()
        })
        .unwrap()
        .build()
        .unwrap();
    let x: Tensor = batch(&[8, 3, 3, 2], 5)
        .array()
        .mapv(|v| v * 10.0 + 3.0)
        .into();
    let mut train_output = None;
    for step in 0..200 {
        let tape = Tape::new();
        let ctx = Context::train(model.store(), &tape, step);
        train_output = Some(
            model
                .forward(&Var::constant(x.clone()), &ctx)
                .unwrap()
                .value()
                .clone(),
        );
        let updates = ctx.take_updates();
        drop(ctx);
        model.apply_updates(updates).unwrap();
    }
    let eval = model.predict(&x).unwrap();
    let diff = eval.max_abs_diff(&train_output.unwrap()).unwrap();
    assert!(
        diff < 1e-3,
        "inference output differs from training output by {diff}"
    );
}

/// A model with random moving statistics, so that folding has something to fold.
fn with_random_statistics(mut model: Model, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<_> = model
        .store()
        .iter()
        .filter(|(_, p)| {
            p.name.contains("moving_") || p.name.ends_with("/gamma") || p.name.ends_with("/beta")
        })
        .map(|(id, p)| (id, p.name.contains("variance") || p.name.ends_with("gamma")))
        .collect();
    for (id, positive) in ids {
        for v in model.store_mut().value_mut(id).as_mut_slice() {
            let r: f32 = rng.random_range(-1.0..1.0);
            *v = if positive { 0.5 + r.abs() } else { r };
        }
    }
    model
}

#[test]
fn folding_batch_norms_and_activations_keeps_the_outputs() {
    let mut g = Graph::new(3);
    let x = g.input(&[9, 9, 3]);
    let conv = g
        .call(
            &Conv2dConfig {
                use_bias: false,
                padding: Padding::Same,
                ..Conv2dConfig::new(8, 3)
            },
            &[x],
        )
        .unwrap();
    let bn = g.call(&BatchNormConfig::default(), &[conv]).unwrap();
    let act = g
        .call(&ActivationConfig::new(Activation::Relu6), &[bn])
        .unwrap();
    let depthwise = g
        .call(
            &DepthwiseConv2dConfig {
                padding: Padding::Same,
                ..DepthwiseConv2dConfig::new(3)
            },
            &[act],
        )
        .unwrap();
    let bn2 = g.call(&BatchNormConfig::default(), &[depthwise]).unwrap();
    // A convolution read twice (by its batch norm and by the residual sum) keeps its
    // batch norm: folding it would change what the sum sees.
    let shared = g
        .call(
            &Conv2dConfig {
                padding: Padding::Same,
                ..Conv2dConfig::new(8, 1)
            },
            &[bn2],
        )
        .unwrap();
    let bn3 = g.call(&BatchNormConfig::default(), &[shared]).unwrap();
    let sum = g.call(&AddConfig::default(), &[shared, bn3]).unwrap();
    let model = with_random_statistics(g.build(sum).unwrap(), 11);
    let input = Tensor::from_vec(
        &[2, 9, 9, 3],
        (0..486)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect(),
    )
    .unwrap();
    let expected = model.predict(&input).unwrap();
    let folded = model.fold_for_inference();
    let kinds: Vec<LayerKind> = folded.summary().rows.iter().map(|r| r.kind).collect();
    let count = |kind| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count(LayerKind::Folded), 3, "{kinds:?}");
    assert_eq!(count(LayerKind::BatchNorm), 1);
    let got = folded.predict(&input).unwrap();
    assert!(got.max_abs_diff(&expected).unwrap() < 1e-4);
}

#[test]
fn the_activation_after_a_residual_sum_folds_into_the_sum() {
    // ResNet's block end: conv + BN on one branch, the block's input on the other, their
    // sum, then ReLU. Another sum whose activation (swish) needs its input keeps it.
    let mut g = Graph::new(3);
    let x = g.input(&[6, 6, 4]);
    let same = |filters| same_3x3(filters, Activation::Linear);
    let conv = g.call(&same(4), &[x]).unwrap();
    let bn = g.call(&BatchNormConfig::default(), &[conv]).unwrap();
    let sum = g.call(&AddConfig::default(), &[bn, x]).unwrap();
    let relu = g
        .call(&ActivationConfig::new(Activation::Relu), &[sum])
        .unwrap();
    let conv2 = g.call(&same(4), &[relu]).unwrap();
    let sum2 = g.call(&AddConfig::default(), &[conv2, relu]).unwrap();
    let swish = g
        .call(&ActivationConfig::new(Activation::Swish), &[sum2])
        .unwrap();
    let model = with_random_statistics(g.build(swish).unwrap(), 4);
    let input = batch(&[2, 6, 6, 4], 8);
    let expected = model.predict(&input).unwrap();
    let folded = model.fold_for_inference();
    let rows = folded.summary().rows;
    let kinds: Vec<LayerKind> = rows.iter().map(|r| r.kind).collect();
    // The batch norm and the ReLU fold; the swish stays a layer of its own.
    assert_eq!(
        kinds.iter().filter(|k| **k == LayerKind::Folded).count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&LayerKind::Activation), "{kinds:?}");
    let got = folded.predict(&input).unwrap();
    assert!(got.max_abs_diff(&expected).unwrap() < 1e-5);
    assert!(expected.as_slice().iter().any(|&v| v < -0.01), "swish ran");
    let described: Vec<_> = folded
        .nodes()
        .iter()
        .filter_map(|node| node.layer?.describe())
        .filter(|d| matches!(d, LayerDescription::Add { .. }))
        .collect();
    assert_eq!(
        described,
        [
            LayerDescription::Add {
                activation: Activation::Relu
            },
            LayerDescription::Add {
                activation: Activation::Linear
            }
        ]
    );
}

/// MobileNetV2's inverted residual block: 1x1 expansion, batch norm, ReLU6, depthwise
/// 3x3 (stride 1, then 2), batch norm, ReLU6, 1x1 projection, batch norm (and the sum
/// at stride 1). Folded, each expansion and its depthwise convolution become one layer
/// (with the depthwise layer's batch norm and ReLU6), which predicts what the layers
/// did; recorded on a tape, the folded pair runs as two convolutions and passes
/// gradients back to its input.
#[test]
fn an_expansion_and_its_depthwise_convolution_fold_into_one_layer() {
    let mut g = Graph::new(9);
    let x = g.input(&[10, 12, 8]);
    let bn_relu6 = |g: &mut Graph, y| {
        let y = g.call(&BatchNormConfig::default(), &[y]).unwrap();
        g.call(&ActivationConfig::new(Activation::Relu6), &[y])
            .unwrap()
    };
    let block = |g: &mut Graph, x, stride: usize| {
        let no_bias = |filters, kernel| Conv2dConfig {
            use_bias: false,
            ..Conv2dConfig::new(filters, kernel)
        };
        let expanded = g.call(&no_bias(48, 1), &[x]).unwrap();
        let expanded = bn_relu6(g, expanded);
        let depthwise = DepthwiseConv2dConfig {
            padding: Padding::Same,
            strides: [stride; 2],
            use_bias: false,
            ..DepthwiseConv2dConfig::new(3)
        };
        let depthwise = g.call(&depthwise, &[expanded]).unwrap();
        let depthwise = bn_relu6(g, depthwise);
        let projected = g.call(&no_bias(8, 1), &[depthwise]).unwrap();
        let projected = g.call(&BatchNormConfig::default(), &[projected]).unwrap();
        match stride {
            1 => g.call(&AddConfig::default(), &[x, projected]).unwrap(),
            _ => projected,
        }
    };
    let y = block(&mut g, x, 1);
    let y = block(&mut g, y, 2);
    let model = with_random_statistics(g.build(y).unwrap(), 10);
    // Inputs up to 8 in size, so that the ReLU6s clamp at both ends.
    let input: Tensor = batch(&[3, 10, 12, 8], 11).array().mapv(|v| v * 8.0).into();
    let expected = model.predict(&input).unwrap();
    let folded = model.fold_for_inference();
    let kinds: Vec<LayerKind> = folded.summary().rows.iter().map(|r| r.kind).collect();
    let count = |kind| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count(LayerKind::ExpandDepthwise), 2, "{kinds:?}");
    assert_eq!(count(LayerKind::DepthwiseConv2d), 0, "{kinds:?}");
    // Per block: the expansion's BN and ReLU6, the depthwise layer and its BN and ReLU6,
    // the projection's BN.
    assert_eq!(count(LayerKind::Folded), 12, "{kinds:?}");
    // Each fused layer reports the depthwise layer's output shape, the stride-2 one too.
    let fused_shapes: Vec<Vec<usize>> = (folded.summary().rows.iter())
        .filter(|r| r.kind == LayerKind::ExpandDepthwise)
        .map(|r| r.output_shape.clone())
        .collect();
    assert_eq!(fused_shapes, [vec![10, 12, 48], vec![5, 6, 48]]);
    let got = folded.predict(&input).unwrap();
    assert!(got.max_abs_diff(&expected).unwrap() < 1e-4);
    let nodes = folded.nodes();
    let described = nodes.iter().filter_map(|n| n.layer?.describe());
    let pairs = described
        .filter(|d| matches!(d, LayerDescription::ExpandDepthwise { .. }))
        .count();
    assert_eq!(pairs, 2);
    // On a tape: the two convolutions in turn, the same values, a gradient for the input.
    let tape = Tape::new();
    let ctx = Context::train(folded.store(), &tape, 0);
    let x = tape.leaf(input.clone());
    let recorded = folded.forward(&x, &ctx).unwrap();
    assert!(recorded.value().max_abs_diff(&got).unwrap() < 1e-5);
    let grads = recorded.sum_all().backward().unwrap();
    let dx = grads.get(&x).expect("a gradient for the input");
    assert!(dx.as_slice().iter().any(|&v| v != 0.0));
}

#[test]
fn a_three_input_sum_takes_its_activation_and_a_concatenation_keeps_its_own() {
    let mut g = Graph::new(6);
    let x = g.input(&[4, 4, 2]);
    let conv = g.call(&same_3x3(2, Activation::Linear), &[x]).unwrap();
    let sum = g.call(&AddConfig::default(), &[conv, x, conv]).unwrap();
    let relu6 = g
        .call(&ActivationConfig::new(Activation::Relu6), &[sum])
        .unwrap();
    let joined = g.call(&ConcatConfig::default(), &[relu6, x]).unwrap();
    let relu = g
        .call(&ActivationConfig::new(Activation::Relu), &[joined])
        .unwrap();
    let model = g.build(relu).unwrap();
    // Inputs up to 10 in size, so that sums cross ReLU6's upper kink.
    let input: Tensor = batch(&[2, 4, 4, 2], 7).array().mapv(|v| v * 20.0).into();
    let expected = model.predict(&input).unwrap();
    assert!(expected.as_slice().contains(&6.0) && expected.as_slice().contains(&0.0));
    let folded = model.fold_for_inference();
    let kinds: Vec<LayerKind> = folded.summary().rows.iter().map(|r| r.kind).collect();
    let count = |kind| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count(LayerKind::Folded), 1, "{kinds:?}");
    assert_eq!(count(LayerKind::Activation), 1, "{kinds:?}");
    let got = folded.predict(&input).unwrap();
    assert!(got.max_abs_diff(&expected).unwrap() < 1e-5);
}

#[test]
fn a_batch_norm_and_activation_after_a_separable_convolution_fold_into_it() {
    let model = Sequential::new(&[7, 7, 3], 4)
        .add(SeparableConv2dConfig {
            use_bias: false,
            ..SeparableConv2dConfig::new(5, 3)
        })
        .unwrap()
        .add(BatchNormConfig::default())
        .unwrap()
        .add(ActivationConfig::new(Activation::Relu6))
        .unwrap()
        .add(FlattenConfig::default())
        .unwrap()
        .build()
        .unwrap();
    let model = with_random_statistics(model, 5);
    let input = batch(&[2, 7, 7, 3], 6);
    let expected = model.predict(&input).unwrap();
    let folded = model.fold_for_inference();
    let kinds: Vec<LayerKind> = folded.summary().rows.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == LayerKind::Folded).count(),
        2,
        "{kinds:?}"
    );
    let got = folded.predict(&input).unwrap();
    assert!(got.max_abs_diff(&expected).unwrap() < 1e-4);
}

#[test]
fn forward_observed_sees_every_layer_output_in_call_order() {
    let model = Sequential::new(&[2, 2, 1], 3)
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(3))
        .unwrap()
        .add(DenseConfig::new(2))
        .unwrap()
        .build()
        .unwrap();
    let x = Var::constant(batch(&[5, 2, 2, 1], 1));
    let ctx = Context::eval(model.store());
    let mut seen = Vec::new();
    let y = model
        .forward_observed(&x, &ctx, &mut |name, output| {
            seen.push((name.to_string(), output.shape().to_vec()))
        })
        .unwrap();
    assert_eq!(
        seen,
        [
            ("flatten".to_string(), vec![5, 4]),
            ("dense".to_string(), vec![5, 3]),
            ("dense_1".to_string(), vec![5, 2])
        ]
    );
    assert_eq!(y.value(), &model.predict(x.value()).unwrap());
}

/// A ReLU convolution of 4 3x3 filters on `side` x `side` x 2 inputs, then 2x2 max
/// pooling, with weights drawn from `seed`: the start of a small CNN.
fn conv_relu_pool(side: usize, seed: u64) -> Sequential {
    Sequential::new(&[side, side, 2], seed)
        .add(Conv2dConfig {
            activation: Activation::Relu,
            ..Conv2dConfig::new(4, 3)
        })
        .unwrap()
        .add(Pool2dConfig::max(2))
        .unwrap()
}

/// `layers` with a flatten and a dense layer of 3 outputs on top.
fn with_dense_head(layers: Sequential) -> Model {
    layers
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(3))
        .unwrap()
        .build()
        .unwrap()
}

/// The Keras MNIST CNN's shape in small: two convolutions (ReLU, then none), each read
/// only by a max pooling, which `Model::forward` fuses; `forward_observed` runs every
/// layer on its own. Both give the same bits (outputs, and gradients of the kernels and
/// of the input) but for the convolutions' bias gradients, which the fused op sums
/// over the pooled gradient, the same values in another order: they agree within f32
/// rounding. The fused tape has one op fewer per fused pair.
#[test]
fn convolutions_read_only_by_a_max_pooling_are_fused_with_the_same_numbers() {
    let second_block = conv_relu_pool(9, 6)
        .add(Conv2dConfig {
            padding: Padding::Same,
            ..Conv2dConfig::new(3, 3)
        })
        .unwrap()
        .add(Pool2dConfig::max(2))
        .unwrap();
    let model = with_dense_head(second_block);
    let pass = |fused: bool| {
        let tape = Tape::new();
        let ctx = Context::train(model.store(), &tape, 0);
        let x = tape.leaf(batch(&[3, 9, 9, 2], 8));
        let y = if fused {
            model.forward(&x, &ctx).unwrap()
        } else {
            model.forward_observed(&x, &ctx, &mut |_, _| {}).unwrap()
        };
        let loss = Loss::SparseCategoricalCrossentropy
            .compute(&y, Targets::Labels(&[0, 2, 1]))
            .unwrap();
        let all = loss.backward().unwrap();
        let grads: Vec<Vec<f32>> = ctx
            .param_grads(&all)
            .into_iter()
            .map(|(_, g)| g.to_vec())
            .chain([all.get(&x).unwrap().to_vec()])
            .collect();
        (y.value().to_vec(), grads, tape.len())
    };
    let ((fused, fused_grads, fused_ops), (plain, plain_grads, plain_ops)) =
        (pass(true), pass(false));
    assert_eq!(fused, plain);
    assert_eq!(
        fused_grads.len(),
        7,
        "three kernels and biases, and the input"
    );
    let convolution_biases = [1, 3];
    for (i, (fused, plain)) in fused_grads.iter().zip(&plain_grads).enumerate() {
        if convolution_biases.contains(&i) {
            // Rounding grows with the magnitudes summed, not with their (cancelling) sum.
            let scale = plain.iter().fold(1e-3f32, |most, p| most.max(p.abs()));
            for (f, p) in fused.iter().zip(plain) {
                assert!((f - p).abs() <= 1e-5 * scale, "bias {i}: {f} against {p}");
            }
        } else {
            assert_eq!(fused, plain, "gradient {i}");
        }
    }
    assert_eq!(fused_ops + 2, plain_ops);
}

#[test]
fn layer_outputs_are_returned_without_changing_the_pass_or_its_gradients() {
    let model = with_dense_head(conv_relu_pool(6, 3));
    let ctx = Context::eval(model.store());
    let pass = |probe: &[&str]| {
        let tape = Tape::new();
        let x = tape.leaf(batch(&[2, 6, 6, 2], 5));
        let (y, outputs) = model.forward_with_outputs(&x, &ctx, probe).unwrap();
        let grads = y.backward().unwrap();
        let output_grads: Vec<Tensor> = outputs
            .iter()
            .map(|o| grads.get(o).unwrap().clone())
            .collect();
        (
            y.value().clone(),
            grads.get(&x).unwrap().clone(),
            outputs,
            output_grads,
        )
    };
    let (plain, plain_grad, _, _) = pass(&[]);
    let (probed, probed_grad, outputs, output_grads) = pass(&["conv2d", "max_pooling2d"]);
    assert_eq!(plain.to_vec(), probed.to_vec());
    assert!(plain_grad.max_abs_diff(&probed_grad).unwrap() < 1e-6);
    assert_eq!(outputs[0].value().shape(), &[2, 4, 4, 4]);
    assert_eq!(outputs[1].value().shape(), &[2, 2, 2, 4]);
    // The score is linear in the pooled maps: their gradient is the dense kernel, summed
    // over the three outputs, for both samples.
    assert_eq!(output_grads[1].shape(), &[2, 2, 2, 4]);
    assert_eq!(
        output_grads[1].as_slice()[..16],
        output_grads[1].as_slice()[16..]
    );
    let err = model
        .forward_with_outputs(&Var::constant(batch(&[1, 6, 6, 2], 1)), &ctx, &["nope"])
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

/// conv -> batch norm -> ReLU6 -> global pooling -> dense, with random statistics.
fn conv_bn_activation_model() -> Model {
    let model = Sequential::new(&[6, 6, 2], 4)
        .add(Conv2dConfig {
            use_bias: false,
            padding: Padding::Same,
            ..Conv2dConfig::new(4, 3)
        })
        .unwrap()
        .add(BatchNormConfig::default())
        .unwrap()
        .add(ActivationConfig::new(Activation::Relu6))
        .unwrap()
        .add(GlobalAvgPoolConfig::default())
        .unwrap()
        .add(DenseConfig::new(3))
        .unwrap()
        .build()
        .unwrap();
    with_random_statistics(model, 5)
}

/// ResNet's stem in small, folded for inference: the convolution takes the batch norm
/// and the ReLU, and the 3x3 stride-2 max pooling that reads them fuses with it too.
#[test]
fn a_folded_convolution_fuses_with_the_max_pooling_after_its_folded_layers() {
    let stem = Sequential::new(&[10, 10, 3], 4)
        .add(Conv2dConfig {
            use_bias: false,
            padding: Padding::Same,
            strides: [2, 2],
            ..Conv2dConfig::new(4, 3)
        })
        .unwrap()
        .add(BatchNormConfig::default())
        .unwrap()
        .add(ActivationConfig::new(Activation::Relu))
        .unwrap()
        .add(Pool2dConfig {
            strides: Some([2, 2]),
            padding: Padding::Same,
            ..Pool2dConfig::max(3)
        })
        .unwrap();
    let model = with_dense_head(stem);
    let folded = with_random_statistics(model, 2).fold_for_inference();
    let pass = |fused: bool| {
        let tape = Tape::new();
        let x = tape.leaf(batch(&[2, 10, 10, 3], 3));
        let ctx = Context::eval(folded.store());
        let y = if fused {
            folded.forward(&x, &ctx).unwrap()
        } else {
            folded.forward_observed(&x, &ctx, &mut |_, _| {}).unwrap()
        };
        let grads = y.sum_all().backward().unwrap();
        (
            y.value().to_vec(),
            grads.get(&x).unwrap().to_vec(),
            tape.len(),
        )
    };
    let ((fused, fused_grad, fused_ops), (plain, plain_grad, plain_ops)) =
        (pass(true), pass(false));
    assert_eq!(fused, plain);
    assert_eq!(fused_grad, plain_grad);
    assert_eq!(fused_ops + 1, plain_ops);
}

#[test]
fn a_folded_model_gives_the_last_folded_layers_output_and_its_gradient() {
    let output_and_gradient = |model: &Model| {
        let tape = Tape::new();
        let x = tape.leaf(batch(&[1, 6, 6, 2], 9));
        let ctx = Context::eval(model.store());
        let (y, outputs) = model
            .forward_with_outputs(&x, &ctx, &["activation"])
            .unwrap();
        let grads = y.sum_all().backward().unwrap();
        let gradient = grads
            .get(&outputs[0])
            .expect("the gradient reaches the probed layer")
            .clone();
        (outputs[0].value().clone(), gradient)
    };
    let (plain_value, plain_gradient) = output_and_gradient(&conv_bn_activation_model());
    let folded = conv_bn_activation_model().fold_for_inference();
    let (folded_value, folded_gradient) = output_and_gradient(&folded);
    assert!(plain_value.max_abs_diff(&folded_value).unwrap() < 1e-5);
    assert!(plain_gradient.max_abs_diff(&folded_gradient).unwrap() < 1e-6);
    assert!(plain_gradient.as_slice().iter().any(|&g| g != 0.0));
    // The convolution's own output and the batch norm's no longer exist once folded.
    let x = Var::constant(batch(&[1, 6, 6, 2], 9));
    let ctx = Context::eval(folded.store());
    for gone in ["conv2d", "batch_normalization"] {
        let err = folded
            .forward_with_outputs(&x, &ctx, &[gone])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(gone) && err.contains("ask for activation"),
            "{err}"
        );
    }
    assert_eq!(
        folded.probed_layers(),
        ["activation", "global_average_pooling2d", "dense"]
    );
}

/// Predictions (nothing recorded) run on kernels prepared once per weight change: the
/// same bits as a recorded pass, before and after the weights change in each way a
/// store allows, and under a frozen layer in a training pass.
#[test]
fn inference_prepares_each_kernel_once_per_weight_change() {
    let same = |activation| same_3x3(32, activation);
    let depthwise = DepthwiseConv2dConfig {
        padding: Padding::Same,
        depth_multiplier: 2,
        activation: Activation::Relu6,
        ..DepthwiseConv2dConfig::new(3)
    };
    let separable = SeparableConv2dConfig {
        activation: Activation::Swish,
        ..SeparableConv2dConfig::new(16, 3)
    };
    // Two Winograd layers (3x3, 32 channels), the first fused with its pooling, then a
    // depthwise and a separable convolution (nothing prepared: their stored kernels),
    // and a dense head (its stored kernel too).
    let mut model = Sequential::new(&[8, 8, 32], 1)
        .add(same(Activation::Relu))
        .unwrap()
        .add(Pool2dConfig::max(2))
        .unwrap()
        .add(same(Activation::Linear))
        .unwrap()
        .add(depthwise)
        .unwrap()
        .add(separable)
        .unwrap()
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(5))
        .unwrap()
        .build()
        .unwrap();
    let x = batch(&[2, 8, 8, 32], 3);
    let recorded = |model: &Model| {
        let tape = Tape::new();
        let ctx = Context::train(model.store(), &tape, 0);
        let y = model.forward(&Var::constant(x.clone()), &ctx).unwrap();
        assert!(tape.len() > 1, "the pass recorded its ops");
        y.value().to_vec()
    };
    let first = model.predict(&x).unwrap().to_vec();
    assert_eq!(first, recorded(&model));
    assert_eq!(model.predict(&x).unwrap().to_vec(), first, "kept");
    let kernels: Vec<ParamId> = ["conv2d/kernel", "conv2d_1/kernel"]
        .iter()
        .map(|name| model.store().id(name).unwrap())
        .collect();
    // In place, as optimizers write.
    for v in model.store_mut().value_mut(kernels[0]).as_mut_slice() {
        *v *= -0.5;
    }
    let second = model.predict(&x).unwrap().to_vec();
    assert_ne!(second, first);
    assert_eq!(second, recorded(&model));
    // A new value, as loading weights does.
    let doubled = model
        .store()
        .value(kernels[1])
        .array()
        .mapv(|v| v * 2.0)
        .into();
    model.store_mut().set_value(kernels[1], doubled).unwrap();
    let third = model.predict(&x).unwrap().to_vec();
    assert_ne!(third, second);
    assert_eq!(third, recorded(&model));
    // Frozen layers on constant input in a training pass: nothing recorded, same bits.
    let frozen: Vec<String> = model.layer_names().iter().map(|n| n.to_string()).collect();
    let frozen: Vec<&str> = frozen.iter().map(String::as_str).collect();
    model.set_trainable(&frozen, false).unwrap();
    let tape = Tape::new();
    let ctx = Context::train(model.store(), &tape, 0);
    let y = model.forward(&Var::constant(x.clone()), &ctx).unwrap();
    assert_eq!(tape.len(), 0);
    assert_eq!(y.value().to_vec(), third);
}

#[test]
fn predictions_in_chunks_give_the_bits_of_one_pass() {
    // A stride-2 stem (im2col), an inverted residual block (1x1 expand, depthwise, 1x1
    // project, sum), a Winograd layer with its pooling, and a dense head.
    let mut g = Graph::new(4);
    let x = g.input(&[24, 24, 8]);
    let conv = |filters, kernel, activation| Conv2dConfig {
        padding: Padding::Same,
        activation,
        ..Conv2dConfig::new(filters, kernel)
    };
    let stem = g
        .call(
            &Conv2dConfig {
                strides: [2, 2],
                ..conv(32, 3, Activation::Linear)
            },
            &[x],
        )
        .unwrap();
    let stem = g.call(&BatchNormConfig::default(), &[stem]).unwrap();
    let stem = g
        .call(&ActivationConfig::new(Activation::Relu6), &[stem])
        .unwrap();
    let expand = g.call(&conv(96, 1, Activation::Relu6), &[stem]).unwrap();
    let depthwise = DepthwiseConv2dConfig {
        padding: Padding::Same,
        activation: Activation::Relu6,
        ..DepthwiseConv2dConfig::new(3)
    };
    let depthwise = g.call(&depthwise, &[expand]).unwrap();
    let project = g
        .call(&conv(32, 1, Activation::Linear), &[depthwise])
        .unwrap();
    let sum = g.call(&AddConfig::default(), &[stem, project]).unwrap();
    let wide = g.call(&conv(32, 3, Activation::Relu), &[sum]).unwrap();
    let pooled = g.call(&Pool2dConfig::max(2), &[wide]).unwrap();
    let pooled = g.call(&GlobalAvgPoolConfig::default(), &[pooled]).unwrap();
    let logits = g.call(&DenseConfig::new(10), &[pooled]).unwrap();
    let model = g.build(logits).unwrap();
    let x = batch(&[30, 24, 24, 8], 5);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let footprint = InferenceFootprint::of(&model);
            let chunk = footprint.images_per_chunk(30);
            assert!(chunk < 30, "the batch goes in chunks ({chunk} images)");
            // The dense head runs once over the batch, after the global pooling.
            assert_eq!(footprint.head, Some(pooled));
            let predicted = model.predict(&x).unwrap();
            assert_eq!(predicted.shape(), [30, 10]);
            assert_eq!(
                predicted.to_vec(),
                one_pass(&model, &x),
                "{threads} threads"
            );
        });
    }
    // Called from outside the pool, every chunk runs on a pool thread: each must take
    // the caller's kernel and precision, which change the bits.
    let auto = model.predict(&x).unwrap().to_vec();
    let im2col = with_kernel_3x3(Kernel3x3::Im2col, || model.predict(&x)).unwrap();
    assert_ne!(im2col.to_vec(), auto);
    let expected = with_kernel_3x3(Kernel3x3::Im2col, || one_pass(&model, &x));
    assert_eq!(im2col.to_vec(), expected, "im2col");
    if Precision::bf16_available() {
        let bf16 = with_precision(Precision::Bf16, || model.predict(&x)).unwrap();
        assert_ne!(bf16.to_vec(), auto);
        let expected = with_precision(Precision::Bf16, || one_pass(&model, &x));
        assert_eq!(bf16.to_vec(), expected, "bf16");
    }
}

/// `model` on `x` in one eval pass over the whole batch, on this thread's settings.
fn one_pass(model: &Model, x: &Tensor) -> Vec<f32> {
    let ctx = Context::eval(model.store());
    let y = no_grad(|| model.forward(&Var::constant(x.clone()), &ctx)).unwrap();
    y.value().to_vec()
}
