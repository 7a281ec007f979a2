//! Helpers shared by the integration tests: fixtures in temp dirs and a tiny HTTP server.

#![allow(dead_code)] // each test binary uses a different part of this module

mod server;
#[allow(unused_imports)] // not every test binary serves files
pub use server::{serve, SeenRanges};

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Raw IDX bytes of unsigned bytes with `dims`.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

/// Writes `bytes` to `dir/name`, creating `dir`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A MAT-file header: 116 bytes of text, 8 of subsystem offset, version 0x0100, `IM`.
pub fn mat_header() -> Vec<u8> {
    let mut header = b"MATLAB 5.0 MAT-file, Platform: test".to_vec();
    header.resize(116, b' ');
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&[0x00, 0x01]);
    header.extend_from_slice(b"IM");
    header
}

/// A little-endian data element: 8-byte tag, data, zero padding to 8 bytes.
pub fn mat_element(kind: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = kind.to_le_bytes().to_vec();
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(data);
    bytes.resize(bytes.len().div_ceil(8) * 8, 0);
    bytes
}

/// An miMATRIX of class double (6) named `name` with `dims`, its real part stored as
/// element type `kind` with the raw bytes `data`; a name of at most 4 bytes uses the
/// small-element format.
pub fn mat_matrix(name: &str, dims: &[i32], kind: u32, data: &[u8]) -> Vec<u8> {
    let mut body = mat_element(6, &[6, 0, 0, 0, 0, 0, 0, 0]);
    let dims: Vec<u8> = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
    body.extend(mat_element(5, &dims));
    if name.len() <= 4 {
        body.extend_from_slice(&(1 | (name.len() as u32) << 16).to_le_bytes());
        let mut packed = name.as_bytes().to_vec();
        packed.resize(4, 0);
        body.extend(packed);
    } else {
        body.extend(mat_element(1, name.as_bytes()));
    }
    body.extend(mat_element(kind, data));
    mat_element(14, &body)
}

/// `bytes` zlib-compressed.
pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `element` wrapped in an miCOMPRESSED element (zlib, not padded).
pub fn mat_compressed(element: &[u8]) -> Vec<u8> {
    let zlib = zlib(element);
    let mut bytes = 15u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&(zlib.len() as u32).to_le_bytes());
    bytes.extend(zlib);
    bytes
}

/// A MAT-file of `variables` (each a full element from [`mat_matrix`] or [`mat_compressed`]).
pub fn mat_file(variables: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = mat_header();
    for variable in variables {
        bytes.extend_from_slice(variable);
    }
    bytes
}

/// `values` as u16 little-endian bytes.
pub fn u16_bytes(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A `width x height` JPEG of one colour.
pub fn jpeg(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    bytes
}

/// A gzip-compressed tar of `(path, bytes)` regular files.
pub fn tgz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, &bytes[..]).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}
