//! Oxford 102 Flowers on a fake 12-photo copy in the exact on-disk formats: the mirror,
//! verification (sha256 and the md5 alternative), extraction, labels, splits, subsets.

mod common;

use std::path::{Path, PathBuf};

use common::{jpeg, mat_compressed, mat_file, mat_matrix, sha256_hex, tgz, u16_bytes, write};
use md5::{Digest, Md5};
use petal_data::download::DataConfig;
use petal_data::extract::{extract_tgz, is_extracted};
use petal_data::flowers::{Flowers102, CLASS_NAMES};
use petal_data::{
    AcceptedVersion, DataError, Dataset, ImageOptions, Manifest, ManifestFile, Split,
};

/// 1-based labels of the 12 fake photos: class 3 five times, classes 1 and 5 three
/// times, class 2 once.
const LABELS: [u8; 12] = [3, 3, 1, 3, 5, 1, 3, 5, 2, 3, 1, 5];
const TRNID: [u16; 4] = [1, 6, 9, 12];
const VALID: [u16; 3] = [2, 7, 10];
const TSTID: [u16; 5] = [3, 4, 5, 8, 11];

fn archive() -> Vec<u8> {
    let photos: Vec<(String, Vec<u8>)> = (1..=12)
        .map(|i| {
            (
                format!("jpg/image_{i:05}.jpg"),
                jpeg(10 + i, 8, [20 * i as u8, 100, 200]),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = photos
        .iter()
        .map(|(p, b)| (p.as_str(), b.clone()))
        .collect();
    tgz(&refs)
}

fn labels_mat() -> Vec<u8> {
    mat_file(&[mat_compressed(&mat_matrix("labels", &[1, 12], 2, &LABELS))])
}

fn setid_mat() -> Vec<u8> {
    let part = |name, ids: &[u16]| {
        mat_compressed(&mat_matrix(
            name,
            &[1, ids.len() as i32],
            4,
            &u16_bytes(ids),
        ))
    };
    mat_file(&[
        part("trnid", &TRNID),
        part("valid", &VALID),
        part("tstid", &TSTID),
    ])
}

fn entry(name: &str, payload: &[u8]) -> ManifestFile {
    ManifestFile {
        name: name.into(),
        url: format!("https://invalid.example/{name}"),
        sha256: sha256_hex(payload),
        size: payload.len() as u64,
        note: None,
        also_accept: Vec::new(),
    }
}

/// A mirror holding the fake files under `flowers102/`, a cache, and a manifest for them
/// whose archive entry is accepted only through `archive_entry`.
fn fake_setup(
    archive_entry: impl FnOnce(&[u8]) -> ManifestFile,
) -> (tempfile::TempDir, DataConfig, Manifest) {
    let root = tempfile::tempdir().unwrap();
    let mirror = root.path().join("mirror/flowers102");
    let tgz = archive();
    write(&mirror, "102flowers.tgz", &tgz);
    write(&mirror, "imagelabels.mat", &labels_mat());
    write(&mirror, "setid.mat", &setid_mat());
    let tar_payload = {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&tgz[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    let mut archive_file = archive_entry(&tgz);
    if archive_file.sha256.is_empty() {
        archive_file = entry("102flowers.tgz", &tar_payload);
    }
    let manifest = Manifest {
        dataset: "flowers102".into(),
        files: vec![
            archive_file,
            entry("imagelabels.mat", &labels_mat()),
            entry("setid.mat", &setid_mat()),
        ],
    };
    let config = DataConfig {
        cache_root: root.path().join("cache"),
        mirror: Some(root.path().join("mirror")),
    };
    (root, config, manifest)
}

fn by_sha256(_: &[u8]) -> ManifestFile {
    let mut file = entry("102flowers.tgz", b"");
    file.sha256 = String::new(); // filled in with the tar payload's digest
    file
}

/// An archive entry whose main digest never matches, accepted by the md5 of `md5_of`.
fn by_md5(md5_of: &[u8]) -> ManifestFile {
    let mut file = entry("102flowers.tgz", b"something else");
    file.also_accept.push(AcceptedVersion {
        sha256: None,
        size: None,
        md5: Some(
            Md5::digest(md5_of)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ),
        note: "the official archive".into(),
    });
    file
}

#[test]
fn the_built_in_manifest_lists_the_official_files() {
    let manifest = Manifest::flowers102();
    let on_disk = Manifest::load(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/flowers102.json"),
    )
    .unwrap();
    assert_eq!(manifest, on_disk);
    let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["102flowers.tgz", "imagelabels.mat", "setid.mat"]);
    for file in &manifest.files {
        assert_eq!(
            file.url,
            format!(
                "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/{}",
                file.name
            )
        );
    }
    let archive = manifest.file("102flowers.tgz").unwrap();
    assert_eq!(
        archive.also_accept[0].md5.as_deref(),
        Some("52808999861908f626f3c1f4e79d11fa")
    );
    // A malformed accepted version is refused.
    let json = serde_json::to_string(&manifest)
        .unwrap()
        .replace("52808999", "5280");
    assert!(Manifest::parse(&json, Path::new("f.json")).is_err());
}

#[test]
fn fetch_from_the_mirror_extracts_and_reads_labels_and_split() {
    let (_root, config, manifest) = fake_setup(by_sha256);
    let flowers = Flowers102::fetch_with(&config, &manifest, None).unwrap();
    let images = config.cache_root.join("flowers102/102flowers");
    assert!(is_extracted(&images));
    assert_eq!(flowers.len(), 12);
    let expected: Vec<usize> = LABELS.iter().map(|&l| l as usize - 1).collect();
    assert_eq!(flowers.labels(), expected);
    assert_eq!(flowers.split(Split::Train), [0, 5, 8, 11]);
    assert_eq!(flowers.split(Split::Val), [1, 6, 9]);
    assert_eq!(flowers.split(Split::Test), [2, 3, 4, 7, 10]);
    let counts = flowers.class_counts();
    assert_eq!(
        (counts.len(), counts[0], counts[1], counts[2], counts[4]),
        (102, 3, 1, 5, 3)
    );
    assert_eq!(counts.iter().sum::<usize>(), 12);

    // Load the validation photos through the dataset: 8x8 RGB in [0, 1].
    let val = flowers
        .dataset(flowers.split(Split::Val), ImageOptions::new(8))
        .unwrap();
    let mut sample = vec![0.0; val.sample_len()];
    assert_eq!(val.sample_shape(), [8, 8, 3]);
    assert_eq!(val.load(0, &mut sample).unwrap(), 2);
    assert!(sample.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!((sample[2] - 200.0 / 255.0).abs() < 0.05, "{}", sample[2]);

    // A second fetch trusts the cache and the extracted folder.
    Flowers102::fetch_with(&config, &manifest, None).unwrap();
}

#[test]
fn the_official_archive_is_accepted_by_md5_and_a_wrong_one_is_refused() {
    let (_root, config, manifest) = fake_setup(by_md5);
    Flowers102::fetch_with(&config, &manifest, None).unwrap();

    let (_root, config, manifest) = fake_setup(|_| by_md5(b"the real official archive"));
    let err = Flowers102::fetch_with(&config, &manifest, None).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }));
    let message = err.to_string();
    assert!(
        message.contains("also accepted") && message.contains("the official archive"),
        "{message}"
    );
}

#[test]
fn most_frequent_classes_break_ties_by_lower_index_and_remap() {
    let (_root, config, manifest) = fake_setup(by_sha256);
    let flowers = Flowers102::fetch_with(&config, &manifest, None).unwrap();
    let top = flowers.most_frequent_classes(2).unwrap();
    assert_eq!(top.classes, [2, 0]); // 5 photos; then 3 photos (class 0 before class 4)
    assert_eq!(top.names, [CLASS_NAMES[2], CLASS_NAMES[0]]);
    assert_eq!(top.names, ["canterbury bells", "pink primrose"]);
    assert_eq!(top.indices, [0, 1, 2, 3, 5, 6, 9, 10]);
    assert_eq!(top.labels, [0, 0, 1, 0, 1, 0, 0, 1]);
    let split = top.random_split([0.4, 0.2, 0.4], 3).unwrap();
    assert_eq!(
        (split.train.len(), split.val.len(), split.test.len()),
        (3, 2, 3)
    );
    assert_eq!(split, top.random_split([0.4, 0.2, 0.4], 3).unwrap());
    let train = top
        .dataset(&flowers, &split.train, ImageOptions::new(4))
        .unwrap();
    assert_eq!(train.num_classes(), 2);
    let mut all: Vec<usize> = [split.train, split.val, split.test].concat();
    all.sort();
    assert_eq!(all, (0..8).collect::<Vec<_>>());
    assert!(flowers.most_frequent_classes(0).is_err());
    assert!(flowers.most_frequent_classes(103).is_err());
}

#[test]
fn a_subset_becomes_a_train_and_test_photo_folder_without_overlap() {
    let (root, config, manifest) = fake_setup(by_sha256);
    let flowers = Flowers102::fetch_with(&config, &manifest, None).unwrap();
    let top = flowers.most_frequent_classes(2).unwrap();
    let out = root.path().join("folder");
    // 5 and 3 photos: 2 train + 1 test each fits, 2 + 2 does not for the second class.
    let error = top
        .write_image_folder(&flowers, &out, 2, 2, 1)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("pink primrose") && error.contains("3 photos"),
        "{error}"
    );
    assert!(!out.exists(), "nothing is written when a class is short");
    top.write_image_folder(&flowers, &out, 2, 1, 1).unwrap();
    let files = |part: &str, class: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(out.join(part).join(class))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    for class in ["canterbury bells", "pink primrose"] {
        let (train, test) = (files("train", class), files("test", class));
        assert_eq!((train.len(), test.len()), (2, 1), "{class}");
        assert!(test.iter().all(|t| !train.contains(t)), "{class}");
    }
    let folder = petal_data::ImageFolder::open(out.join("train"), ImageOptions::new(4)).unwrap();
    assert_eq!(folder.len(), 4);
    assert_eq!(folder.class_names(), ["canterbury bells", "pink primrose"]);
}

#[test]
fn bad_labels_and_ids_name_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("jpg")).unwrap();
    let labels = dir.path().join("imagelabels.mat");
    let setid = dir.path().join("setid.mat");
    let mut bad = LABELS;
    bad[4] = 103;
    std::fs::write(
        &labels,
        mat_file(&[mat_matrix("labels", &[1, 12], 2, &bad)]),
    )
    .unwrap();
    std::fs::write(&setid, setid_mat()).unwrap();
    let message = Flowers102::open(dir.path(), &labels, &setid)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("imagelabels.mat") && message.contains("`labels`[4] = 103"),
        "{message}"
    );

    std::fs::write(&labels, labels_mat()).unwrap();
    let twice = mat_file(&[
        mat_matrix("trnid", &[1, 2], 4, &u16_bytes(&[1, 2])),
        mat_matrix("valid", &[1, 1], 4, &u16_bytes(&[2])),
        mat_matrix("tstid", &[1, 1], 4, &u16_bytes(&[3])),
    ]);
    std::fs::write(&setid, twice).unwrap();
    let message = Flowers102::open(dir.path(), &labels, &setid)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("setid.mat") && message.contains("id 2 appears twice"),
        "{message}"
    );
}

