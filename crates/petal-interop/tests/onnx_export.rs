//! Petal models exported to ONNX and run by an independent runtime (tract): the outputs
//! equal Petal's own within 1e-4 of the largest, for batches of two (the batch axis is
//! dynamic), with NCHW and NHWC inputs, batch norms kept and folded
//! ([`Model::fold_for_inference`](petal_nn::Model::fold_for_inference)).
//!
//! The torchvision fixtures and EfficientNet-Lite0's weights live in `../shared` beside
//! the project (`PETAL_WEIGHTS` for the weights); a test whose file is absent prints a
//! note and passes.

mod common;

use std::path::{Path, PathBuf};

use petal_interop::onnx::proto::ModelProto;
use petal_interop::onnx::{ExportError, ExportOnnx, ExportOptions, InputLayout};
use petal_interop::{load_arch, InteropError};
use petal_nn::layers::{
    Activation, ActivationConfig, AddConfig, BatchNormConfig, ConcatConfig, Conv2dConfig,
    DenseConfig, DepthwiseConv2dConfig, DropoutConfig, FlattenConfig, GlobalAvgPoolConfig,
    LayerKind, Pool2dConfig, SeparableConv2dConfig,
};
use petal_nn::weights::read_tensors;
use petal_nn::{Context, Graph, Layer, LayerConfig, Model, ParamStore, Var};
use petal_tensor::shape_ops::permute;
use petal_tensor::{Padding, Tensor};
use petal_zoo::{bipyramidal, Arch, BipyramidalConfig, Options};
use prost::Message;

use common::{present, zoo_fixture};
use tract_onnx::prelude::{tvec, Framework, InferenceModelExt, IntoRunnable};

/// Deterministic inputs in [-1, 1) of shape `(2, *sample)`.
fn batch_of_two(sample: &[usize]) -> Tensor {
    let shape: Vec<usize> = std::iter::once(2).chain(sample.iter().copied()).collect();
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|i| ((i * 7919 % 2003) as f32 / 1001.5) - 1.0)
        .collect();
    Tensor::from_vec(&shape, values).unwrap()
}

/// `x` (NHWC) as NCHW.
fn nchw(x: &Tensor) -> Tensor {
    permute(x, &[0, 3, 1, 2]).unwrap()
}

/// Runs the ONNX file at `path` in tract on `x`; returns the output's shape and values.
fn run_tract(path: &Path, x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_onnx::prelude::Tensor::from_shape(x.shape(), x.as_slice()).unwrap();
    let outputs = plan.run(tvec!(input.into())).unwrap();
    let y = outputs[0].to_plain_array_view::<f32>().unwrap();
    (y.shape().to_vec(), y.iter().copied().collect())
}

/// Exports `model` with `options`, runs it in tract on `x` (NHWC, laid out as the file
/// wants it) and returns max |tract - petal| / max |petal|.
fn exported_error(model: &Model, x: &Tensor, options: &ExportOptions) -> f32 {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("model.onnx");
    model.export_onnx(&path, options).unwrap();
    let input = match (x.ndim(), options.layout) {
        (4, InputLayout::Nchw) => nchw(x),
        _ => x.clone(),
    };
    let (shape, values) = run_tract(&path, &input);
    let expected = match (model.predict(x).unwrap(), options.layout) {
        (maps, InputLayout::Nchw) if maps.ndim() == 4 => nchw(&maps),
        (y, _) => y,
    };
    assert_eq!(shape, expected.shape(), "output shape");
    let error = Tensor::from_vec(&shape, values)
        .unwrap()
        .max_relative_diff(&expected)
        .expect("outputs are all zero: nothing is compared");
    println!("{options:?}: max |tract - petal| / max |petal| = {error:e}");
    error
}

fn options(layout: InputLayout) -> ExportOptions {
    ExportOptions {
        layout,
        ..ExportOptions::default()
    }
}

/// The op of each node of `model`'s graph, in order.
fn op_types(model: &ModelProto) -> Vec<&str> {
    let nodes = &model.graph.as_ref().expect("a graph").node;
    nodes.iter().map(|n| n.op_type.as_str()).collect()
}

/// `model`, with its batch norms folded into its convolutions when `fold`.
fn folded(model: Model, fold: bool) -> Model {
    match fold {
        true => model.fold_for_inference(),
        false => model,
    }
}

/// Every combination of layout and folding of the model `build` makes agrees with Petal.
fn check_all_options(build: &dyn Fn() -> Model, x: &Tensor) {
    for fold in [false, true] {
        let model = folded(build(), fold);
        for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
            let error = exported_error(&model, x, &options(layout));
            assert!(
                error <= 1e-4,
                "{layout:?}, fold {fold}: relative error {error}"
            );
        }
    }
}

