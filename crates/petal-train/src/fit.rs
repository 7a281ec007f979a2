//! `fit`, `evaluate` and `predict`: the training loop over a model, an optimizer, a loss
//! and datasets.

use std::sync::Arc;
use std::time::Instant;

use petal_data::augment::Augmentation;
use petal_data::{Batch, BatchLoader, Dataset, Subset};
use petal_nn::{Loss, Model, Targets, Var};
use petal_optim::{clip_by_global_norm, LrSchedule, Optimizer};
use petal_tensor::Tensor;

use crate::callbacks::{Callback, Control};
use crate::checkpoint::{CheckpointConfig, Position, RunSettings};
use crate::checkpointing::Saver;
use crate::error::{Result, TrainError};
use crate::history::{EpochLogs, History};
use crate::metrics::{accuracy, predicted_classes, top_k_accuracy, ConfusionMatrix};
use crate::non_finite;
use crate::progress::EpochProgress;

/// How a `fit` call runs.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Seed of the per-epoch shuffle; `None` keeps the dataset order.
    pub shuffle_seed: Option<u64>,
    /// Seed of the random streams inside the model (dropout).
    pub seed: u64,
    /// Fraction of the training data held out for validation when no validation set
    /// is given (the last samples, as in Keras).
    pub validation_split: f32,
    /// Clip the gradients' global norm to this value.
    pub clip_norm: Option<f32>,
    /// Applied to every training sample after loading, with a random stream derived from
    /// (`seed`, epoch, sample index) so that a seed gives the same epoch bit for bit.
    pub augmentation: Option<Arc<dyn Augmentation>>,
    /// Print progress.
    pub verbose: bool,
    /// Full checkpoints: where, how often, and whether to resume from one.
    pub checkpoint: Option<CheckpointConfig>,
    /// Batches loaded ahead by a background thread while the model trains (Keras'
    /// `prefetch`); 0 loads each batch when the step asks for it. Either way the
    /// batches, and so the trained weights, are the same.
    pub prefetch: usize,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 32,
            shuffle_seed: Some(0),
            seed: 0,
            validation_split: 0.0,
            clip_norm: None,
            augmentation: None,
            verbose: true,
            checkpoint: None,
            prefetch: 2,
        }
    }
}

/// The pieces a training run works on.
pub struct Trainer<'a> {
    /// The model, updated in place.
    pub model: &'a mut Model,
    /// Updates the trainable parameters.
    pub optimizer: &'a mut dyn Optimizer,
    /// What is minimized (plus the model's weight penalties).
    pub loss: Loss,
    /// Sets the learning rate before each step, when given.
    pub schedule: Option<&'a dyn LrSchedule>,
    /// Called after each step and epoch.
    pub callbacks: Vec<&'a mut dyn Callback>,
}

/// Mixes the run seed and the step into the seed of one step's random stream.
fn step_seed(seed: u64, step: u64) -> u64 {
    (seed ^ 0x5DEE_CE66_D1CE_4E5B)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step.wrapping_mul(0xBF58_476D_1CE4_E5B9))
}

