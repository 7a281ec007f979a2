//! ONNX files: the protobuf messages of the format ([`proto`]), and Petal models
//! written as ONNX ([`ExportOnnx`]).

mod export;
pub mod proto;

pub use export::{ExportError, ExportOnnx, ExportOptions, InputLayout, INPUT_NAME, OUTPUT_NAME};

#[cfg(test)]
mod tests;
