//! Timing PyTorch on a workload through `bench/pytorch_bench.py`, run by the interpreter
//! in `PETAL_BENCH_PYTHON`.

use std::path::PathBuf;
use std::process::Command;

use petal_tensor::Precision;

use super::accuracy_side::mnist_folder;
use super::{BenchOptions, Measurement, Workload};
use crate::paths::workspace_root;

const HOW_TO: &str = "set PETAL_BENCH_PYTHON to a Python with torch and numpy, e.g. \
    `python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch torchvision numpy && export PETAL_BENCH_PYTHON=/tmp/torch/bin/python`";

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

    /// The torch version (the interpreter's path is this machine's, not the report's).
    pub fn describe(&self) -> String {
        format!("torch {}", self.version)
    }

    /// PyTorch's figures on `workload` (channels_last, the faster layout on this CPU),
    /// in bf16 under `torch.autocast("cpu", dtype=torch.bfloat16)`.
    pub fn measure(
        &self,
        workload: Workload,
        precision: Precision,
        options: &BenchOptions,
    ) -> anyhow::Result<Measurement> {
        let script = workspace_root().join("bench").join("pytorch_bench.py");
        let mut command = Command::new(&self.python);
        command.arg(&script);
        if workload == Workload::KerasMnistTo99 {
            command.arg("--mnist").arg(mnist_folder()?);
        }
        let out = command
            .arg(workload.name())
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
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let field = |name: &str| {
            line[name]
                .as_f64()
                .ok_or_else(|| anyhow::anyhow!("{} printed no {name}", script.display()))
        };
        let figure = match workload {
            Workload::Gemm2048 => "gflops",
            Workload::KerasMnistTo99 => "seconds",
            _ => "images_per_second",
        };
        Ok(Measurement {
            median: field(&format!("{figure}_median"))?,
            best: field(&format!("{figure}_best"))?,
            epochs: line["epochs_median"].as_f64(),
            peak_rss_mb: line["peak_rss_mb"].as_f64(),
        })
    }
}
