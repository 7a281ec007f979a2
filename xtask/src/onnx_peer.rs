//! `cargo xtask onnx-peer`: Petal's side of `bench/onnxruntime_check.py`. Loads a model and
//! writes its ONNX file as `export-onnx` does, folds its batch norms (as Petal runs
//! inference), then answers one command per stdin line, so the script can alternate Petal's runs with onnxruntime's:
//! `logits N` prints the logits of the probe batch of N images as one line of
//! comma-separated values; `time N` runs that batch once and prints the seconds taken.

use std::io::{BufRead, Write};
use std::time::Instant;

use petal_tensor::Tensor;

use crate::export_onnx::{export, load, ExportOnnxArgs};

/// The probe batch: `(n, *sample)` values in [-1, 1), the same formula as the script's
/// `probe_batch` (index `i` of the NHWC values holds `(i * 7919 % 2003) / 1001.5 - 1`).
fn probe_batch(n: usize, sample: &[usize]) -> anyhow::Result<Tensor> {
    let shape: Vec<usize> = std::iter::once(n).chain(sample.iter().copied()).collect();
    let len: usize = shape.iter().product();
    let values = (0..len)
        .map(|i| (i * 7919 % 2003) as f32 / 1001.5 - 1.0)
        .collect();
    Ok(Tensor::from_vec(&shape, values)?)
}

/// Runs the peer until stdin closes.
pub fn run(args: &ExportOnnxArgs) -> anyhow::Result<()> {
    let model = load(args)?;
    export(args, &model)?;
    let model = model.fold_for_inference();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (command, n) = line
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("expected `logits N` or `time N`, got {line:?}"))?;
        let x = probe_batch(n.trim().parse()?, model.input_shape())?;
        match command {
            "logits" => {
                let logits = model.predict(&x)?;
                let text: Vec<String> = logits.as_slice().iter().map(f32::to_string).collect();
                writeln!(out, "{}", text.join(","))?;
            }
            "time" => {
                let start = Instant::now();
                model.predict(&x)?;
                writeln!(out, "{}", start.elapsed().as_secs_f64())?;
            }
            other => anyhow::bail!("unknown command {other:?}: expected logits or time"),
        }
        out.flush()?;
    }
    Ok(())
}
