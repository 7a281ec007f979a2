//! Image files as samples: RGB conversion, crop vs squash, the cache, ImageFolder.

mod common;

use std::path::{Path, PathBuf};

use common::{jpeg, write};
use petal_data::{Dataset, ImageDataset, ImageFolder, ImageOptions, ResizeMode};

fn png(image: impl Into<image::DynamicImage>) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .into()
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

fn load_one(path: &Path, options: ImageOptions) -> Vec<f32> {
    let data = ImageDataset::new(vec![path.to_path_buf()], vec![0], 1, options).unwrap();
    let mut out = vec![0.0; data.sample_len()];
    data.load(0, &mut out).unwrap();
    out
}

#[test]
fn grey_and_rgba_become_rgb() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "grey.png",
        &png(image::GrayImage::from_pixel(4, 4, image::Luma([51]))),
    );
    write(
        dir.path(),
        "rgba.png",
        &png(image::RgbaImage::from_pixel(
            4,
            4,
            image::Rgba([255, 0, 102, 0]),
        )),
    );
    let grey = load_one(&dir.path().join("grey.png"), ImageOptions::new(2));
    assert_eq!(grey.len(), 12);
    assert!(grey.iter().all(|&v| (v - 0.2).abs() < 1e-6), "{grey:?}");
    let rgba = load_one(&dir.path().join("rgba.png"), ImageOptions::new(2));
    assert_eq!(&rgba[..3], [1.0, 0.0, 0.4]);
}

#[test]
fn center_crop_keeps_the_middle_and_squash_keeps_everything() {
    // 12x4: green, red, blue bands of 4 columns.
    let image = image::RgbImage::from_fn(12, 4, |x, _| match x / 4 {
        0 => image::Rgb([0, 255, 0]),
        1 => image::Rgb([255, 0, 0]),
        _ => image::Rgb([0, 0, 255]),
    });
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bands.png", &png(image));
    let path = dir.path().join("bands.png");
    let crop = load_one(&path, ImageOptions::new(3));
    assert!(crop.chunks(3).all(|p| p == [1.0, 0.0, 0.0]), "{crop:?}");
    let squash = load_one(&path, ImageOptions::new(3).resize(ResizeMode::Squash));
    // The antialiasing filter blends neighbouring bands a little; each column keeps its band.
    let dominant: Vec<usize> = squash
        .chunks(3)
        .take(3)
        .map(|p| (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap())
        .collect();
    assert_eq!(dominant, [1, 0, 2], "{squash:?}");
}

#[test]
fn cached_samples_need_no_decoding_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.jpg", &jpeg(16, 12, [200, 100, 50]));
    let path = dir.path().join("a.jpg");
    let data = ImageDataset::new(vec![path.clone()], vec![1], 2, ImageOptions::new(8))
        .unwrap()
        .cached();
    let mut first = vec![0.0; data.sample_len()];
    assert_eq!(data.load(0, &mut first).unwrap(), 1);
    std::fs::remove_file(&path).unwrap();
    let mut second = vec![0.0; data.sample_len()];
    assert_eq!(data.load(0, &mut second).unwrap(), 1);
    assert_eq!(first, second);
}

#[test]
fn a_corrupt_file_is_a_sample_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut broken = jpeg(16, 16, [1, 2, 3]);
    broken.truncate(broken.len() / 3);
    write(dir.path(), "broken.jpg", &broken);
    let data = ImageDataset::new(
        vec![dir.path().join("broken.jpg")],
        vec![0],
        1,
        ImageOptions::new(4),
    )
    .unwrap();
    let mut out = vec![0.0; data.sample_len()];
    let message = data.load(0, &mut out).unwrap_err().to_string();
    assert!(
        message.contains("broken.jpg") && message.contains("decode"),
        "{message}"
    );
    assert!(ImageDataset::new(vec![PathBuf::from("x")], vec![2], 2, ImageOptions::new(4)).is_err());
    assert!(ImageDataset::new(vec![PathBuf::from("x")], vec![0], 1, ImageOptions::new(0)).is_err());
}

/// A PNG whose header claims `width x height` RGB pixels, with one row of them.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        [
            &(data.len() as u32).to_be_bytes()[..],
            kind,
            data,
            &crc.sum().to_be_bytes(),
        ]
        .concat()
    };
    let header = [
        &width.to_be_bytes()[..],
        &height.to_be_bytes(),
        &[8, 2, 0, 0, 0],
    ]
    .concat();
    let row = common::zlib(&vec![0; 1 + 3 * width as usize]);
    [
        &b"\x89PNG\r\n\x1a\n"[..],
        &chunk(b"IHDR", &header),
        &chunk(b"IDAT", &row),
        &chunk(b"IEND", &[]),
    ]
    .concat()
}

#[test]
fn a_header_claiming_a_huge_image_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    let side = 10_000; // 300 MB of RGB: over petal_data::MAX_IMAGE_BYTES
    assert!(u64::from(side) * u64::from(side) * 3 > petal_data::MAX_IMAGE_BYTES);
    std::fs::write(&path, png_claiming(side, side)).unwrap();
    let options = ImageOptions::new(4);
    let message = petal_data::load_rgb(&path, &options)
        .unwrap_err()
        .to_string();
    assert!(message.contains("huge.png"), "{message}");
    assert!(message.contains("limit"), "{message}");
    // The same header with a small size gets to the (missing) pixel data.
    std::fs::write(&path, png_claiming(4, 4)).unwrap();
    let message = petal_data::load_rgb(&path, &options)
        .unwrap_err()
        .to_string();
    assert!(!message.contains("limit"), "{message}");
}

#[test]
fn image_folder_skips_unreadable_files_and_reports_empty_classes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a_daisy"), "1.jpg", &jpeg(6, 6, [250, 250, 250]));
    write(&root.join("a_daisy"), "2.jpg", &jpeg(6, 6, [240, 240, 0]));
    write(&root.join("b_rose"), "bad.jpg", b"not a jpeg at all");
    write(&root.join("b_rose"), "3.jpg", &jpeg(6, 6, [200, 0, 0]));
    write(root, ".hidden", b"");
    std::fs::create_dir(root.join("c_tulip")).unwrap();
    let folder = ImageFolder::open(root, ImageOptions::new(4))
        .unwrap()
        .cached();
    assert_eq!(folder.class_names(), ["a_daisy", "b_rose", "c_tulip"]);
    assert_eq!(folder.num_classes(), 3);
    assert_eq!(folder.len(), 3);
    assert_eq!(folder.dataset().labels(), [0, 0, 1]);
    assert_eq!(folder.skipped().len(), 1);
    assert!(folder.skipped()[0].path.ends_with("b_rose/bad.jpg"));
    assert!(!folder.skipped()[0].reason.is_empty());
    assert_eq!(folder.empty_classes(), ["c_tulip"]);
    let mut sample = vec![0.0; folder.sample_len()];
    assert_eq!(folder.load(2, &mut sample).unwrap(), 1);
    assert!(sample[0] > 0.7 && sample[1] < 0.1, "{sample:?}");
    assert!(ImageFolder::open(root.join("c_tulip"), ImageOptions::new(4)).is_err());
}
