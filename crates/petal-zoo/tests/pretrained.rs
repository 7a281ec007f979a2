//! Pretrained weights: torchvision fixtures reproduce PyTorch's logits, the real
//! EfficientNet-Lite0 weights load completely and classify a photo, and bad files are
//! reported in full without touching the model.
//!
//! The files live in `../shared` beside the project; a test whose file is absent prints
//! a note and passes.

use std::path::{Path, PathBuf};

use petal_nn::layers::Activation;
use petal_nn::weights::{read_tensors, WeightsError};
use petal_zoo::pretrained::Preprocessing;
use petal_zoo::{load_pretrained, Arch, Options};

/// `../shared/<relative>` beside the project, or `None` (with a note) when absent.
fn shared(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative);
    if path.exists() {
        Some(path)
    } else {
        println!("skipped: {} is absent", path.display());
        None
    }
}

/// Builds `arch`, loads the fixture `name` and compares its logits with PyTorch's, as
/// built and with its batch norms folded into the convolutions; returns the larger
/// max |petal - torch| / max |torch|.
fn fixture_error(arch: Arch, name: &str) -> Option<f32> {
    let weights = shared(&format!("fixtures/zoo/{name}.safetensors"))?;
    let io = read_tensors(&shared(&format!("fixtures/zoo/{name}.io.safetensors"))?).unwrap();
    let mut model = arch.build(&Options::default()).unwrap();
    load_pretrained(&mut model, arch, &weights).unwrap();
    let torch = &io["logits"];
    let largest = torch.as_slice().iter().fold(0f32, |m, v| m.max(v.abs()));
    let logits = model.predict(&io["input_nhwc"]).unwrap();
    let error = logits.max_relative_diff(torch).unwrap();
    let folded = model.fold_for_inference();
    let folded_logits = folded.predict(&io["input_nhwc"]).unwrap();
    let folded_error = folded_logits.max_relative_diff(torch).unwrap();
    println!(
        "{name}: max |petal - torch| = {error:e} (folded: {folded_error:e}) x max |torch logit| ({largest})"
    );
    Some(error.max(folded_error))
}

#[test]
fn resnet18_matches_torchvision() {
    if let Some(error) = fixture_error(Arch::ResNet18, "resnet18") {
        assert!(error <= 1e-4, "relative error {error}");
    }
}

#[test]
fn mobilenet_v2_matches_torchvision() {
    if let Some(error) = fixture_error(Arch::MobileNetV2, "mobilenet_v2") {
        assert!(error <= 1e-4, "relative error {error}");
    }
}

#[test]
fn mismatches_are_all_reported_and_change_nothing() {
    let Some(weights) = shared("fixtures/zoo/resnet18.safetensors") else {
        return;
    };
    // Ten classes: the classifier's shapes differ from the file's.
    let ten = Options {
        classes: 10,
        ..Options::default()
    };
    let mut model = Arch::ResNet18.build(&ten).unwrap();
    let before: Vec<_> = model.store().iter().map(|(_, p)| p.value.clone()).collect();
    let Err(WeightsError::Mismatch {
        missing,
        unused,
        mismatched,
        ..
    }) = load_pretrained(&mut model, Arch::ResNet18, &weights)
    else {
        panic!("a 10-class model must not load 1000-class weights");
    };
    assert!(missing.is_empty() && unused.is_empty());
    let names: Vec<&str> = mismatched.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["fc.weight", "fc.bias"]);
    assert_eq!(mismatched[0].1, vec![512, 10]);
    assert_eq!(mismatched[0].2, vec![512, 1000]);
    let after: Vec<_> = model.store().iter().map(|(_, p)| p.value.clone()).collect();
    assert!(before == after);

    // ResNet18 weights for a MobileNetV2: everything is missing or unused.
    let mut other = Arch::MobileNetV2.build(&Options::default()).unwrap();
    let Err(WeightsError::Mismatch {
        missing, unused, ..
    }) = load_pretrained(&mut other, Arch::MobileNetV2, &weights)
    else {
        panic!("ResNet18 weights must not load into MobileNetV2");
    };
    assert!(missing.contains(&"features.0.0.weight".to_string()));
    assert!(unused.contains(&"layer1.0.conv1.weight".to_string()));

    // Without its top, the model ignores the file's classifier.
    let features = Options {
        include_top: false,
        ..Options::default()
    };
    let mut model = Arch::ResNet18.build(&features).unwrap();
    load_pretrained(&mut model, Arch::ResNet18, &weights).unwrap();
}

#[test]
fn efficientnet_lite0_weights_load_completely() {
    let Some(weights) = shared("weights/efficientnet_lite0.safetensors") else {
        return;
    };
    let mut model = Arch::EfficientNetLite0.build(&Options::default()).unwrap();
    // Strict: any missing, unused or mis-shaped tensor is an error.
    load_pretrained(&mut model, Arch::EfficientNetLite0, &weights).unwrap();
}

/// The real EfficientNet-Lite0 (batch norms folded) on `photo`: its top-1 class name and
/// probability, or `None` when the shared files are absent.
fn efficientnet_lite0_top1(photo: &str) -> Option<(String, f32)> {
    let (weights, photo, classes) = (
        shared("weights/efficientnet_lite0.safetensors")?,
        shared(photo)?,
        shared("weights/imagenet_classes.txt")?,
    );
    let options = Options {
        classifier_activation: Some(Activation::Softmax),
        ..Options::default()
    };
    let mut model = Arch::EfficientNetLite0.build(&options).unwrap();
    load_pretrained(&mut model, Arch::EfficientNetLite0, &weights).unwrap();
    let image = image::open(&photo).unwrap();
    let probabilities = model
        .fold_for_inference()
        .predict(&Preprocessing::EfficientNetLite.apply(&image).unwrap())
        .unwrap()
        .to_vec();
    let (class, p) = probabilities
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let names = std::fs::read_to_string(classes).unwrap();
    let name = names.lines().nth(class).unwrap().to_string();
    println!("{}: class {class} ({name}), p = {p}", photo.display());
    Some((name, p))
}

#[test]
fn efficientnet_lite0_classifies_an_espresso() {
    if let Some((name, p)) = efficientnet_lite0_top1("images/coffee.png") {
        assert_eq!(name, "espresso");
        assert!(p > 0.9, "p = {p}");
    }
}

#[test]
fn efficientnet_lite0_sees_a_cat_in_chelsea() {
    if let Some((name, _)) = efficientnet_lite0_top1("images/chelsea.png") {
        let first = name.split(',').next().unwrap_or_default();
        assert!(
            ["tabby", "tiger cat", "Egyptian cat"].contains(&first),
            "top-1 {name}"
        );
    }
}
