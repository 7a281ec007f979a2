//! ONNX import: torchvision's MobileNetV2 as `torch.onnx.export` wrote it
//! (`../shared/fixtures/zoo/`, skipped with a note when absent) and a small CNN of every
//! mapped operator (`tests/fixtures/tiny_cnn.onnx`, by `make_onnx_fixtures.py`)
//! reproduce PyTorch's outputs and train further; broken and unsupported files fail
//! with one error naming the file and every problem.

mod common;

use std::path::Path;
use std::time::Instant;

use petal_data::download::DataConfig;
use petal_interop::onnx::proto::{
    AttributeProto, AttributeType, DataType, Dimension, GraphProto, ModelProto, NodeProto,
    OperatorSetId, StringStringEntry, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto,
};
use petal_interop::onnx::{import_onnx, ImportOptions};
use petal_interop::{load_onnx_classifier, InteropError};
use petal_nn::layers::{DenseConfig, LayerKind};
use petal_nn::weights::read_tensors;
use petal_nn::{Loss, Model, Targets, Var};
use petal_tensor::Tensor;
use petal_zoo::pretrained::{Preprocessing, WeightsFolder};
use prost::Message;

use common::{local_fixture, shared, zoo_fixture};

/// max |petal - torch| / max |torch| of `model` on the io file's input.
fn relative_error(model: &Model, io: &Path, input: &str, output: &str) -> f32 {
    let io = read_tensors(io).unwrap();
    let got = model.predict(&io[input]).unwrap();
    got.max_relative_diff(&io[output]).unwrap()
}

#[test]
fn mobilenet_v2_from_onnx_reproduces_pytorch() {
    let (Some(onnx), Some(io)) = (
        zoo_fixture("mobilenet_v2.onnx"),
        zoo_fixture("mobilenet_v2.io.safetensors"),
    ) else {
        return;
    };
    let start = Instant::now();
    let imported = import_onnx(&onnx, &ImportOptions::default()).unwrap();
    println!(
        "imported mobilenet_v2.onnx in {:.3} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(imported.input_name, "input");
    assert_eq!(imported.input_shape, [None, Some(3), Some(224), Some(224)]);
    assert_eq!(imported.output_name, "logits");
    let model = imported.model;
    assert_eq!(model.input_shape(), &[224, 224, 3]);
    assert_eq!(model.output_shape(), &[1000]);
    // torch's exporter folded the batch norms into the convolutions: every value of the
    // file's initializers is a trainable parameter, and nothing else is.
    let file = ModelProto::decode(std::fs::read(&onnx).unwrap().as_slice()).unwrap();
    assert!(file
        .opset_import
        .iter()
        .any(|o| o.domain.is_empty() && o.version >= 13));
    // Encoding the decoded messages again gives a file that decodes to the same messages.
    let again = ModelProto::decode(file.encode_to_vec().as_slice()).unwrap();
    assert_eq!(again, file);
    let graph = file.graph.unwrap();
    let convs = graph.node.iter().filter(|n| n.op_type == "Conv").count();
    assert_eq!(convs, 52, "MobileNetV2 has 52 convolutions");
    let initialized: i64 = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>())
        .sum();
    assert_eq!(model.store().trainable_count() as i64, initialized);
    assert_eq!(model.store().non_trainable_count(), 0);
    let names = model.layer_names();
    assert!(names.contains(&"features.0.0") && names.contains(&"classifier.1"));
    let depthwise = model
        .summary()
        .rows
        .iter()
        .filter(|r| r.kind == LayerKind::DepthwiseConv2d)
        .count();
    assert_eq!(depthwise, 17);
    let error = relative_error(&model, &io, "input_nhwc", "logits");
    println!("mobilenet_v2.onnx: max |petal - torch| = {error:e} x max |torch logit|");
    assert!(error <= 1e-4, "relative error {error}");
}

#[test]
fn an_onnx_imagenet_model_classifies_photos_with_the_catalog_names() {
    let (Some(onnx), Some(_)) = (
        zoo_fixture("mobilenet_v2.onnx"),
        shared("weights/imagenet_classes.txt"),
    ) else {
        return;
    };
    let shared_root = onnx.parent().unwrap().join("../..");
    let cache = tempfile::tempdir().unwrap();
    let folder = WeightsFolder {
        folder: shared_root.join("weights"),
        data: DataConfig::new(cache.path()),
    };
    let classifier = load_onnx_classifier(&onnx, &folder).unwrap();
    assert!(classifier.entry.is_none());
    assert_eq!(classifier.preprocessing, Preprocessing::IMAGENET);
    assert_eq!(classifier.names.len(), 1000);
    assert_eq!(classifier.names[948], "Granny Smith");
    let photo = shared_root.join("images/coffee.png");
    let (logits, top) = classifier.classify(&photo, 3).unwrap();
    assert_eq!(logits.shape(), &[1, 1000]);
    assert_eq!(top.len(), 3);
    // A model of another input size is refused, naming the file.
    let tiny = local_fixture("tiny_cnn.onnx");
    let message = load_onnx_classifier(&tiny, &folder)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("tiny_cnn.onnx") && message.contains("takes [12, 12, 3]"),
        "{message}"
    );
}

