//! Weight initializers (Keras' definitions).

use petal_tensor::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// How a parameter's first values are drawn. `fan_in`/`fan_out` are the numbers of
/// inputs and outputs of one unit (for an HWIO filter `kh*kw*in` and `kh*kw*out`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    /// U(-l, l) with `l = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform,
    /// Truncated normal (within 2 sd) with sd `sqrt(2 / (fan_in + fan_out)) / 0.8796`.
    GlorotNormal,
    /// U(-l, l) with `l = sqrt(6 / fan_in)`.
    HeUniform,
    /// Truncated normal with sd `sqrt(2 / fan_in) / 0.8796`.
    HeNormal,
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every value the same.
    Constant(f32),
}

/// Keras divides by the standard deviation of a unit normal truncated at 2 sd.
const TRUNCATION_SD: f64 = 0.879_625_661_034_239_8;

impl Initializer {
    /// A tensor of `shape` drawn from this initializer.
    pub fn tensor(
        &self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut ChaCha8Rng,
    ) -> Tensor {
        let len = shape.iter().product();
        let (fan_in, fan_sum) = (fan_in.max(1) as f64, (fan_in + fan_out).max(1) as f64);
        let values: Vec<f32> = match *self {
            Initializer::Zeros => vec![0.0; len],
            Initializer::Ones => vec![1.0; len],
            Initializer::Constant(v) => vec![v; len],
            Initializer::GlorotUniform => uniform(len, (6.0 / fan_sum).sqrt(), rng),
            Initializer::HeUniform => uniform(len, (6.0 / fan_in).sqrt(), rng),
            Initializer::GlorotNormal => {
                truncated_normal(len, (2.0 / fan_sum).sqrt() / TRUNCATION_SD, rng)
            }
            Initializer::HeNormal => {
                truncated_normal(len, (2.0 / fan_in).sqrt() / TRUNCATION_SD, rng)
            }
        };
        Tensor::from_vec(shape, values).expect("length from the shape")
    }
}

fn uniform(len: usize, limit: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..len)
        .map(|_| rng.random_range(-limit..limit) as f32)
        .collect()
}

fn truncated_normal(len: usize, sd: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let normal = Normal::new(0.0, sd).expect("finite sd");
    (0..len)
        .map(|_| loop {
            let v: f64 = normal.sample(rng);
            if v.abs() <= 2.0 * sd {
                break v as f32;
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn initializers_respect_their_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = Initializer::GlorotUniform.tensor(&[100, 50], 100, 50, &mut rng);
        let limit = (6.0f32 / 150.0).sqrt();
        assert!(t.as_slice().iter().all(|v| v.abs() <= limit));
        let t = Initializer::HeNormal.tensor(&[3, 3, 16, 32], 144, 288, &mut rng);
        let sd = (2.0f32 / 144.0).sqrt() / 0.8796;
        assert!(t.as_slice().iter().all(|v| v.abs() <= 2.0 * sd + 1e-6));
        let std = (t.as_slice().iter().map(|v| v * v).sum::<f32>() / t.len() as f32).sqrt();
        assert!((std - (2.0f32 / 144.0).sqrt()).abs() < 0.01, "sd {std}");
        assert_eq!(
            Initializer::Constant(0.5)
                .tensor(&[2], 1, 1, &mut rng)
                .to_vec(),
            vec![0.5, 0.5]
        );
    }
}
