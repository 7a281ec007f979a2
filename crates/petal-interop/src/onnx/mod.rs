//! ONNX files: the protobuf messages of the format ([`proto`]).

pub mod proto;

#[cfg(test)]
mod tests;
