//! ONNX files: the protobuf messages of the format ([`proto`]), the import of CNNs into
//! Petal models ([`import_onnx`]) and Petal models written as ONNX ([`ExportOnnx`]).

mod export;
mod import;
mod ops;
pub mod proto;
mod read;

pub use export::{ExportError, ExportOnnx, ExportOptions, InputLayout, INPUT_NAME, OUTPUT_NAME};
pub use import::{import_onnx, import_onnx_bytes, ImportOptions, ImportedModel};
