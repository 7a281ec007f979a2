//! Timing PyTorch on a workload through `bench/pytorch_bench.py`, run by the interpreter
//! in `PETAL_BENCH_PYTHON`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use petal_tensor::Precision;

use super::accuracy_side::SeedRun;
use super::{BenchOptions, Measurement, Workload};
use crate::paths::workspace_root;

const HOW_TO: &str = "set PETAL_BENCH_PYTHON to a Python with torch and numpy, e.g. \
    `python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch torchvision numpy && export PETAL_BENCH_PYTHON=/tmp/torch/bin/python`";

/// glibc malloc settings for the PyTorch process: every block from the heap, none
/// mapped on its own, and freed memory kept rather than returned to the system. Under
/// glibc's defaults each step's large activations are mapped and unmapped again, and
/// their pages faulted in anew: measured with `pytorch_bench.py` on this 2-core
/// machine, that costs PyTorch 35% of workload 1's rate (3591 against 5448 images/s),
/// 46% of the flowers CNN's (86 against 160) and 38% of ResNet18's (58 against 92).
/// Petal's runner keeps its freed memory too (mimalloc, `MI_OPTION_PURGE_DELAY`), so
/// this is the fair setting.
const PYTORCH_MALLOC: [(&str, &str); 2] = [
    ("MALLOC_MMAP_MAX_", "0"),
    ("MALLOC_TRIM_THRESHOLD_", "4294967296"),
];

/// A Python interpreter that can import torch.
pub struct PyTorch {
    python: PathBuf,
    version: String,
}

impl PyTorch {
    /// The interpreter from `PETAL_BENCH_PYTHON`, checked to import torch.
    pub fn find() -> Result<Self, String> {
        let python = std::env::var_os("PETAL_BENCH_PYTHON")
            .map(PathBuf::from)
            .ok_or_else(|| format!("PETAL_BENCH_PYTHON is not set; {HOW_TO}"))?;
        let out = Command::new(&python)
            .args(["-c", "import torch; print(torch.__version__)"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}; {HOW_TO}", python.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} cannot import torch; {HOW_TO}",
                python.display()
            ));
        }
        Ok(Self {
            python,
            version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        })
    }

    /// The torch version and its allocator settings (the interpreter's path is this
    /// machine's, not the report's).
    pub fn describe(&self) -> String {
        let malloc = PYTORCH_MALLOC.map(|(name, value)| format!("{name}={value}"));
        format!(
            "torch {}, glibc malloc with {} (freed memory kept, as Petal's mimalloc keeps it)",
            self.version,
            malloc.join(" ")
        )
    }

    /// PyTorch's figures on `workload` (channels_last, the faster layout on this CPU),
    /// in bf16 under `torch.autocast("cpu", dtype=torch.bfloat16)`.
    pub fn measure(
        &self,
        workload: Workload,
        precision: Precision,
        options: &BenchOptions,
    ) -> anyhow::Result<Measurement> {
        let line = self.run_script(workload, precision, options, &[])?;
        let figure = match workload {
            Workload::Gemm2048 => "gflops",
            _ => "images_per_second",
        };
        Ok(Measurement {
            median: field(&line, &format!("{figure}_median"))?,
            best: field(&line, &format!("{figure}_best"))?,
            epochs: None,
            seconds_per_epoch: None,
            peak_rss_mb: line["peak_rss_mb"].as_f64(),
        })
    }

    /// PyTorch's run with `seed` of the time-to-accuracy workload on the MNIST files in
    /// `mnist`, and its peak memory.
    pub fn time_to_accuracy(
        &self,
        seed: u64,
        mnist: &Path,
        options: &BenchOptions,
    ) -> anyhow::Result<(SeedRun, Option<f64>)> {
        let args = [
            "--mnist".into(),
            mnist.as_os_str().to_owned(),
            "--seed".into(),
            seed.to_string().into(),
        ];
        let line = self.run_script(Workload::KerasMnistTo99, Precision::F32, options, &args)?;
        let run = SeedRun {
            seconds: field(&line, "seconds")?,
            epochs: field(&line, "epochs")? as usize,
        };
        Ok((run, line["peak_rss_mb"].as_f64()))
    }

    /// The JSON line `bench/pytorch_bench.py` prints for `workload`, given `extra` arguments.
    fn run_script(
        &self,
        workload: Workload,
        precision: Precision,
        options: &BenchOptions,
        extra: &[OsString],
    ) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&self.python)
            .arg(script())
            .arg(workload.name())
            .args(extra)
            .args([
                "--threads",
                &options.threads.to_string(),
                "--repeats",
                &options.repeats.to_string(),
            ])
            .args([
                "--min-seconds",
                &options.min_seconds.to_string(),
                "--layout",
                "channels_last",
                "--precision",
                &precision.to_string(),
            ])
            .env("OMP_NUM_THREADS", options.threads.to_string())
            .envs(PYTORCH_MALLOC)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{} failed: {}",
            script().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// The PyTorch side's script.
fn script() -> PathBuf {
    workspace_root().join("bench").join("pytorch_bench.py")
}

/// The number `name` of the script's JSON line.
fn field(line: &serde_json::Value, name: &str) -> anyhow::Result<f64> {
    line[name]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("{} printed no {name}", script().display()))
}
