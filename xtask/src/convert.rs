//! `cargo xtask convert`: a PyTorch `.pth` checkpoint (either format) to safetensors.
//! The work is petal-interop's [`convert_to_safetensors`]; this only parses flags.

use std::path::PathBuf;

use petal_interop::pth::ReadOptions;
use petal_interop::{convert_to_safetensors, ConvertOptions};
use petal_zoo::Arch;

/// Options of `cargo xtask convert`.
#[derive(Clone, Debug, clap::Args)]
pub struct ConvertArgs {
    /// The `.pth` checkpoint (zip or legacy format); nothing in it is executed.
    pub input: PathBuf,
    /// The safetensors file to write (atomically).
    pub output: PathBuf,
    /// Write this architecture's parameters in Petal's names and layout (default: the
    /// checkpoint's own names and layout, as f32).
    #[arg(long, value_enum)]
    pub arch: Option<ArchName>,
    /// Key path of the state dict in a nested checkpoint, keys separated by `/`
    /// (e.g. `state_dict`).
    #[arg(long)]
    pub key: Option<String>,
    /// Prefix to strip from the names (e.g. `module.`).
    #[arg(long)]
    pub strip_prefix: Option<String>,
}

/// The architectures `--arch` takes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ArchName {
    #[value(name = "resnet18")]
    ResNet18,
    #[value(name = "resnet50")]
    ResNet50,
    #[value(name = "mobilenet_v2")]
    MobileNetV2,
    #[value(name = "vgg16")]
    Vgg16,
    #[value(name = "efficientnet-lite0")]
    EfficientNetLite0,
}

impl From<ArchName> for Arch {
    fn from(name: ArchName) -> Arch {
        match name {
            ArchName::ResNet18 => Arch::ResNet18,
            ArchName::ResNet50 => Arch::ResNet50,
            ArchName::MobileNetV2 => Arch::MobileNetV2,
            ArchName::Vgg16 => Arch::Vgg16,
            ArchName::EfficientNetLite0 => Arch::EfficientNetLite0,
        }
    }
}

/// Runs `convert` and prints what it wrote.
pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    let options = ConvertOptions {
        arch: args.arch.map(Arch::from),
        read: ReadOptions {
            key: args.key.as_deref(),
            strip_prefix: args.strip_prefix.as_deref(),
        },
        ..ConvertOptions::default()
    };
    let written = convert_to_safetensors(&args.input, &args.output, &options)?;
    println!(
        "wrote {}: {} tensors, {} bytes",
        args.output.display(),
        written.tensors,
        written.bytes
    );
    Ok(())
}
