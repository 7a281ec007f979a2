//! A pretrained ImageNet classifier ready to name what is in a photo: the catalog
//! model with its verified weights, folded for inference, its preprocessing and its
//! class names (Keras' `ResNet50(weights="imagenet")` + `decode_predictions`).

use std::path::Path;

use petal_data::open_image;
use petal_nn::Model;
use petal_tensor::Tensor;

use super::catalog::{decode_predictions, Prediction, PretrainedWeights};
use super::files::{load_verified, WeightsFolder};
use crate::{Options, ZooError};

/// A pretrained model with its class names, for classifying photos.
pub struct Classifier {
    /// The catalog entry the weights come from.
    pub entry: &'static PretrainedWeights,
    /// The whole network (with its classifier), batch norms folded into the
    /// convolutions.
    pub model: Model,
    /// The name of each class, in logit order.
    pub names: Vec<String>,
}

impl Classifier {
    /// Builds `entry`'s model with its verified weights and class names from `folder`
    /// (the weights from `weights` instead, when given: checked against the catalog too).
    ///
    /// ```no_run
    /// use petal_data::download::DataConfig;
    /// use petal_zoo::pretrained::{weights_named, Classifier, WeightsFolder};
    /// let folder = WeightsFolder::from_env(DataConfig::from_env("datasets/cache"));
    /// let classifier = Classifier::load(weights_named("efficientnet-lite0")?, &folder, None)?;
    /// let (_, top5) = classifier.classify("coffee.png".as_ref(), 5)?;
    /// println!("{} ({:.0}%)", top5[0].name, top5[0].probability * 100.0);
    /// # Ok::<(), petal_zoo::ZooError>(())
    /// ```
    pub fn load(
        entry: &'static PretrainedWeights,
        folder: &WeightsFolder,
        weights: Option<&Path>,
    ) -> Result<Self, ZooError> {
        let model = match weights {
            Some(path) => load_verified(entry, path, &Options::default())?,
            None => folder.load(entry, &Options::default())?,
        };
        Ok(Self {
            entry,
            model: model.fold_for_inference(),
            names: folder.class_names(entry)?,
        })
    }

    /// The network's input for the photo at `path`, preprocessed as the weights expect.
    pub fn input(&self, path: &Path) -> Result<Tensor, ZooError> {
        self.entry.preprocessing.apply(&open_image(path)?)
    }

    /// The logits and the `top` most probable classes of the photo at `path`.
    pub fn classify(&self, path: &Path, top: usize) -> Result<(Tensor, Vec<Prediction>), ZooError> {
        let logits = self.model.predict(&self.input(path)?)?;
        let best = decode_predictions(&logits, &self.names, top)
            .map_err(petal_nn::NnError::from)?
            .remove(0);
        Ok((logits, best))
    }
}
