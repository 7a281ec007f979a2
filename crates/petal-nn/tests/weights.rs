//! Saving and loading a parameter store as safetensors.

use petal_nn::weights::{load_weights, save_weights, WeightsError};
use petal_nn::ParamStore;
use petal_tensor::Tensor;

fn store(kernel_shape: &[usize], extra: Option<&str>) -> ParamStore {
    let mut s = ParamStore::new();
    let n: usize = kernel_shape.iter().product();
    s.add(
        "conv/kernel",
        Tensor::from_vec(kernel_shape, (0..n).map(|i| i as f32 * 0.5).collect()).unwrap(),
        true,
    )
    .unwrap();
    s.add(
        "conv/bias",
        Tensor::from_vec(&[2], vec![1.0, -1.0]).unwrap(),
        true,
    )
    .unwrap();
    s.add(
        "bn/moving_mean",
        Tensor::from_vec(&[2], vec![0.25, 0.75]).unwrap(),
        false,
    )
    .unwrap();
    if let Some(name) = extra {
        s.add(name, Tensor::zeros(&[1]), true).unwrap();
    }
    s
}

#[test]
fn round_trip_restores_every_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let saved = store(&[3, 3, 1, 2], None);
    save_weights(&saved, &path).unwrap();
    let mut loaded = store(&[3, 3, 1, 2], None);
    for (id, _) in saved.iter() {
        loaded
            .set_value(id, Tensor::zeros(saved.value(id).shape()))
            .unwrap();
    }
    load_weights(&mut loaded, &path).unwrap();
    for (id, p) in saved.iter() {
        assert_eq!(loaded.value(id), &p.value, "{}", p.name);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary files stay behind: {leftovers:?}"
    );
}

#[test]
fn a_mismatch_reports_every_problem_at_once_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.safetensors");
    save_weights(&store(&[3, 3, 1, 2], Some("head/kernel")), &path).unwrap();
    let mut model = store(&[5, 5, 1, 2], Some("classifier/kernel"));
    let before = model.clone();
    let err = load_weights(&mut model, &path).unwrap_err();
    match &err {
        WeightsError::Mismatch {
            missing,
            unused,
            mismatched,
            ..
        } => {
            assert_eq!(missing, &["classifier/kernel".to_string()]);
            assert_eq!(unused, &["head/kernel".to_string()]);
            assert_eq!(
                mismatched,
                &[(
                    "conv/kernel".to_string(),
                    vec![5, 5, 1, 2],
                    vec![3, 3, 1, 2]
                )]
            );
        }
        other => panic!("expected a mismatch, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("other.safetensors")
            && text.contains("classifier/kernel")
            && text.contains("head/kernel"),
        "{text}"
    );
    for (id, p) in before.iter() {
        assert_eq!(model.value(id), &p.value);
    }
}

#[test]
fn truncated_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.safetensors");
    save_weights(&store(&[2, 2], None), &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let mut model = store(&[2, 2], None);
    let err = load_weights(&mut model, &path).unwrap_err();
    assert!(matches!(err, WeightsError::Format { .. }), "{err}");
    assert!(err.to_string().contains("cut.safetensors"), "{err}");
    let missing = dir.path().join("nowhere.safetensors");
    let err = load_weights(&mut model, &missing).unwrap_err();
    assert!(
        matches!(err, WeightsError::Io { .. }) && err.to_string().contains("nowhere.safetensors"),
        "{err}"
    );
}
