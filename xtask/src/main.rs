//! `cargo xtask`: Petal's runner. `download <dataset>` fetches a dataset into the cache;
//! `repro <experiment>` reproduces one experiment of the CNN lecture; `bench` races
//! Petal against PyTorch; `docs` builds the site; `doctor` checks the environment.

mod bench;
mod classify;
mod convert;
mod docs;
mod doctor;
mod download;
mod export_onnx;
mod onnx_peer;
mod paths;
mod repro;

use clap::{Parser, Subcommand};

/// Training allocates and frees the same large activation buffers every step; mimalloc
/// keeps them mapped instead of returning them to the OS, which saves a page fault per
/// 4 KiB touched (glibc's malloc unmaps large blocks on free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (position 15 of `mi_option_e` in mimalloc 2.x and 3.x).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped: by default mimalloc hands memory freed 10 ms ago back to
/// the OS, and a network's next forward pass page-faults (and zeroes) it all again. For
/// MobileNetV2 inference that was a third of the CPU time.
fn keep_freed_memory() {
    // SAFETY: sets a process-wide allocator option; mimalloc allows this at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Petal's runner: datasets and the CNN lecture's experiments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch a dataset into the cache (PETAL_DATA), from PETAL_MIRROR when set.
    Download {
        /// Which dataset (`weights`: pretrained weights).
        #[arg(value_enum)]
        dataset: download::DatasetName,
        /// With `weights`: the model whose weights to fetch (default: every one).
        model: Option<String>,
    },
    /// Write a photo folder (train/<class>/, test/<class>/) of Oxford flowers.
    PhotoFolder(download::PhotoFolderOptions),
    /// Classify photos with a pretrained ImageNet model (weights from PETAL_WEIGHTS).
    Classify(classify::ClassifyOptions),
    /// Time the same workloads in Petal and PyTorch (PETAL_BENCH_PYTHON), side by side.
    Bench(bench::BenchOptions),
    /// Convert a PyTorch .pth checkpoint (either format) to safetensors, without running its pickle.
    Convert(convert::ConvertArgs),
    /// Write a zoo model or the MNIST repro's CNN as an ONNX file (opset 17, dynamic batch).
    ExportOnnx(export_onnx::ExportOnnxArgs),
    /// Petal's side of bench/onnxruntime_check.py: exports as export-onnx, then answers
    /// `logits N` / `time N` on stdin.
    #[command(hide = true)]
    OnnxPeer(export_onnx::ExportOnnxArgs),
    /// Build the API docs and the static site (docs/site/) with the CNN explainer.
    Docs(docs::DocsOptions),
    /// Open every page of a built site in headless Chromium: images, errors, the explainer.
    SiteTest(docs::SiteTestOptions),
    /// Check the environment: cache, mirror, free disk, datasets, weights, threads, CPU.
    Doctor,
    /// Reproduce one experiment of the lecture.
    Repro {
        /// Which experiment.
        #[arg(value_enum)]
        experiment: repro::Target,
        #[command(flatten)]
        options: repro::ReproOptions,
    },
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    match Cli::parse().command {
        Command::Download { dataset, model } => {
            download::run(dataset, model.as_deref()).map(|path| println!("{}", path.display()))
        }
        Command::Repro {
            experiment,
            options,
        } => repro::run_target(experiment, &options),
        Command::Bench(options) => bench::run(&options),
        Command::Classify(options) => classify::run(&options),
        Command::Convert(args) => convert::run(&args),
        Command::ExportOnnx(args) => export_onnx::run(&args),
        Command::OnnxPeer(args) => onnx_peer::run(&args),
        Command::PhotoFolder(options) => download::photo_folder(&options),
        Command::Docs(options) => docs::run(&options),
        Command::SiteTest(options) => docs::site_test(&options),
        Command::Doctor => doctor::run(),
    }
}