impl Trainer<'_> {
    /// Trains for `config.epochs` epochs and returns the per-epoch figures. Validation
    /// uses `validation`, else the held-out `validation_split` of `train`.
    ///
    /// With `config.checkpoint`, a full checkpoint is saved at every epoch end (and every
    /// `every_steps` steps); with its `resume` flag a run continues from that file,
    /// giving the same weights as an uninterrupted run with the same seeds and threads
    /// (a run that had already ended returns at once with its history and weights).
    /// A NaN or infinite loss stops training before that step is applied, with an error
    /// naming the step, where the non-finite values first appear and the last good
    /// checkpoint.
    pub fn fit(
        &mut self,
        train: &dyn Dataset,
        validation: Option<&dyn Dataset>,
        config: &FitConfig,
    ) -> Result<History> {
        if config.batch_size == 0 || !(0.0..1.0).contains(&config.validation_split) {
            return Err(TrainError::Config(format!(
                "batch size {} must be positive and validation split {} in [0, 1)",
                config.batch_size, config.validation_split
            )));
        }
        let held_out = (train.len() as f64 * f64::from(config.validation_split)).round() as usize;
        let cut = train.len() - held_out;
        let train_part = Subset::new(train, (0..cut).collect())?;
        let split_part = Subset::new(train, (cut..train.len()).collect())?;
        let validation: Option<&dyn Dataset> =
            validation.or((held_out > 0).then_some(&split_part as &dyn Dataset));

        let mut loader = BatchLoader::new(&train_part, config.batch_size);
        if let Some(seed) = config.shuffle_seed {
            loader = loader.shuffle(seed);
        }
        if let Some(augmentation) = &config.augmentation {
            loader = loader.augment(Arc::clone(augmentation), config.seed);
        }
        let settings = RunSettings {
            seed: config.seed,
            shuffle_seed: config.shuffle_seed,
            batch_size: config.batch_size,
            train_samples: train_part.len(),
        };
        let mut saver = Saver::new(config.checkpoint.as_ref(), settings);
        let (mut at, mut history) = match saver.resumable() {
            Some(path) => self.resume(&path, &saver.settings, config.verbose)?,
            None => (Position::default(), History::default()),
        };
        saver.resumed(&at);
        let first_epoch = if history.stop_reason.is_some() {
            config.epochs
        } else {
            at.epoch
        };
        'epochs: for epoch in first_epoch..config.epochs {
            let started = Instant::now();
            let progress = EpochProgress::start(
                epoch,
                config.epochs,
                loader.batches_per_epoch(),
                at.batch,
                config.verbose,
            );
            let (first, seen_before) = (at.batch, at.seen);
            let batches_per_epoch = loader.batches_per_epoch();
            // Trains on the epoch's remaining batches; returns the time spent waiting for
            // them and whether a callback stopped training.
            let mut train_on = |batches: &mut dyn Iterator<Item = petal_data::Result<Batch>>| {
                let mut waiting = 0.0;
                loop {
                    let asked = Instant::now();
                    let Some(batch) = batches.next() else { break };
                    waiting += asked.elapsed().as_secs_f64();
                    let batch = batch?;
                    let n = batch.labels.len();
                    let (loss, batch_accuracy) = self
                        .train_step(batch.images, &batch.labels, config)
                        .map_err(|e| saver.name_last_good(e))?;
                    at.loss_sum += f64::from(loss) * n as f64;
                    at.correct += batch_accuracy * n as f64;
                    at.seen += n;
                    at.batch += 1;
                    at.step = self.optimizer.iterations();
                    progress.step(at.loss_sum / at.seen as f64, at.correct / at.seen as f64);
                    for callback in self.callbacks.iter_mut() {
                        if let Control::Stop(reason) = callback.on_batch_end(at.step, loss)? {
                            history.stop_reason = Some(reason);
                            self.save(&mut saver, &at, &history)?;
                            return Ok((waiting, true));
                        }
                    }
                    if saver.due(at.step) && at.batch < batches_per_epoch {
                        self.save(&mut saver, &at, &history)?;
                    }
                }
                Ok::<_, TrainError>((waiting, false))
            };
            let (waiting, stopped) = if config.prefetch > 0 {
                loader.prefetched_epoch_from(epoch as u64, first, config.prefetch, train_on)
            } else {
                train_on(&mut loader.epoch_from(epoch as u64, first))
            }?;
            if stopped {
                break 'epochs;
            }
            let mut logs = EpochLogs::new();
            logs.insert("epoch".into(), (epoch + 1) as f64);
            logs.insert("loss".into(), at.loss_sum / at.seen.max(1) as f64);
            logs.insert("accuracy".into(), at.correct / at.seen.max(1) as f64);
            logs.insert("lr".into(), f64::from(self.optimizer.learning_rate()));
            let train_seconds = started.elapsed().as_secs_f64();
            logs.insert(
                "images_per_second".into(),
                (at.seen - seen_before) as f64 / train_seconds.max(1e-9),
            );
            logs.insert("data_wait_share".into(), waiting / train_seconds.max(1e-9));
            if let Some(val) = validation {
                let eval = evaluate(self.model, self.loss, val, config.batch_size)?;
                logs.insert("val_loss".into(), eval.loss);
                logs.insert("val_accuracy".into(), eval.accuracy);
            }
            logs.insert("seconds".into(), started.elapsed().as_secs_f64());
            progress.finish(&logs, config.verbose);
            history.epochs.push(logs);
            for callback in self.callbacks.iter_mut() {
                if let Control::Stop(reason) =
                    callback.on_epoch_end(epoch, &history, self.model, self.optimizer)?
                {
                    history.stop_reason = Some(reason);
                }
            }
            at = Position {
                epoch: epoch + 1,
                step: at.step,
                ..Position::default()
            };
            self.save(&mut saver, &at, &history)?;
            if history.stop_reason.is_some() {
                break;
            }
        }
        for callback in self.callbacks.iter_mut() {
            callback.on_train_end(&history, self.model)?;
        }
        Ok(history)
    }

    /// One optimizer step on a batch `(n, *input_shape)` with its labels; returns the
    /// batch's loss and accuracy. Uses `config`'s seed and clipping. A NaN or infinite
    /// loss is an error ([`TrainError::NonFiniteLoss`]) and then nothing is updated.
    pub fn train_step(
        &mut self,
        images: Tensor,
        labels: &[usize],
        config: &FitConfig,
    ) -> Result<(f32, f64)> {
        if let Some(schedule) = self.schedule {
            self.optimizer
                .set_learning_rate(schedule.learning_rate(self.optimizer.iterations()));
        }
        let seed = step_seed(config.seed, self.optimizer.iterations());
        let x = Var::constant(images);
        let mut step =
            self.model
                .loss_and_gradients(&x, Targets::Labels(labels), self.loss, seed)?;
        if !step.loss.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: self.optimizer.iterations() + 1,
                loss: step.loss,
                culprit: non_finite::locate(self.model, &x, seed)?,
                checkpoint: "no checkpoint is known to this step".into(),
            });
        }
        if let Some(max_norm) = config.clip_norm {
            clip_by_global_norm(&mut step.grads, max_norm);
        }
        self.optimizer.step(self.model.store_mut(), &step.grads)?;
        self.model.apply_updates(step.updates)?;
        Ok((step.loss, accuracy(&step.logits, labels)))
    }
}

