//! Reading an ONNX file's messages: the model checked for what the importer needs
//! (a graph, the default operator set at version 11 or later), constant tensors
//! decoded to f32 or i64 values with their lengths checked against their shapes, and
//! node attributes by name.

use half::{bf16, f16};
use petal_tensor::Tensor;
use prost::Message;

use super::proto::{AttributeProto, DataType, GraphProto, ModelProto, NodeProto, TensorProto};

/// The oldest default-domain operator set the importer reads.
pub(crate) const MIN_OPSET: i64 = 11;

/// The decoded model's graph and the version of its default operator set, or why the
/// bytes are not such a model.
pub(crate) fn decode_model(bytes: &[u8]) -> Result<(GraphProto, i64), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    let model = ModelProto::decode(bytes).map_err(|e| {
        format!("not an ONNX protobuf message (wrong format, or a truncated file): {e}")
    })?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version);
    let Some(graph) = model.graph else {
        return Err("the model has no graph (not an ONNX model?)".into());
    };
    match opset {
        None => Err("no default (ai.onnx) operator set is imported".into()),
        Some(v) if v < MIN_OPSET => Err(format!(
            "operator set {v} is too old: Petal imports opset {MIN_OPSET} and later"
        )),
        Some(v) => Ok((graph, v)),
    }
}

/// A constant tensor's values: floats as a Petal tensor, integers (shapes, axes) as
/// they are.
#[derive(Clone, Debug)]
pub(crate) enum Constant {
    /// FLOAT, DOUBLE, FLOAT16 or BFLOAT16 values, as f32.
    Float(Tensor),
    /// INT64, INT32, INT8 or UINT8 values, flat.
    Int(Vec<i64>),
}

/// The values of `tensor` (named `what` in errors), checked: stored in this file, of a
/// numeric type, and exactly as many as its shape says.
pub(crate) fn constant(tensor: &TensorProto, what: &str) -> Result<Constant, String> {
    if tensor.data_location == 1 || !tensor.external_data.is_empty() {
        let location = tensor
            .external_data
            .iter()
            .find(|e| e.key == "location")
            .map_or(String::new(), |e| format!(" ({})", e.value));
        return Err(format!(
            "tensor {what} keeps its data in an external file{location}; Petal reads only \
             self-contained .onnx files (save with onnx.save(model, path, \
             save_as_external_data=False))"
        ));
    }
    let shape = tensor
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("tensor {what} has a negative dimension {d}"))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    if shape.contains(&0) {
        return Err(format!("tensor {what} of shape {shape:?} is empty"));
    }
    let len = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("tensor {what}: its shape {shape:?} overflows"))?;
    let data_type = DataType::try_from(tensor.data_type).map_err(|_| {
        format!(
            "tensor {what} has data type {}, which Petal does not read",
            tensor.data_type
        )
    })?;
    let raw = &tensor.raw_data;
    let width = match data_type {
        DataType::Float | DataType::Int32 => 4,
        DataType::Int64 | DataType::Double => 8,
        DataType::Float16 | DataType::Bfloat16 => 2,
        DataType::Uint8 | DataType::Int8 => 1,
        DataType::Undefined => return Err(format!("tensor {what} has no data type")),
    };
    let typed_len = match data_type {
        DataType::Float => tensor.float_data.len(),
        DataType::Double => tensor.double_data.len(),
        DataType::Int64 => tensor.int64_data.len(),
        _ => tensor.int32_data.len(),
    };
    let stored = if raw.is_empty() {
        typed_len
    } else {
        raw.len() / width
    };
    if stored != len || (!raw.is_empty() && !raw.len().is_multiple_of(width)) {
        return Err(format!(
            "tensor {what} of shape {shape:?} needs {len} values but holds {stored}{}",
            if stored < len {
                " (data shorter than its dimensions)"
            } else {
                ""
            }
        ));
    }
    let words = |n: usize| raw.chunks_exact(n);
    let floats: Option<Vec<f32>> = match data_type {
        DataType::Float if raw.is_empty() => Some(tensor.float_data.clone()),
        DataType::Float => Some(
            words(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        DataType::Double if raw.is_empty() => {
            Some(tensor.double_data.iter().map(|&v| v as f32).collect())
        }
        DataType::Double => Some(
            words(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
        ),
        DataType::Float16 | DataType::Bfloat16 => {
            let bits: Vec<u16> = if raw.is_empty() {
                tensor.int32_data.iter().map(|&v| v as u16).collect()
            } else {
                words(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()
            };
            Some(if data_type == DataType::Float16 {
                bits.into_iter()
                    .map(|b| f16::from_bits(b).to_f32())
                    .collect()
            } else {
                bits.into_iter()
                    .map(|b| bf16::from_bits(b).to_f32())
                    .collect()
            })
        }
        _ => None,
    };
    if let Some(values) = floats {
        return Tensor::from_vec(&shape, values)
            .map(Constant::Float)
            .map_err(|e| format!("tensor {what}: {e}"));
    }
    let ints: Vec<i64> = match data_type {
        DataType::Int64 if raw.is_empty() => tensor.int64_data.clone(),
        DataType::Int64 => words(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        DataType::Int32 if !raw.is_empty() => words(4)
            .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        DataType::Int8 if !raw.is_empty() => raw.iter().map(|&b| i64::from(b as i8)).collect(),
        DataType::Uint8 if !raw.is_empty() => raw.iter().map(|&b| i64::from(b)).collect(),
        _ => tensor.int32_data.iter().map(|&v| i64::from(v)).collect(),
    };
    Ok(Constant::Int(ints))
}

/// A node's attributes by name.
pub(crate) struct Attributes<'a>(pub(crate) &'a NodeProto);

impl Attributes<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }
    /// An integer attribute, or `default`.
    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }
    /// A float attribute, or `default`.
    pub(crate) fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }
    /// An integer-list attribute, if present.
    pub(crate) fn ints(&self, name: &str) -> Option<&[i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }
    /// A float-list attribute, if present.
    pub(crate) fn floats(&self, name: &str) -> Option<&[f32]> {
        self.get(name).map(|a| a.floats.as_slice())
    }
    /// A string attribute, if present.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    /// A tensor attribute, if present.
    pub(crate) fn tensor(&self, name: &str) -> Option<&TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }
}
