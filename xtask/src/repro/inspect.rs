//! Figures of what a trained network does inside: its filters, the feature maps of one
//! input, and saliency maps (vanilla gradient, SmoothGrad, Grad-CAM) of a few inputs.

use petal_nn::layers::LayerKind;
use petal_nn::{no_grad, Context, Model, Var};
use petal_tensor::Tensor;
use petal_train::metrics::predicted_classes;
use petal_viz::saliency::{grad_cam, smooth_grad, vanilla_gradient, SmoothGradConfig};
use petal_viz::{
    feature_map_grid, filter_grid, heatmap_image, overlay, tensor_image, Colormap, Scaling, Tile,
};

use super::figures::{short, Figures};

/// Feature maps shown per layer.
const MAPS_SHOWN: usize = 32;

/// The names of the model's layers of one of `kinds` (`Conv2D`, `MaxPooling2D`, ...), in
/// call order.
pub fn layers_of_kind(model: &Model, kinds: &[LayerKind]) -> Vec<String> {
    model
        .summary()
        .rows
        .into_iter()
        .filter(|r| kinds.contains(&r.kind))
        .map(|r| r.name)
        .collect()
}

/// A filter grid per conv layer in `layers`: `filters_<layer>.png`.
pub fn filters(figures: &mut Figures, model: &Model, layers: &[String]) -> anyhow::Result<()> {
    for layer in layers {
        let ids = model
            .layer_params(layer)
            .ok_or_else(|| anyhow::anyhow!("no layer {layer} in the model"))?;
        let kernel = model.store().value(ids[0]);
        let &[kh, kw, inputs, outputs] = kernel.shape() else {
            anyhow::bail!("{layer} has no conv kernel: {:?}", kernel.shape());
        };
        let how = if inputs == 3 {
            "one colour patch per filter".to_string()
        } else if inputs == 1 {
            "one patch per filter".to_string()
        } else {
            format!(
                "one row per filter (first {}), one patch per input channel",
                outputs.min(32)
            )
        };
        let caption =
            format!("The {outputs} {kh}x{kw} filters of {layer} ({inputs} input channels): {how}");
        let grid = filter_grid(
            kernel,
            32,
            Some(&format!("{layer}: {kh}x{kw}x{inputs} -> {outputs}")),
        )?;
        figures.png(&format!("filters_{layer}.png"), caption, &grid)?;
    }
    Ok(())
}

/// The outputs of `layers` for one input `(h, w, c)`: `feature_maps_<layer>.png`.
pub fn feature_maps(
    figures: &mut Figures,
    model: &Model,
    image: &Tensor,
    what: &str,
    layers: &[String],
) -> anyhow::Result<()> {
    let batch = Tensor::from_vec(&[&[1], image.shape()].concat(), image.to_vec())?;
    let names: Vec<&str> = layers.iter().map(String::as_str).collect();
    let ctx = Context::eval(model.store());
    let (_, outputs) = no_grad(|| model.forward_with_outputs(&Var::constant(batch), &ctx, &names))?;
    figures.png(
        "feature_maps_input.png",
        format!("The input of the feature maps: {what}"),
        &tensor_image(image, Scaling::MinMax)?,
    )?;
    for (layer, maps) in layers.iter().zip(&outputs) {
        let shape = maps.value().shape();
        let title = format!("{layer}: {:?}", &shape[1..]);
        let grid = feature_map_grid(maps.value(), MAPS_SHOWN, Some(&title))?;
        let shown = shape.last().copied().unwrap_or(0).min(MAPS_SHOWN);
        figures.png(
            &format!("feature_maps_{layer}.png"),
            format!("Feature maps of {layer} for {what} (first {shown} channels, each scaled on its own)"),
            &grid,
        )?;
    }
    Ok(())
}

/// One input to explain: the image `(h, w, c)` and a caption (e.g. its true class).
pub struct Explained {
    /// The model's input.
    pub image: Tensor,
    /// Text under the input.
    pub caption: String,
}

/// The class the model gives `image` the highest score.
pub fn predicted_class(model: &Model, image: &Tensor) -> anyhow::Result<usize> {
    let batch = Tensor::from_vec(
        &[&[1], &image.shape()[image.ndim().saturating_sub(3)..]].concat(),
        image.to_vec(),
    )?;
    Ok(predicted_classes(&model.predict(&batch)?)[0])
}

/// A grid with one row per input: the input, then (with `gradients`) the vanilla gradient
/// and SmoothGrad maps, then Grad-CAM on `cam_layer` over the input, all for the class the
/// model predicts (named by `names`).
pub fn saliency(
    figures: &mut Figures,
    file: &str,
    model: &Model,
    inputs: &[Explained],
    names: &[&str],
    cam_layer: &str,
    gradients: bool,
) -> anyhow::Result<()> {
    let mut tiles = Vec::new();
    for (k, input) in inputs.iter().enumerate() {
        let class = predicted_class(model, &input.image)?;
        let picture = tensor_image(&input.image, Scaling::MinMax)?;
        let name = names.get(class).copied().unwrap_or("?");
        tiles.push(Tile::new(
            picture.clone(),
            format!("{}\npred: {}", input.caption, short(name)),
        ));
        if gradients {
            let vanilla = vanilla_gradient(model, &input.image, class)?;
            tiles.push(Tile::new(
                heatmap_image(&vanilla, Scaling::MinMax, Colormap::Gray)?,
                "gradient\n",
            ));
            let config = SmoothGradConfig {
                seed: k as u64,
                ..SmoothGradConfig::default()
            };
            let smooth = smooth_grad(model, &input.image, class, &config)?;
            tiles.push(Tile::new(
                heatmap_image(&smooth, Scaling::MinMax, Colormap::Gray)?,
                "SmoothGrad\n",
            ));
        }
        let cam = grad_cam(model, &input.image, class, cam_layer)?;
        tiles.push(if cam.is_flat() {
            // A constant map shows nothing: the plain input, said so.
            Tile::new(
                picture,
                format!("Grad-CAM flat\nno evidence in {cam_layer}"),
            )
        } else {
            Tile::new(
                overlay(&picture, &cam.map, Colormap::Jet, 0.45)?,
                format!("Grad-CAM\n{cam_layer}"),
            )
        });
    }
    let columns = if gradients { 4 } else { 6 };
    let methods = if gradients {
        "the vanilla gradient |d score / d pixel|, SmoothGrad (16 noisy copies) and Grad-CAM"
    } else {
        "Grad-CAM"
    };
    figures.tile_grid(
        file,
        format!(
            "Where the network looks: {methods} of the predicted class, on {} inputs",
            inputs.len()
        ),
        &tiles,
        columns,
        112,
    )
}
