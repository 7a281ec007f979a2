//! Gradient clipping, applied to the gradients before `Optimizer::step`.

use petal_nn::ParamId;
use petal_tensor::Tensor;

/// Scales all gradients by `max_norm / norm` when their global L2 norm (over every
/// element of every gradient, summed in f64) exceeds `max_norm`, and returns the norm
/// before clipping. A non-finite norm (a NaN or infinite gradient) leaves the gradients
/// as they are, so the caller can see it and stop; a negative or NaN `max_norm` counts
/// as 0.
pub fn clip_by_global_norm(grads: &mut [(ParamId, Tensor)], max_norm: f32) -> f32 {
    let squares: f64 = grads
        .iter()
        .flat_map(|(_, g)| g.as_slice())
        .map(|&x| f64::from(x) * f64::from(x))
        .sum();
    let norm = squares.sqrt();
    let max_norm = f64::from(max_norm.max(0.0));
    if norm.is_finite() && norm > max_norm {
        let scale = (max_norm / norm) as f32;
        for x in grads.iter_mut().flat_map(|(_, g)| g.as_mut_slice()) {
            *x *= scale;
        }
    }
    norm as f32
}

/// Clamps every gradient element to `[-limit, limit]` (the sign of `limit` is ignored;
/// a NaN limit changes nothing).
pub fn clip_by_value(grads: &mut [(ParamId, Tensor)], limit: f32) {
    let limit = limit.abs();
    for x in grads.iter_mut().flat_map(|(_, g)| g.as_mut_slice()) {
        *x = x.max(-limit).min(limit);
    }
}

#[cfg(test)]
mod tests {
    use petal_nn::ParamStore;

    use super::*;

    fn grads(values: &[&[f32]]) -> Vec<(ParamId, Tensor)> {
        let mut store = ParamStore::new();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = store
                    .add(format!("p{i}"), Tensor::zeros(&[v.len()]), true)
                    .unwrap();
                (id, Tensor::from_vec(&[v.len()], v.to_vec()).unwrap())
            })
            .collect()
    }

    #[test]
    fn global_norm_scales_everything_when_too_large() {
        // norm = sqrt(3^2 + 4^2 + 12^2) = sqrt(169) = 13; scale = 6.5 / 13 = 0.5
        let mut g = grads(&[&[3.0, 4.0], &[12.0]]);
        assert_eq!(clip_by_global_norm(&mut g, 6.5), 13.0);
        assert_eq!(g[0].1.to_vec(), vec![1.5, 2.0]);
        assert_eq!(g[1].1.to_vec(), vec![6.0]);
    }

    #[test]
    fn global_norm_leaves_small_gradients_alone() {
        // norm = sqrt(0.36 + 0.64) = 1 <= 2
        let mut g = grads(&[&[0.6, -0.8]]);
        let norm = clip_by_global_norm(&mut g, 2.0);
        assert!((norm - 1.0).abs() < 1e-7);
        assert_eq!(g[0].1.to_vec(), vec![0.6, -0.8]);
    }

    #[test]
    fn global_norm_reports_nan_without_scaling() {
        let mut g = grads(&[&[f32::NAN, 1.0]]);
        assert!(clip_by_global_norm(&mut g, 1.0).is_nan());
        assert_eq!(g[0].1.as_slice()[1], 1.0);
    }

    #[test]
    fn value_clipping_clamps_each_element() {
        let mut g = grads(&[&[-3.0, 0.5], &[2.0, -0.25]]);
        clip_by_value(&mut g, 1.0);
        assert_eq!(g[0].1.to_vec(), vec![-1.0, 0.5]);
        assert_eq!(g[1].1.to_vec(), vec![1.0, -0.25]);
        clip_by_value(&mut g, -0.5); // the sign of the limit is ignored
        assert_eq!(g[0].1.to_vec(), vec![-0.5, 0.5]);
    }
}
