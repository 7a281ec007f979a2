//! Where `fit` takes its validation figures from.

use petal_data::{Dataset, Subset};

use crate::error::{Result, TrainError};

/// Some of the samples of a dataset borrowed as `&dyn Dataset`.
pub(crate) type Part<'t> = Subset<&'t dyn Dataset>;

/// The validation data of a `fit` run: none, the last fraction of the training data
/// (Keras' `validation_split`), or a dataset of its own (Keras' `validation_data`).
#[derive(Clone, Copy, Default)]
pub enum Validation<'a> {
    /// No validation: the epoch logs have no `val_` figures.
    #[default]
    None,
    /// The last samples of the training data, this fraction of them (in `[0, 1)`), held
    /// out from training.
    Split(f32),
    /// A separate dataset.
    Data(&'a dyn Dataset),
}

impl<'a> Validation<'a> {
    /// Splits `train` into the samples to train on and the held-out ones (empty unless
    /// [`Validation::Split`]). A split outside `[0, 1)` is an error.
    pub(crate) fn split<'t>(&self, train: &'t dyn Dataset) -> Result<(Part<'t>, Part<'t>)> {
        let fraction = match *self {
            Validation::Split(fraction) => fraction,
            Validation::None | Validation::Data(_) => 0.0,
        };
        if !(0.0..1.0).contains(&fraction) {
            return Err(TrainError::Config(format!(
                "the validation split {fraction} must be in [0, 1)"
            )));
        }
        let held_out = (train.len() as f64 * f64::from(fraction)).round() as usize;
        let cut = train.len() - held_out;
        Ok((
            Subset::new(train, (0..cut).collect())?,
            Subset::new(train, (cut..train.len()).collect())?,
        ))
    }
}