#[test]
fn the_mnist_cnn_runs_in_tract_as_in_petal() {
    // 7x7x64 maps flattened into the dense head: the head's rows are reordered for NCHW.
    let model = || bipyramidal(&BipyramidalConfig::mnist(), 3).unwrap();
    check_all_options(&model, &batch_of_two(&[28, 28, 1]));
}

/// A bipyramidal CNN on 16x16 RGB with batch norms (statistics away from the identity)
/// and dropout.
fn with_batch_norms_and_dropout() -> Model {
    let config = BipyramidalConfig {
        batch_norm: true,
        block_dropout: Some(0.25),
        head_dropout: Some(0.5),
        input_shape: [16, 16, 3],
        ..BipyramidalConfig::mnist()
    };
    let mut model = bipyramidal(&config, 5).unwrap();
    randomize_batch_norms(&mut model);
    model
}

#[test]
fn a_bipyramidal_cnn_with_batch_norms_and_dropout_runs_in_tract() {
    check_all_options(&with_batch_norms_and_dropout, &batch_of_two(&[16, 16, 3]));
}

/// Gives every batch norm's statistics and scale values away from the identity.
fn randomize_batch_norms(model: &mut Model) {
    let store = model.store_mut();
    let ids: Vec<_> = store
        .iter()
        .filter(|(_, p)| {
            ["gamma", "beta", "moving_mean", "moving_variance"]
                .iter()
                .any(|s| p.name.ends_with(s))
        })
        .map(|(id, _)| id)
        .collect();
    for (k, id) in ids.into_iter().enumerate() {
        let name = store.get(id).name.clone();
        let values = store.value_mut(id).as_mut_slice();
        for (i, v) in values.iter_mut().enumerate() {
            let wave = ((i * 31 + k * 17) % 97) as f32 / 97.0;
            *v = if name.ends_with("variance") || name.ends_with("gamma") {
                0.5 + wave
            } else {
                wave - 0.5
            };
        }
    }
}

/// A model with every built-in layer the export knows, in odd places.
fn every_layer() -> Model {
    let mut g = Graph::new(11);
    let x = g.input(&[9, 10, 4]);
    let conv = |filters, kernel, activation| Conv2dConfig {
        padding: Padding::Same,
        activation,
        ..Conv2dConfig::new(filters, kernel)
    };
    let a = g.call(&conv(8, 3, Activation::Swish), &[x]).unwrap();
    let strided = Conv2dConfig {
        strides: [2, 1],
        dilation: [1, 1],
        use_bias: false,
        ..conv(8, 3, Activation::Linear)
    };
    let b = g.call(&strided, &[a]).unwrap();
    let b = g.call(&BatchNormConfig::default(), &[b]).unwrap();
    let b = g
        .call(&ActivationConfig::new(Activation::LeakyRelu(0.2)), &[b])
        .unwrap();
    let b = g
        .call(&ActivationConfig::new(Activation::HardSwish), &[b])
        .unwrap();
    let dilated = Conv2dConfig {
        dilation: [2, 2],
        groups: 2,
        padding: Padding::Explicit {
            top: 2,
            bottom: 1,
            left: 0,
            right: 2,
        },
        ..conv(6, 3, Activation::Tanh)
    };
    let c = g.call(&dilated, &[b]).unwrap();
    let depthwise = DepthwiseConv2dConfig {
        depth_multiplier: 2,
        padding: Padding::Same,
        activation: Activation::Relu6,
        ..DepthwiseConv2dConfig::new(3)
    };
    let d = g.call(&depthwise, &[c]).unwrap();
    let separable = SeparableConv2dConfig {
        depthwise: DepthwiseConv2dConfig {
            padding: Padding::Same,
            use_bias: false,
            ..DepthwiseConv2dConfig::new(3)
        },
        activation: Activation::Sigmoid,
        ..SeparableConv2dConfig::new(24, 3)
    };
    let s = g.call(&separable, &[b]).unwrap();
    let averaged = Pool2dConfig {
        strides: Some([3, 3]),
        padding: Padding::Same,
        ..Pool2dConfig::avg(3)
    };
    let s = g.call(&averaged, &[s]).unwrap();
    let d = g
        .call(
            &Pool2dConfig {
                strides: Some([2, 2]),
                padding: Padding::Same,
                ..Pool2dConfig::max(3)
            },
            &[d],
        )
        .unwrap();
    let joined = g.call(&ConcatConfig::default(), &[d, d]).unwrap();
    let summed = g.call(&AddConfig::default(), &[joined, s, joined]).unwrap();
    let avg = g
        .call(
            &Pool2dConfig {
                padding: Padding::Same,
                ..Pool2dConfig::avg(2)
            },
            &[summed],
        )
        .unwrap();
    let flat = g.call(&FlattenConfig::default(), &[avg]).unwrap();
    let flat = g.call(&DropoutConfig::new(0.3), &[flat]).unwrap();
    let pooled = g.call(&GlobalAvgPoolConfig::default(), &[summed]).unwrap();
    let dense = g.call(&DenseConfig::new(24), &[flat]).unwrap();
    let head = g
        .call(&ConcatConfig::default(), &[dense, pooled, flat])
        .unwrap();
    let head = g.call(&BatchNormConfig::default(), &[head]).unwrap();
    let out = DenseConfig {
        activation: Activation::Softmax,
        ..DenseConfig::new(5)
    };
    let out = g.call(&out, &[head]).unwrap();
    let mut model = g.build(out).unwrap();
    randomize_batch_norms(&mut model);
    model
}

