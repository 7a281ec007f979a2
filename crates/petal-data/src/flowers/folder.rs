//! Flowers written out as a class-per-folder photo collection, the layout users keep
//! their own photos in (`train/<class>/*.jpg`, `test/<class>/*.jpg`): a ready-made
//! folder for trying transfer learning on photos a model has never seen.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{ClassSubset, Flowers102};
use crate::error::{DataError, Result};

impl ClassSubset {
    /// Copies `train` and `test` photos of every class of the subset into
    /// `<out>/train/<class name>/` and `<out>/test/<class name>/` (the layout
    /// [`crate::ImageFolder`] reads), the photos of each class drawn by a seeded shuffle,
    /// none in both parts. A class with fewer than `train + test` photos is an error
    /// naming it, and then nothing is written.
    ///
    /// ```no_run
    /// use petal_data::download::DataConfig;
    /// use petal_data::flowers::Flowers102;
    /// let flowers = Flowers102::fetch(&DataConfig::from_env("datasets/cache"), None)?;
    /// flowers.most_frequent_classes(10)?.write_image_folder(&flowers, "my-flowers".as_ref(), 40, 20, 7)?;
    /// # Ok::<(), petal_data::DataError>(())
    /// ```
    pub fn write_image_folder(
        &self,
        flowers: &Flowers102,
        out: &Path,
        train: usize,
        test: usize,
        seed: u64,
    ) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut chosen = Vec::with_capacity(self.names.len());
        for (class, name) in self.names.iter().enumerate() {
            let mut photos: Vec<usize> = (0..self.indices.len())
                .filter(|&p| self.labels[p] == class)
                .map(|p| self.indices[p])
                .collect();
            if photos.len() < train + test {
                return Err(DataError::invalid(
                    "write_image_folder",
                    format!(
                        "class {name:?} has {} photos, fewer than {train} + {test}",
                        photos.len()
                    ),
                ));
            }
            photos.shuffle(&mut rng);
            chosen.push((name, photos));
        }
        for (name, photos) in chosen {
            let parts = [
                ("train", &photos[..train]),
                ("test", &photos[train..train + test]),
            ];
            for (part, indices) in parts {
                let dir = out.join(part).join(name);
                std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "creating", e))?;
                for &index in indices {
                    let source = flowers.image_path(index);
                    let file_name = source.file_name().unwrap_or_default();
                    std::fs::copy(&source, dir.join(file_name))
                        .map_err(|e| DataError::io(&source, "copying", e))?;
                }
            }
        }
        Ok(())
    }
}