/// The figures of a model on a dataset.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f64,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Top-5 accuracy (equal to 1 with 5 classes or fewer).
    pub top5_accuracy: f64,
    /// The label of each sample, in dataset order.
    pub labels: Vec<usize>,
    /// The predicted class of each sample.
    pub predicted: Vec<usize>,
}

impl Evaluation {
    /// The confusion matrix of the predictions.
    pub fn confusion_matrix(&self, classes: usize) -> ConfusionMatrix {
        ConfusionMatrix::new(classes, &self.labels, &self.predicted)
    }
}

/// The model's outputs (logits) for every sample, in dataset order, with the labels.
pub fn predict(
    model: &Model,
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<(Tensor, Vec<usize>)> {
    let loader = BatchLoader::new(data, batch_size.max(1));
    let mut outputs =
        Vec::with_capacity(data.len() * model.output_shape().iter().product::<usize>());
    let mut labels = Vec::with_capacity(data.len());
    for batch in loader.epoch(0) {
        let batch = batch?;
        outputs.extend_from_slice(model.predict(&batch.images)?.as_slice());
        labels.extend(batch.labels);
    }
    let shape: Vec<usize> = std::iter::once(labels.len())
        .chain(model.output_shape().iter().copied())
        .collect();
    Ok((
        Tensor::from_vec(&shape, outputs).map_err(petal_nn::NnError::from)?,
        labels,
    ))
}

/// Loss and accuracy of the model on a dataset (inference mode).
pub fn evaluate(
    model: &Model,
    loss: Loss,
    data: &dyn Dataset,
    batch_size: usize,
) -> Result<Evaluation> {
    let (logits, labels) = predict(model, data, batch_size)?;
    let value = loss
        .compute(&Var::constant(logits.clone()), Targets::Labels(&labels))?
        .value()
        .item()
        .map_err(petal_nn::NnError::from)?;
    Ok(scores_evaluation(f64::from(value), &logits, labels))
}

pub(crate) fn scores_evaluation(loss: f64, scores: &Tensor, labels: Vec<usize>) -> Evaluation {
    Evaluation {
        loss,
        accuracy: accuracy(scores, &labels),
        top5_accuracy: top_k_accuracy(scores, &labels, 5),
        predicted: predicted_classes(scores),
        labels,
    }
}