#[test]
fn extraction_is_all_or_nothing_and_refuses_escaping_paths() {
    let dir = tempfile::tempdir().unwrap();
    let tgz_path = dir.path().join("a.tgz");
    let dest: PathBuf = dir.path().join("out");
    let bytes = archive();
    std::fs::write(&tgz_path, &bytes[..bytes.len() / 2]).unwrap();
    let message = extract_tgz(&tgz_path, &dest).unwrap_err().to_string();
    assert!(message.contains("a.tgz"), "{message}");
    assert!(!dest.exists() && !dir.path().join("out.extracting").exists());

    // Cut inside the gzip trailer only: every tar entry is whole, the archive is not.
    std::fs::write(&tgz_path, &bytes[..bytes.len() - 4]).unwrap();
    assert!(extract_tgz(&tgz_path, &dest).is_err());
    assert!(!dest.exists());

    std::fs::write(&tgz_path, &bytes).unwrap();
    assert_eq!(extract_tgz(&tgz_path, &dest).unwrap(), 12);
    assert!(dest.join("jpg/image_00012.jpg").is_file() && is_extracted(&dest));
    assert_eq!(extract_tgz(&tgz_path, &dest).unwrap(), 0);

    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_size(1);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    std::fs::write(&tgz_path, common::gzip(&builder.into_inner().unwrap())).unwrap();
    let evil = dir.path().join("evil");
    let message = extract_tgz(&tgz_path, &evil).unwrap_err().to_string();
    assert!(message.contains("escaping"), "{message}");
    assert!(!dir.path().join("escape").exists() && !evil.exists());
}

#[test]
fn the_class_names_are_the_standard_list() {
    assert_eq!(CLASS_NAMES.len(), 102);
    assert_eq!(CLASS_NAMES[76], "passion flower");
    assert_eq!(CLASS_NAMES[101], "blackberry lily");
}
