//! Timing PyTorch on a workload through `bench/pytorch_bench.py`, run by the interpreter
//! in `PETAL_BENCH_PYTHON`: one round at a time through a [`Session`], so that xtask can
//! alternate PyTorch's rounds with Petal's.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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

/// A Python interpreter that can import torch, and the script it runs.
pub struct PyTorch {
    python: PathBuf,
    version: String,
    script: PathBuf,
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
            script: workspace_root().join("bench").join("pytorch_bench.py"),
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

    /// Starts PyTorch on `workload` (channels_last, the faster layout on this CPU; in
    /// bf16 under `torch.autocast("cpu", dtype=torch.bfloat16)`): the script builds it,
    /// warms up and finds how many steps make a round of `options.min_seconds / 4`, then
    /// waits for [`Session::round`].
    pub fn start(
        &self,
        workload: Workload,
        precision: Precision,
        options: &BenchOptions,
    ) -> anyhow::Result<Session> {
        let mut child = self
            .command(workload, precision, options, &["--serve".into()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            anyhow::bail!("{}: no pipes to the script", self.script.display());
        };
        let mut session = Session {
            child,
            input,
            output: BufReader::new(output),
            script: self.script.clone(),
            rates: Vec::new(),
        };
        session.reply("ready")?;
        Ok(session)
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
            seconds: field(&self.script, &line, "seconds")?,
            epochs: field(&self.script, &line, "epochs")? as usize,
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
        let out = self.command(workload, precision, options, extra).output()?;
        anyhow::ensure!(
            out.status.success(),
            "{} failed: {}",
            self.script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The script's command line for `workload`, with `extra` arguments.
    fn command(
        &self,
        workload: Workload,
        precision: Precision,
        options: &BenchOptions,
        extra: &[OsString],
    ) -> Command {
        let mut command = Command::new(&self.python);
        command
            .arg(&self.script)
            .arg(workload.name())
            .args(extra)
            .args([
                "--threads",
                &options.threads.to_string(),
                "--min-seconds",
                &options.min_seconds.to_string(),
                "--layout",
                "channels_last",
                "--precision",
                &precision.to_string(),
            ])
            .env("OMP_NUM_THREADS", options.threads.to_string())
            .envs(PYTORCH_MALLOC);
        command
    }
}

/// A running `pytorch_bench.py --serve`: one timed round per [`Session::round`], the
/// figures at [`Session::finish`].
pub struct Session {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    script: PathBuf,
    rates: Vec<f64>,
}

impl Session {
    /// Times one round (the calibrated number of steps) and keeps its rate.
    pub fn round(&mut self) -> anyhow::Result<()> {
        self.request("round")?;
        let reply = self.reply("rate")?;
        self.rates.push(field(&self.script, &reply, "rate")?);
        Ok(())
    }

    /// Ends the script: the median and best of the rounds' rates, and its peak memory.
    pub fn finish(mut self) -> anyhow::Result<Measurement> {
        self.request("done")?;
        let reply = self.reply("peak_rss_mb")?;
        self.child.wait()?;
        anyhow::ensure!(
            !self.rates.is_empty(),
            "{}: no round was timed",
            self.script.display()
        );
        Ok(Measurement::of_rates(
            self.rates,
            reply["peak_rss_mb"].as_f64(),
        ))
    }

    fn request(&mut self, line: &str) -> anyhow::Result<()> {
        let sent = writeln!(self.input, "{line}").and_then(|()| self.input.flush());
        sent.map_err(|e| self.failure(&format!("did not take '{line}' ({e})")))
    }

    /// The script's next JSON line, which must hold `key`; what the script wrote to
    /// stderr when it ended instead.
    fn reply(&mut self, key: &str) -> anyhow::Result<serde_json::Value> {
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            return Err(self.failure(&format!("ended before its '{key}' line")));
        }
        let script = self.script.display();
        let reply: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{script} printed '{}', not JSON: {e}", line.trim()))?;
        anyhow::ensure!(
            reply.get(key).is_some(),
            "{script} printed '{}' where its '{key}' line was due",
            line.trim()
        );
        Ok(reply)
    }

    /// An error naming the script, what went wrong and what it wrote to stderr (the
    /// script is stopped first).
    fn failure(&mut self, what: &str) -> anyhow::Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        anyhow::anyhow!("{} {what}: {}", self.script.display(), stderr.trim())
    }
}

/// The number `name` of `script`'s JSON line.
fn field(script: &Path, line: &serde_json::Value, name: &str) -> anyhow::Result<f64> {
    line[name]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("{} printed no {name}", script.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `pytorch_bench.py --serve` (plain Python, no torch): its rounds
    /// report 11, 12, 13, ... images/s.
    const FAKE_SERVER: &str = r#"
import json, sys
print(json.dumps({"ready": True, "calls": 1}), flush=True)
rate = 10.0
for line in sys.stdin:
    if line.strip() == "done":
        break
    rate += 1
    print(json.dumps({"rate": rate}), flush=True)
print(json.dumps({"peak_rss_mb": 5.0}), flush=True)
"#;

    fn options() -> BenchOptions {
        BenchOptions {
            only: vec![],
            threads: 1,
            repeats: 3,
            min_seconds: 0.01,
            distributed: false,
            cost_curves: false,
            precisions: vec![Precision::F32],
        }
    }

    fn python_running(script_text: &str, dir: &Path) -> PyTorch {
        let script = dir.join("server.py");
        std::fs::write(&script, script_text).unwrap();
        PyTorch {
            python: "python3".into(),
            version: "fake".into(),
            script,
        }
    }

    #[test]
    fn a_session_times_one_round_per_request_and_reports_their_median() {
        let dir = tempfile::tempdir().unwrap();
        let python = python_running(FAKE_SERVER, dir.path());
        let mut session = python
            .start(Workload::KerasMnistTrain, Precision::F32, &options())
            .unwrap();
        for _ in 0..3 {
            session.round().unwrap();
        }
        let figures = session.finish().unwrap();
        assert_eq!((figures.median, figures.best), (12.0, 13.0));
        assert_eq!(figures.peak_rss_mb, Some(5.0));
    }

    /// The error `start` gives when the script is `script_text`.
    fn start_error(script_text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        python_running(script_text, dir.path())
            .start(Workload::KerasMnistInfer, Precision::F32, &options())
            .err()
            .expect("the script never said it was ready")
            .to_string()
    }

    #[test]
    fn a_script_that_dies_is_an_error_naming_it_with_its_stderr() {
        let error = start_error(
            "import sys\nsys.stderr.write('ModuleNotFoundError: torch')\nsys.exit(3)\n",
        );
        assert!(error.contains("server.py"), "{error}");
        assert!(error.contains("before its 'ready' line"), "{error}");
        assert!(error.contains("ModuleNotFoundError: torch"), "{error}");
    }

    #[test]
    fn a_reply_that_is_not_json_is_an_error_quoting_it() {
        let error = start_error("print('warming up')\n");
        assert!(error.contains("printed 'warming up', not JSON"), "{error}");
    }

    #[test]
    fn a_reply_that_is_not_the_one_due_is_an_error_quoting_it() {
        let error = start_error("import json\nprint(json.dumps({'rate': 1.0}), flush=True)\n");
        assert!(
            error.contains(r#"printed '{"rate": 1.0}' where its 'ready' line was due"#),
            "{error}"
        );
    }
}
