//! Optimizer state: naming, the safetensors file, resuming bit for bit, and the errors
//! of loading a state that does not fit.

use petal_nn::{ParamId, ParamStore};
use petal_optim::{
    load_state_file, save_state, Adam, AdamConfig, AdamW, AdamWConfig, OptimError, Optimizer,
    OptimizerState, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use petal_tensor::Tensor;

fn model() -> (ParamStore, Vec<ParamId>) {
    let mut store = ParamStore::new();
    let kernel = store.add(
        "conv1/kernel",
        Tensor::from_vec(&[2, 2], vec![0.5, -1.0, 2.0, 0.25]).unwrap(),
        true,
    );
    let bias = store.add(
        "conv1/bias",
        Tensor::from_vec(&[2], vec![0.1, -0.1]).unwrap(),
        true,
    );
    (store, vec![kernel.unwrap(), bias.unwrap()])
}

/// A deterministic, step-dependent gradient for every parameter.
fn grads(store: &ParamStore, ids: &[ParamId], step: usize) -> Vec<(ParamId, Tensor)> {
    ids.iter()
        .map(|&id| {
            let value = store.value(id);
            let g = value
                .as_slice()
                .iter()
                .enumerate()
                .map(|(i, w)| w * 0.3 + ((step * 7 + i) % 5) as f32 - 2.0);
            (id, Tensor::from_vec(value.shape(), g.collect()).unwrap())
        })
        .collect()
}

/// One step with the gradients of `step`.
fn train(optimizer: &mut dyn Optimizer, store: &mut ParamStore, ids: &[ParamId], step: usize) {
    let grads = grads(store, ids, step);
    optimizer.step(store, &grads).unwrap();
}

/// Trains `original` for 3 steps, saves its state to a file, loads it into `fresh`,
/// then checks that one more step of each gives the same parameters bit for bit.
fn resumes_bit_for_bit(mut original: Box<dyn Optimizer>, mut fresh: Box<dyn Optimizer>) {
    let (mut store, ids) = model();
    for step in 0..3 {
        train(original.as_mut(), &mut store, &ids, step);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("optimizer.safetensors");
    save_state(&original.state(&store), &path).unwrap();
    let mut resumed_store = store.clone();

    let loaded = load_state_file(&path).unwrap();
    assert_eq!(loaded.iterations, 3);
    fresh.load_state(&loaded, &resumed_store).unwrap();
    assert_eq!(fresh.iterations(), 3);
    assert_eq!(fresh.learning_rate(), original.learning_rate());

    let next = grads(&store, &ids, 3);
    original.step(&mut store, &next).unwrap();
    fresh.step(&mut resumed_store, &next).unwrap();
    for &id in &ids {
        let a: Vec<u32> = store
            .value(id)
            .as_slice()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        let b: Vec<u32> = resumed_store
            .value(id)
            .as_slice()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(a, b, "{}", store.get(id).name);
    }
    assert_eq!(original.state(&store), fresh.state(&resumed_store));
}

#[test]
fn sgd_resumes_bit_for_bit() {
    let config = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-3,
        ..SgdConfig::new(0.05)
    };
    resumes_bit_for_bit(
        Box::new(Sgd::new(config.clone())),
        Box::new(Sgd::new(config)),
    );
}

#[test]
fn adam_resumes_bit_for_bit() {
    resumes_bit_for_bit(
        Box::new(Adam::new(AdamConfig::new(0.01))),
        Box::new(Adam::new(AdamConfig::new(0.5))),
    );
}

#[test]
fn adamw_resumes_bit_for_bit() {
    resumes_bit_for_bit(
        Box::new(AdamW::new(AdamWConfig::new(0.01))),
        Box::new(AdamW::default()),
    );
}

#[test]
fn rmsprop_resumes_bit_for_bit() {
    let config = RmsPropConfig {
        centered: true,
        momentum: 0.9,
        ..RmsPropConfig::new(0.01)
    };
    resumes_bit_for_bit(
        Box::new(RmsProp::new(config.clone())),
        Box::new(RmsProp::new(config)),
    );
}

#[test]
fn slots_are_named_slot_slash_parameter() {
    let (mut store, ids) = model();
    let mut adam = Adam::new(AdamConfig::new(0.01));
    adam.set_learning_rate(0.02);
    train(&mut adam, &mut store, &ids, 0);
    let state = adam.state(&store);
    assert_eq!(state.kind, "adam");
    assert_eq!(state.iterations, 1);
    assert_eq!(state.learning_rate, 0.02);
    let names: Vec<&str> = state.slots.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "m/conv1/kernel",
            "v/conv1/kernel",
            "step/conv1/kernel",
            "m/conv1/bias",
            "v/conv1/bias",
            "step/conv1/bias"
        ]
    );
    assert_eq!(state.slots[0].1.shape(), &[2, 2]);
    assert_eq!(state.slots[2].1.to_vec(), vec![1.0]);
}

