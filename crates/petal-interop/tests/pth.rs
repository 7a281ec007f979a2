//! The committed fixtures (made by `fixtures/make_fixtures.py` with torch) read to the
//! values written there, and every bad file is an error naming the file and the
//! problem, never a panic.

mod common;

use std::path::Path;

use petal_interop::pth::{read_state_dict, ReadOptions, StateDict};
use petal_interop::{convert_to_safetensors, ConvertOptions, Dtype};
use petal_nn::weights::read_tensors;

use common::local_fixture;

fn read(name: &str) -> StateDict {
    read_state_dict(&local_fixture(name), &ReadOptions::default()).unwrap()
}

/// The error message of reading `path`, which must name it.
fn error_of(path: &Path, options: &ReadOptions<'_>) -> String {
    let message = read_state_dict(path, options).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    message
}

fn assert_tensor(state: &StateDict, name: &str, dtype: Dtype, shape: &[usize], values: &[f32]) {
    let entry = &state[name];
    assert_eq!(entry.dtype, dtype, "{name}");
    assert_eq!(entry.tensor.shape(), shape, "{name}");
    assert_eq!(entry.tensor.as_slice(), values, "{name}");
}

fn range(from: usize, to: usize) -> Vec<f32> {
    (from..to).map(|v| v as f32).collect()
}

#[test]
fn legacy_format_reads_f32_f64_and_int64_storages() {
    let state = read("legacy.pth");
    assert_eq!(state.len(), 3);
    let quarters: Vec<f32> = (0..24).map(|v| v as f32 / 4.0).collect();
    assert_tensor(&state, "conv.weight", Dtype::F32, &[2, 3, 2, 2], &quarters);
    assert_tensor(&state, "bn.running_var", Dtype::F64, &[3], &[0.5, 1.5, 2.5]);
    assert_tensor(&state, "bn.num_batches_tracked", Dtype::I64, &[], &[7.0]);
}

#[test]
fn half_and_bfloat16_storages_become_f32() {
    let state = read("dtypes.pth");
    let half = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5];
    assert_tensor(&state, "half", Dtype::F16, &[2, 3], &half);
    assert_tensor(
        &state,
        "bf16",
        Dtype::BF16,
        &[4],
        &[0.0, -0.25, -0.5, -0.75],
    );
}

#[test]
fn views_of_one_shared_storage_are_gathered() {
    let state = read("views.pth");
    let transposed = [2., 6., 10., 3., 7., 11., 4., 8., 12., 5., 9., 13.];
    assert_tensor(&state, "transposed", Dtype::F32, &[4, 3], &transposed);
    assert_tensor(&state, "prefix", Dtype::F32, &[6], &range(0, 6));
    assert_tensor(&state, "row", Dtype::F32, &[5], &range(5, 10));
    let legacy = read("views_legacy.pth");
    assert_tensor(&legacy, "row", Dtype::F32, &[5], &range(10, 15));
}

#[test]
fn nested_checkpoints_open_by_key_and_lose_their_prefix() {
    let path = local_fixture("nested.pth");
    let options = ReadOptions {
        key: Some("state_dict"),
        strip_prefix: Some("module."),
    };
    let state = read_state_dict(&path, &options).unwrap();
    assert_eq!(state.keys().collect::<Vec<_>>(), ["fc.bias", "fc.weight"]);
    assert_tensor(&state, "fc.weight", Dtype::F32, &[2, 3], &range(0, 6));
    assert_tensor(&state, "fc.bias", Dtype::F32, &[2], &[0.5, -0.5]);

    // Without the key, the error points at the nested dict.
    let message = error_of(&path, &ReadOptions::default());
    assert!(
        message.contains("entry \"state_dict\" is a dict, not a tensor"),
        "{message}"
    );
    assert!(
        message.contains("open one of its dicts by key: state_dict"),
        "{message}"
    );
    let wrong_key = ReadOptions {
        key: Some("model"),
        ..ReadOptions::default()
    };
    let message = error_of(&path, &wrong_key);
    assert!(message.contains("no key \"model\""), "{message}");
    assert!(
        message.contains("state_dict, epoch, best_accuracy"),
        "{message}"
    );
}

