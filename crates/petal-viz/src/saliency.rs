//! Which pixels a class score depends on: the vanilla gradient, SmoothGrad (the gradient
//! averaged over noisy copies) and Grad-CAM (a conv layer's maps weighted by how much the
//! score gains from each). Each returns an `(h, w)` map at the input's resolution, for
//! [`overlay`](crate::overlay) or [`heatmap_image`](crate::heatmap_image).
//!
//! The model runs in inference mode (no dropout, BatchNorm's moving statistics); the
//! score is the model's output for the class (logits, for the networks of Petal).

use petal_nn::{Context, Model, Tape, Var};
use petal_tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{Result, VizError};
use crate::raster::image_dims;

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
    let Some(g) = grads.get(&x) else {
        return Ok(Tensor::zeros(&[h, w]));
    };
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

/// Grad-CAM: the maps `A_k` of the conv layer `layer` weighted by `alpha_k`, the spatial
/// mean of `d score / d A_k`, summed, ReLU'd, and resized bilinearly to the input.
pub fn grad_cam(model: &Model, image: &Tensor, class: usize, layer: &str) -> Result<Tensor> {
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
    let grads = score(model, &y, class)?.backward()?;
    let Some(g) = grads.get(maps) else {
        return Ok(Tensor::zeros(&[h, w]));
    };
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
    resize_bilinear(&cam, (mh, mw), (h, w))
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