#[test]
fn a_small_cnn_of_every_mapped_operator_reproduces_pytorch() {
    let imported = import_onnx(&local_fixture("tiny_cnn.onnx"), &ImportOptions::default()).unwrap();
    let model = &imported.model;
    assert_eq!(model.input_shape(), &[12, 12, 3]);
    assert_eq!(model.output_shape(), &[5]);
    let kinds: Vec<LayerKind> = model.summary().rows.iter().map(|r| r.kind).collect();
    for kind in [
        LayerKind::Conv2d,
        LayerKind::DepthwiseConv2d,
        LayerKind::BatchNorm,
        LayerKind::MaxPool2d,
        LayerKind::AvgPool2d,
        LayerKind::Dense,
        LayerKind::Flatten,
    ] {
        assert!(kinds.contains(&kind), "no {kind:?} in {kinds:?}");
    }
    let names = model.layer_names();
    for name in [
        "stem",
        "depthwise",
        "depthwise_act",
        "grouped",
        "dilated",
        "merged_bn",
        "fc",
        "Mul",
    ] {
        assert!(names.contains(&name), "no layer {name} in {names:?}");
    }
    // MatMul + Add of the head is one dense layer, its bias folded in.
    assert_eq!(model.layer_params("MatMul").unwrap().len(), 2);
    let error = relative_error(
        model,
        &local_fixture("tiny_cnn.io.safetensors"),
        "input_nhwc",
        "output",
    );
    println!("tiny_cnn.onnx: relative error {error:e}");
    assert!(error <= 1e-5, "relative error {error}");
}

/// One plain gradient-descent step on `model`'s trainable parameters; returns the loss.
fn descend(model: &mut Model, x: &Tensor, labels: &[usize]) -> f32 {
    let x = Var::constant(x.clone());
    let step = model
        .loss_and_gradients(
            &x,
            Targets::Labels(labels),
            Loss::SparseCategoricalCrossentropy,
            3,
        )
        .unwrap();
    for (id, grad) in &step.grads {
        let value = model.store().value(*id);
        let moved = value
            .as_slice()
            .iter()
            .zip(grad.as_slice())
            .map(|(w, g)| w - 0.1 * g)
            .collect();
        let moved = Tensor::from_vec(value.shape(), moved).unwrap();
        model.store_mut().set_value(*id, moved).unwrap();
    }
    model.apply_updates(step.updates).unwrap();
    step.loss
}

fn values(model: &Model, layer: &str) -> Vec<Vec<f32>> {
    model
        .layer_params(layer)
        .unwrap()
        .iter()
        .map(|&id| model.store().value(id).to_vec())
        .collect()
}

#[test]
fn an_imported_model_trains_and_takes_a_new_head() {
    let mut model = import_onnx(&local_fixture("tiny_cnn.onnx"), &ImportOptions::default())
        .unwrap()
        .model;
    let x = Tensor::from_vec(
        &[4, 12, 12, 3],
        (0..4 * 12 * 12 * 3)
            .map(|i| ((i * 37 % 101) as f32) / 101.0)
            .collect(),
    )
    .unwrap();
    let labels = [0, 1, 2, 3];
    let before = values(&model, "stem");
    let loss = descend(&mut model, &x, &labels);
    assert!(loss.is_finite(), "loss {loss}");
    assert_ne!(
        values(&model, "stem"),
        before,
        "the first convolution did not move"
    );

    // Transfer learning: the imported layers frozen, a new head trained.
    let base: Vec<String> = model.layer_names().iter().map(|n| n.to_string()).collect();
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    model.set_trainable(&base, false).unwrap();
    let (mut graph, features) = model.into_graph();
    let head = graph
        .call(
            &DenseConfig {
                name: Some("new_head".into()),
                ..DenseConfig::new(3)
            },
            &[features],
        )
        .unwrap();
    let mut model = graph.build(head).unwrap();
    let (stem, head) = (values(&model, "stem"), values(&model, "new_head"));
    let loss = descend(&mut model, &x, &[0, 1, 2, 0]);
    assert!(loss.is_finite(), "loss {loss}");
    assert_eq!(values(&model, "stem"), stem, "a frozen layer moved");
    assert_ne!(
        values(&model, "new_head"),
        head,
        "the new head did not move"
    );
}

