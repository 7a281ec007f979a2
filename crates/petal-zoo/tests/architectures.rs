//! Parameter counts against the published totals, the options' effect on the model's
//! end, and save/load round trips.

use petal_nn::layers::{Activation, LayerKind};
use petal_nn::Model;
use petal_tensor::Tensor;
use petal_zoo::{
    efficientnet_lite0, lenet5, mobilenet_v2, resnet18, resnet50, vgg16, Arch, Options, Pooling,
};

fn counts(model: &Model) -> (usize, usize) {
    let store = model.store();
    (store.trainable_count(), store.non_trainable_count())
}

#[test]
fn imagenet_models_have_the_published_parameter_counts() {
    let options = Options::default();
    // (trainable, BatchNorm moving statistics)
    assert_eq!(counts(&resnet18(&options).unwrap()), (11_689_512, 9_600));
    assert_eq!(counts(&resnet50(&options).unwrap()), (25_557_032, 53_120));
    assert_eq!(
        counts(&mobilenet_v2(&options).unwrap()),
        (3_504_872, 34_112)
    );
    assert_eq!(
        counts(&efficientnet_lite0(&options).unwrap()),
        (4_652_008, 42_016)
    );
    assert_eq!(counts(&vgg16(&options).unwrap()), (138_357_544, 0));
    let lenet = Options {
        input_shape: [32, 32, 1],
        classes: 10,
        ..options
    };
    assert_eq!(counts(&lenet5(&lenet).unwrap()), (61_706, 0));
}

#[test]
fn options_choose_the_end_of_the_model() {
    let small = Options {
        input_shape: [64, 64, 3],
        ..Options::default()
    };
    let features = |pooling| Options {
        include_top: false,
        pooling,
        ..small.clone()
    };
    let model = resnet50(&features(Pooling::None)).unwrap();
    assert_eq!(model.output_shape(), &[2, 2, 2048]);
    assert!(model.store().id("fc/kernel").is_none());
    let model = resnet50(&features(Pooling::Max)).unwrap();
    assert_eq!(model.output_shape(), &[2048]);
    assert_eq!(model.layer_names().last(), Some(&"max_pool_flatten"));
    let model = mobilenet_v2(&features(Pooling::Avg)).unwrap();
    assert_eq!(model.output_shape(), &[1280]);

    let probabilities = Options {
        classes: 7,
        classifier_activation: Some(Activation::Softmax),
        ..small
    };
    let model = efficientnet_lite0(&probabilities).unwrap();
    assert_eq!(model.output_shape(), &[7]);
    let p = model.predict(&Tensor::ones(&[2, 64, 64, 3])).unwrap();
    for row in p.as_slice().chunks(7) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

/// Saves a model, loads the file into the same architecture built from another seed,
/// and checks both give the same parameters and predictions.
fn round_trip(build: impl Fn(&Options) -> petal_nn::Result<Model>, options: &Options) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    let original = build(options).unwrap();
    original.save_weights(&path).unwrap();
    let mut copy = build(&Options {
        seed: 99,
        ..options.clone()
    })
    .unwrap();
    let x = Tensor::from_vec(
        &[
            1,
            options.input_shape[0],
            options.input_shape[1],
            options.input_shape[2],
        ],
        (0..options.input_shape.iter().product::<usize>())
            .map(|i| (i % 17) as f32 / 17.0)
            .collect(),
    )
    .unwrap();
    assert_ne!(original.predict(&x).unwrap(), copy.predict(&x).unwrap());
    copy.load_weights(&path).unwrap();
    for ((_, a), (_, b)) in original.store().iter().zip(copy.store().iter()) {
        assert_eq!((&a.name, &a.value), (&b.name, &b.value));
    }
    assert_eq!(original.predict(&x).unwrap(), copy.predict(&x).unwrap());
}

#[test]
fn every_architecture_survives_a_save_load_round_trip() {
    let small = Options {
        include_top: false,
        pooling: Pooling::Avg,
        input_shape: [64, 64, 3],
        ..Options::default()
    };
    for arch in Arch::ALL {
        round_trip(|o| arch.build(o), &small);
    }
    let lenet = Options {
        input_shape: [32, 32, 1],
        classes: 10,
        ..Options::default()
    };
    round_trip(lenet5, &lenet);
}

/// Folded, the ImageNet models keep no batch norm, and each inverted residual block
/// that expands runs its expansion and depthwise convolution as one layer: 16 of
/// MobileNetV2's 17 blocks and 15 of EfficientNet-Lite0's 16 (the first of each does
/// not expand), none in ResNet18.
#[test]
fn folding_removes_every_batch_norm_of_the_imagenet_models() {
    let options = Options::default();
    for (build, expanding_blocks) in [
        (resnet18 as fn(&Options) -> _, 0),
        (mobilenet_v2, 16),
        (efficientnet_lite0, 15),
    ] {
        let folded = build(&options).unwrap().fold_for_inference();
        let kinds: Vec<LayerKind> = folded.summary().rows.iter().map(|r| r.kind).collect();
        let count = |kind| kinds.iter().filter(|k| **k == kind).count();
        assert!(!kinds.contains(&LayerKind::BatchNorm), "{kinds:?}");
        assert!(kinds.contains(&LayerKind::Folded));
        assert_eq!(
            count(LayerKind::ExpandDepthwise),
            expanding_blocks,
            "{kinds:?}"
        );
    }
}