#[test]
fn every_built_in_layer_runs_in_tract_as_in_petal() {
    let x = batch_of_two(&[9, 10, 4]);
    check_all_options(&every_layer, &x);
    let model = every_layer();
    for opset in [13, 21] {
        let options = ExportOptions {
            opset,
            ..ExportOptions::default()
        };
        let error = exported_error(&model, &x, &options);
        assert!(error <= 1e-4, "opset {opset}: relative error {error}");
    }
    // A flattened map that is not only read by a dense layer goes back to Petal's order.
    let onnx = model.to_onnx(&ExportOptions::default()).unwrap();
    let ops = op_types(&onnx);
    assert_eq!(
        ops.iter().filter(|&&op| op == "Transpose").count(),
        1,
        "{ops:?}"
    );
    assert_eq!(ops.last(), Some(&"Softmax"));
}

#[test]
fn a_model_returning_feature_maps_returns_them_in_the_input_layout() {
    let mobilenet = || {
        let base = Options {
            include_top: false,
            input_shape: [32, 32, 3],
            ..Options::default()
        };
        let mut model = Arch::MobileNetV2.build(&base).unwrap();
        randomize_batch_norms(&mut model);
        model
    };
    assert_eq!(mobilenet().output_shape(), &[1, 1, 1280]);
    let small = || {
        let mut g = Graph::new(1);
        let x = g.input(&[6, 5, 3]);
        let y = g.call(&Conv2dConfig::new(4, 3), &[x]).unwrap();
        g.build(y).unwrap()
    };
    for build in [&mobilenet as &dyn Fn() -> Model, &small] {
        check_all_options(build, &batch_of_two(build().input_shape()));
    }
}

#[test]
fn a_folded_model_exports_as_the_original() {
    let mut model = bipyramidal(
        &BipyramidalConfig {
            batch_norm: true,
            input_shape: [12, 12, 2],
            ..BipyramidalConfig::mnist()
        },
        2,
    )
    .unwrap();
    randomize_batch_norms(&mut model);
    let x = batch_of_two(&[12, 12, 2]);
    let plain = model.to_onnx(&ExportOptions::default()).unwrap();
    let folded_model = model.fold_for_inference();
    assert!(folded_model
        .summary()
        .rows
        .iter()
        .any(|r| r.kind == LayerKind::Folded));
    let folded = folded_model.to_onnx(&ExportOptions::default()).unwrap();
    let count = |m: &ModelProto, op: &str| op_types(m).iter().filter(|&&o| o == op).count();
    assert_eq!(count(&plain, "BatchNormalization"), 2);
    assert_eq!(count(&folded, "BatchNormalization"), 0);
    assert_eq!(count(&folded, "Relu"), count(&plain, "Relu"));
    let error = exported_error(&folded_model, &x, &ExportOptions::default());
    assert!(error <= 1e-4, "relative error {error}");
}

