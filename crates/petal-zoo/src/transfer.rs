//! Transfer learning's pieces. Photos are prepared exactly as a pretrained model's
//! weights expect by petal-data's image datasets with the weights' options
//! (`ImageFolder::open(dir, weights.preprocessing.image_options())`); here: the
//! features a pretrained base computes for them,
//! computed once and then read from an on-disk cache ([`FeatureExtractor`]); a new
//! classifier [`Head`], trained first on those features and then put on the frozen base;
//! and [`unfreeze_top`] for fine-tuning the base's top layers.
//!
//! The cache file's name is a digest of everything the features depend on: the base's
//! parameters (names and values) and output shape, the photos' preprocessing, and every
//! photo's path and label. Another base, other weights, another crop or another photo
//! list gives another file, so a stale cache is never read.

use std::path::{Path, PathBuf};

use petal_data::{BatchLoader, Dataset, ImageDataset, InMemoryDataset};
use petal_nn::layers::{DenseConfig, DropoutConfig, FlattenConfig, LayerKind};
use petal_nn::{Model, Regularizer, Sequential};
use petal_tensor::fs::write_atomically;
use petal_tensor::Tensor;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::ZooError;

/// A new classifier for a pretrained base: dropout, then a dense layer of `classes`
/// logits with an L2 penalty on its kernel. The layers are called `head_dropout` and
/// `head`, so the head trained on cached features ([`Head::on_features`]) carries its
/// weights over to the same head on the base ([`Head::on_base`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Head {
    /// Output classes.
    pub classes: usize,
    /// Dropout rate before the dense layer.
    pub dropout: f32,
    /// L2 factor on the dense kernel (0: none).
    pub l2: f32,
}

impl Head {
    /// Dropout 0.5 and L2 1e-3: on 1,020 flower photos, 1,280 features x 102 classes
    /// overfit without them (82.3% test accuracy without, 83.5% with, static features).
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            dropout: 0.5,
            l2: 1e-3,
        }
    }

    fn dropout_layer(&self) -> DropoutConfig {
        DropoutConfig {
            name: Some("head_dropout".into()),
            ..DropoutConfig::new(self.dropout)
        }
    }

    fn dense_layer(&self) -> DenseConfig {
        DenseConfig {
            name: Some("head".into()),
            kernel_regularizer: (self.l2 > 0.0).then(|| Regularizer::l2(self.l2)),
            ..DenseConfig::new(self.classes)
        }
    }

    /// The head alone, for features of `feature_shape` (flattened first).
    pub fn on_features(&self, feature_shape: &[usize], seed: u64) -> Result<Model, ZooError> {
        Ok(Sequential::new(feature_shape, seed)
            .add(FlattenConfig::default())?
            .add(self.dropout_layer())?
            .add(self.dense_layer())?
            .build()?)
    }

    /// `base` (a pooled base whose output is a feature vector) with this head on top,
    /// the base frozen; with `trained`, the head starts from that model's `head` weights
    /// (e.g. from [`Head::on_features`]) instead of random ones.
    pub fn on_base(&self, base: Model, trained: Option<&Model>) -> Result<Model, ZooError> {
        let base_layers: Vec<String> = base.layer_names().into_iter().map(str::to_string).collect();
        let (mut graph, features) = base.into_graph();
        let x = graph.call(&self.dropout_layer(), &[features])?;
        let out = graph.call(&self.dense_layer(), &[x])?;
        let mut model = graph.build(out)?;
        let names: Vec<&str> = base_layers.iter().map(String::as_str).collect();
        model.set_trainable(&names, false)?;
        if let Some(trained) = trained {
            for param in ["head/kernel", "head/bias"] {
                let (Some(from), Some(to)) = (trained.store().id(param), model.store().id(param))
                else {
                    return Err(ZooError::Invalid {
                        context: "Head::on_base",
                        reason: format!("the trained head has no parameter {param}"),
                    });
                };
                let value = trained.store().value(from).clone();
                model.store_mut().set_value(to, value)?;
            }
        }
        Ok(model)
    }
}

