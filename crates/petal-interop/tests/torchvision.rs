//! torchvision's MobileNetV2 as torch 2.15 saved it (`../shared/fixtures/zoo/`): every
//! tensor equals the safetensors fixture's bit for bit, and the model loaded from the
//! `.pth` (directly, or converted to Petal's safetensors) reproduces PyTorch's logits.
//! Without `../shared` the tests print a note and pass.

use std::path::{Path, PathBuf};

use petal_interop::pth::{read_state_dict, ReadOptions};
use petal_interop::{convert_to_safetensors, load_pth, ConvertOptions};
use petal_nn::weights::{load_weights, read_tensor_file, read_tensors};
use petal_nn::Model;
use petal_zoo::{Arch, Options};

/// `../shared/fixtures/zoo/<name>` beside the project, or `None` (with a note).
fn shared(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/zoo")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        println!("skipped: {} is absent", path.display());
        None
    }
}

/// max |petal - torch| / max |torch| of the model's logits on the fixture's input.
fn logits_error(model: &Model) -> Option<f32> {
    let io = read_tensors(&shared("mobilenet_v2.io.safetensors")?).unwrap();
    let torch = &io["logits"];
    let largest = torch.as_slice().iter().fold(0f32, |m, v| m.max(v.abs()));
    let logits = model.predict(&io["input_nhwc"]).unwrap();
    Some(logits.max_abs_diff(torch).unwrap() / largest)
}

#[test]
fn every_tensor_equals_the_safetensors_fixture_bit_for_bit() {
    let (Some(pth), Some(reference)) = (
        shared("mobilenet_v2.pth"),
        shared("mobilenet_v2.safetensors"),
    ) else {
        return;
    };
    let counter = |name: &str| name.ends_with("num_batches_tracked");
    let reference = read_tensor_file(&reference, counter).unwrap().tensors;
    let mut state = read_state_dict(&pth, &ReadOptions::default()).unwrap();
    state.retain(|name, _| !counter(name));
    assert_eq!(
        state.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    for (name, expected) in &reference {
        let got = &state[name].tensor;
        assert_eq!(got.shape(), expected.shape(), "{name}");
        let bits =
            |t: &petal_tensor::Tensor| t.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(bits(got) == bits(expected), "{name} differs");
    }
}

#[test]
fn mobilenet_v2_from_pth_matches_torchvision() {
    let Some(pth) = shared("mobilenet_v2.pth") else {
        return;
    };
    let mut model = Arch::MobileNetV2.build(&Options::default()).unwrap();
    load_pth(&mut model, Arch::MobileNetV2, &pth, &ReadOptions::default()).unwrap();
    let Some(error) = logits_error(&model) else {
        return;
    };
    println!("mobilenet_v2.pth: max |petal - torch| = {error:e} x max |torch logit|");
    assert!(error <= 1e-4, "relative error {error}");

    // Converted to Petal's names and layout, the file loads as plain Petal weights.
    let folder = tempfile::tempdir().unwrap();
    let output = folder.path().join("mobilenet_v2.safetensors");
    let options = ConvertOptions {
        arch: Some(Arch::MobileNetV2),
        ..ConvertOptions::default()
    };
    let written = convert_to_safetensors(&pth, &output, &options).unwrap();
    assert_eq!(written.tensors, model.store().iter().count());
    let mut reloaded = Arch::MobileNetV2.build(&Options::default()).unwrap();
    load_weights(reloaded.store_mut(), &output).unwrap();
    let converted_error = logits_error(&reloaded).unwrap();
    assert!(converted_error <= 1e-4, "relative error {converted_error}");

    // The wrong architecture: every problem reported, as for safetensors.
    let mut resnet = Arch::ResNet18.build(&Options::default()).unwrap();
    let message = load_pth(&mut resnet, Arch::ResNet18, &pth, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("mobilenet_v2.pth: the weights do not match the model"),
        "{message}"
    );
}
