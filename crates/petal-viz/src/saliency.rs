//! Which pixels a class score depends on: the vanilla gradient, SmoothGrad (the gradient
//! averaged over noisy copies) and Grad-CAM (a conv layer's maps weighted by how much the
//! score gains from each). Each gives an `(h, w)` map at the input's resolution, for
//! [`overlay`](crate::overlay) or [`heatmap_image`](crate::heatmap_image); Grad-CAM's
//! comes in a [`GradCam`] with the map at the layer's resolution too.
//!
//! When no gradient reaches the input or the chosen layer, the call is an error saying
//! why, never a map of zeros.
//!
//! The model runs in inference mode (no dropout, BatchNorm's moving statistics); the
//! score is the model's output for the class (logits, for the networks of Petal).

use petal_nn::{Context, Model, Tape, Var};
use petal_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{Result, VizError};
use crate::raster::{image_dims, is_constant};

/// SmoothGrad's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothGradConfig {
    /// Noisy copies averaged.
    pub samples: usize,
    /// Standard deviation of the noise, as a fraction of the image's value range.
    pub noise: f32,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for SmoothGradConfig {
    /// 16 copies with noise of 15% of the value range (the paper's 10-20%).
    fn default() -> Self {
        Self {
            samples: 16,
            noise: 0.15,
            seed: 0,
        }
    }
}

/// Checks the class index and returns a one-hot selector of `(n, classes)` that picks the
/// class's score of every sample.
fn class_selector(model: &Model, class: usize, n: usize) -> Result<Tensor> {
    let classes: usize = model.output_shape().iter().product();
    if class >= classes {
        return Err(VizError::Input(format!(
            "class {class} is out of range: the model has {classes} outputs"
        )));
    }
    let mut selector = vec![0.0; n * classes];
    (0..n).for_each(|i| selector[i * classes + class] = 1.0);
    Ok(Tensor::from_vec(&[n, classes], selector)?)
}

/// The sum over the batch of the class score, as a value to differentiate.
fn score(model: &Model, output: &Var, class: usize) -> Result<Var> {
    let n = output.value().shape()[0];
    let flat = output.reshape(&[n, output.value().len() / n])?;
    Ok(flat
        .mul(&Var::constant(class_selector(model, class, n)?))?
        .sum_all())
}

/// `|d score / d pixel|`, the largest over channels, for each image of a batch
/// `(n, h, w, c)`, averaged over the batch.
fn mean_gradient_map(model: &Model, batch: Tensor, class: usize) -> Result<Tensor> {
    let [n, h, w, c] = *batch.shape() else {
        unreachable!("callers pass (n, h, w, c) batches")
    };
    let tape = Tape::new();
    let x = tape.leaf(batch);
    let ctx = Context::eval(model.store());
    let y = model.forward(&x, &ctx)?;
    let grads = score(model, &y, class)?.backward()?;
    let g = grads.get(&x).ok_or_else(|| VizError::NoGradient {
        layer: "input".into(),
        reason: format!(
            "the score of class {class} does not depend on the input \
             (is the model running inside no_grad?)"
        ),
    })?;
    let mut map = vec![0.0f32; h * w];
    for image in g.as_slice().chunks(h * w * c) {
        for (p, pixel) in image.chunks(c).enumerate() {
            map[p] += pixel.iter().fold(0.0f32, |m, v| m.max(v.abs())) / n as f32;
        }
    }
    Ok(Tensor::from_vec(&[h, w], map)?)
}

/// The image as a batch of one, `(1, h, w, c)`.
fn as_batch(image: &Tensor) -> Result<Tensor> {
    let (h, w, c) = image_dims(image)?;
    Ok(Tensor::from_vec(&[1, h, w, c], image.to_vec())?)
}

/// The vanilla gradient: `|d score_class / d input|`, the largest over channels.
pub fn vanilla_gradient(model: &Model, image: &Tensor, class: usize) -> Result<Tensor> {
    mean_gradient_map(model, as_batch(image)?, class)
}

