//! Saliency maps on models whose answer is known by construction.

use petal_nn::layers::{
    Activation, ActivationConfig, BatchNormConfig, Conv2dConfig, DenseConfig, FlattenConfig,
    GlobalAvgPoolConfig, Pool2dConfig,
};
use petal_nn::{no_grad, Graph, Model, Sequential};
use petal_tensor::{Padding, Tensor};
use petal_viz::saliency::{
    grad_cam, last_feature_map_layer, smooth_grad, vanilla_gradient, SmoothGradConfig,
};
use petal_viz::{overlay, tensor_image, Colormap, Scaling, VizError};

fn set(model: &mut Model, layer: &str, values: &[Tensor]) {
    let ids = model.layer_params(layer).unwrap();
    for (id, value) in ids.into_iter().zip(values) {
        model.store_mut().set_value(id, value.clone()).unwrap();
    }
}

#[test]
fn a_model_that_reads_one_pixel_lights_that_pixel() {
    // 6x6 RGB input; class 1's score is 3 * green(2, 4) and nothing else.
    let mut model = Sequential::new(&[6, 6, 3], 0)
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig::new(2))
        .unwrap()
        .build()
        .unwrap();
    let mut kernel = vec![0.0; 108 * 2];
    kernel[((2 * 6 + 4) * 3 + 1) * 2 + 1] = 3.0;
    set(
        &mut model,
        "dense",
        &[
            Tensor::from_vec(&[108, 2], kernel).unwrap(),
            Tensor::zeros(&[2]),
        ],
    );
    let image = Tensor::from_vec(&[6, 6, 3], (0..108).map(|v| v as f32 / 108.0).collect()).unwrap();
    let lit = 2 * 6 + 4;
    for map in [
        vanilla_gradient(&model, &image, 1).unwrap(),
        smooth_grad(&model, &image, 1, &SmoothGradConfig::default()).unwrap(),
    ] {
        assert_eq!(map.shape(), &[6, 6]);
        for (p, &v) in map.as_slice().iter().enumerate() {
            assert_eq!(v, if p == lit { 3.0 } else { 0.0 }, "pixel {p}");
        }
    }
    // Class 0 reads nothing; a class the model lacks is an error saying so.
    assert!(vanilla_gradient(&model, &image, 0)
        .unwrap()
        .as_slice()
        .iter()
        .all(|&v| v == 0.0));
    let err = vanilla_gradient(&model, &image, 2).unwrap_err().to_string();
    assert!(
        err.contains("class 2") && err.contains("2 outputs"),
        "{err}"
    );
}

/// Two 1x1 detectors on a gray image: "object" fires on bright pixels, "background" on
/// dark ones; pooled, averaged, and class k reads detector k.
fn object_model() -> Model {
    let mut model = Sequential::new(&[8, 8, 1], 0)
        .add(Conv2dConfig {
            activation: Activation::Relu,
            name: Some("detectors".into()),
            ..Conv2dConfig::new(2, 1)
        })
        .unwrap()
        .add(Pool2dConfig::max(2))
        .unwrap()
        .add(GlobalAvgPoolConfig::default())
        .unwrap()
        .add(DenseConfig::new(2))
        .unwrap()
        .build()
        .unwrap();
    set(
        &mut model,
        "detectors",
        &[
            Tensor::from_vec(&[1, 1, 1, 2], vec![1.0, -1.0]).unwrap(),
            Tensor::from_vec(&[2], vec![0.0, 1.0]).unwrap(),
        ],
    );
    set(
        &mut model,
        "dense",
        &[
            Tensor::from_vec(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]).unwrap(),
            Tensor::zeros(&[2]),
        ],
    );
    model
}

