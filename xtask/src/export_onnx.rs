//! `cargo xtask export-onnx`: a zoo model or the MNIST repro's CNN as an ONNX file. The
//! work is petal-interop's [`ExportOnnx`]; this only parses flags and loads the model.

use std::path::PathBuf;

use petal_interop::load_arch;
use petal_interop::onnx::{ExportOnnx, ExportOptions, InputLayout};
use petal_nn::Model;
use petal_zoo::bipyramidal;
use petal_zoo::pretrained::weights_named;
use petal_zoo::Options;

use crate::paths::{mnist_model_path, weights_folder};
use crate::repro::mnist::network;

/// The `--arch` of the CNN `repro mnist` trains.
const MNIST_CNN: &str = "mnist-cnn";

/// Options of `cargo xtask export-onnx`.
#[derive(Clone, Debug, clap::Args)]
pub struct ExportOnnxArgs {
    /// The model: a catalog name (efficientnet-lite0, resnet18, resnet50, resnet50-v2,
    /// mobilenet_v2, vgg16) or `mnist-cnn`, the bipyramidal CNN `repro mnist` trains.
    #[arg(long)]
    pub arch: String,
    /// The weights. Catalog models: safetensors in PyTorch's names and layout, or a
    /// `.pth` (default: the catalog's verified file in PETAL_WEIGHTS). `mnist-cnn`: the
    /// safetensors `repro mnist` saves (default: where it saves them).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Take NHWC images (Petal's layout) instead of NCHW (PyTorch's).
    #[arg(long)]
    pub nhwc: bool,
    /// Fold each batch norm (and activation) into the convolution before it, as
    /// `Model::fold_for_inference` does.
    #[arg(long)]
    pub fold_bn: bool,
    /// The ONNX operator set (13 to 21).
    #[arg(long, default_value_t = 17)]
    pub opset: i64,
    /// The ONNX file to write (atomically).
    pub output: PathBuf,
}

/// The model `args` name, with its weights, folded for inference with `--fold-bn`.
pub fn load(args: &ExportOnnxArgs) -> anyhow::Result<Model> {
    let model = load_unfolded(args)?;
    Ok(match args.fold_bn {
        true => model.fold_for_inference(),
        false => model,
    })
}

/// The model `args` name, with its weights.
fn load_unfolded(args: &ExportOnnxArgs) -> anyhow::Result<Model> {
    if args.arch == MNIST_CNN {
        let path = args
            .weights
            .clone()
            .unwrap_or_else(|| mnist_model_path(false));
        anyhow::ensure!(
            path.is_file(),
            "no trained MNIST CNN at {}: run `cargo xtask repro mnist` first, or pass --weights",
            path.display()
        );
        let mut model = bipyramidal(&network(), 0)?;
        model.load_weights(&path)?;
        return Ok(model);
    }
    let entry = weights_named(&args.arch)?;
    Ok(match &args.weights {
        Some(path) => load_arch(entry.arch, path)?,
        None => weights_folder().load(entry, &Options::default())?,
    })
}

/// Runs `export-onnx`.
pub fn run(args: &ExportOnnxArgs) -> anyhow::Result<()> {
    export(args, &load(args)?)
}

/// Writes `model` as `args` say and prints what it wrote.
pub fn export(args: &ExportOnnxArgs, model: &Model) -> anyhow::Result<()> {
    let options = ExportOptions {
        layout: if args.nhwc {
            InputLayout::Nhwc
        } else {
            InputLayout::Nchw
        },
        opset: args.opset,
    };
    model.export_onnx(&args.output, &options)?;
    let bytes = std::fs::metadata(&args.output)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "wrote {}: {} {:?} input {:?}, {bytes} bytes",
        args.output.display(),
        args.arch,
        options.layout,
        model.input_shape(),
    );
    Ok(())
}
