//! Full checkpoints: resuming gives the weights of an uninterrupted run, and every bad
//! file, mismatched run, full disk and non-finite loss gets a clear message.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{model, quadrants};
use petal_data::augment::MixUp;
use petal_data::InMemoryDataset;
use petal_nn::{Loss, Model};
use petal_optim::{Adam, AdamConfig, CosineDecay, Optimizer, Sgd, SgdConfig};
use petal_tensor::Tensor;
use petal_train::callbacks::{Callback, Control, EarlyStopping, Monitor, ReduceLrOnPlateau};
use petal_train::checkpoint::{self, CheckpointConfig};
use petal_train::{FitConfig, History, Result, TrainError, Trainer, Validation};

/// Fails the run (like a crash) once the step count reaches `at`.
struct CrashAt(u64);

impl Callback for CrashAt {
    fn on_batch_end(&mut self, step: u64, _: f32) -> Result<Control> {
        if step == self.0 {
            return Err(TrainError::Config(format!("crash at step {step}")));
        }
        Ok(Control::Continue)
    }
}

/// The last quarter of the training data validates.
const SPLIT: Validation<'static> = Validation::Split(0.25);

fn config(path: &Path, resume: bool) -> FitConfig {
    FitConfig {
        epochs: 4,
        batch_size: 16,
        seed: 7,
        shuffle_seed: Some(3),
        verbose: false,
        checkpoint: Some(CheckpointConfig {
            every_steps: Some(5),
            resume,
            ..CheckpointConfig::new(path)
        }),
        ..FitConfig::default()
    }
}

/// Trains the dropout model with Adam, a cosine schedule, early stopping (best weights
/// restored) and ReduceLrOnPlateau; `crash` stops it early with an error.
fn run(
    init_seed: u64,
    data: &InMemoryDataset,
    config: &FitConfig,
    crash: Option<u64>,
) -> (Model, Result<History>) {
    run_with(
        init_seed,
        data,
        config,
        crash,
        CosineDecay::new(0.02, 20, 0.1),
    )
}

/// [`run`] with another cosine schedule.
fn run_with(
    init_seed: u64,
    data: &InMemoryDataset,
    config: &FitConfig,
    crash: Option<u64>,
    schedule: CosineDecay,
) -> (Model, Result<History>) {
    let mut m = model(init_seed, 0.3);
    let history = Trainer::new(&mut m, Adam::new(AdamConfig::new(0.02)))
        .loss(Loss::SparseCategoricalCrossentropy)
        .schedule(schedule)
        .callback(EarlyStopping::new(Monitor::new("val_loss"), 10, true))
        .callback(ReduceLrOnPlateau::new(
            Monitor::new("val_accuracy"),
            0.5,
            1,
            0,
            1e-4,
        ))
        .callback(CrashAt(crash.unwrap_or(u64::MAX)))
        .fit(data, SPLIT, config);
    (m, history)
}

fn values(model: &Model) -> Vec<u32> {
    model
        .store()
        .iter()
        .flat_map(|(_, p)| p.value.to_vec())
        .map(f32::to_bits)
        .collect()
}