/// SmoothGrad: the vanilla gradient map averaged over `config.samples` copies of the
/// image with Gaussian noise added (one batch through the model).
pub fn smooth_grad(
    model: &Model,
    image: &Tensor,
    class: usize,
    config: &SmoothGradConfig,
) -> Result<Tensor> {
    let (h, w, c) = image_dims(image)?;
    let samples = config.samples.max(1);
    let values = image.as_slice();
    let (lo, hi) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let sigma = (config.noise * (hi - lo)).max(0.0);
    let normal = Normal::new(0.0, sigma).map_err(|e| VizError::Input(e.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let noisy = (0..samples)
        .flat_map(|_| {
            values
                .iter()
                .map(|v| v + normal.sample(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect();
    mean_gradient_map(model, Tensor::from_vec(&[samples, h, w, c], noisy)?, class)
}

/// A Grad-CAM map and what it explains.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCam {
    /// The layer whose feature maps were weighted.
    pub layer: String,
    /// The class explained.
    pub class: usize,
    /// The map at the layer's resolution `(mh, mw)` (e.g. 7x7), ReLU'd, not rescaled.
    pub coarse: Tensor,
    /// The map resized bilinearly to the input, `(h, w)`, for drawing.
    pub map: Tensor,
}

impl GradCam {
    /// True when every value of the map is the same (typically all zero: no location of
    /// the layer speaks for the class). Such a map shows nothing; [`overlay`](crate::overlay)
    /// refuses to draw it.
    pub fn is_flat(&self) -> bool {
        is_constant(self.coarse.as_slice())
    }

    /// The `(row, column)` of the largest value of [`GradCam::map`] (the first if tied).
    pub fn peak(&self) -> (usize, usize) {
        let width = self.map.shape()[1];
        let (best, _) = self
            .map
            .as_slice()
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        (best / width, best % width)
    }
}

/// The last layer, in call order, whose output is feature maps `(h, w, channels)` larger
/// than 1x1 and can be read in this model (in a folded model, the last layer folded into
/// a convolution): the usual Grad-CAM layer, the model's last convolutional block.
/// `None` for a model without spatial feature maps.
pub fn last_feature_map_layer(model: &Model) -> Option<String> {
    let readable = model.probed_layers();
    model
        .summary()
        .rows
        .into_iter()
        .rev()
        .find(|r| {
            matches!(*r.output_shape, [h, w, _] if h * w > 1) && readable.contains(&r.name.as_str())
        })
        .map(|r| r.name)
}

/// Grad-CAM: the maps `A_k` of the layer `layer` (feature maps `(h, w, channels)`)
/// weighted by `alpha_k`, the spatial mean of `d score / d A_k`, summed and ReLU'd.
///
/// Errors, each naming the layer: a layer the model lacks or whose output folding
/// removed; an output that is not feature maps; a layer the class score does not depend
/// on, or that was not recorded (e.g. called inside [`no_grad`](petal_nn::no_grad)), so
/// that no gradient reaches it. A map that comes out constant is returned with
/// [`GradCam::is_flat`] true.
///
/// ```
/// use petal_nn::layers::{Activation, Conv2dConfig, DenseConfig, GlobalAvgPoolConfig};
/// use petal_nn::Sequential;
/// use petal_tensor::Tensor;
/// use petal_viz::saliency::grad_cam;
/// let model = Sequential::new(&[4, 4, 1], 0)
///     .add(Conv2dConfig { activation: Activation::Relu, ..Conv2dConfig::new(2, 1) })?
///     .add(GlobalAvgPoolConfig::default())?
///     .add(DenseConfig::new(2))?
///     .build()?;
/// let image = Tensor::from_vec(&[4, 4, 1], (0..16).map(|v| v as f32 / 16.0).collect())?;
/// let cam = grad_cam(&model, &image, 1, "conv2d")?;
/// assert_eq!((cam.coarse.shape(), cam.map.shape()), (&[4, 4][..], &[4, 4][..]));
/// assert!(grad_cam(&model, &image, 1, "dense").is_err()); // not feature maps
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn grad_cam(model: &Model, image: &Tensor, class: usize, layer: &str) -> Result<GradCam> {
    let (h, w, _) = image_dims(image)?;
    let tape = Tape::new();
    let x = tape.leaf(as_batch(image)?);
    let ctx = Context::eval(model.store());
    let (y, outputs) = model.forward_with_outputs(&x, &ctx, &[layer])?;
    let maps = &outputs[0];
    let &[1, mh, mw, k] = maps.value().shape() else {
        return Err(VizError::Input(format!(
            "Grad-CAM needs a layer with feature maps (1, h, w, channels); \
             {layer} gives {:?}",
            maps.value().shape()
        )));
    };
    let no_gradient = |reason: &str| VizError::NoGradient {
        layer: layer.to_string(),
        reason: reason.to_string(),
    };
    if maps.node().is_none() {
        return Err(no_gradient(
            "its output was not recorded on the tape (is grad_cam running inside no_grad?)",
        ));
    }
    let grads = score(model, &y, class)?.backward()?;
    let g = grads.get(maps).ok_or_else(|| {
        no_gradient(&format!(
            "the score of class {class} does not depend on its output"
        ))
    })?;
    let mut alpha = vec![0.0f32; k];
    g.as_slice()
        .chunks(k)
        .for_each(|pixel| alpha.iter_mut().zip(pixel).for_each(|(a, v)| *a += v));
    alpha.iter_mut().for_each(|a| *a /= (mh * mw) as f32);
    let cam: Vec<f32> = maps
        .value()
        .as_slice()
        .chunks(k)
        .map(|pixel| {
            pixel
                .iter()
                .zip(&alpha)
                .map(|(a, w)| a * w)
                .sum::<f32>()
                .max(0.0)
        })
        .collect();
    Ok(GradCam {
        layer: layer.to_string(),
        class,
        map: resize_bilinear(&cam, (mh, mw), (h, w))?,
        coarse: Tensor::from_vec(&[mh, mw], cam)?,
    })
}

/// Resizes a `(h, w)` map with bilinear interpolation, pixel centres aligned.
fn resize_bilinear(
    map: &[f32],
    (sh, sw): (usize, usize),
    (th, tw): (usize, usize),
) -> Result<Tensor> {
    let source = |len: usize, target: usize, i: usize| {
        let pos =
            ((i as f32 + 0.5) * len as f32 / target as f32 - 0.5).clamp(0.0, (len - 1) as f32);
        let low = pos.floor() as usize;
        (low, (low + 1).min(len - 1), pos - low as f32)
    };
    let mut out = Vec::with_capacity(th * tw);
    for y in 0..th {
        let (y0, y1, fy) = source(sh, th, y);
        for x in 0..tw {
            let (x0, x1, fx) = source(sw, tw, x);
            let top = map[y0 * sw + x0] * (1.0 - fx) + map[y0 * sw + x1] * fx;
            let bottom = map[y1 * sw + x0] * (1.0 - fx) + map[y1 * sw + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    Ok(Tensor::from_vec(&[th, tw], out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_resizing_keeps_constants_and_interpolates_between_centres() {
        let same = resize_bilinear(&[2.0; 4], (2, 2), (5, 5)).unwrap();
        assert!(same.as_slice().iter().all(|v| (v - 2.0).abs() < 1e-6));
        let ramp = resize_bilinear(&[0.0, 1.0], (1, 2), (1, 4)).unwrap();
        assert_eq!(ramp.to_vec(), vec![0.0, 0.25, 0.75, 1.0]);
    }
}
