//! `fit`: the training loop over a model, an optimizer, a loss and datasets, and the
//! [`Trainer`] that holds them (Keras' `compile` then `fit`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use petal_data::augment::{Augmentation, BatchMix};
use petal_data::{Batch, BatchLoader, Dataset};
use petal_nn::{Loss, Model, Targets, Var};
use petal_optim::{clip_by_global_norm, LrSchedule, Optimizer, RunLength};
use petal_tensor::{with_precision, Precision, Tensor};

use crate::callbacks::{Callback, Control};
use crate::checkpoint::saver::Saver;
use crate::checkpoint::{CheckpointConfig, Position, RunSettings};
use crate::distributed::{self, Distributed};
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate_logits;
use crate::history::{EpochLogs, History};
use crate::metrics::{accuracy, predicted_classes, Metric};
use crate::mixing::mix_batch;
use crate::non_finite;
use crate::progress::EpochProgress;
use crate::validation::Validation;

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
    /// Clip the gradients' global norm to this value.
    pub clip_norm: Option<f32>,
    /// Applied to every training sample after loading, with a random stream derived from
    /// (`seed`, epoch, sample index) so that a seed gives the same epoch bit for bit.
    pub augmentation: Option<Arc<dyn Augmentation>>,
    /// Mixes each training batch after loading (and augmenting) it with a [`BatchMix`]
    /// such as [`MixUp`](petal_data::augment::MixUp) or
    /// [`CutMix`](petal_data::augment::CutMix), drawing from
    /// [`batch_rng`](petal_data::augment::batch_rng)`(seed, step)`, so that a seed gives
    /// the same mixes bit for bit (a resumed run included). The labels become one-hot
    /// rows mixed like the images, and the loss compares the output with these soft
    /// targets: with a cross-entropy, `lambda CE(own) + (1 - lambda) CE(partner)` per
    /// sample. The logged training `accuracy` then counts a sample as right when the
    /// prediction is its dominant label, the class of largest mixed weight (the lowest
    /// on ties, like Keras' accuracy on soft targets). Validation data is never mixed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use petal_data::{augment::MixUp, InMemoryDataset};
    /// use petal_nn::layers::{DenseConfig, FlattenConfig};
    /// use petal_nn::Sequential;
    /// use petal_optim::{Adam, AdamConfig};
    /// use petal_tensor::Tensor;
    /// use petal_train::{FitConfig, Trainer, Validation};
    ///
    /// let data = InMemoryDataset::new(Tensor::from_vec(&[2, 1, 1, 1], vec![-1.0, 1.0])?, vec![0, 1], 2)?;
    /// let mut model = Sequential::new(&[1, 1, 1], 0)
    ///     .add(FlattenConfig::default())?
    ///     .add(DenseConfig::new(2))?
    ///     .build()?;
    /// let config = FitConfig {
    ///     epochs: 30,
    ///     batch_size: 2,
    ///     verbose: false,
    ///     batch_mix: Some(Arc::new(MixUp::new(0.2)?)),
    ///     ..FitConfig::default()
    /// };
    /// let history = Trainer::new(&mut model, Adam::new(AdamConfig::new(0.1)))
    ///     .fit(&data, Validation::Data(&data), &config)?;
    /// assert_eq!(history.last("val_accuracy"), Some(1.0)); // on the unmixed points
    /// assert!(MixUp::new(0.0).is_err()); // alpha must be positive
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub batch_mix: Option<Arc<dyn BatchMix>>,
    /// Print progress.
    pub verbose: bool,
    /// Full checkpoints: where, how often, and whether to resume from one.
    pub checkpoint: Option<CheckpointConfig>,
    /// Batches loaded ahead by a background thread while the model trains (Keras'
    /// `prefetch`); 0 loads each batch when the step asks for it. Either way the
    /// batches, and so the trained weights, are the same.
    pub prefetch: usize,
    /// Train on a group of processes (data parallelism, see [`crate::distributed`]):
    /// `batch_size` is then the global batch, split evenly over the ranks; only rank 0
    /// prints and saves checkpoints. `None` trains in this process alone.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use petal_data::InMemoryDataset;
    /// use petal_nn::{layers::{DenseConfig, FlattenConfig}, Sequential};
    /// use petal_optim::{Sgd, SgdConfig};
    /// use petal_tensor::Tensor;
    /// use petal_train::distributed::{local_group, Communicator, Distributed};
    /// use petal_train::{FitConfig, Trainer, Validation};
    ///
    /// let data = InMemoryDataset::new(Tensor::from_vec(&[4, 1, 1, 1], vec![-2.0, -1.0, 1.0, 2.0])?, vec![0, 0, 1, 1], 2)?;
    /// // Two ranks as two threads; with MPI each would be a process.
    /// let weights: Vec<Vec<f32>> = std::thread::scope(|scope| {
    ///     let ranks: Vec<_> = local_group(2, Duration::from_secs(60)).into_iter().map(|comm| {
    ///         let data = &data;
    ///         scope.spawn(move || {
    ///             let mut model = Sequential::new(&[1, 1, 1], comm.rank() as u64) // rank 0's weights win
    ///                 .add(FlattenConfig::default()).unwrap().add(DenseConfig::new(2)).unwrap().build().unwrap();
    ///             let config = FitConfig {
    ///                 epochs: 3, batch_size: 4, verbose: false,
    ///                 distributed: Some(Distributed::new(Arc::new(comm))),
    ///                 ..FitConfig::default()
    ///             };
    ///             Trainer::new(&mut model, Sgd::new(SgdConfig::new(0.1)))
    ///                 .fit(data, Validation::Data(data), &config).unwrap();
    ///             model.store().iter().flat_map(|(_, p)| p.value.as_slice().to_vec()).collect()
    ///         })
    ///     }).collect();
    ///     ranks.into_iter().map(|r| r.join().unwrap()).collect()
    /// });
    /// assert_eq!(weights[0], weights[1]); // the replicas stayed identical
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub distributed: Option<Distributed>,
    /// The precision of the convolution and dense products, forward and backward, in
    /// the training steps and the validation passes ([`with_precision`] around each);
    /// `None` (the default) keeps the precision of the caller's [`with_precision`]
    /// scope, f32 outside any. [`Precision::Bf16`] is mixed precision, bf16 factors and f32 sums, with the
    /// weights, the optimizer state and every other op in f32 (PyTorch's
    /// `torch.autocast("cpu", dtype=torch.bfloat16)`). `fit` refuses bf16 before any
    /// work on a CPU without AVX512-BF16, naming the CPU; when `verbose`, it prints
    /// [`petal_tensor::peak::bf16_speed_warning`]'s message on a CPU whose bf16
    /// instruction is too slow for bf16 to pay.
    ///
    /// ```
    /// use petal_data::InMemoryDataset;
    /// use petal_nn::layers::{DenseConfig, FlattenConfig};
    /// use petal_nn::Sequential;
    /// use petal_optim::{Adam, AdamConfig};
    /// use petal_tensor::{Precision, Tensor};
    /// use petal_train::{FitConfig, Trainer, Validation};
    ///
    /// let data = InMemoryDataset::new(Tensor::from_vec(&[2, 1, 1, 1], vec![-1.0, 1.0])?, vec![0, 1], 2)?;
    /// let mut model = Sequential::new(&[1, 1, 1], 0)
    ///     .add(FlattenConfig::default())?
    ///     .add(DenseConfig::new(2))?
    ///     .build()?;
    /// let config = FitConfig { epochs: 20, batch_size: 2, verbose: false, precision: Some(Precision::Bf16), ..FitConfig::default() };
    /// let fitted = Trainer::new(&mut model, Adam::new(AdamConfig::new(0.1)))
    ///     .fit(&data, Validation::Data(&data), &config);
    /// match Precision::Bf16.supported() {
    ///     Ok(_) => assert_eq!(fitted?.last("val_accuracy"), Some(1.0)),
    ///     Err(e) => assert_eq!(fitted.unwrap_err().to_string(), e.to_string()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub precision: Option<Precision>,
}