/// Epoch figures that do not depend on the wall clock.
fn figures(history: &History) -> Vec<Vec<(String, u64)>> {
    history
        .epochs
        .iter()
        .map(|e| {
            e.iter()
                .filter(|(k, _)| {
                    !["seconds", "images_per_second", "data_wait_share"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.to_bits()))
                .collect()
        })
        .collect()
}

#[test]
fn resuming_after_a_crash_at_any_step_gives_the_uninterrupted_weights() {
    let data = quadrants(96, 4); // 72 training samples: 5 batches per epoch, 20 steps
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.ckpt");
    let (reference, history) = run(1, &data, &config(&whole, false), None);
    let history = history.unwrap();
    assert_eq!(history.epochs.len(), 4);
    for crash in [6, 8, 11, 14, 19] {
        let path = dir.path().join(format!("crash{crash}.ckpt"));
        let (_, crashed) = run(1, &data, &config(&path, false), Some(crash));
        assert!(crashed.is_err(), "the run crashed at step {crash}");
        let saved = checkpoint::read(&path).unwrap();
        assert!(saved.position.step < crash && saved.position.step >= crash - 5);
        // Another init seed: every weight must come from the checkpoint.
        let (resumed, again) = run(99, &data, &config(&path, true), None);
        assert_eq!(
            values(&resumed),
            values(&reference),
            "crash at step {crash}"
        );
        assert_eq!(figures(&again.unwrap()), figures(&history));
    }
    // A finished run resumes to its final weights at once.
    let (done, again) = run(5, &data, &config(&whole, true), None);
    assert_eq!(values(&done), values(&reference));
    assert_eq!(figures(&again.unwrap()), figures(&history));
}

#[test]
fn a_schedule_over_the_whole_run_resumes_where_it_stood() {
    // 60 training samples: 4 batches per epoch, 16 steps; the crash at step 12 resumes
    // from the save at step 10, in the middle of the third epoch.
    let data = quadrants(80, 4);
    let dir = tempfile::tempdir().unwrap();
    let cosine = CosineDecay::over_training(0.02, 0.1);
    let whole = dir.path().join("whole.ckpt");
    let (reference, history) = run_with(1, &data, &config(&whole, false), None, cosine);
    let history = history.unwrap();
    let floor = (f64::from(0.02f32) * f64::from(0.1f32)) as f32;
    assert_eq!(history.last("lr"), Some(f64::from(floor)));
    let path = dir.path().join("crash.ckpt");
    run_with(1, &data, &config(&path, false), Some(12), cosine)
        .1
        .unwrap_err();
    assert_eq!(checkpoint::read(&path).unwrap().position.batch, 2);
    let (resumed, again) = run_with(99, &data, &config(&path, true), None, cosine);
    assert_eq!(values(&resumed), values(&reference));
    assert_eq!(figures(&again.unwrap()), figures(&history));
}

#[test]
fn a_run_on_mixed_batches_resumes_to_the_uninterrupted_weights() {
    // The mixes are drawn per step, so the resumed steps mix as the uninterrupted ones.
    let data = quadrants(96, 4);
    let dir = tempfile::tempdir().unwrap();
    let mixing = |path: &Path, resume: bool| FitConfig {
        batch_mix: Some(Arc::new(MixUp::new(0.4).unwrap())),
        ..config(path, resume)
    };
    let whole = dir.path().join("whole.ckpt");
    let (reference, history) = run(1, &data, &mixing(&whole, false), None);
    let history = history.unwrap();
    let path = dir.path().join("crash.ckpt");
    run(1, &data, &mixing(&path, false), Some(13))
        .1
        .unwrap_err();
    let (resumed, again) = run(99, &data, &mixing(&path, true), None);
    assert_eq!(values(&resumed), values(&reference));
    assert_eq!(figures(&again.unwrap()), figures(&history));
    let plain = dir.path().join("plain.ckpt");
    let (unmixed, _) = run(1, &data, &config(&plain, false), None);
    assert_ne!(values(&unmixed), values(&reference));
}

#[test]
fn a_checkpoint_round_trips_through_its_file() {
    let data = quadrants(48, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    run(1, &data, &config(&path, false), Some(6)).1.unwrap_err();
    let saved = checkpoint::read(&path).unwrap();
    let again = dir.path().join("again.ckpt");
    checkpoint::write(&again, &saved).unwrap();
    assert_eq!(checkpoint::read(&again).unwrap(), saved);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&path).unwrap()
    );
    assert_eq!(saved.optimizer.kind, "adam");
    assert_eq!(saved.callbacks.len(), 3);
    assert_eq!((saved.position.epoch, saved.position.batch), (1, 2)); // step 5: 3 batches per epoch
}

