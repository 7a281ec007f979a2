//! The IDX reader: round trips and every kind of malformed file.

mod common;

use common::{gzip, idx_bytes, write};
use petal_data::idx::{read_idx, write_idx, IdxArray};
use petal_data::DataError;
use proptest::prelude::*;

fn read_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<IdxArray, DataError>) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "file-idx", bytes);
    let result = read_idx(dir.path().join("file-idx"));
    (dir, result)
}

fn error_text(bytes: &[u8]) -> String {
    let (dir, result) = read_bytes(bytes);
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains(&dir.path().join("file-idx").display().to_string()),
        "the error names the file: {message}"
    );
    message
}

#[test]
fn round_trip_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let array = IdxArray {
        dims: vec![2, 3, 4],
        data: (0..24).collect(),
    };
    for gz in [false, true] {
        let path = dir.path().join(format!("a-{gz}"));
        write_idx(&path, &array, gz).unwrap();
        let head = std::fs::read(&path).unwrap();
        assert_eq!(head[..2] == [0x1f, 0x8b], gz);
        assert_eq!(read_idx(&path).unwrap(), array);
    }
}

#[test]
fn reads_hand_made_gzip_file() {
    let bytes = gzip(&idx_bytes(&[3], &[7, 8, 9]));
    let (_dir, result) = read_bytes(&bytes);
    assert_eq!(
        result.unwrap(),
        IdxArray {
            dims: vec![3],
            data: vec![7, 8, 9]
        }
    );
}

#[test]
fn truncated_data_is_an_error() {
    let message = error_text(&idx_bytes(&[2, 3], &[1, 2, 3, 4]));
    assert!(message.contains("describe 6 bytes"), "{message}");
    assert!(
        message.contains("(at most 4): it is truncated"),
        "{message}"
    );
    // The same through gzip.
    let (_dir, result) = read_bytes(&gzip(&idx_bytes(&[2, 3], &[1, 2, 3, 4])));
    assert!(result.unwrap_err().to_string().contains("found 4"));
}

#[test]
fn truncated_header_is_an_error() {
    assert!(error_text(&[0, 0]).contains("magic"));
    assert!(error_text(&[0, 0, 8, 2, 0, 0, 0, 1]).contains("ends inside the IDX header"));
}

#[test]
fn wrong_magic_type_and_ndims_are_errors() {
    assert!(error_text(b"PK\x03\x04 not idx").contains("not an IDX file"));
    assert!(error_text(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).contains("element type 0x0d"));
    assert!(error_text(&[0, 0, 8, 0]).contains("0 dimensions"));
    assert!(error_text(&[0, 0, 8, 5]).contains("5 dimensions"));
}

#[test]
fn trailing_bytes_are_an_error() {
    let message = error_text(&idx_bytes(&[2], &[1, 2, 3, 4, 5]));
    assert!(message.contains("3 unexpected bytes"), "{message}");
}

#[test]
fn huge_dims_are_refused_without_allocating() {
    let message = error_text(&idx_bytes(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[]));
    assert!(message.contains("more than 2^31"), "{message}");
    let message = error_text(&idx_bytes(&[1 << 16, 1 << 16], &[]));
    assert!(message.contains("more than 2^31"), "{message}");
}

#[test]
fn a_tiny_gzip_claiming_a_gigabyte_is_refused_before_unpacking() {
    let bomb = gzip(&idx_bytes(&[1 << 15, 1 << 15], &[7; 10]));
    assert!(bomb.len() < 100, "{} bytes", bomb.len());
    let started = std::time::Instant::now();
    let message = error_text(&bomb);
    assert!(
        message.contains("describe 1073741824 bytes")
            && message.contains(&format!("this {}-byte gzip file can hold", bomb.len())),
        "{message}"
    );
    assert!(
        started.elapsed().as_secs_f64() < 0.5,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_raw_file_claiming_more_than_its_size_is_refused() {
    let message = error_text(&idx_bytes(&[1000, 1000], &[1, 2, 3]));
    assert!(
        message.contains("describe 1000000 bytes")
            && message.contains("15-byte raw file can hold (at most 3)"),
        "{message}"
    );
}

#[test]
fn a_gzip_near_deflates_largest_expansion_still_reads() {
    let zeros = IdxArray {
        dims: vec![1000, 1000],
        data: vec![0; 1_000_000],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros-idx.gz");
    write_idx(&path, &zeros, true).unwrap();
    let ratio = 1_000_000 / std::fs::metadata(&path).unwrap().len();
    assert!(ratio > 500, "compressed {ratio}:1");
    assert_eq!(read_idx(&path).unwrap(), zeros);
}

#[test]
fn corrupt_gzip_is_an_error() {
    let mut bytes = gzip(&idx_bytes(&[4], &[1, 2, 3, 4]));
    let n = bytes.len();
    bytes.truncate(n - 6);
    let (_dir, result) = read_bytes(&bytes);
    assert!(result.is_err());
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope-idx1-ubyte");
    let message = read_idx(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trips_any_small_array(dims in prop::collection::vec(0usize..5, 1..=4), gz: bool, fill: u8) {
        let n: usize = dims.iter().product();
        let array = IdxArray { dims, data: (0..n).map(|i| (i as u8).wrapping_mul(fill)).collect() };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        write_idx(&path, &array, gz).unwrap();
        prop_assert_eq!(read_idx(&path).unwrap(), array);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), header in 0usize..3) {
        // Bias towards valid headers so the dims and data paths are exercised too.
        let mut file = match header { 0 => vec![], 1 => vec![0, 0, 8], _ => vec![0, 0, 8, 2] };
        file.extend_from_slice(&bytes);
        let (_dir, _result) = read_bytes(&file);
    }
}
