//! torchvision's MobileNetV2 as torch 2.15 saved it (`../shared/fixtures/zoo/`): every
//! tensor equals the safetensors fixture's bit for bit, and the model loaded from the
//! `.pth` (directly, or converted to Petal's safetensors) reproduces PyTorch's logits;
//! published like a torchvision catalog entry on a local HTTP server, it downloads,
//! verifies, converts once and classifies as `cargo xtask classify` does.
//! Without `../shared` the tests print a note and pass.

use std::path::Path;

use petal_data::download::DataConfig;
use petal_interop::pth::{read_state_dict, ReadOptions};
use petal_interop::{
    convert_to_safetensors, fetch_weights, load_classifier, load_pth, ConvertOptions,
};
use petal_nn::weights::{load_weights, read_tensor_file, read_tensors};
use petal_nn::Model;
use petal_zoo::pretrained::{Preprocessing, PretrainedWeights, WeightsFolder, WeightsFormat};
use petal_zoo::{Arch, Options};
use sha2::{Digest, Sha256};

mod common;
#[path = "../../petal-data/tests/common/server.rs"]
mod server;

use common::zoo_fixture;

/// max |petal - torch| / max |torch| of the model's logits on the fixture's input.
fn logits_error(model: &Model) -> Option<f32> {
    let io = read_tensors(&zoo_fixture("mobilenet_v2.io.safetensors")?).unwrap();
    let logits = model.predict(&io["input_nhwc"]).unwrap();
    logits.max_relative_diff(&io["logits"])
}

#[test]
fn every_tensor_equals_the_safetensors_fixture_bit_for_bit() {
    let (Some(pth), Some(reference)) = (
        zoo_fixture("mobilenet_v2.pth"),
        zoo_fixture("mobilenet_v2.safetensors"),
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
    let Some(pth) = zoo_fixture("mobilenet_v2.pth") else {
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

/// Lowercase hex sha256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A weights folder whose cache is `root/cache`, downloading from URLs (no mirror),
/// holding a class-name file of 1000 names; returns it with the names' entry fields.
fn weights_cache(root: &Path) -> (WeightsFolder, (&'static str, (&'static str, u64))) {
    let data = DataConfig::new(root.join("cache"));
    let folder = WeightsFolder {
        folder: root.join("cache/weights"),
        data,
    };
    let names: String = (0..1000).map(|i| format!("class {i}\n")).collect();
    std::fs::create_dir_all(&folder.folder).unwrap();
    std::fs::write(folder.folder.join("classes.txt"), &names).unwrap();
    let sha256 = Box::leak(sha256_hex(names.as_bytes()).into_boxed_str());
    (folder, ("classes.txt", (sha256, names.len() as u64)))
}

/// A catalog entry for MobileNetV2 weights published as torchvision publishes its own:
/// `mobilenet_v2-<first 10 digits of the sha256 given>.pth` at `<base_url>/<file>`.
fn torchvision_like_entry(
    base_url: &str,
    sha256: &str,
    classes: (&'static str, (&'static str, u64)),
) -> &'static PretrainedWeights {
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    let prefix = &sha256[..10];
    let file_name = leak(format!("mobilenet_v2-{prefix}.pth"));
    Box::leak(Box::new(PretrainedWeights {
        arch: Arch::MobileNetV2,
        name: "mobilenet_v2-fixture",
        file_name,
        format: WeightsFormat::TorchvisionPth,
        sha256: leak(prefix.to_string()),
        size: 0,
        url: Some(leak(format!("{base_url}/{file_name}"))),
        source: "seeded random torchvision MobileNetV2 (../shared/fixtures/zoo)",
        preprocessing: Preprocessing::IMAGENET,
        classes_file: classes.0,
        classes_sha256: classes.1,
        top1_accuracy: 0.0,
    }))
}

/// The files of `folder`, without the downloader's lock files.
fn listing(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_torchvision_checkpoint_downloads_resumes_converts_once_and_classifies() {
    let Some(pth) = zoo_fixture("mobilenet_v2.pth") else {
        return;
    };
    let published = std::fs::read(&pth).unwrap();
    let (url, seen) = server::serve(published.clone(), true);
    let root = tempfile::tempdir().unwrap();
    let (folder, classes) = weights_cache(root.path());
    let entry = torchvision_like_entry(&url, &sha256_hex(&published), classes);
    // An earlier download was interrupted after 100 kB.
    let part = folder.folder.join(format!("{}.part", entry.file_name));
    std::fs::write(&part, &published[..100_000]).unwrap();

    let cache = fetch_weights(&folder, &[entry], None).unwrap();
    assert_eq!(cache, folder.folder);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Some("bytes=100000-".to_string())]
    );
    // Converted once; the checkpoint itself is not kept.
    let converted = entry.files_in(&cache).0;
    assert_eq!(
        listing(&cache),
        [
            "classes.txt",
            "classes.txt.verified",
            entry.weights_file_name().as_str()
        ]
    );
    assert!(entry.verify(&converted).unwrap());
    let written = std::fs::metadata(&converted).unwrap().modified().unwrap();

    // A later run verifies the conversion and fetches nothing.
    fetch_weights(&folder, &[entry], None).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        std::fs::metadata(&converted).unwrap().modified().unwrap(),
        written
    );

    // classify's path: the cached conversion, or the .pth itself, gives PyTorch's logits.
    for weights in [None, Some(pth.as_path())] {
        let classifier = load_classifier(entry, &folder, weights).unwrap();
        assert_eq!(classifier.preprocessing, Preprocessing::IMAGENET);
        assert_eq!(classifier.names[999], "class 999");
        let Some(error) = logits_error(&classifier.model) else {
            return;
        };
        println!("{weights:?}: max |petal - torch| = {error:e} x max |torch logit|");
        assert!(error <= 1e-4, "{weights:?}: relative error {error}");
    }

    // The same tensors converted without the checkpoint's record are not taken for it.
    let Some(plain) = zoo_fixture("mobilenet_v2.safetensors") else {
        return;
    };
    let message = load_classifier(entry, &folder, Some(&plain))
        .err()
        .unwrap()
        .to_string();
    assert!(
        message
            .contains("mobilenet_v2.safetensors: these are not the mobilenet_v2-fixture weights"),
        "{message}"
    );
}

#[test]
fn a_checkpoint_with_the_wrong_checksum_is_refused_and_nothing_is_cached() {
    let served = b"<html>not the checkpoint</html>".to_vec();
    let (url, _seen) = server::serve(served.clone(), true);
    let root = tempfile::tempdir().unwrap();
    let (folder, classes) = weights_cache(root.path());
    let entry = torchvision_like_entry(&url, &"0123456789".repeat(7), classes);
    let message = fetch_weights(&folder, &[entry], None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("mobilenet_v2-0123456789.pth from http://")
            && message.contains("expected a sha256 starting 0123456789")
            && message.contains(&sha256_hex(&served)),
        "{message}"
    );
    assert_eq!(
        listing(&folder.folder),
        ["classes.txt", "classes.txt.verified"]
    );

    // A .pth given by hand is checked the same way.
    let pth = root.path().join("mobilenet_v2.pth");
    std::fs::write(&pth, &served).unwrap();
    let message = load_classifier(entry, &folder, Some(&pth))
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("mobilenet_v2.pth: these are not the mobilenet_v2-fixture weights"),
        "{message}"
    );
}
