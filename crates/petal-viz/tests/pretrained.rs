//! Grad-CAM on the pretrained EfficientNet-Lite0 (folded for inference) and a real photo.
//! Needs the weights and photos of `/work/shared`; without them the test says `skipped`.

use std::path::{Path, PathBuf};

use petal_data::download::DataConfig;
use petal_viz::saliency::{grad_cam, last_feature_map_layer};
use petal_zoo::pretrained::{weights_named, Classifier, WeightsFolder};

fn shared() -> Option<PathBuf> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let needed = [
        "weights/efficientnet_lite0.safetensors",
        "weights/imagenet_classes.txt",
        "images/chelsea.png",
    ];
    if needed.iter().all(|f| shared.join(f).is_file()) {
        Some(shared)
    } else {
        println!(
            "skipped: the weights and photos of {} are absent",
            shared.display()
        );
        None
    }
}

#[test]
fn grad_cam_of_the_folded_pretrained_model_lights_the_cat() {
    let Some(shared) = shared() else { return };
    let folder = WeightsFolder {
        folder: shared.join("weights"),
        data: DataConfig::from_env(shared.join("cache")),
    };
    let classifier =
        Classifier::load(weights_named("efficientnet-lite0").unwrap(), &folder, None).unwrap();
    let photo = shared.join("images/chelsea.png");
    let (_, best) = classifier.classify(&photo, 1).unwrap();
    assert!(best[0].name.contains("cat"), "{}", best[0].name);
    let layer = last_feature_map_layer(&classifier.model).unwrap();
    assert_eq!(layer, "top_activation");
    let image = classifier.input(&photo).unwrap();
    let cam = grad_cam(&classifier.model, &image, best[0].class, &layer).unwrap();
    assert_eq!(cam.coarse.shape(), &[7, 7]);
    assert_eq!(cam.map.shape(), &[224, 224]);
    let values = cam.coarse.as_slice();
    let (lo, hi) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(
        !cam.is_flat() && hi - lo > 0.5 * hi,
        "map from {lo} to {hi}"
    );
    // The cat fills the middle of the photo: the peak is in the central 5x5 cells
    // (of 7x7), not on the border.
    let (row, column) = cam.peak();
    let cell = |v: usize| v * 7 / 224;
    assert!(
        (1..6).contains(&cell(row)) && (1..6).contains(&cell(column)),
        "peak at pixel {row}, {column}; map {values:?}"
    );
}
