//! Petal and the rest of the ecosystem: PyTorch checkpoints.
//!
//! [`pth::read_state_dict`] reads a `.pth` file in either format torch has written (the
//! zip archive of today and the legacy pickle stream of before 2020) into f32 tensors by
//! name, with a [`pickle`] reader that never executes anything: any global outside a
//! short allow-list (`os.system`, `builtins.eval`, ...) is refused by name.
//! [`load_pth`] loads a torchvision-named checkpoint into a zoo model, and
//! [`convert_to_safetensors`] writes a checkpoint as safetensors, in Petal's names and
//! layout or in the source's own (`cargo xtask convert`). [`fetch_weights`] brings the
//! zoo catalog's torchvision checkpoints into the weights cache, verified and converted
//! once to safetensors, and [`load_classifier`] also takes a `.pth` as the weights;
//! [`load_arch`] loads any weights of an architecture without the catalog's check.
//! [`onnx::ExportOnnx`] writes a Petal model as an ONNX file; [`onnx::import_onnx`] reads
//! an ONNX CNN into a Petal model that predicts what the file computes and can be trained
//! further, and [`load_onnx_classifier`] makes it a classifier of photos.

mod convert;
mod error;
mod load;
pub mod onnx;
pub mod pickle;
mod pretrained;
pub mod pth;
mod storage;

pub use convert::{convert_to_safetensors, ConvertOptions, Converted};
pub use error::InteropError;
pub use load::{load_arch, load_pth};
pub use pretrained::{convert_published, fetch_weights, load_classifier, load_onnx_classifier};
pub use storage::{Dtype, View};