/// ResNet's block end, folded: the ReLU after a two-input residual sum and the ReLU6
/// after a three-input one become part of the sums, and export as Add nodes then the
/// activation, in both layouts, with the numbers Petal gives.
#[test]
fn residual_sums_with_their_activations_folded_export_as_add_then_the_activation() {
    let build = || {
        let mut g = Graph::new(5);
        let x = g.input(&[6, 6, 4]);
        let same = Conv2dConfig {
            padding: Padding::Same,
            use_bias: false,
            ..Conv2dConfig::new(4, 3)
        };
        let conv = g.call(&same, &[x]).unwrap();
        let bn = g.call(&BatchNormConfig::default(), &[conv]).unwrap();
        let sum = g.call(&AddConfig::default(), &[bn, x]).unwrap();
        let relu = g
            .call(&ActivationConfig::new(Activation::Relu), &[sum])
            .unwrap();
        let conv2 = g.call(&same, &[relu]).unwrap();
        let sum3 = g.call(&AddConfig::default(), &[conv2, relu, x]).unwrap();
        let relu6 = g
            .call(&ActivationConfig::new(Activation::Relu6), &[sum3])
            .unwrap();
        let mut model = g.build(relu6).unwrap();
        randomize_batch_norms(&mut model);
        model
    };
    let folded = build().fold_for_inference();
    let folded_layers = folded
        .summary()
        .rows
        .iter()
        .filter(|r| r.kind == LayerKind::Folded)
        .count();
    assert_eq!(folded_layers, 3, "the batch norm and both activations");
    let onnx = folded.to_onnx(&ExportOptions::default()).unwrap();
    let ops: Vec<&str> = op_types(&onnx)
        .into_iter()
        .filter(|op| ["Conv", "Add", "Relu", "Clip"].contains(op))
        .collect();
    assert_eq!(ops, ["Conv", "Add", "Relu", "Conv", "Add", "Add", "Clip"]);
    check_all_options(&build, &batch_of_two(&[6, 6, 4]));
}

#[test]
fn the_file_has_a_named_input_a_dynamic_batch_and_the_opset_asked_for() {
    let model = bipyramidal(&BipyramidalConfig::mnist(), 0).unwrap();
    for (layout, dims) in [
        (InputLayout::Nchw, [1, 28, 28]),
        (InputLayout::Nhwc, [28, 28, 1]),
    ] {
        let options = ExportOptions {
            opset: 13,
            ..options(layout)
        };
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("mnist.onnx");
        model.export_onnx(&path, &options).unwrap();
        let onnx = ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
        assert_eq!(onnx.opset_import[0].version, 13);
        let graph = onnx.graph.unwrap();
        let input = &graph.input[0];
        assert_eq!(
            (input.name.as_str(), graph.output[0].name.as_str()),
            ("input", "logits")
        );
        let shape = &input
            .r#type
            .as_ref()
            .unwrap()
            .tensor_type
            .as_ref()
            .unwrap()
            .shape
            .as_ref()
            .unwrap()
            .dim;
        assert_eq!(shape[0].dim_param.as_deref(), Some("batch"));
        let fixed: Vec<i64> = shape[1..].iter().map(|d| d.dim_value.unwrap()).collect();
        assert_eq!(fixed, dims.map(|d| d as i64));
        let transposes = graph
            .node
            .iter()
            .filter(|n| n.op_type == "Transpose")
            .count();
        assert_eq!(transposes, usize::from(layout == InputLayout::Nhwc));
    }
}

/// A layer Petal does not know how to describe.
struct Doubler;

impl Layer for Doubler {
    fn name(&self) -> &str {
        "doubler"
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Custom("Doubler")
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> petal_nn::Result<Vec<usize>> {
        Ok(inputs[0].to_vec())
    }
    fn forward(&self, inputs: &[&Var], _: &Context) -> petal_nn::Result<Var> {
        Ok(inputs[0].scale(2.0))
    }
}

impl LayerConfig for Doubler {
    fn stem(&self) -> &'static str {
        "doubler"
    }
    fn init(
        &self,
        _: &str,
        _: &[&[usize]],
        _: &mut ParamStore,
        _: &mut rand_chacha::ChaCha8Rng,
    ) -> petal_nn::Result<Box<dyn Layer>> {
        Ok(Box::new(Doubler))
    }
}

#[test]
fn a_custom_layer_or_a_bad_opset_fails_naming_it_and_writes_nothing() {
    let mut g = Graph::new(0);
    let x = g.input(&[4]);
    let y = g.call(&Doubler, &[x]).unwrap();
    let model = g.build(y).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("custom.onnx");
    let error = model
        .export_onnx(&path, &ExportOptions::default())
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(
        error,
        InteropError::Export {
            source: ExportError::Layer { .. },
            ..
        }
    ));
    assert!(
        message.contains("custom.onnx")
            && message.contains("doubler")
            && message.contains("Doubler"),
        "{message}"
    );
    assert!(!path.exists());
    let opset = ExportOptions {
        opset: 11,
        ..ExportOptions::default()
    };
    let message = bipyramidal(&BipyramidalConfig::mnist(), 0)
        .unwrap()
        .export_onnx(&path, &opset)
        .unwrap_err()
        .to_string();
    assert!(message.contains("opset 11"), "{message}");
    assert!(!path.exists());
}