impl FitConfig {
    /// The precision the products run in ([`FitConfig::precision`], else the caller's
    /// scope), checked against this CPU.
    fn checked_precision(&self) -> Result<Precision> {
        Ok(self
            .precision
            .unwrap_or_else(Precision::scoped)
            .supported()?)
    }
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 32,
            shuffle_seed: Some(0),
            seed: 0,
            clip_norm: None,
            augmentation: None,
            batch_mix: None,
            verbose: true,
            checkpoint: None,
            prefetch: 2,
            distributed: None,
            precision: None,
        }
    }
}

/// A model with what trains it: an optimizer, a loss, and optionally a learning-rate
/// schedule, callbacks and validation metrics (Keras' `model.compile(...)`), built step by
/// step and then [`fit`](Trainer::fit) to data.
///
/// The trainer owns what it is given. To read a callback after training (the best epoch
/// of an [`EarlyStopping`](crate::callbacks::EarlyStopping), say), lend it with `&mut`;
/// the optimizer is reachable through [`Trainer::optimizer`]. `'m` is the borrow of the
/// model, `'p` that of any lent part.
///
/// ```
/// use petal_data::InMemoryDataset;
/// use petal_nn::layers::{DenseConfig, FlattenConfig};
/// use petal_nn::{Loss, Sequential};
/// use petal_optim::{Adam, AdamConfig, CosineDecay};
/// use petal_tensor::Tensor;
/// use petal_train::callbacks::{EarlyStopping, Monitor};
/// use petal_train::metrics::F1Score;
/// use petal_train::{FitConfig, Trainer, Validation};
///
/// let images = Tensor::from_vec(&[4, 1, 1, 1], vec![-2.0, -1.0, 1.0, 2.0])?;
/// let data = InMemoryDataset::new(images, vec![0, 0, 1, 1], 2)?;
/// let mut model = Sequential::new(&[1, 1, 1], 0)
///     .add(FlattenConfig::default())?
///     .add(DenseConfig::new(2))?
///     .build()?;
/// let mut early = EarlyStopping::new(Monitor::new("val_loss"), 5, true);
/// let history = Trainer::new(&mut model, Adam::new(AdamConfig::new(0.1)))
///     .loss(Loss::SparseCategoricalCrossentropy)
///     .schedule(CosineDecay::over_training(0.1, 0.1))
///     .callback(&mut early)
///     .metric(F1Score)
///     .fit(&data, Validation::Data(&data), &FitConfig { epochs: 20, batch_size: 2, verbose: false, ..FitConfig::default() })?;
/// assert_eq!(history.last("val_f1_score"), Some(1.0));
/// assert!(early.best_epoch().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer<'m, 'p> {
    model: &'m mut Model,
    optimizer: Box<dyn Optimizer + 'p>,
    loss: Loss,
    schedule: Option<Box<dyn LrSchedule + 'p>>,
    callbacks: Vec<Box<dyn Callback + 'p>>,
    metrics: Vec<Box<dyn Metric + 'p>>,
}

