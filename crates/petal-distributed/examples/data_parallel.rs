//! Data-parallel training of a small CNN on generated images, on one process or under
//! an MPI launcher:
//!
//! ```text
//! cargo build --release -p petal-distributed --features mpi --example data_parallel
//! target/release/examples/data_parallel --out one.safetensors                # alone
//! mpirun -n 2 target/release/examples/data_parallel --out two.safetensors    # 2 ranks
//! ```
//!
//! Both train with the same global batch (`--batch`, split over the ranks), so they end
//! with the same weights up to rounding. Flags: `--epochs N`, `--batch N`,
//! `--samples N`, `--out FILE` (rank 0 saves the weights), `--checkpoint FILE`
//! (`--every-steps N`, `--resume`), `--timeout-secs S` (the collectives' watchdog),
//! `--step-delay-ms MS` (slows each step, to watch or interrupt a run) and
//! `--pid-dir DIR` (each rank writes `rank<r>.pid` there).

use std::path::PathBuf;
use std::time::Duration;

use petal_data::InMemoryDataset;
use petal_distributed::LaunchError;
use petal_nn::layers::{Activation, Conv2dConfig, DenseConfig, FlattenConfig};
use petal_nn::Sequential;
use petal_optim::{Adam, AdamConfig};
use petal_tensor::Tensor;
use petal_train::callbacks::{Callback, Control};
use petal_train::checkpoint::CheckpointConfig;
use petal_train::{FitConfig, Trainer, Validation};

/// The command line.
struct Args {
    epochs: usize,
    batch: usize,
    samples: usize,
    out: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    every_steps: Option<u64>,
    resume: bool,
    timeout: Duration,
    step_delay: Duration,
    pid_dir: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        epochs: 2,
        batch: 32,
        samples: 512,
        out: None,
        checkpoint: None,
        every_steps: None,
        resume: false,
        timeout: Duration::from_secs(60),
        step_delay: Duration::ZERO,
        pid_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--resume" {
            args.resume = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--epochs" => args.epochs = number()? as usize,
            "--batch" => args.batch = number()? as usize,
            "--samples" => args.samples = number()? as usize,
            "--out" => args.out = Some(value.into()),
            "--checkpoint" => args.checkpoint = Some(value.into()),
            "--every-steps" => args.every_steps = Some(number()?),
            "--timeout-secs" => args.timeout = Duration::from_secs(number()?),
            "--step-delay-ms" => args.step_delay = Duration::from_millis(number()?),
            "--pid-dir" => args.pid_dir = Some(value.into()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

/// `n` 8x8 images of 4 classes: class `c` is bright in quadrant `c`, over
/// deterministic noise.
fn images(n: usize, seed: u64) -> InMemoryDataset {
    let mut values = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let class = ((i * 7 + seed) % 4) as usize;
        for p in 0..64u64 {
            let (row, col) = (p / 8, p % 8);
            let lit = usize::from(row >= 4) * 2 + usize::from(col >= 4) == class;
            let noise =
                ((i * 64 + p + seed * 977).wrapping_mul(2_654_435_761) % 1000) as f32 / 2000.0;
            values.push(if lit { 0.6 } else { 0.0 } + noise);
        }
        labels.push(class);
    }
    InMemoryDataset::new(
        Tensor::from_vec(&[n, 8, 8, 1], values).expect("shape"),
        labels,
        4,
    )
    .expect("labels below 4")
}

/// Sleeps after every step.
struct Slow(Duration);

impl Callback for Slow {
    fn on_batch_end(&mut self, _step: u64, _loss: f32) -> petal_train::Result<Control> {
        std::thread::sleep(self.0);
        Ok(Control::Continue)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let distributed = match petal_distributed::launch(args.timeout) {
        Ok(distributed) => Some(distributed),
        Err(LaunchError::NotLaunched) => None, // started without mpirun: train alone
        Err(e) => return Err(e.into()),
    };
    let rank = distributed.as_ref().map_or(0, |d| d.rank());
    if let Some(dir) = &args.pid_dir {
        std::fs::write(
            dir.join(format!("rank{rank}.pid")),
            std::process::id().to_string(),
        )?;
    }
    let (train, validation) = (images(args.samples, 1), images(128, 2));
    let mut model = Sequential::new(&[8, 8, 1], 11)
        .add(Conv2dConfig {
            activation: Activation::Relu,
            ..Conv2dConfig::new(4, 3)
        })?
        .add(FlattenConfig::default())?
        .add(DenseConfig::new(4))?
        .build()?;
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch,
        shuffle_seed: Some(1),
        seed: 1,
        checkpoint: args.checkpoint.map(|path| CheckpointConfig {
            every_steps: args.every_steps,
            resume: args.resume,
            ..CheckpointConfig::new(path)
        }),
        distributed,
        ..FitConfig::default()
    };
    let history = Trainer::new(&mut model, Adam::new(AdamConfig::new(0.01)))
        .callback(Slow(args.step_delay))
        .fit(&train, Validation::Data(&validation), &config)?;
    if rank == 0 {
        println!(
            "val_accuracy {:.4} after {} epochs",
            history.last("val_accuracy").unwrap_or(f64::NAN),
            history.epochs.len()
        );
        if let Some(out) = &args.out {
            model.save_weights(out)?;
        }
    }
    Ok(())
}
