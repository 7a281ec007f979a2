//! Loader throughput on real photos: decoded, resized to 128x128 and augmented images/s,
//! cold (every epoch decodes the JPEGs) and warm (decoded once into the in-memory cache).

use petal_data::flowers::Flowers102;
use petal_data::{BatchLoader, ImageOptions};

use super::petal_side::time_rounds;
use super::{BenchOptions, Measurement};
use crate::paths::data_config;
use crate::repro::flowers::flower_augmentation;

/// Photos per timed epoch.
const PHOTOS: usize = 256;

/// Images/s of one loader epoch over the first training photos of Oxford 102 Flowers.
pub fn measure(warm: bool, options: &BenchOptions) -> anyhow::Result<Measurement> {
    let flowers = Flowers102::fetch(&data_config(), None)?;
    let indices: Vec<usize> = flowers
        .split(petal_data::Split::Train)
        .iter()
        .copied()
        .take(PHOTOS)
        .collect();
    let mut dataset = flowers.dataset(&indices, ImageOptions::new(128))?;
    if warm {
        dataset = dataset.cached();
    }
    let loader = BatchLoader::new(dataset, 32)?
        .shuffle(0)
        .augment(flower_augmentation()?, 0);
    let mut epoch = 0;
    time_rounds(options, indices.len() as f64, || {
        epoch += 1;
        for batch in loader.epoch(epoch) {
            batch?;
        }
        Ok(())
    })
}