#[test]
fn grad_cam_points_at_the_object_for_its_class_and_away_for_the_background() {
    let model = object_model();
    // A bright 2x2 object at rows 4-5, columns 2-3 of a dark image.
    let mut pixels = vec![0.0; 64];
    for (y, x) in [(4, 2), (4, 3), (5, 2), (5, 3)] {
        pixels[y * 8 + x] = 1.0;
    }
    let image = Tensor::from_vec(&[8, 8, 1], pixels).unwrap();
    let object = grad_cam(&model, &image, 0, "detectors").unwrap();
    assert_eq!(object.map.shape(), &[8, 8]);
    assert_eq!(object.coarse.shape(), &[8, 8]);
    let (row, column) = object.peak();
    assert!(
        (4..6).contains(&row) && (2..4).contains(&column),
        "peak at {row}, {column}"
    );
    // Far from the object the map is zero.
    assert_eq!(object.map.as_slice()[0], 0.0);
    assert_eq!(object.map.as_slice()[7 * 8 + 7], 0.0);
    let background = grad_cam(&model, &image, 1, "detectors").unwrap();
    assert!(background.map.as_slice()[0] > 0.0);
    assert!(background.map.as_slice()[4 * 8 + 2] < background.map.as_slice()[0]);
    let err = grad_cam(&model, &image, 0, "conv9")
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv9"), "{err}");
    let err = grad_cam(&model, &image, 0, "dense")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dense") && err.contains("feature maps"),
        "{err}"
    );
}

/// 16x16 gray images: a convolution, a batch norm and a ReLU named "evidence" find
/// bright 3x3 patches (channel 0) and dim background (channel 1); pooled over the image,
/// class 1 ("a bright patch") reads +5 x patches - 1 x background, class 0 the opposite.
/// Folded for inference, the batch norm and the ReLU move into the convolution.
fn bright_patch_model() -> Model {
    let mut model = Sequential::new(&[16, 16, 1], 0)
        .add(Conv2dConfig {
            padding: Padding::Same,
            ..Conv2dConfig::new(2, 3)
        })
        .unwrap()
        .add(BatchNormConfig::default())
        .unwrap()
        .add(ActivationConfig {
            name: Some("evidence".into()),
            ..ActivationConfig::new(Activation::Relu)
        })
        .unwrap()
        .add(GlobalAvgPoolConfig::default())
        .unwrap()
        .add(DenseConfig::new(2))
        .unwrap()
        .build()
        .unwrap();
    let kernel: Vec<f32> = (0..9).flat_map(|_| [1.0 / 9.0, -1.0 / 9.0]).collect();
    set(
        &mut model,
        "conv2d",
        &[
            Tensor::from_vec(&[3, 3, 1, 2], kernel).unwrap(),
            Tensor::from_vec(&[2], vec![-0.6, 0.3]).unwrap(),
        ],
    );
    set(
        &mut model,
        "dense",
        &[
            Tensor::from_vec(&[2, 2], vec![-5.0, 5.0, 1.0, -1.0]).unwrap(),
            Tensor::zeros(&[2]),
        ],
    );
    model
}

/// A dark image (0.1) with a dim 3x3 patch (0.4) and, when `bright` is given, a bright
/// one (1.0) at those top-left corners.
fn patches(bright: Option<(usize, usize)>, dim: (usize, usize)) -> Tensor {
    let mut pixels = vec![0.1; 256];
    let mut paint = |(y0, x0): (usize, usize), value: f32| {
        for y in y0..y0 + 3 {
            pixels[y * 16 + x0..y * 16 + x0 + 3].fill(value);
        }
    };
    paint(dim, 0.4);
    if let Some(corner) = bright {
        paint(corner, 1.0);
    }
    Tensor::from_vec(&[16, 16, 1], pixels).unwrap()
}