/// A torchvision fixture's architecture with its weights, and its input batch (NHWC).
fn torchvision_fixture(arch: Arch, name: &str) -> Option<(Model, Tensor)> {
    let weights = zoo_fixture(&format!("{name}.safetensors"))?;
    let io = read_tensors(&zoo_fixture(&format!("{name}.io.safetensors"))?).unwrap();
    Some((load_arch(arch, &weights).unwrap(), io["input_nhwc"].clone()))
}

/// torchvision's ResNet18 and MobileNetV2 (the shared fixtures), each in both layouts,
/// one with batch norms folded.
#[test]
fn torchvision_models_run_in_tract_as_in_petal() {
    for (arch, name, fold_nchw) in [
        (Arch::ResNet18, "resnet18", false),
        (Arch::MobileNetV2, "mobilenet_v2", true),
    ] {
        for (layout, fold) in [
            (InputLayout::Nchw, fold_nchw),
            (InputLayout::Nhwc, !fold_nchw),
        ] {
            let Some((model, x)) = torchvision_fixture(arch, name) else {
                return;
            };
            let options = options(layout);
            let error = exported_error(&folded(model, fold), &x, &options);
            assert!(
                error <= 1e-4,
                "{name} {options:?}, fold {fold}: relative error {error}"
            );
        }
    }
}

#[test]
fn efficientnet_lite0_runs_in_tract_as_in_petal() {
    let folder = std::env::var_os("PETAL_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/weights"));
    let Some(weights) = present(folder.join("efficientnet_lite0.safetensors")) else {
        return;
    };
    let x = batch_of_two(&[224, 224, 3]);
    for (layout, fold) in [(InputLayout::Nchw, false), (InputLayout::Nhwc, true)] {
        let model = load_arch(Arch::EfficientNetLite0, &weights).unwrap();
        let options = options(layout);
        let error = exported_error(&folded(model, fold), &x, &options);
        assert!(
            error <= 1e-4,
            "{options:?}, fold {fold}: relative error {error}"
        );
    }
}

/// Max |imported - original| / max |original| on `x` after exporting `model` with
/// `options` and importing the file back into Petal.
fn round_trip_error(model: &Model, x: &Tensor, options: &ExportOptions) -> f32 {
    use petal_interop::onnx::{import_onnx, ImportOptions};
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("round_trip.onnx");
    model.export_onnx(&path, options).unwrap();
    let imported = import_onnx(&path, &ImportOptions::default()).unwrap();
    assert_eq!(imported.model.input_shape(), model.input_shape());
    let (expected, actual) = (
        model.predict(x).unwrap(),
        imported.model.predict(x).unwrap(),
    );
    assert_eq!(actual.shape(), expected.shape());
    actual
        .max_relative_diff(&expected)
        .expect("outputs are all zero: nothing is compared")
}

/// Petal's export read back by Petal's import computes what the original did (the MNIST
/// CNN, a CNN with batch norms, torchvision's ResNet18 and MobileNetV2), in both
/// layouts, with batch norms kept and folded: the two directions agree on every layout
/// and weight convention.
#[test]
fn exported_models_import_back_into_petal_unchanged() {
    type Build = Box<dyn Fn() -> Model>;
    let mnist: Build = Box::new(|| bipyramidal(&BipyramidalConfig::mnist(), 3).unwrap());
    let mut models = vec![
        ("mnist", mnist, batch_of_two(&[28, 28, 1])),
        (
            "batch norm",
            Box::new(with_batch_norms_and_dropout),
            batch_of_two(&[16, 16, 3]),
        ),
    ];
    for (arch, name) in [
        (Arch::ResNet18, "resnet18"),
        (Arch::MobileNetV2, "mobilenet_v2"),
    ] {
        if let Some((_, x)) = torchvision_fixture(arch, name) {
            let build: Build = Box::new(move || torchvision_fixture(arch, name).unwrap().0);
            models.push((name, build, x));
        }
    }
    for (name, build, x) in &models {
        for fold in [false, true] {
            let model = folded(build(), fold);
            for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
                let error = round_trip_error(&model, x, &options(layout));
                println!("{name} {layout:?} fold {fold}: relative error {error:e}");
                assert!(
                    error <= 1e-5,
                    "{name} {layout:?} fold {fold}: relative error {error}"
                );
            }
        }
    }
}
