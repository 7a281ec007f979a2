use prost::Message;

use super::proto::{DataType, ModelProto};

/// The shared MobileNetV2 export decodes into its graph, and encoding it again gives a
/// file that decodes to the same messages.
#[test]
fn the_torch_export_of_mobilenet_v2_decodes_and_round_trips() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/zoo/mobilenet_v2.onnx");
    let Ok(bytes) = std::fs::read(&path) else {
        println!(
            "skipped: {} is missing (../shared is not beside the checkout)",
            path.display()
        );
        return;
    };
    let model = ModelProto::decode(bytes.as_slice()).expect("decodes");
    let graph = model.graph.as_ref().expect("has a graph");
    assert!(model
        .opset_import
        .iter()
        .any(|o| o.domain.is_empty() && o.version >= 13));
    assert_eq!(graph.input[0].name, "input");
    assert_eq!(graph.output[0].name, "logits");
    let convs = graph.node.iter().filter(|n| n.op_type == "Conv").count();
    assert_eq!(convs, 52, "MobileNetV2 has 52 convolutions");
    let weights: usize = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == DataType::Float as i32)
        .map(|t| t.dims.iter().product::<i64>() as usize)
        .sum();
    assert!(weights > 3_400_000, "{weights} parameters");
    let again = ModelProto::decode(model.encode_to_vec().as_slice()).expect("re-decodes");
    assert_eq!(again, model);
}
