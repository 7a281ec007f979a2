//! ONNX files: the protobuf messages of the format ([`proto`]) and the import of CNNs
//! into Petal models ([`import_onnx`]).

mod import;
mod ops;
pub mod proto;
mod read;

pub use import::{import_onnx, import_onnx_bytes, ImportOptions, ImportedModel};

#[cfg(test)]
mod tests;
