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

/// A safetensors file with this header text and `data_len` bytes of tensor data.
fn crafted(header: &str, data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data_len, 0);
    bytes
}

/// The message `load_weights` gives for the file `bytes`; the store must stay unchanged.
fn refusal(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let mut model = store(&[2, 2], None);
    let before = model.clone();
    let err = load_weights(&mut model, &path).unwrap_err();
    assert!(matches!(err, WeightsError::Format { .. }), "{err}");
    for ((_, a), (_, b)) in model.iter().zip(before.iter()) {
        assert_eq!(a.value, b.value);
    }
    let message = err.to_string();
    assert!(message.contains("crafted.safetensors"), "{message}");
    message
}

#[test]
fn crafted_headers_are_refused_with_what_is_wrong() {
    let one = |dtype: &str, shape: &str, offsets: &str| {
        format!(r#"{{"conv/bias":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#)
    };
    let cases = [
        (
            // Two tensors sharing bytes 4..8.
            crafted(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                    "b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                12,
            ),
            r#"tensors "a" (ending at byte 8) and "b" (bytes 4..12) overlap"#,
        ),
        (
            crafted(&one("F32", "[4]", "[0,16]"), 8),
            "data_offsets [0, 16] reach past the 8 bytes of tensor data",
        ),
        (
            crafted(&one("F32", "[3]", "[0,8]"), 8),
            r#"tensor "conv/bias": dtype F32 and shape [3] need 12 bytes, but data_offsets [0, 8] hold 8 bytes"#,
        ),
        (
            crafted(&one("F64", "[2]", "[0,8]"), 8),
            "dtype F64 and shape [2] need 16 bytes",
        ),
        (
            crafted(&one("F32", "[4611686018427387904, 8]", "[0,8]"), 8),
            "need more bytes than a 64-bit size can count",
        ),
        (
            crafted(&one("F32", "[2]", "[8,0]"), 8),
            "data_offsets [8, 0] end before they start",
        ),
        (
            crafted(&one("F32", "[1]", "[4,8]"), 8),
            "bytes 0..4 of the tensor data belong to no tensor",
        ),
        (
            crafted(&one("F32", "[2]", "[0,8]"), 12),
            "the last 4 bytes of the tensor data belong to no tensor",
        ),
        (
            crafted(&one("Q7", "[2]", "[0,8]"), 8),
            r#"tensor "conv/bias": unknown variant `Q7`"#,
        ),
        (
            crafted("[1, 2]", 0),
            "the header is not a JSON object of tensors",
        ),
        (
            (17u64 << 20).to_le_bytes().to_vec(),
            "the header claims 17825792 bytes, more than the 16777216 accepted",
        ),
        (
            [&100u64.to_le_bytes()[..], b"{}"].concat(),
            "the header claims 100 bytes but only 2 follow the length (truncated file?)",
        ),
        (
            vec![1, 0, 0],
            "3 bytes is too short for the 8-byte header length",
        ),
    ];
    for (bytes, expected) in cases {
        let message = refusal(&bytes);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message}"
        );
    }
}

#[test]
fn a_well_formed_crafted_file_loads() {
    let header = r#"{"__metadata__":{"format":"pt"},
        "conv/kernel":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
        "conv/bias":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},
        "bn/moving_mean":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}}"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.safetensors");
    std::fs::write(&path, crafted(header, 32)).unwrap();
    let mut model = store(&[2, 2], None);
    load_weights(&mut model, &path).unwrap();
    assert!(model
        .iter()
        .all(|(_, p)| p.value.as_slice().iter().all(|&v| v == 0.0)));
}

/// The metadata comes from the header alone; a header cut short or longer than the file
/// is an error naming the file, and so is a file shorter than the length field.
#[test]
fn metadata_is_read_from_the_header_and_bad_headers_are_named() {
    use petal_nn::weights::read_metadata;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.safetensors");
    let header = r#"{"__metadata__":{"source":"resnet18-f37072fd.pth"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    std::fs::write(&path, crafted(header, 4)).unwrap();
    let metadata = read_metadata(&path).unwrap();
    assert_eq!(metadata["source"], "resnet18-f37072fd.pth");
    for (bytes, expected) in [
        (crafted(header, 4)[..20].to_vec(), "truncated"),
        (vec![1, 2, 3], "too short"),
        (crafted("[1, 2]", 0), "not a JSON object"),
    ] {
        std::fs::write(&path, bytes).unwrap();
        let message = read_metadata(&path).unwrap_err().to_string();
        assert!(
            message.contains("meta.safetensors") && message.contains(expected),
            "{message}"
        );
    }
}