#[test]
fn the_file_keeps_kind_iterations_and_learning_rate() {
    let state = OptimizerState {
        kind: "rmsprop".into(),
        iterations: 123_456_789_012,
        learning_rate: 0.1 + 0.2,
        slots: vec![(
            "v/w".into(),
            Tensor::from_vec(&[2], vec![1.5, -0.0]).unwrap(),
        )],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/state.safetensors");
    save_state(&state, &path).unwrap();
    let back = load_state_file(&path).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.learning_rate.to_bits(), state.learning_rate.to_bits());
}

#[test]
fn loading_another_kind_is_an_error() {
    let (mut store, ids) = model();
    let mut sgd = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    train(&mut sgd, &mut store, &ids, 0);
    let mut adam = Adam::default();
    let err = adam.load_state(&sgd.state(&store), &store).unwrap_err();
    assert!(
        matches!(&err, OptimError::StateKind { expected, found } if expected == "adam" && found == "sgd")
    );
    assert!(err.to_string().contains("\"sgd\""), "{err}");
}

#[test]
fn loading_into_another_model_lists_every_problem() {
    let (mut store, ids) = model();
    let mut adam = Adam::default();
    train(&mut adam, &mut store, &ids, 0);
    let state = adam.state(&store);

    // The other model lacks conv1/bias and has a conv1/kernel of another shape.
    let mut other = ParamStore::new();
    other
        .add("conv1/kernel", Tensor::zeros(&[3, 2]), true)
        .unwrap();
    let mut fresh = Adam::default();
    let err = fresh.load_state(&state, &other).unwrap_err();
    let OptimError::StateMismatch { problems } = &err else {
        panic!("{err}")
    };
    let message = err.to_string();
    assert!(problems
        .iter()
        .any(|p| p.contains("\"m/conv1/bias\"") && p.contains("no parameter \"conv1/bias\"")));
    assert!(problems
        .iter()
        .any(|p| p.contains("\"m/conv1/kernel\"") && p.contains("[2, 2]") && p.contains("[3, 2]")));
    assert!(
        message.contains("v/conv1/kernel") && message.contains("step/conv1/bias"),
        "{message}"
    );
    // Nothing was loaded: the fresh optimizer still starts from scratch.
    assert_eq!(fresh.iterations(), 0);
    assert!(fresh.state(&other).slots.is_empty());
}

#[test]
fn loading_a_state_with_slots_this_configuration_lacks_is_an_error() {
    let (mut store, ids) = model();
    let mut momentum = Sgd::new(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
    train(&mut momentum, &mut store, &ids, 0);
    let err = Sgd::default()
        .load_state(&momentum.state(&store), &store)
        .unwrap_err();
    assert!(err.to_string().contains("no slot \"velocity\""), "{err}");

    // And a state missing one of a parameter's slots.
    let mut state = Adam::default().state(&store);
    state
        .slots
        .push(("m/conv1/bias".into(), Tensor::zeros(&[2])));
    let err = Adam::default().load_state(&state, &store).unwrap_err();
    assert!(
        err.to_string()
            .contains("parameter \"conv1/bias\" lacks the slot(s) v, step"),
        "{err}"
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.safetensors");
    let err = load_state_file(&missing).unwrap_err();
    assert!(matches!(err, OptimError::Io { .. }));
    assert!(err.to_string().contains("missing.safetensors"), "{err}");

    // A weights file has tensors but no optimizer metadata.
    let (store, _) = model();
    let weights = dir.path().join("weights.safetensors");
    petal_nn::weights::save_weights(&store, &weights).unwrap();
    let err = load_state_file(&weights).unwrap_err();
    assert!(matches!(err, OptimError::Format { .. }));
    let message = err.to_string();
    assert!(
        message.contains("weights.safetensors") && message.contains("\"kind\""),
        "{message}"
    );

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    assert!(load_state_file(&garbage)
        .unwrap_err()
        .to_string()
        .contains("garbage.safetensors"));
}
