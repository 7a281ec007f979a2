//! The flowers loader's resize step: `petal_data::resize::resize_rgb` (what `load_rgb`
//! does with `ImageOptions::new(size)`: the central square, the triangle filter, through
//! `fast_image_resize`) next to the `image` crate's `imageops::resize` of the same square
//! with the same filter (what `load_rgb` used before), single-threaded, on u8 RGB
//! photos; the JPEG decode for scale.
//!
//! Photos: the first 8 `*.jpg` in `$RESIZE_PHOTOS`, by default the Oxford 102 Flowers
//! photos extracted into the workspace cache (`cargo xtask download flowers102` or any
//! flowers repro puts them there).
//! Before timing, prints the mean and max absolute difference of the two resized images.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use image::imageops::{self, FilterType};
use image::RgbImage;
use petal_data::resize::{resize_rgb, Region};
use petal_data::MAX_IMAGE_BYTES;

const SIZES: [u32; 2] = [128, 224];

/// Decodes like `petal_data::load_rgb`, from bytes already read.
fn decode(bytes: &[u8]) -> RgbImage {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap();
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    reader.decode().unwrap().to_rgb8()
}

/// The `image` crate's resize of the central square with the triangle filter.
fn resize_image(rgb: &RgbImage, size: u32) -> Vec<u8> {
    let square = Region::center_square(rgb);
    let crop = imageops::crop_imm(rgb, square.left, square.top, square.width, square.height);
    imageops::resize(&*crop, size, size, FilterType::Triangle).into_raw()
}

/// Petal's resize of the same square (what `load_rgb` does after decoding).
fn resize_petal(rgb: &RgbImage, size: u32) -> Vec<u8> {
    resize_rgb(rgb, Region::center_square(rgb), size, FilterType::Triangle)
        .expect("a square inside the photo")
}

fn photos() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("RESIZE_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../datasets/cache/flowers102/102flowers/jpg")
        });
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .jpg in {}", dir.display());
    paths
        .into_iter()
        .take(8)
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn bench_resize(c: &mut Criterion) {
    let photos = photos();
    let decoded: Vec<RgbImage> = photos.iter().map(|(_, bytes)| decode(bytes)).collect();

    for ((name, _), rgb) in photos.iter().zip(&decoded) {
        for size in SIZES {
            let (a, b) = (resize_image(rgb, size), resize_petal(rgb, size));
            assert_eq!(a.len(), b.len());
            let diffs = a.iter().zip(&b).map(|(&p, &q)| p.abs_diff(q));
            let max = diffs.clone().max().unwrap();
            let mean = diffs.map(f64::from).sum::<f64>() / a.len() as f64;
            println!(
                "{name} {}x{} -> {size}: mean |image - petal| = {mean:.4}, max = {max}",
                rgb.width(),
                rgb.height()
            );
        }
    }

    let mut group = c.benchmark_group("resize");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for ((name, bytes), rgb) in photos.iter().zip(&decoded) {
        group.bench_with_input(BenchmarkId::new("decode", name), bytes, |b, bytes| {
            b.iter(|| decode(bytes))
        });
        for size in SIZES {
            group.bench_with_input(
                BenchmarkId::new(format!("image/{size}"), name),
                rgb,
                |b, rgb| b.iter(|| resize_image(rgb, size)),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("petal/{size}"), name),
                rgb,
                |b, rgb| b.iter(|| resize_petal(rgb, size)),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_resize);
criterion_main!(benches);
