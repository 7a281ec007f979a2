//! Manifests and fetching into the cache from a mirror folder or a local HTTP server.

mod common;

use std::cell::Cell;
use std::path::{Path, PathBuf};

use common::{gzip, serve, sha256_hex, write};
use petal_data::download::{fetch_dataset, fetch_file, is_cached, verify_copy, DataConfig};
use petal_data::{DataError, Manifest, ManifestFile};

/// A deterministic payload of `n` bytes.
fn payload(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 31 + i / 7) as u8).wrapping_add(salt))
        .collect()
}

fn entry(name: &str, url: &str, payload: &[u8]) -> ManifestFile {
    ManifestFile {
        name: name.to_string(),
        url: url.to_string(),
        sha256: sha256_hex(payload),
        size: payload.len() as u64,
        note: None,
        also_accept: Vec::new(),
    }
}

fn manifest(files: Vec<ManifestFile>) -> Manifest {
    Manifest {
        dataset: "toy".to_string(),
        files,
    }
}

/// A cache folder and a mirror folder holding `toy/<name>` for each (name, bytes).
fn mirror_with(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, DataConfig) {
    let root = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        write(&root.path().join("mirror/toy"), name, bytes);
    }
    let config = DataConfig {
        cache_root: root.path().join("cache"),
        mirror: Some(root.path().join("mirror")),
    };
    (root, config)
}

