//! Saliency maps on models whose answer is known by construction.

use petal_nn::layers::{
    Activation, Conv2dConfig, DenseConfig, FlattenConfig, GlobalAvgPoolConfig, Pool2dConfig,
};
use petal_nn::{Model, Sequential};
use petal_tensor::Tensor;
use petal_viz::saliency::{grad_cam, smooth_grad, vanilla_gradient, SmoothGradConfig};

fn set(model: &mut Model, layer: &str, values: &[Tensor]) {
    let ids = model.layer_params(layer).unwrap();
    for (id, value) in ids.into_iter().zip(values) {
        model.store_mut().set_value(id, value.clone()).unwrap();
    }
}

fn argmax(map: &Tensor) -> usize {
    map.as_slice()
        .iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        )
        .0
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
    assert_eq!(object.shape(), &[8, 8]);
    let peak = argmax(&object);
    assert!(
        (4..6).contains(&(peak / 8)) && (2..4).contains(&(peak % 8)),
        "peak at {peak}"
    );
    // Far from the object the map is zero.
    assert_eq!(object.as_slice()[0], 0.0);
    assert_eq!(object.as_slice()[7 * 8 + 7], 0.0);
    let background = grad_cam(&model, &image, 1, "detectors").unwrap();
    assert!(background.as_slice()[0] > 0.0);
    assert!(background.as_slice()[4 * 8 + 2] < background.as_slice()[0]);
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