/// Unfreezes every layer from the first whose name starts with `first_layer` (in call
/// order, e.g. `"block5a"`) to the top, for fine-tuning, and freezes the layers below,
/// except batch norms: as in Keras' fine-tuning recipe they stay frozen, hence in
/// inference mode, because the statistics of a small batch would replace ImageNet's and
/// undo what the head learned (measured on the flowers: training accuracy fell from 100%
/// to 55% in the first fine-tuning epoch with them unfrozen).
pub fn unfreeze_top(model: &mut Model, first_layer: &str) -> Result<(), ZooError> {
    let names: Vec<String> = model
        .layer_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let Some(position) = names.iter().position(|n| n.starts_with(first_layer)) else {
        return Err(ZooError::Invalid {
            context: "unfreeze_top",
            reason: format!("the model has no layer {first_layer:?}"),
        });
    };
    match position.checked_sub(1) {
        Some(last_frozen) => model.freeze_up_to(&names[last_frozen])?,
        None => model.set_trainable(&names.iter().map(String::as_str).collect::<Vec<_>>(), true)?,
    }
    let batch_norms: Vec<String> = model
        .summary()
        .rows
        .into_iter()
        .filter(|row| row.kind == LayerKind::BatchNorm)
        .map(|row| row.name)
        .collect();
    model.set_trainable(
        &batch_norms.iter().map(String::as_str).collect::<Vec<_>>(),
        false,
    )?;
    Ok(())
}

/// Told the photos done and the total while features are computed.
pub type ExtractionProgress<'a> = &'a dyn Fn(usize, usize);

/// Runs a pretrained base (usually without its top, globally pooled) over photos and
/// keeps the features, optionally cached on disk.
///
/// ```
/// use petal_data::{Dataset, ImageDataset, ImageOptions};
/// use petal_nn::layers::{FlattenConfig, GlobalAvgPoolConfig};
/// use petal_nn::Sequential;
/// use petal_zoo::transfer::FeatureExtractor;
///
/// let dir = tempfile::tempdir()?;
/// let photo = dir.path().join("red.png");
/// image::RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 0])).save(&photo)?;
/// let photos = ImageDataset::new(vec![photo], vec![0], 1, ImageOptions::new(4))?;
/// let base = Sequential::new(&[4, 4, 3], 0).add(GlobalAvgPoolConfig::default())?.build()?;
/// let extractor = FeatureExtractor::new(&base).cache_in(dir.path());
/// let features = extractor.extract(&photos, 8, None)?;
/// assert_eq!(features.sample_shape(), &[1, 1, 3]);
/// assert_eq!(features.images().as_slice(), &[1.0, 0.0, 0.0]);
/// // The second call reads the cache file.
/// assert_eq!(extractor.extract(&photos, 8, None)?.images(), features.images());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FeatureExtractor<'a> {
    base: &'a Model,
    cache_dir: Option<PathBuf>,
}

impl<'a> FeatureExtractor<'a> {
    /// Features of `base` (its output for each photo), computed each time.
    pub fn new(base: &'a Model) -> Self {
        Self {
            base,
            cache_dir: None,
        }
    }