/// The cache folder's files, without the `.<name>.lock` files of fetches.
fn cache_listing(config: &DataConfig) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(config.cache_root.join("toy"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn manifest_parses_and_checks_names_and_hashes() {
    let good = r#"{"dataset": "toy", "files": [{"name": "a.gz", "url": "https://x/a.gz",
        "sha256": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", "size": 3}]}"#;
    let m = Manifest::parse(good, Path::new("toy.json")).unwrap();
    assert_eq!(m.file("a.gz").unwrap().size, 3);
    assert!(m.file("b").is_none());

    let bad_name = good.replace("\"a.gz\"", "\"../a.gz\"");
    let message = Manifest::parse(&bad_name, Path::new("toy.json"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("toy.json") && message.contains("plain file name"),
        "{message}"
    );
    let bad_hash = good.replace("ba89", "BA89");
    assert!(Manifest::parse(&bad_hash, Path::new("toy.json")).is_err());
    let message = Manifest::parse("{", Path::new("toy.json"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("toy.json: invalid manifest JSON"),
        "{message}"
    );
    let missing = Manifest::load("/nonexistent/toy.json")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/toy.json"), "{missing}");
}

#[test]
fn built_in_mnist_manifest_equals_the_checked_in_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist.json");
    let from_file = Manifest::load(path).unwrap();
    assert_eq!(Manifest::mnist(), from_file);
    assert_eq!(from_file.dataset, "mnist");
    let names: Vec<&str> = from_file.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"
        ]
    );
    for f in &from_file.files {
        assert_eq!(
            f.url,
            format!(
                "https://storage.googleapis.com/cvdf-datasets/mnist/{}",
                f.name
            )
        );
    }
}

#[test]
fn data_config_reads_the_environment() {
    // The only test in this binary that touches these variables.
    std::env::set_var("PETAL_DATA", "/tmp/petal-cache");
    std::env::set_var("PETAL_MIRROR", "");
    let config = DataConfig::from_env("datasets/cache");
    assert_eq!(config.cache_root, PathBuf::from("/tmp/petal-cache"));
    assert_eq!(config.mirror, None);
    std::env::remove_var("PETAL_DATA");
    std::env::set_var("PETAL_MIRROR", "../shared/datasets");
    let config = DataConfig::from_env("datasets/cache");
    assert_eq!(config.cache_root, PathBuf::from("datasets/cache"));
    assert_eq!(config.mirror, Some(PathBuf::from("../shared/datasets")));
    std::env::remove_var("PETAL_MIRROR");
}

#[test]
fn fetch_from_mirror_verifies_caches_and_reuses() {
    let data = payload(5000, 1);
    // The mirror copy is compressed: the manifest hash is of the decompressed payload.
    let (_root, config) = mirror_with(&[("a.gz", gzip(&data))]);
    let m = manifest(vec![entry("a.gz", "http://unused.invalid/a.gz", &data)]);
    let last = Cell::new((0, None));
    let path = fetch_file(
        &config,
        &m,
        &m.files[0],
        Some(&|done, total| last.set((done, total))),
    )
    .unwrap();
    assert_eq!(path, config.cache_root.join("toy/a.gz"));
    assert_eq!(std::fs::read(&path).unwrap(), gzip(&data));
    let (done, total) = last.get();
    assert_eq!(Some(done), total);
    assert_eq!(cache_listing(&config), ["a.gz", "a.gz.verified"]);

    // Reused: the mirror is no longer needed.
    std::fs::remove_dir_all(config.mirror.as_ref().unwrap()).unwrap();
    assert_eq!(fetch_file(&config, &m, &m.files[0], None).unwrap(), path);
}

#[test]
fn a_changed_cached_file_is_fetched_again() {
    let data = payload(3000, 2);
    let (_root, config) = mirror_with(&[("b.bin", data.clone())]);
    let m = manifest(vec![entry("b.bin", "http://unused.invalid/b.bin", &data)]);
    let path = fetch_file(&config, &m, &m.files[0], None).unwrap();
    std::fs::write(&path, b"corrupted").unwrap();
    fetch_file(&config, &m, &m.files[0], None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);
}

#[test]
fn mirror_with_wrong_hash_is_refused_and_leaves_the_cache_alone() {
    let good = payload(2000, 3);
    let expected = payload(2000, 4);
    let (_root, config) = mirror_with(&[("good.gz", gzip(&good)), ("bad.gz", gzip(&good))]);
    let m = manifest(vec![
        entry("good.gz", "http://unused.invalid/good.gz", &good),
        entry("bad.gz", "http://unused.invalid/bad.gz", &expected),
    ]);
    let good_path = fetch_file(&config, &m, &m.files[0], None).unwrap();
    let good_before = std::fs::read(&good_path).unwrap();
    let mtime_before = std::fs::metadata(&good_path).unwrap().modified().unwrap();

    let err = fetch_file(&config, &m, &m.files[1], None).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }));
    let message = err.to_string();
    assert!(message.contains("bad.gz"), "{message}");
    assert!(message.contains(&sha256_hex(&expected)), "{message}");
    assert!(message.contains(&sha256_hex(&good)), "{message}");
    assert_eq!(cache_listing(&config), ["good.gz", "good.gz.verified"]);
    assert_eq!(std::fs::read(&good_path).unwrap(), good_before);
    assert_eq!(
        std::fs::metadata(&good_path).unwrap().modified().unwrap(),
        mtime_before
    );

    // fetch_dataset stops at the bad file with the same error.
    assert!(fetch_dataset(&config, &m, None).is_err());
    assert_eq!(cache_listing(&config), ["good.gz", "good.gz.verified"]);
}

#[test]
fn is_cached_and_verify_copy_check_without_writing() {
    let good = payload(1000, 5);
    let (root, config) = mirror_with(&[("a.gz", gzip(&good)), ("b.gz", gzip(&good))]);
    let m = manifest(vec![
        entry("a.gz", "http://unused.invalid/a.gz", &good),
        entry("b.gz", "http://unused.invalid/b.gz", &payload(1000, 6)),
    ]);
    let mirror = root.path().join("mirror/toy");
    assert!(verify_copy(&mirror.join("a.gz"), &m.files[0]).unwrap());
    assert!(!verify_copy(&mirror.join("b.gz"), &m.files[1]).unwrap());
    std::fs::write(mirror.join("c.gz"), b"not gzip").unwrap();
    let err = verify_copy(&mirror.join("c.gz"), &m.files[0]).unwrap_err();
    assert!(err.to_string().contains("c.gz"), "{err}");
    assert!(!is_cached(&config, &m, &m.files[0]).unwrap());
    assert!(cache_listing(&config).is_empty());
    fetch_file(&config, &m, &m.files[0], None).unwrap();
    assert!(is_cached(&config, &m, &m.files[0]).unwrap());
}

