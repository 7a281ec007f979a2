//! Safetensors weights loaded into a small model's parameter store: either every tensor
//! is replaced, or the store is left exactly as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petal_nn::weights::load_weights;
use petal_nn::ParamStore;
use petal_tensor::Tensor;

fn model() -> ParamStore {
    let mut store = ParamStore::new();
    store
        .add("conv/kernel", Tensor::zeros(&[3, 3, 1, 2]), true)
        .unwrap();
    store.add("conv/bias", Tensor::zeros(&[2]), true).unwrap();
    store
        .add("bn/moving_mean", Tensor::zeros(&[2]), false)
        .unwrap();
    store
}

fuzz_target!(|data: &[u8]| {
    let path = petal_fuzz::scratch_file("weights.safetensors", data);
    let mut store = model();
    let before = store.clone();
    if load_weights(&mut store, &path).is_err() {
        for ((_, a), (_, b)) in store.iter().zip(before.iter()) {
            assert_eq!(a.value, b.value, "a failed load changed {}", a.name);
        }
    }
});