#[test]
fn grad_cam_peaks_in_the_quadrant_holding_the_class_evidence_folded_or_not() {
    let folded = bright_patch_model().fold_for_inference();
    // The class evidence (the bright patch) in each quadrant, a dim decoy opposite.
    let corners = [(2, 3), (3, 10), (10, 2), (11, 11)];
    for (quadrant, &bright) in corners.iter().enumerate() {
        let image = patches(Some(bright), corners[3 - quadrant]);
        let plain = grad_cam(&bright_patch_model(), &image, 1, "evidence").unwrap();
        let fused = grad_cam(&folded, &image, 1, "evidence").unwrap();
        assert!(!plain.is_flat());
        let (row, column) = plain.peak();
        assert_eq!(
            (row / 8) * 2 + column / 8,
            quadrant,
            "peak at {row}, {column}"
        );
        // Folding changes nothing Grad-CAM sees.
        assert!(plain.map.max_abs_diff(&fused.map).unwrap() < 1e-4);
        assert_eq!(fused.peak(), plain.peak());
    }
}

#[test]
fn grad_cam_says_why_when_no_gradient_reaches_the_layer() {
    let image = patches(Some((2, 3)), (11, 11));
    // The convolution's own output and the batch norm's are gone once folded.
    let folded = bright_patch_model().fold_for_inference();
    for gone in ["conv2d", "batch_normalization"] {
        let err = grad_cam(&folded, &image, 1, gone).unwrap_err().to_string();
        assert!(
            err.contains(gone) && err.contains("ask for evidence"),
            "{err}"
        );
    }
    // A layer off the path to the output: the score does not depend on it.
    let mut graph = Graph::new(0);
    let input = graph.input(&[8, 8, 1]);
    let side = Conv2dConfig {
        name: Some("side".into()),
        ..Conv2dConfig::new(2, 3)
    };
    graph.call(&side, &[input]).unwrap();
    let main = graph.call(&Conv2dConfig::new(2, 3), &[input]).unwrap();
    let pooled = graph
        .call(&GlobalAvgPoolConfig::default(), &[main])
        .unwrap();
    let output = graph.call(&DenseConfig::new(2), &[pooled]).unwrap();
    let model = graph.build(output).unwrap();
    let small = Tensor::from_vec(&[8, 8, 1], (0..64).map(|v| v as f32 / 64.0).collect()).unwrap();
    let err = grad_cam(&model, &small, 0, "side").unwrap_err();
    assert!(matches!(err, VizError::NoGradient { .. }), "{err}");
    assert!(err.to_string().contains("side") && err.to_string().contains("does not depend"));
    assert!(grad_cam(&model, &small, 0, "conv2d").is_ok());
    // Nothing recorded: a constant path.
    let err = no_grad(|| grad_cam(&model, &small, 0, "conv2d")).unwrap_err();
    assert!(err.to_string().contains("no_grad"), "{err}");
    let err = no_grad(|| vanilla_gradient(&model, &small, 0)).unwrap_err();
    assert!(matches!(err, VizError::NoGradient { .. }), "{err}");
}

#[test]
fn a_map_without_evidence_is_flagged_flat_and_never_drawn() {
    // No bright patch: nothing speaks for class 1 anywhere, every value is zero.
    let cam = grad_cam(&bright_patch_model(), &patches(None, (2, 3)), 1, "evidence").unwrap();
    assert!(cam.is_flat());
    assert!(cam.coarse.as_slice().iter().all(|&v| v == 0.0));
    let picture = tensor_image(&patches(None, (2, 3)), Scaling::MinMax).unwrap();
    let err = overlay(&picture, &cam.map, Colormap::Jet, 0.5).unwrap_err();
    assert!(err.to_string().contains("constant"), "{err}");
}

#[test]
fn the_default_grad_cam_layer_is_the_last_readable_feature_map_layer() {
    assert_eq!(
        last_feature_map_layer(&bright_patch_model()).as_deref(),
        Some("evidence")
    );
    assert_eq!(
        last_feature_map_layer(&bright_patch_model().fold_for_inference()).as_deref(),
        Some("evidence")
    );
    let flat = Sequential::new(&[4], 0)
        .add(DenseConfig::new(2))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(last_feature_map_layer(&flat), None);
}