#[test]
fn a_pickle_calling_os_system_is_refused_and_runs_nothing() {
    // The path the fixture's payload would `touch`.
    let marker = Path::new("/tmp/petal_interop_pickle_marker");
    let _ = std::fs::remove_file(marker);
    let message = error_of(&local_fixture("malicious.pth"), &ReadOptions::default());
    assert!(
        message.contains("refusing pickle global posix.system in conv.weight"),
        "{message}"
    );
    assert!(!marker.exists(), "the payload ran");
}

#[test]
fn bad_files_are_errors_naming_the_file_and_the_problem() {
    let short = error_of(&local_fixture("short_storage.pth"), &ReadOptions::default());
    assert!(
        short.contains("tensor weight (shape [2, 4], offset 0, stride [4, 1]) reaches past its storage 0, which holds 5 elements"),
        "{short}"
    );
    let opcode = error_of(&local_fixture("bad_opcode.pth"), &ReadOptions::default());
    assert!(
        opcode.contains("unsupported pickle opcode 0x69 (INST) (pickle byte 2)"),
        "{opcode}"
    );

    let folder = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = folder.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let zip = std::fs::read(local_fixture("views.pth")).unwrap();
    let truncated = write("truncated.pth", &zip[..zip.len() / 2]);
    let message = error_of(&truncated, &ReadOptions::default());
    assert!(
        message.contains("truncated or corrupt zip archive"),
        "{message}"
    );

    let text = write("text.pth", b"not a checkpoint at all");
    let message = error_of(&text, &ReadOptions::default());
    assert!(message.contains("wrong magic"), "{message}");
    let empty = write("empty.pth", b"");
    assert!(error_of(&empty, &ReadOptions::default()).contains("wrong magic"));

    let legacy = std::fs::read(local_fixture("legacy.pth")).unwrap();
    for cut in [legacy.len() - 10, legacy.len() / 2, 30, 3] {
        let path = write("cut.pth", &legacy[..cut]);
        let message = error_of(&path, &ReadOptions::default());
        assert!(message.contains("truncated"), "cut at {cut}: {message}");
    }
    // Legacy magic number altered: a valid pickle of another integer.
    let mut other_magic = legacy.clone();
    other_magic[4] ^= 1;
    let path = write("magic.pth", &other_magic);
    assert!(error_of(&path, &ReadOptions::default()).contains("wrong magic"));
}

#[test]
fn convert_keeps_the_sources_names_and_values_as_f32() {
    let folder = tempfile::tempdir().unwrap();
    let output = folder.path().join("nested.safetensors");
    let options = ConvertOptions {
        read: ReadOptions {
            key: Some("state_dict"),
            strip_prefix: Some("module."),
        },
        ..ConvertOptions::default()
    };
    let written = convert_to_safetensors(&local_fixture("nested.pth"), &output, &options).unwrap();
    assert_eq!(written.tensors, 2);
    assert_eq!(
        written.bytes as u64,
        std::fs::metadata(&output).unwrap().len()
    );
    let tensors = read_tensors(&output).unwrap();
    assert_eq!(tensors["fc.weight"].to_vec(), range(0, 6));
    assert_eq!(tensors["fc.bias"].shape(), &[2]);

    // Every dtype arrives as f32, integers included.
    let legacy = folder.path().join("legacy.safetensors");
    convert_to_safetensors(
        &local_fixture("legacy.pth"),
        &legacy,
        &ConvertOptions::default(),
    )
    .unwrap();
    assert_eq!(
        read_tensors(&legacy).unwrap()["bn.num_batches_tracked"].to_vec(),
        [7.0]
    );

    // A failed conversion writes nothing.
    let refused = folder.path().join("refused.safetensors");
    assert!(convert_to_safetensors(&local_fixture("malicious.pth"), &refused, &options).is_err());
    assert!(!refused.exists());
}
