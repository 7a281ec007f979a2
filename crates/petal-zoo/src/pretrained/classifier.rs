//! A pretrained ImageNet classifier ready to name what is in a photo: the catalog
//! model with its verified weights, folded for inference, its preprocessing and its
//! class names (Keras' `ResNet50(weights="imagenet")` + `decode_predictions`).

use std::path::Path;

use image::RgbImage;
use petal_data::{open_image, prepare_rgb};
use petal_nn::Model;
use petal_tensor::Tensor;

use super::catalog::{decode_predictions, Prediction, Preprocessing, PretrainedWeights};
use super::files::{load_verified, WeightsFolder};
use crate::{Options, ZooError};

/// A pretrained model with its class names, for classifying photos.
pub struct Classifier {
    /// The catalog entry the weights come from; `None` for a model from elsewhere (an
    /// imported ONNX file, [`Classifier::from_model`]).
    pub entry: Option<&'static PretrainedWeights>,
    /// The whole network (with its classifier), batch norms folded into the
    /// convolutions.
    pub model: Model,
    /// The name of each class, in logit order.
    pub names: Vec<String>,
    /// How photos become the model's input: the catalog's, unless overridden
    /// ([`Classifier::with_preprocessing`]).
    pub preprocessing: Preprocessing,
}

impl Classifier {
    /// Builds `entry`'s model with its verified weights and class names from `folder`
    /// (the weights from the safetensors file `weights` instead, when given: checked
    /// against the catalog too; petal-interop's `load_classifier` also takes `.pth`).
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
        Self::new(entry, model, folder)
    }

    /// A classifier of `model`, already holding `entry`'s weights (loaded some other
    /// way), with the class names from `folder`; folds its batch norms.
    pub fn new(
        entry: &'static PretrainedWeights,
        model: Model,
        folder: &WeightsFolder,
    ) -> Result<Self, ZooError> {
        let names = folder.class_names(entry)?;
        Ok(Self {
            entry: Some(entry),
            ..Self::from_model(model, names, entry.preprocessing)
        })
    }

    /// A classifier of a model that is not in the catalog (imported from ONNX, say),
    /// naming its classes `names` and preparing photos with `preprocessing`; folds its
    /// batch norms.
    pub fn from_model(model: Model, names: Vec<String>, preprocessing: Preprocessing) -> Self {
        Self {
            entry: None,
            model: model.fold_for_inference(),
            names,
            preprocessing,
        }
    }

    /// This classifier preparing photos with `preprocessing` instead of the catalog's.
    pub fn with_preprocessing(self, preprocessing: Preprocessing) -> Self {
        Self {
            preprocessing,
            ..self
        }
    }

    /// The network's input for the photo at `path`, preprocessed as the weights expect.
    pub fn input(&self, path: &Path) -> Result<Tensor, ZooError> {
        self.preprocessing.apply(&open_image(path)?)
    }

    /// The photo at `path` cropped and resized as the network sees it, before
    /// normalization (to draw maps over).
    pub fn picture(&self, path: &Path) -> Result<RgbImage, ZooError> {
        let options = self.preprocessing.image_options();
        let invalid = |reason: String| ZooError::Invalid {
            context: "Classifier::picture",
            reason: format!("{}: {reason}", path.display()),
        };
        let pixels = prepare_rgb(&open_image(path)?, &options).map_err(invalid)?;
        RgbImage::from_raw(options.size, options.size, pixels)
            .ok_or_else(|| invalid("the resized pixels do not fill the picture".into()))
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