#[test]
fn missing_mirror_file_names_the_path() {
    let (_root, config) = mirror_with(&[]);
    let m = manifest(vec![entry("c.gz", "http://unused.invalid/c.gz", b"x")]);
    let message = fetch_file(&config, &m, &m.files[0], None)
        .unwrap_err()
        .to_string();
    let expected_path = config.mirror.as_ref().unwrap().join("toy/c.gz");
    assert!(
        message.contains(&expected_path.display().to_string()),
        "{message}"
    );
    assert!(cache_listing(&config).is_empty());
}

#[test]
fn fetch_dataset_returns_the_folder_and_reports_progress() {
    let (a, b) = (payload(100, 5), payload(70_000, 6));
    let (_root, config) = mirror_with(&[("a.bin", a.clone()), ("b.gz", gzip(&b))]);
    let m = manifest(vec![
        entry("a.bin", "http://unused.invalid/a", &a),
        entry("b.gz", "http://unused.invalid/b", &b),
    ]);
    let calls = Cell::new(0);
    let report = |_: &ManifestFile, _: u64, _: Option<u64>| calls.set(calls.get() + 1);
    let folder = fetch_dataset(&config, &m, Some(&report)).unwrap();
    assert_eq!(folder, config.cache_root.join("toy"));
    assert!(calls.get() >= 2);
    assert_eq!(std::fs::read(folder.join("a.bin")).unwrap(), a);
}

/// An HTTP config (no mirror) with a cache in a temp dir.
fn http_config() -> (tempfile::TempDir, DataConfig) {
    let root = tempfile::tempdir().unwrap();
    let config = DataConfig::new(root.path().join("cache"));
    (root, config)
}

#[test]
fn download_resumes_a_partial_file_with_range() {
    let data = payload(200_000, 7);
    let served = gzip(&data);
    let (url, seen) = serve(served.clone(), true);
    let (_root, config) = http_config();
    let m = manifest(vec![entry("d.gz", &format!("{url}/d.gz"), &data)]);
    write(&config.cache_root.join("toy"), "d.gz.part", &served[..1000]);

    let path = fetch_file(&config, &m, &m.files[0], None).unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Some("bytes=1000-".to_string())]
    );
    assert_eq!(std::fs::read(&path).unwrap(), served);
    assert_eq!(cache_listing(&config), ["d.gz", "d.gz.verified"]);
}

#[test]
fn download_starts_over_when_the_server_ignores_range() {
    let data = payload(50_000, 8);
    let (url, seen) = serve(data.clone(), false);
    let (_root, config) = http_config();
    let m = manifest(vec![entry("e.bin", &format!("{url}/e.bin"), &data)]);
    write(&config.cache_root.join("toy"), "e.bin.part", b"stale bytes");
    let last = Cell::new((0, None));
    let path = fetch_file(&config, &m, &m.files[0], Some(&|d, t| last.set((d, t)))).unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Some("bytes=11-".to_string())]
    );
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(last.get(), (50_000, Some(50_000)));
}

#[test]
fn download_of_a_complete_part_file_restarts_after_416() {
    let data = payload(4000, 9);
    let (url, seen) = serve(data.clone(), true);
    let (_root, config) = http_config();
    let m = manifest(vec![entry("f.bin", &format!("{url}/f.bin"), &data)]);
    write(&config.cache_root.join("toy"), "f.bin.part", &data);
    let path = fetch_file(&config, &m, &m.files[0], None).unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Some("bytes=4000-".to_string()), None]
    );
    assert_eq!(std::fs::read(&path).unwrap(), data);
}

