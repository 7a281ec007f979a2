//! The MATLAB v5 reader on hand-assembled files: values, compressed variables, errors.

mod common;

use std::path::Path;

use common::{mat_compressed, mat_file, mat_matrix, u16_bytes};
use petal_data::mat::{parse_mat, read_mat};

/// A file with a compressed uint8-stored `labels`, an uncompressed uint16-stored `trnid`,
/// a double `x` with a small-element name and a skipped char array.
fn sample_file() -> Vec<u8> {
    let labels = mat_compressed(&mat_matrix("labels", &[1, 5], 2, &[77, 77, 1, 102, 3]));
    let trnid = mat_matrix("trnid", &[1, 3], 4, &u16_bytes(&[1, 300, 65535]));
    let x: Vec<u8> = [1.5f64, -2.0, 0.25, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let x = mat_matrix("x", &[2, 2], 9, &x);
    let mut text = mat_matrix("note", &[1, 2], 4, &u16_bytes(&[104, 105]));
    text[16] = 4; // array flags class: char
    mat_file(&[labels, trnid, x, text])
}

#[test]
fn reads_compressed_and_plain_numeric_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.mat");
    std::fs::write(&path, sample_file()).unwrap();
    let file = read_mat(&path).unwrap();
    let labels = file.variable("labels").unwrap();
    assert_eq!(labels.dims, [1, 5]);
    assert_eq!(labels.values, [77.0, 77.0, 1.0, 102.0, 3.0]);
    assert_eq!(
        file.variable("trnid").unwrap().values,
        [1.0, 300.0, 65535.0]
    );
    let x = file.variable("x").unwrap();
    assert_eq!(
        (x.dims.as_slice(), x.values.as_slice()),
        (&[2, 2][..], &[1.5, -2.0, 0.25, 4.0][..])
    );
    assert_eq!(file.skipped(), ["note"]);
    assert_eq!(file.arrays().len(), 3);

    let message = file.variable("valid").unwrap_err().to_string();
    assert!(
        message.contains("sample.mat") && message.contains("`valid`") && message.contains("trnid"),
        "{message}"
    );
}

#[test]
fn every_truncation_is_an_error_naming_the_file() {
    let bytes = sample_file();
    for len in 0..bytes.len() {
        let err = parse_mat(&bytes[..len], Path::new("cut.mat"));
        // A cut exactly between two variables is a valid shorter file.
        if let Err(e) = err {
            assert!(e.to_string().contains("cut.mat"), "{e}");
        }
    }
    assert!(parse_mat(&bytes[..bytes.len() - 1], Path::new("cut.mat")).is_err());
    assert!(parse_mat(&bytes[..200], Path::new("cut.mat")).is_err());
}

#[test]
fn malformed_files_are_errors() {
    let good = sample_file();
    let check = |bytes: &[u8], needle: &str| {
        let message = parse_mat(bytes, Path::new("bad.mat"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("bad.mat") && message.contains(needle),
            "{message}"
        );
    };
    check(b"PNG not a mat file", "shorter than the 128-byte header");
    let mut wrong_header = good.clone();
    wrong_header[..6].copy_from_slice(b"HDF5  ");
    check(&wrong_header, "MATLAB 5.0 MAT-file");
    let mut wrong_endian = good.clone();
    wrong_endian[126..128].copy_from_slice(b"XX");
    check(&wrong_endian, "endian");

    // A tag declaring 4 GiB.
    let mut huge_tag = mat_file(&[mat_matrix("trnid", &[1, 1], 2, &[1])]);
    huge_tag[132..136].copy_from_slice(&u32::MAX.to_le_bytes());
    check(&huge_tag, "declares");

    // A compressed element whose inner tag declares 2 GiB once inflated (a zip bomb's
    // header): refused before inflating anything.
    let mut tag = 14u32.to_le_bytes().to_vec();
    tag.extend_from_slice(&(1u32 << 31).to_le_bytes());
    check(
        &mat_file(&[mat_compressed(&tag)]),
        "declares 2147483648 bytes once inflated, more than the 67108864",
    );

    // Garbage where the zlib stream should be.
    let mut garbage = common::mat_header();
    garbage.extend_from_slice(&15u32.to_le_bytes());
    garbage.extend_from_slice(&16u32.to_le_bytes());
    garbage.extend_from_slice(&[0xAB; 16]);
    check(&garbage, "zlib");

    // Dimensions far larger than the values present (and whose product overflows).
    check(
        &mat_file(&[mat_matrix("big", &[100_000, 100_000], 2, &[1, 2, 3])]),
        "need",
    );
    check(
        &mat_file(&[mat_matrix("big", &[i32::MAX, i32::MAX, i32::MAX], 2, &[1])]),
        "overflow",
    );
    check(
        &mat_file(&[mat_matrix("neg", &[1, -3], 2, &[1])]),
        "negative",
    );
    // An unknown element type for the values.
    check(
        &mat_file(&[mat_matrix("odd", &[1, 1], 99, &[1])]),
        "unsupported element type",
    );
}

#[test]
fn a_missing_file_names_its_path() {
    let message = read_mat("/nonexistent/setid.mat").unwrap_err().to_string();
    assert!(message.contains("/nonexistent/setid.mat"), "{message}");
}
