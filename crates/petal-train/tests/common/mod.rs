//! Small generated problems and models the training tests share.

use petal_data::InMemoryDataset;
use petal_nn::layers::{Activation, DenseConfig, DropoutConfig, FlattenConfig};
use petal_nn::{Model, Sequential};
use petal_tensor::Tensor;

/// Points in 2-D labelled by quadrant: 4 classes.
pub fn quadrants(n: usize, seed: u32) -> InMemoryDataset {
    let mut values = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let h = |k: u32| {
            ((i.wrapping_mul(2654435761) ^ seed.wrapping_add(k).wrapping_mul(40503)) % 2000) as f32
                / 1000.0
                - 1.0
        };
        let (x, y) = (h(1), h(2));
        values.extend([x, y]);
        labels.push(usize::from(x > 0.0) * 2 + usize::from(y > 0.0));
    }
    InMemoryDataset::new(Tensor::from_vec(&[n, 1, 1, 2], values).unwrap(), labels, 4).unwrap()
}

pub fn model(seed: u64, dropout: f32) -> Model {
    Sequential::new(&[1, 1, 2], seed)
        .add(FlattenConfig::default())
        .unwrap()
        .add(DenseConfig {
            activation: Activation::Relu,
            ..DenseConfig::new(16)
        })
        .unwrap()
        .add(DropoutConfig::new(dropout))
        .unwrap()
        .add(DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap()
}