#[test]
fn download_of_wrong_bytes_is_a_checksum_error_and_removes_the_part_file() {
    let expected = payload(10_000, 10);
    let wrong = payload(10_000, 11);
    let (url, _seen) = serve(gzip(&wrong), true);
    let (_root, config) = http_config();
    let m = manifest(vec![entry("g.gz", &format!("{url}/g.gz"), &expected)]);
    let message = fetch_file(&config, &m, &m.files[0], None)
        .unwrap_err()
        .to_string();
    assert!(message.contains(&sha256_hex(&expected)), "{message}");
    assert!(message.contains(&sha256_hex(&wrong)), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(cache_listing(&config).is_empty());

    // Bytes that are not even gzip: also refused, .part removed.
    let (url, _seen) = serve(b"<html>not found</html>".to_vec(), true);
    let m = manifest(vec![entry("g.gz", &format!("{url}/g.gz"), &expected)]);
    let message = fetch_file(&config, &m, &m.files[0], None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("unreadable") && message.contains(&url),
        "{message}"
    );
    assert!(cache_listing(&config).is_empty());
}

#[test]
fn connection_failure_names_the_url() {
    let (_root, config) = http_config();
    // Nothing listens on port 9 of 127.0.0.1 in the test environment.
    let m = manifest(vec![entry("h.bin", "http://127.0.0.1:9/h.bin", b"x")]);
    let message = fetch_file(&config, &m, &m.files[0], None)
        .unwrap_err()
        .to_string();
    assert!(message.contains("http://127.0.0.1:9/h.bin"), "{message}");
}

/// The variable telling [`fetch_in_a_child_process`] where the mirror and cache are.
const CHILD_ROOT: &str = "PETAL_LOCK_TEST_ROOT";

/// The manifest both processes of the lock test fetch from.
fn locked_manifest() -> (Manifest, Vec<u8>) {
    let bytes = payload(5000, 1);
    let m = manifest(vec![entry("a.gz", "http://unused.invalid/a.gz", &bytes)]);
    (m, bytes)
}

#[test]
#[ignore = "the second process of a_second_process_waits_for_the_cache_lock"]
fn fetch_in_a_child_process() {
    let root = PathBuf::from(std::env::var_os(CHILD_ROOT).expect("run by the lock test"));
    let config = DataConfig {
        cache_root: root.join("cache"),
        mirror: Some(root.join("mirror")),
    };
    let (m, _) = locked_manifest();
    fetch_file(&config, &m, &m.files[0], None).unwrap();
}

#[test]
fn a_second_process_waits_for_the_cache_lock() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let (_, bytes) = locked_manifest();
    let (root, config) = mirror_with(&[("a.gz", gzip(&bytes))]);
    // This process holds the lock a fetch of a.gz takes.
    let lock_path = config.cache_root.join("toy/.a.gz.lock");
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "fetch_in_a_child_process",
            "--nocapture",
        ])
        .env(CHILD_ROOT, root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains(".a.gz.lock: another process is writing"),
        "{line}"
    );
    assert!(child.try_wait().unwrap().is_none(), "the child waits");
    assert!(
        cache_listing(&config).is_empty(),
        "nothing written meanwhile"
    );

    drop(lock);
    assert!(child.wait().unwrap().success());
    assert_eq!(cache_listing(&config), ["a.gz", "a.gz.verified"]);
    let cached = config.cache_root.join("toy/a.gz");
    assert_eq!(std::fs::read(cached).unwrap(), gzip(&bytes));
}

#[test]
fn a_published_sha256_prefix_without_a_size_verifies_and_a_wrong_one_is_refused() {
    // torchvision's rule: the file name carries the first digits of the sha256, and no
    // size is published.
    let data = payload(30_000, 12);
    let (url, _seen) = serve(data.clone(), true);
    let (_root, config) = http_config();
    let mut file = entry("h.pth", &format!("{url}/h.pth"), &data);
    file.sha256.truncate(8);
    file.size = 0;
    let m = manifest(vec![file.clone()]);
    let path = fetch_file(&config, &m, &m.files[0], None).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert!(is_cached(&config, &m, &m.files[0]).unwrap());

    let (_root, config) = http_config();
    file.sha256 = "0123abcd".into();
    let m = manifest(vec![file]);
    let message = fetch_file(&config, &m, &m.files[0], None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("expected a sha256 starting 0123abcd, got sha256")
            && message.contains(&sha256_hex(&data)),
        "{message}"
    );
    assert!(cache_listing(&config).is_empty());

    // Fewer than 8 digits identify nothing.
    let mut short = entry("i.pth", &format!("{url}/i.pth"), &data);
    short.sha256.truncate(4);
    let m = manifest(vec![short]);
    assert!(fetch_file(&config, &m, &m.files[0], None).is_err());
}