    /// These features cached as `<dir>/features-<digest>.safetensors`.
    pub fn cache_in(self, dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(dir.into()),
            ..self
        }
    }

    /// The base's features of every photo of `photos`, in dataset order, with their
    /// labels: an in-memory dataset of `(h, w, c)` samples (`(1, 1, c)` for a pooled
    /// base), read from the cache when it holds them, else computed in batches of
    /// `batch_size` (and then written to the cache).
    pub fn extract(
        &self,
        photos: &ImageDataset,
        batch_size: usize,
        progress: Option<ExtractionProgress>,
    ) -> Result<InMemoryDataset, ZooError> {
        let shape = self.sample_shape()?;
        let cache_file = self
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("features-{}.safetensors", self.digest(photos))));
        if let Some(file) = &cache_file {
            if let Some(cached) = read_cached(file, photos, &shape) {
                return Ok(cached);
            }
        }
        let (values, labels) = self.compute(photos, batch_size, progress)?;
        if let Some(file) = &cache_file {
            write_cache(file, &values, &labels, &shape)?;
        }
        let features = in_memory(values, labels, &shape, photos.num_classes())?;
        Ok(features)
    }

    /// The base's output per photo as a 3-d sample shape.
    fn sample_shape(&self) -> Result<[usize; 3], ZooError> {
        match *self.base.output_shape() {
            [c] => Ok([1, 1, c]),
            [h, w, c] => Ok([h, w, c]),
            ref other => Err(ZooError::Invalid {
                context: "FeatureExtractor",
                reason: format!("the base's output must be (features) or (h, w, c), not {other:?}"),
            }),
        }
    }

    fn compute(
        &self,
        photos: &ImageDataset,
        batch_size: usize,
        progress: Option<ExtractionProgress>,
    ) -> Result<(Vec<f32>, Vec<usize>), ZooError> {
        let per_photo: usize = self.base.output_shape().iter().product();
        let mut values = Vec::with_capacity(photos.len() * per_photo);
        let mut labels = Vec::with_capacity(photos.len());
        let loader = BatchLoader::new(photos, batch_size)?;
        loader.prefetched_epoch(0, 2, |batches| -> Result<(), ZooError> {
            for batch in batches {
                let batch = batch?;
                values.extend_from_slice(self.base.predict(&batch.images)?.as_slice());
                labels.extend(batch.labels);
                if let Some(report) = progress {
                    report(labels.len(), photos.len());
                }
            }
            Ok(())
        })?;
        Ok((values, labels))
    }

    /// A digest of the base's parameters and output shape, the preprocessing, and every
    /// photo's path and label.
    fn digest(&self, photos: &ImageDataset) -> String {
        let mut hasher = Sha256::new();
        for (_, param) in self.base.store().iter() {
            hasher.update(param.name.as_bytes());
            hasher.update([0]);
            for v in param.value.as_slice() {
                hasher.update(v.to_le_bytes());
            }
        }
        hasher.update(format!("{:?}", self.base.output_shape()));
        hasher.update(format!("{:?}", photos.options()));
        for (path, label) in photos.paths().iter().zip(photos.labels()) {
            hasher.update(path.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update((*label as u64).to_le_bytes());
        }
        hasher.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The dataset of features `values` (`labels.len()` samples of `shape`).
fn in_memory(
    values: Vec<f32>,
    labels: Vec<usize>,
    shape: &[usize; 3],
    num_classes: usize,
) -> Result<InMemoryDataset, ZooError> {
    let images = Tensor::from_vec(&[labels.len(), shape[0], shape[1], shape[2]], values)
        .map_err(petal_nn::NnError::from)?;
    Ok(InMemoryDataset::new(images, labels, num_classes)?)
}

/// The cached features of `photos`, when `file` holds exactly as many as expected;
/// `None` (recompute) for a missing, unreadable or mismatched file.
fn read_cached(file: &Path, photos: &ImageDataset, shape: &[usize; 3]) -> Option<InMemoryDataset> {
    let bytes = std::fs::read(file).ok()?;
    let tensors = SafeTensors::deserialize(&bytes).ok()?;
    let features = tensors.tensor("features").ok()?;
    let labels = tensors.tensor("labels").ok()?;
    let n = photos.len();
    let expected: Vec<usize> = std::iter::once(n).chain(shape.iter().copied()).collect();
    if features.dtype() != Dtype::F32
        || features.shape() != expected
        || labels.dtype() != Dtype::I64
        || labels.shape() != [n]
    {
        return None;
    }
    let values = features
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let labels: Vec<usize> = labels
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .collect();
    if labels != photos.labels() {
        return None;
    }
    in_memory(values, labels, shape, photos.num_classes()).ok()
}

/// Writes the features (f32) and labels (i64) as one safetensors file, atomically.
fn write_cache(
    file: &Path,
    values: &[f32],
    labels: &[usize],
    shape: &[usize; 3],
) -> Result<(), ZooError> {
    let n = labels.len();
    let value_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let label_bytes: Vec<u8> = labels
        .iter()
        .flat_map(|&l| (l as i64).to_le_bytes())
        .collect();
    let invalid = |e: safetensors::SafeTensorError| ZooError::Invalid {
        context: "FeatureExtractor",
        reason: format!("{}: {e}", file.display()),
    };
    let features_shape = vec![n, shape[0], shape[1], shape[2]];
    let features = TensorView::new(Dtype::F32, features_shape, &value_bytes).map_err(invalid)?;
    let labels = TensorView::new(Dtype::I64, vec![n], &label_bytes).map_err(invalid)?;
    let bytes = safetensors::serialize([("features", features), ("labels", labels)], None)
        .map_err(invalid)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    write_atomically(file, &bytes).map_err(|e| io_error(file, e))
}

fn io_error(path: &Path, source: std::io::Error) -> ZooError {
    ZooError::Data(petal_data::DataError::Io {
        path: path.to_path_buf(),
        action: "writing the feature cache",
        source,
    })
}

#[cfg(test)]
mod tests {
    use petal_data::ImageOptions;
    use petal_nn::layers::{BatchNormConfig, Conv2dConfig, GlobalAvgPoolConfig};

    use super::*;

    /// conv -> batch norm -> conv -> global average pooling: a tiny "pretrained base".
    fn base(seed: u64) -> Model {
        Sequential::new(&[4, 4, 3], seed)
            .add(Conv2dConfig::new(4, 3))
            .and_then(|s| s.add(BatchNormConfig::default()))
            .and_then(|s| s.add(Conv2dConfig::new(5, 1)))
            .and_then(|s| s.add(GlobalAvgPoolConfig::default()))
            .and_then(|s| s.build())
            .unwrap()
    }

    fn trainable(model: &Model) -> Vec<String> {
        model
            .store()
            .iter()
            .filter(|(_, p)| p.trainable)
            .map(|(_, p)| p.name.clone())
            .collect()
    }

    #[test]
    fn the_head_trained_on_features_carries_over_to_the_frozen_base() {
        let head = Head::new(3);
        let on_features = head.on_features(&[1, 1, 5], 1).unwrap();
        assert_eq!(on_features.output_shape(), &[3]);
        let model = head.on_base(base(2), Some(&on_features)).unwrap();
        assert_eq!(trainable(&model), ["head/kernel", "head/bias"]);
        let kernel = |m: &Model| {
            m.store()
                .value(m.store().id("head/kernel").unwrap())
                .clone()
        };
        assert_eq!(kernel(&model), kernel(&on_features));
        let other = Sequential::new(&[5], 0)
            .add(DenseConfig::new(3))
            .and_then(|s| s.build())
            .unwrap();
        let Err(error) = head.on_base(base(2), Some(&other)) else {
            panic!("a model without a head was taken as one");
        };
        assert!(error.to_string().contains("head/kernel"), "{error}");
    }

    #[test]
    fn fine_tuning_unfreezes_the_top_but_not_its_batch_norms() {
        let mut model = Head::new(2).on_base(base(3), None).unwrap();
        let names: Vec<String> = model
            .layer_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        unfreeze_top(&mut model, &names[1]).unwrap(); // the batch norm and above
        let trained = trainable(&model);
        assert!(
            trained
                .iter()
                .all(|n| !n.starts_with(&format!("{}/", names[0]))),
            "{trained:?}"
        );
        assert!(
            trained
                .iter()
                .all(|n| !n.starts_with(&format!("{}/", names[1]))),
            "{trained:?}"
        );
        assert!(
            trained
                .iter()
                .any(|n| n.starts_with(&format!("{}/", names[2]))),
            "{trained:?}"
        );
        let error = unfreeze_top(&mut model, "block9z").unwrap_err().to_string();
        assert!(error.contains("block9z"), "{error}");
    }

    /// Each catalog architecture's fine-tuning point exists and leaves its lower stages
    /// frozen: part of the weights is trained, never all (EfficientNet-Lite0 trains 90%:
    /// its 1280-channel top convolution is above the fine-tuning point).
    #[test]
    fn every_catalog_architecture_fine_tunes_its_top_stages_only() {
        use crate::pretrained::Arch;
        use crate::{Options, Pooling};
        let options = Options {
            include_top: false,
            pooling: Pooling::Avg,
            input_shape: [64, 64, 3],
            ..Options::default()
        };
        for arch in Arch::ALL {
            let mut model = Head::new(5)
                .on_base(arch.build(&options).unwrap(), None)
                .unwrap();
            unfreeze_top(&mut model, arch.fine_tune_from()).unwrap();
            let store = model.store();
            let count = |trainable_only: bool| -> usize {
                store
                    .iter()
                    .filter(|(_, p)| p.trainable || !trainable_only)
                    .map(|(_, p)| p.value.len())
                    .sum()
            };
            let share = count(true) as f64 / count(false) as f64;
            assert!(
                (0.05..0.95).contains(&share),
                "{arch:?} trains {share:.3} of its weights"
            );
        }
    }

    #[test]
    fn a_corrupt_cache_is_recomputed_and_other_weights_use_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("photo.png");
        image::RgbImage::from_fn(6, 6, |x, y| image::Rgb([x as u8 * 40, y as u8 * 40, 90]))
            .save(&photo)
            .unwrap();
        let photos = ImageDataset::new(vec![photo], vec![0], 1, ImageOptions::new(4)).unwrap();
        let cache = dir.path().join("cache");
        let first = base(4);
        let extractor = FeatureExtractor::new(&first).cache_in(&cache);
        let features = extractor.extract(&photos, 4, None).unwrap();
        let files = || -> Vec<PathBuf> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
        };
        let [file] = files().try_into().unwrap();
        std::fs::write(&file, b"truncated").unwrap();
        let again = extractor.extract(&photos, 4, None).unwrap();
        assert_eq!(again.images(), features.images());
        assert!(std::fs::read(&file).unwrap().len() > 100, "rewritten whole");
        let second = base(5);
        FeatureExtractor::new(&second)
            .cache_in(&cache)
            .extract(&photos, 4, None)
            .unwrap();
        assert_eq!(files().len(), 2);
    }
}