// ---- Broken and unsupported files -------------------------------------------------

fn int_attribute(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..AttributeProto::default()
    }
}

fn ints_attribute(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..AttributeProto::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            dim_value: Some(d),
                            dim_param: None,
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// A model of `nodes` and `initializers` reading `input` (1x2x4x4) and writing `output`.
fn model_bytes(nodes: Vec<NodeProto>, initializers: Vec<TensorProto>, output: &str) -> Vec<u8> {
    model_with_input(nodes, initializers, &[1, 2, 4, 4], output)
}

/// [`model_bytes`] with an `input` of shape `dims`.
fn model_with_input(
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    dims: &[i64],
    output: &str,
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetId {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: initializers,
            input: vec![value_info("input", dims)],
            output: vec![value_info(output, &[1, 2, 4, 4])],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

/// The import error of `bytes` written as `name`, as text; the message must name the file.
fn import_error(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let error = match import_onnx(&path, &ImportOptions::default()) {
        Ok(_) => panic!("{name} imported"),
        Err(e) => e,
    };
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(matches!(error, InteropError::Onnx { .. }), "{message}");
    message
}

fn conv_weights() -> Vec<TensorProto> {
    vec![floats("w", &[2, 2, 1, 1], &[1.0, 0.0, 0.0, 1.0])]
}

#[test]
fn every_unsupported_operator_is_listed_with_its_nodes() {
    let bytes = model_bytes(
        vec![
            node("Conv", "conv_1", &["input", "w"], "a"),
            node("NonMaxSuppression", "nms_1", &["a"], "b"),
            node("LSTM", "lstm_1", &["b"], "c"),
            node("NonMaxSuppression", "nms_2", &["c"], "d"),
            NodeProto {
                domain: "com.microsoft".into(),
                ..node("FusedConv", "fused", &["d"], "e")
            },
        ],
        conv_weights(),
        "e",
    );
    let message = import_error("unsupported.onnx", &bytes);
    assert!(
        message.contains(
            "unsupported operators: NonMaxSuppression (nodes nms_1, nms_2), LSTM (node lstm_1), \
             com.microsoft.FusedConv (node fused)"
        ),
        "{message}"
    );
}

#[test]
fn a_missing_initializer_is_named_with_its_node() {
    let bytes = model_bytes(
        vec![node("Conv", "conv_1", &["input", "kernel"], "y")],
        vec![],
        "y",
    );
    let message = import_error("missing.onnx", &bytes);
    assert!(
        message.contains("node conv_1 (Conv): input kernel is neither an initializer"),
        "{message}"
    );
}

#[test]
fn every_node_problem_is_reported_at_once() {
    let clip = |name: &str, input: &str, low: &str, high: &str, output: &str| {
        node("Clip", name, &[input, low, high], output)
    };
    let bytes = model_bytes(
        vec![
            node("Conv", "conv_1", &["input", "w"], "a"),
            clip("clip_1", "a", "zero", "five", "b"),
            // Fails only because clip_1 did: not reported again.
            node("Relu", "relu_1", &["b"], "c"),
            node("Mul", "mul_1", &["a", "a"], "d"),
            node("Add", "add_1", &["d", "c"], "y"),
        ],
        [
            conv_weights(),
            vec![floats("zero", &[], &[0.0]), floats("five", &[], &[5.0])],
        ]
        .concat(),
        "y",
    );
    let message = import_error("problems.onnx", &bytes);
    assert!(message.contains("2 problems"), "{message}");
    assert!(
        message.contains("node clip_1 (Clip): Clip to [0, 5]"),
        "{message}"
    );
    assert!(
        message.contains("node mul_1 (Mul): Mul is imported only as x * Sigmoid(x)"),
        "{message}"
    );
    assert!(!message.contains("relu_1"), "{message}");
}

#[test]
fn garbage_truncated_and_empty_files_are_refused() {
    let message = import_error("garbage.onnx", b"\x89PNG\r\n\x1a\n not a model at all");
    assert!(message.contains("not an ONNX"), "{message}");
    let whole = std::fs::read(local_fixture("tiny_cnn.onnx")).unwrap();
    let message = import_error("truncated.onnx", &whole[..whole.len() / 2]);
    assert!(message.contains("truncated file"), "{message}");
    let message = import_error("empty.onnx", b"");
    assert!(message.contains("the file is empty"), "{message}");
    let missing = Path::new("/nonexistent/model.onnx");
    let message = import_onnx(missing, &ImportOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("/nonexistent/model.onnx"), "{message}");
}

#[test]
fn short_and_external_tensors_are_refused() {
    let mut short = floats("w", &[2, 2, 1, 1], &[1.0, 0.0, 0.0]);
    let bytes = model_bytes(
        vec![node("Conv", "conv_1", &["input", "w"], "y")],
        vec![short.clone()],
        "y",
    );
    let message = import_error("short.onnx", &bytes);
    assert!(
        message.contains("tensor w of shape [2, 2, 1, 1] needs 4 values but holds 3 (data shorter than its dimensions)"),
        "{message}"
    );
    short.raw_data.clear();
    short.data_location = 1;
    short.external_data = vec![StringStringEntry {
        key: "location".into(),
        value: "weights.bin".into(),
    }];
    let bytes = model_bytes(
        vec![node("Conv", "conv_1", &["input", "w"], "y")],
        vec![short],
        "y",
    );
    let message = import_error("external.onnx", &bytes);
    assert!(
        message.contains("tensor w keeps its data in an external file (weights.bin)"),
        "{message}"
    );
}

#[test]
fn an_old_opset_and_unsupported_attributes_are_refused() {
    let mut model = ModelProto::decode(
        model_bytes(vec![node("Relu", "r", &["input"], "y")], vec![], "y").as_slice(),
    )
    .unwrap();
    model.opset_import[0].version = 9;
    let message = import_error("old.onnx", &model.encode_to_vec());
    assert!(message.contains("operator set 9 is too old"), "{message}");

    let mut pool = node("AveragePool", "pool_1", &["input"], "y");
    pool.attribute = vec![
        AttributeProto {
            name: "kernel_shape".into(),
            r#type: AttributeType::Ints as i32,
            ints: vec![3, 3],
            ..AttributeProto::default()
        },
        AttributeProto {
            name: "pads".into(),
            r#type: AttributeType::Ints as i32,
            ints: vec![1, 1, 1, 1],
            ..AttributeProto::default()
        },
        int_attribute("count_include_pad", 1),
    ];
    let message = import_error("pool.onnx", &model_bytes(vec![pool], vec![], "y"));
    assert!(
        message.contains("node pool_1 (AveragePool): count_include_pad 1 with padding"),
        "{message}"
    );
}

#[test]
fn an_nhwc_input_asymmetric_padding_a_constant_bias_and_a_reshape_map_exactly() {
    // NHWC input -> NCHW -> 2x2 sum with one row and column of padding after -> + 0.5
    // (a Constant node, folded into the bias) -> NHWC -> (batch, 9).
    let transpose = |name: &str, input: &str, perm: &[i64], output: &str| NodeProto {
        attribute: vec![ints_attribute("perm", perm)],
        ..node("Transpose", name, &[input], output)
    };
    let conv = NodeProto {
        attribute: vec![ints_attribute("pads", &[0, 0, 1, 1])],
        ..node("Conv", "sum", &["nchw", "ones"], "summed")
    };
    let half = NodeProto {
        attribute: vec![AttributeProto {
            name: "value".into(),
            r#type: AttributeType::Tensor as i32,
            t: Some(floats("", &[1, 1, 1], &[0.5])),
            ..AttributeProto::default()
        }],
        ..node("Constant", "half", &[], "half")
    };
    let shape = TensorProto {
        name: "flat".into(),
        dims: vec![2],
        data_type: DataType::Int64 as i32,
        int64_data: vec![0, -1],
        ..TensorProto::default()
    };
    let bytes = model_with_input(
        vec![
            transpose("to_nchw", "input", &[0, 3, 1, 2], "nchw"),
            conv,
            half,
            node("Add", "plus_half", &["summed", "half"], "shifted"),
            transpose("to_nhwc", "shifted", &[0, 2, 3, 1], "nhwc"),
            node("Reshape", "flatten", &["nhwc", "flat"], "y"),
        ],
        vec![floats("ones", &[1, 1, 2, 2], &[1.0; 4]), shape],
        &[1, 3, 3, 1],
        "y",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layouts.onnx");
    std::fs::write(&path, bytes).unwrap();
    let model = import_onnx(&path, &ImportOptions::default()).unwrap().model;
    assert_eq!(model.input_shape(), &[3, 3, 1]);
    assert_eq!(model.output_shape(), &[9]);
    // One convolution, its bias holding the folded constant, and a flatten: no layers
    // for the transposes or the add.
    assert_eq!(model.layer_names(), ["sum", "flatten"]);
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let y = model
        .predict(&Tensor::from_vec(&[1, 3, 3, 1], x.clone()).unwrap())
        .unwrap();
    let at = |i: usize, j: usize| if i < 3 && j < 3 { x[i * 3 + j] } else { 0.0 };
    let expected: Vec<f32> = (0..9)
        .map(|k| {
            let (i, j) = (k / 3, k % 3);
            at(i, j) + at(i + 1, j) + at(i, j + 1) + at(i + 1, j + 1) + 0.5
        })
        .collect();
    assert_eq!(y.to_vec(), expected);
}