impl<'m, 'p> Trainer<'m, 'p> {
    /// Trains `model` (in place) with `optimizer`, minimizing the sparse categorical
    /// cross-entropy unless [`Trainer::loss`] says otherwise; no schedule, callbacks or
    /// metrics.
    pub fn new(model: &'m mut Model, optimizer: impl Optimizer + 'p) -> Self {
        Self {
            model,
            optimizer: Box::new(optimizer),
            loss: Loss::SparseCategoricalCrossentropy,
            schedule: None,
            callbacks: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// Minimizes `loss` (plus the model's weight penalties).
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// Sets the learning rate before each step from `schedule`, which `fit` tells the
    /// run's length first ([`LrSchedule::set_run_length`]).
    pub fn schedule(mut self, schedule: impl LrSchedule + 'p) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// Adds a callback, called after each step and epoch in the order added. Give
    /// `&mut callback` to keep it readable after training.
    pub fn callback(mut self, callback: impl Callback + 'p) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Adds a metric, computed on the validation data at each epoch end and logged as
    /// `val_<name>`.
    pub fn metric(mut self, metric: impl Metric + 'p) -> Self {
        self.metrics.push(Box::new(metric));
        self
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// The optimizer (its step count, its learning rate).
    pub fn optimizer(&self) -> &dyn Optimizer {
        &*self.optimizer
    }

    /// The optimizer, to change (per-parameter learning-rate scales for fine-tuning).
    pub fn optimizer_mut(&mut self) -> &mut dyn Optimizer {
        &mut *self.optimizer
    }
}

/// Mixes the run seed, the step and the rank into the seed of one step's random stream
/// (rank 0's is that of a single process; other ranks draw other dropout masks).
fn step_seed(seed: u64, step: u64, rank: usize) -> u64 {
    (seed ^ 0x5DEE_CE66_D1CE_4E5B)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add((rank as u64).wrapping_mul(0x94D0_49BB_1331_11EB))
}

/// What one optimizer step measured.
struct Stepped {
    /// The (global) batch's loss.
    loss: f32,
    /// The (global) batch's accuracy.
    accuracy: f64,
    /// Seconds spent averaging over the ranks.
    exchange_seconds: f64,
}

impl Trainer<'_, '_> {
    /// Trains for `config.epochs` epochs and returns the per-epoch figures, with the
    /// validation figures (`val_loss`, `val_accuracy` and one `val_<name>` per metric)
    /// computed on `validation` at each epoch end.
    ///
    /// With `config.checkpoint`, a full checkpoint is saved at every epoch end (and every
    /// `every_steps` steps); with its `resume` flag a run continues from that file,
    /// giving the same weights as an uninterrupted run with the same seeds and threads
    /// (a run that had already ended returns at once with its history and weights).
    /// A NaN or infinite loss stops training before that step is applied, with an error
    /// naming the step, where the non-finite values first appear and the last good
    /// checkpoint. The products run in `config.precision` ([`FitConfig::precision`]).
    pub fn fit(
        &mut self,
        train: &dyn Dataset,
        validation: Validation<'_>,
        config: &FitConfig,
    ) -> Result<History> {
        let precision = config.checked_precision()?;
        with_precision(precision, || {
            self.fit_in_precision(train, validation, config)
        })
    }

    /// [`Trainer::fit`] inside its precision scope: every step and validation pass runs
    /// on this thread.
    fn fit_in_precision(
        &mut self,
        train: &dyn Dataset,
        validation: Validation<'_>,
        config: &FitConfig,
    ) -> Result<History> {
        self.check_metric_names()?;
        let (train_part, split_part) = validation.split(train)?;
        let validation: Option<&dyn Dataset> = match validation {
            Validation::Data(data) => Some(data),
            Validation::Split(_) if !split_part.is_empty() => Some(&split_part),
            Validation::Split(_) | Validation::None => None,
        };
        let dist = config.distributed.as_ref();
        // Only rank 0 prints and saves.
        let leader = dist.is_none_or(Distributed::is_leader);
        let verbose = config.verbose && leader;
        if verbose && Precision::scoped() == Precision::Bf16 {
            if let Some(warning) = petal_tensor::peak::bf16_speed_warning() {
                println!("{warning}");
            }
        }
        let settings = RunSettings {
            seed: config.seed,
            shuffle_seed: config.shuffle_seed,
            batch_size: config.batch_size,
            train_samples: train_part.len(),
            world_size: dist.map_or(1, Distributed::world_size),
        };
        if let Some(dist) = dist {
            distributed::agree_on_start(
                dist,
                &distributed::StartSettings {
                    run: &settings,
                    epochs: config.epochs,
                    train: &train_part,
                    validation,
                    store: self.model.store(),
                },
            )?;
        }

        let mut loader = BatchLoader::new(&train_part, config.batch_size)?;
        if let Some(seed) = config.shuffle_seed {
            loader = loader.shuffle(seed);
        }
        if let Some(augmentation) = &config.augmentation {
            loader = loader.augment(Arc::clone(augmentation), config.seed);
        }
        if let Some(dist) = dist {
            loader = loader.shard(dist.rank(), dist.world_size())?;
        }
        let mut saver = Saver::new(config.checkpoint.as_ref().filter(|_| leader), settings);
        let resumed = match dist {
            Some(dist) => distributed::shared_checkpoint(dist, &saver, config.checkpoint.as_ref())?,
            None => saver.read_resumable()?,
        };
        let (mut at, mut history) = match resumed {
            Some((path, checkpoint)) => saver.restore(
                &path,
                checkpoint,
                self.model,
                &mut *self.optimizer,
                &mut self.callbacks,
                verbose,
            )?,
            None => {
                if let Some(dist) = dist {
                    distributed::broadcast_weights(dist, self.model.store_mut())?;
                }
                (Position::default(), History::default())
            }
        };
        saver.resumed(&at);
        self.tell_schedule(&at, loader.batches_per_epoch(), config.epochs);
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
                verbose,
            );
            let (first, seen_before) = (at.batch, at.seen);
            let batches_per_epoch = loader.batches_per_epoch();
            // Trains on the epoch's remaining batches; returns the time spent waiting for
            // them and whether a callback stopped training.
            let mut exchanging = 0.0;
            let mut deferred_stop = None;
            let mut train_on = |batches: &mut dyn Iterator<Item = petal_data::Result<Batch>>| {
                let mut waiting = 0.0;
                loop {
                    let asked = Instant::now();
                    let Some(batch) = batches.next() else { break };
                    waiting += asked.elapsed().as_secs_f64();
                    let batch = batch?;
                    // The samples of the step over all ranks (this rank's alone without
                    // distribution).
                    let n = loader.global_batch_len(at.batch);
                    let stepped = self
                        .step(batch.images, &batch.labels, n, config)
                        .map_err(|e| saver.name_last_good(e))?;
                    let loss = stepped.loss;
                    exchanging += stepped.exchange_seconds;
                    at.loss_sum += f64::from(loss) * n as f64;
                    at.correct += stepped.accuracy * n as f64;
                    at.seen += n;
                    at.batch += 1;
                    at.step = self.optimizer.iterations();
                    if let Some(dist) = dist {
                        if dist.check_every > 0 && at.step.is_multiple_of(dist.check_every) {
                            distributed::check_weights(dist, self.model.store(), at.step)?;
                        }
                    }
                    progress.step(at.loss_sum / at.seen as f64, at.correct / at.seen as f64);
                    for callback in self.callbacks.iter_mut() {
                        if !leader && callback.leader_only() {
                            continue;
                        }
                        if let Control::Stop(reason) = callback.on_batch_end(at.step, loss)? {
                            // Rank 0 alone heard it: every rank stops at the epoch's end.
                            if dist.is_some() && callback.leader_only() {
                                deferred_stop.get_or_insert(reason);
                                continue;
                            }
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
            if let Some(dist) = dist {
                logs.insert(
                    "allreduce_share".into(),
                    exchanging / train_seconds.max(1e-9),
                );
                distributed::check_weights(dist, self.model.store(), at.step)?;
            }
            if let Some(val) = validation {
                self.validate(val, config.batch_size, dist, &mut logs)?;
            }
            logs.insert("seconds".into(), started.elapsed().as_secs_f64());
            progress.finish(&logs, verbose);
            history.epochs.push(logs);
            history.stop_reason = deferred_stop;
            for callback in self.callbacks.iter_mut() {
                if !leader && callback.leader_only() {
                    continue;
                }
                if let Control::Stop(reason) =
                    callback.on_epoch_end(epoch, &history, self.model, &mut *self.optimizer)?
                {
                    history.stop_reason = Some(reason);
                }
            }
            if let Some(dist) = dist {
                history.stop_reason = distributed::leaders_stop(dist, history.stop_reason.take())?;
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
            if leader || !callback.leader_only() {
                callback.on_train_end(&history, self.model)?;
            }
        }
        Ok(history)
    }

    /// Tells the schedule the run's length: `epochs` of `steps_per_epoch` steps, counted
    /// from the optimizer's step count when the run began (before any resumed part).
    fn tell_schedule(&mut self, at: &Position, steps_per_epoch: usize, epochs: usize) {
        let Some(schedule) = &mut self.schedule else {
            return;
        };
        let steps_per_epoch = steps_per_epoch as u64;
        let done = at.epoch as u64 * steps_per_epoch + at.batch as u64;
        schedule.set_run_length(RunLength {
            steps_per_epoch,
            first_step: self.optimizer.iterations().saturating_sub(done),
            total_steps: epochs as u64 * steps_per_epoch,
        });
    }

    /// Adds the validation figures of the model on `data` to `logs`, each rank of a
    /// group predicting its part of the data.
    fn validate(
        &self,
        data: &dyn Dataset,
        batch_size: usize,
        dist: Option<&Distributed>,
        logs: &mut EpochLogs,
    ) -> Result<()> {
        let (logits, labels) = distributed::predict_sharded(
            self.model,
            data,
            batch_size,
            Distributed::communicator_of(dist),
        )?;
        for metric in &self.metrics {
            logs.insert(
                format!("val_{}", metric.name()),
                metric.compute(&logits, &labels),
            );
        }
        let eval = evaluate_logits(self.loss, &logits, labels)?;
        logs.insert("val_loss".into(), eval.loss);
        logs.insert("val_accuracy".into(), eval.accuracy);
        Ok(())
    }

    /// Refuses metrics whose logged names would clash with each other or with the
    /// validation loss and accuracy.
    fn check_metric_names(&self) -> Result<()> {
        let mut names = vec!["loss".to_string(), "accuracy".to_string()];
        for metric in &self.metrics {
            let name = metric.name();
            if names.contains(&name) {
                return Err(TrainError::Config(format!(
                    "two validation figures would be logged as val_{name}: give each metric its own name"
                )));
            }
            names.push(name);
        }
        Ok(())
    }

    /// Saves a full checkpoint of the run at `at`, if the run keeps one.
    fn save(&self, saver: &mut Saver, at: &Position, history: &History) -> Result<()> {
        saver.save(at, history, self.model, &*self.optimizer, &self.callbacks)
    }

    /// One optimizer step on a batch `(n, *input_shape)` with its labels; returns the
    /// batch's loss and accuracy. Uses `config`'s seed, clipping and batch mix (see
    /// [`FitConfig::batch_mix`]). A NaN or infinite loss is an error
    /// ([`TrainError::NonFiniteLoss`]) and then nothing is updated. With
    /// `config.distributed`, `images` is this rank's equal part of a global batch of
    /// `world size x n` samples, and the figures returned are the global batch's. The
    /// products run in `config.precision`.
    pub fn train_step(
        &mut self,
        images: Tensor,
        labels: &[usize],
        config: &FitConfig,
    ) -> Result<(f32, f64)> {
        let world = config
            .distributed
            .as_ref()
            .map_or(1, Distributed::world_size);
        let precision = config.checked_precision()?;
        let stepped = with_precision(precision, || {
            self.step(images, labels, labels.len() * world, config)
        })?;
        Ok((stepped.loss, stepped.accuracy))
    }

    /// One optimizer step on this rank's part `images` of a batch of `global_samples`
    /// samples (all of it without distribution): the forward and backward pass, the
    /// averaging over the ranks, the non-finite check, clipping and the update.
    fn step(
        &mut self,
        mut images: Tensor,
        labels: &[usize],
        global_samples: usize,
        config: &FitConfig,
    ) -> Result<Stepped> {
        let iterations = self.optimizer.iterations();
        if let Some(schedule) = &self.schedule {
            self.optimizer
                .set_learning_rate(schedule.learning_rate(iterations));
        }
        let mixed = match &config.batch_mix {
            Some(mix) if !labels.is_empty() => Some(mix_batch(
                &**mix,
                &mut images,
                labels,
                self.model.output_shape(),
                config.seed,
                iterations,
            )?),
            _ => None,
        };
        let targets = match &mixed {
            Some(soft) => Targets::Values(soft),
            None => Targets::Labels(labels),
        };
        let dist = config.distributed.as_ref();
        let seed = step_seed(config.seed, iterations, dist.map_or(0, Distributed::rank));
        let x = Var::constant(images);
        // A rank whose part of a short last batch is empty only takes part in the averaging.
        let pass = match (labels.is_empty(), dist) {
            (true, _) => None,
            (false, Some(group)) if group.sync_batch_norm => {
                let parts = Rc::new(distributed::GroupParts::new(group.communicator.clone()));
                let pass = self.model.loss_and_gradients_of_part(
                    &x,
                    targets,
                    self.loss,
                    seed,
                    parts.clone(),
                )?;
                if let Some(failure) = parts.failure() {
                    return Err(failure.into());
                }
                Some(pass)
            }
            (false, _) => Some(
                self.model
                    .loss_and_gradients(&x, targets, self.loss, seed)?,
            ),
        };
        let local_accuracy = pass.as_ref().map_or(0.0, |pass| match &mixed {
            Some(soft) => accuracy(&pass.logits, &predicted_classes(soft)),
            None => accuracy(&pass.logits, labels),
        });
        let local_loss = pass.as_ref().map_or(0.0, |pass| pass.loss);
        let (loss, accuracy, mut grads, updates, exchange_seconds) = match (dist, pass) {
            (Some(dist), pass) => {
                let local = distributed::Local {
                    step: pass,
                    correct: local_accuracy * labels.len() as f64,
                    samples: labels.len(),
                };
                let all =
                    distributed::average_step(dist, self.model.store(), local, global_samples)?;
                let accuracy = all.correct / global_samples.max(1) as f64;
                (all.loss, accuracy, all.grads, all.updates, all.seconds)
            }
            (None, Some(pass)) => (pass.loss, local_accuracy, pass.grads, pass.updates, 0.0),
            (None, None) => {
                return Err(TrainError::Config(
                    "a training step needs at least one sample".into(),
                ))
            }
        };
        if !loss.is_finite() {
            let culprit = match local_loss.is_finite() {
                true => "on another rank: its error names the cause".to_string(),
                false => non_finite::locate(self.model, &x, seed)?,
            };
            return Err(TrainError::NonFiniteLoss {
                step: self.optimizer.iterations() + 1,
                loss,
                culprit,
                checkpoint: "no checkpoint is known to this step".into(),
            });
        }
        if let Some(max_norm) = config.clip_norm {
            clip_by_global_norm(&mut grads, max_norm);
        }
        self.optimizer.step(self.model.store_mut(), &grads)?;
        self.model.apply_updates(updates)?;
        Ok(Stepped {
            loss,
            accuracy,
            exchange_seconds,
        })
    }
}
