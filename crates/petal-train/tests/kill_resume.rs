//! The kill-and-resume test: a real training process is killed with SIGKILL at a random
//! step after its first checkpoint, resumed to the end, and its final weights must hash
//! the same as those of an uninterrupted run with the same seed and one thread.
//!
//! The training process is this test binary itself, run again on the test
//! `training_process` with `KILL_TEST_DIR` set (without it that test does nothing).
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use petal_data::augment::{AffineConfig, RandomAffine};
use petal_data::InMemoryDataset;
use petal_nn::layers::{
    Activation, Conv2dConfig, DenseConfig, DropoutConfig, FlattenConfig, Pool2dConfig,
};
use petal_nn::{Loss, Sequential};
use petal_optim::{Adam, AdamConfig};
use petal_tensor::Tensor;
use petal_train::callbacks::{Callback, Control, EarlyStopping, Monitor};
use petal_train::checkpoint::{self, CheckpointConfig};
use petal_train::{FitConfig, Result, Trainer, Validation};
use sha2::{Digest, Sha256};

const SAMPLES: usize = 192; // 144 for training: 9 steps per epoch
const EPOCHS: usize = 5;
const STEPS: u64 = 45;
const EVERY: u64 = 4;

/// 8x8 images with a bright 3x3 square in one of four quadrants (the label), on noise.
fn squares() -> InMemoryDataset {
    let mut values = Vec::with_capacity(SAMPLES * 64);
    let mut labels = Vec::with_capacity(SAMPLES);
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    for i in 0..SAMPLES {
        let label = i % 4;
        let (top, left) = (1 + 4 * (label / 2), 1 + 4 * (label % 2));
        for y in 0..8 {
            for x in 0..8 {
                let inside = (top..top + 3).contains(&y) && (left..left + 3).contains(&x);
                values.push(0.3 * next() + if inside { 0.7 } else { 0.0 });
            }
        }
        labels.push(label);
    }
    InMemoryDataset::new(
        Tensor::from_vec(&[SAMPLES, 8, 8, 1], values).unwrap(),
        labels,
        4,
    )
    .unwrap()
}

/// Reports each step on stdout and slows training down so that a kill lands mid-run.
struct Announce;

impl Callback for Announce {
    fn on_batch_end(&mut self, step: u64, _: f32) -> Result<Control> {
        println!("step {step}");
        std::thread::sleep(Duration::from_millis(15));
        Ok(Control::Continue)
    }
}

#[test]
fn training_process() {
    let Some(dir) = std::env::var_os("KILL_TEST_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let resume = std::env::var_os("KILL_TEST_RESUME").is_some();
    let mut model = Sequential::new(&[8, 8, 1], 11)
        .add(Conv2dConfig {
            activation: Activation::Relu,
            ..Conv2dConfig::new(4, 3)
        })
        .unwrap()
        .add(Pool2dConfig::max(2))
        .unwrap()
        .add(FlattenConfig::default())
        .unwrap()
        .add(DropoutConfig::new(0.25))
        .unwrap()
        .add(DenseConfig::new(4))
        .unwrap()
        .build()
        .unwrap();
    let adam = Adam::new(AdamConfig::new(0.01));
    let early = EarlyStopping::new(Monitor::new("val_loss"), 100, true);
    let augmentation = RandomAffine::new(AffineConfig {
        horizontal_flip: true,
        rotation: (-0.05, 0.05),
        ..AffineConfig::default()
    })
    .unwrap();
    let config = FitConfig {
        epochs: EPOCHS,
        batch_size: 16,
        seed: 5,
        shuffle_seed: Some(6),
        augmentation: Some(Arc::new(augmentation)),
        verbose: false,
        checkpoint: Some(CheckpointConfig {
            every_steps: Some(EVERY),
            resume,
            ..CheckpointConfig::new(dir.join("run.ckpt"))
        }),
        ..FitConfig::default()
    };
    Trainer::new(&mut model, adam)
        .loss(Loss::SparseCategoricalCrossentropy)
        .callback(early)
        .callback(Announce)
        .fit(&squares(), Validation::Split(0.25), &config)
        .unwrap();
    model.save_weights(&dir.join("final.safetensors")).unwrap();
    println!("finished");
}

/// Starts the training process in `dir`, with one thread.
fn spawn(dir: &Path, resume: bool) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "training_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KILL_TEST_DIR", dir)
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("KILL_TEST_RESUME")
        .stdout(Stdio::piped());
    if resume {
        command.env("KILL_TEST_RESUME", "1");
    }
    command.spawn().unwrap()
}

/// Runs the process to its end and returns the sha256 of its final weights file.
fn finish(dir: &Path, resume: bool) -> String {
    let output = spawn(dir, resume).wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let bytes = std::fs::read(dir.join("final.safetensors")).unwrap();
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_run_killed_at_a_random_step_resumes_to_the_same_weights() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    // After the first checkpoint (step EVERY), before the last step.
    let kill_at = EVERY + 1 + u64::from(nanos) % (STEPS - EVERY - 2);
    let (whole, killed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let reference = finish(whole.path(), false);

    let mut child = spawn(killed.path(), false);
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        if line.unwrap() == format!("step {kill_at}") {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the process was killed, not finished"
    );
    assert!(!killed.path().join("final.safetensors").exists());
    let saved = checkpoint::read(&killed.path().join("run.ckpt")).unwrap();
    let resumed = finish(killed.path(), true);
    println!(
        "killed at step {kill_at} of {STEPS}; resumed from the checkpoint {}; final weights sha256 {resumed} (uninterrupted {reference})",
        saved.position
    );
    assert!(saved.position.step >= EVERY);
    assert_eq!(resumed, reference);
}
