//! The ONNX import: any bytes either import into a Petal model that runs, or give an
//! error; never a panic or an allocation the file's own size does not pay for.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use petal_interop::onnx::{import_onnx_bytes, ImportOptions};
use petal_tensor::Tensor;

fuzz_target!(|data: &[u8]| {
    let options = ImportOptions::default();
    if let Ok(imported) = import_onnx_bytes(data, Path::new("fuzz.onnx"), &options) {
        let model = imported.model;
        let input: Vec<usize> = std::iter::once(1)
            .chain(model.input_shape().iter().copied())
            .collect();
        // Small models run: the output has the shape the model declares.
        if input.iter().product::<usize>() <= 4096 {
            if let Ok(y) = model.predict(&Tensor::zeros(&input)) {
                assert_eq!(&y.shape()[1..], model.output_shape());
            }
        }
    }
});