fn message(error: TrainError) -> String {
    let text = error.to_string();
    println!("{text}");
    text
}

#[test]
fn bad_files_and_other_runs_are_refused_with_the_reason() {
    let data = quadrants(48, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    run(1, &data, &config(&path, false), Some(4)).1.unwrap_err();

    let garbage = dir.path().join("garbage.ckpt");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    let text = message(checkpoint::read(&garbage).unwrap_err());
    assert!(
        text.contains("garbage.ckpt: not a usable checkpoint"),
        "{text}"
    );

    let weights_only = dir.path().join("weights.safetensors");
    model(1, 0.0).save_weights(&weights_only).unwrap();
    let text = message(checkpoint::read(&weights_only).unwrap_err());
    assert!(
        text.contains("a weights file rather than a full checkpoint"),
        "{text}"
    );

    let bytes = std::fs::read(&path).unwrap();
    let truncated = &bytes[..bytes.len() - 10];
    let text = message(checkpoint::decode(truncated, &path).unwrap_err());
    assert!(text.contains("run.ckpt: not a usable checkpoint"), "{text}");

    let text = message(checkpoint::read(&dir.path().join("absent.ckpt")).unwrap_err());
    assert!(text.contains("absent.ckpt"), "{text}");

    // Another model (a wider hidden layer) is refused, naming the differing tensors.
    let mut other = petal_nn::Sequential::new(&[1, 1, 2], 0)
        .add(petal_nn::layers::FlattenConfig::default())
        .unwrap()
        .add(petal_nn::layers::DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap();
    let error = Trainer::new(&mut other, Adam::new(AdamConfig::new(0.02)))
        .fit(&data, SPLIT, &config(&path, true))
        .unwrap_err();
    let text = message(error);
    assert!(
        text.contains("run.ckpt: the weights do not match the model"),
        "{text}"
    );

    // The same model with another seed, or another optimizer, is refused too.
    let seeded = FitConfig {
        seed: 8,
        ..config(&path, true)
    };
    let text = message(run(1, &data, &seeded, None).1.unwrap_err());
    assert!(
        text.contains("seed: 7 in the checkpoint, 8 in this run"),
        "{text}"
    );
    let mut m = model(1, 0.3);
    let mut trainer = Trainer::new(&mut m, Sgd::new(SgdConfig::new(0.1)))
        .callback(EarlyStopping::new(Monitor::new("val_loss"), 10, true))
        .callback(ReduceLrOnPlateau::new(
            Monitor::new("val_accuracy"),
            0.5,
            1,
            0,
            1e-4,
        ))
        .callback(CrashAt(u64::MAX));
    let error = trainer.fit(&data, SPLIT, &config(&path, true)).unwrap_err();
    let text = message(error);
    assert!(text.contains("the optimizer state does not fit"), "{text}");
    assert_eq!(trainer.optimizer().iterations(), 0);
}

#[cfg(unix)]
/// Makes the next checkpoint save hit a full disk: the temporary file the save creates
/// beside the checkpoint is a link to /dev/full.
struct FillDiskAfterEpoch {
    epoch: usize,
    folder: std::path::PathBuf,
}

#[cfg(unix)]
impl Callback for FillDiskAfterEpoch {
    fn on_epoch_end(
        &mut self,
        epoch: usize,
        _: &History,
        _: &mut Model,
        _: &mut dyn Optimizer,
    ) -> Result<Control> {
        if epoch == self.epoch {
            let temp = format!(".full.ckpt.{}.tmp", std::process::id());
            std::os::unix::fs::symlink("/dev/full", self.folder.join(temp)).unwrap();
        }
        Ok(Control::Continue)
    }
}

#[cfg(unix)]
#[test]
fn a_full_disk_during_a_save_leaves_the_previous_checkpoint_usable() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let data = quadrants(48, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.ckpt");
    let mut m = model(1, 0.0);
    let fill = FillDiskAfterEpoch {
        epoch: 1,
        folder: dir.path().to_path_buf(),
    };
    let plain = FitConfig {
        checkpoint: Some(CheckpointConfig::new(&path)),
        ..config(&path, false)
    };
    let error = Trainer::new(&mut m, Adam::new(AdamConfig::new(0.02)))
        .callback(fill)
        .fit(&data, SPLIT, &plain)
        .unwrap_err();
    let text = message(error);
    assert!(
        text.contains("full.ckpt: could not save the checkpoint"),
        "{text}"
    );
    assert!(text.contains("No space left on device"), "{text}");
    assert!(
        text.contains(
            "the previous checkpoint in that file (end of epoch 1, step 3) is intact and usable"
        ),
        "{text}"
    );
    let kept = checkpoint::read(&path).unwrap();
    assert_eq!((kept.position.epoch, kept.history.epochs.len()), (1, 1));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the temporary file is removed: {leftovers:?}"
    );
}

#[test]
fn a_non_finite_loss_names_the_step_the_layer_and_the_last_checkpoint() {
    let data = quadrants(64, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blowup.ckpt");
    let mut m = model(1, 0.0);
    let sgd = Sgd::new(SgdConfig::new(1e4)); // diverges within a few steps
    let config = FitConfig {
        epochs: 50,
        checkpoint: Some(CheckpointConfig::new(&path)),
        ..config(&path, false)
    };
    let mut trainer = Trainer::new(&mut m, sgd);
    let error = trainer.fit(&data, Validation::None, &config).unwrap_err();
    let TrainError::NonFiniteLoss { step, .. } = &error else {
        panic!("{error}")
    };
    let step = *step;
    let text = message(error);
    assert!(text.contains(&format!("at step {step}")), "{text}");
    assert!(
        text.contains("the first layer whose output is not finite is \"dense"),
        "{text}"
    );
    let saved = checkpoint::read(&path).unwrap();
    assert!(saved.position.step < step);
    assert!(
        text.contains(&format!("the last good checkpoint is {}", path.display())),
        "{text}"
    );
    assert_eq!(
        trainer.optimizer().iterations(),
        step - 1,
        "the bad step is not applied"
    );

    // NaN in the data itself.
    let mut values = vec![0.5f32; 64];
    values[10] = f32::NAN;
    let bad = InMemoryDataset::new(
        Tensor::from_vec(&[32, 1, 1, 2], values).unwrap(),
        vec![0; 32],
        4,
    )
    .unwrap();
    let mut m = model(0, 0.0);
    let error = Trainer::new(&mut m, Adam::new(AdamConfig::new(0.01)))
        .fit(
            &bad,
            Validation::None,
            &FitConfig {
                shuffle_seed: None,
                batch_size: 8,
                verbose: false,
                ..FitConfig::default()
            },
        )
        .unwrap_err();
    let text = message(error);
    assert_eq!(
        text,
        "training stopped: the loss became NaN at step 1 (the input batch itself holds NaN \
         or infinite values); no checkpoint was being kept (FitConfig::checkpoint)"
    );
}

#[test]
fn damaged_bytes_are_errors_never_panics() {
    let data = quadrants(48, 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    run(1, &data, &config(&path, false), Some(6)).1.unwrap_err();
    let bytes = std::fs::read(&path).unwrap();
    assert!(checkpoint::decode(&bytes, &path).is_ok());
    for cut in (0..bytes.len()).step_by(97) {
        assert!(
            checkpoint::decode(&bytes[..cut], &path).is_err(),
            "cut at {cut}"
        );
    }
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + 8;
    for at in (0..header).step_by(7) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5a;
        // Either refused with a reason or (a flipped digit in a figure) still readable.
        if let Err(e) = checkpoint::decode(&damaged, &path) {
            assert!(e.to_string().contains("run.ckpt"), "{e}");
        }
    }
}
