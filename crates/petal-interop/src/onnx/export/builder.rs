//! Building an ONNX graph one node at a time: nodes with their attributes, weights as
//! initializers, and the typed values at the graph's edges.

use crate::onnx::proto::{
    AttributeProto, AttributeType, DataType, Dimension, GraphProto, NodeProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};

/// The nodes and initializers of a graph under construction; every value is named after
/// the node that computes it.
#[derive(Default)]
pub(super) struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    /// Adds the node `name` running `op` on `inputs`; returns its output's name (`name`).
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.to_string()],
            name: name.to_string(),
            op_type: op.to_string(),
            attribute: attributes,
            ..NodeProto::default()
        });
        name.to_string()
    }

    /// Adds an f32 initializer; returns its name.
    pub fn floats(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float as i32,
            name: name.to_string(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
        name.to_string()
    }

    /// Adds a 1-D i64 initializer (shapes for `Reshape`); returns its name.
    pub fn int64s(&mut self, name: &str, values: &[i64]) -> String {
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: DataType::Int64 as i32,
            name: name.to_string(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..TensorProto::default()
        });
        name.to_string()
    }

    /// Gives the value `from` the name `to` wherever a node produces or reads it.
    pub fn rename(&mut self, from: &str, to: &str) {
        for node in &mut self.nodes {
            for value in node.input.iter_mut().chain(&mut node.output) {
                if value == from {
                    *value = to.to_string();
                }
            }
        }
    }

    /// The finished graph reading `input` and returning `output`.
    pub fn finish(self, name: &str, input: ValueInfoProto, output: ValueInfoProto) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.to_string(),
            initializer: self.initializers,
            input: vec![input],
            output: vec![output],
        }
    }
}

/// An f32 tensor value `name` of shape `(batch, dims...)`, the batch axis dynamic.
pub(super) fn batched_value(name: &str, dims: &[usize]) -> ValueInfoProto {
    let batch = Dimension {
        dim_param: Some("batch".into()),
        dim_value: None,
    };
    let fixed = dims.iter().map(|&d| Dimension {
        dim_value: Some(d as i64),
        dim_param: None,
    });
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(batch).chain(fixed).collect(),
                }),
            }),
        }),
    }
}

/// An integer attribute.
pub(super) fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

/// An integer-list attribute.
pub(super) fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..AttributeProto::default()
    }
}

/// A float attribute.
pub(super) fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..AttributeProto::default()
    }
}
