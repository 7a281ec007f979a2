//! Checks of the environment Petal runs in (cache and mirror, free disk, datasets and
//! weights, threads, the CPU features the kernels use), one [`Finding`] per check, as
//! `cargo xtask doctor` prints them. Only what is broken fails ([`Status::Fail`]): an
//! unusable cache, a mirror that is set but missing or holds bad copies, weights that do
//! not match their checksum. Things that are merely absent are warnings.
//!
//! ```no_run
//! use petal::data::download::DataConfig;
//! use petal::doctor::{check_environment, Status};
//! let findings = check_environment(&DataConfig::from_env("datasets/cache"), "datasets/cache/weights".as_ref());
//! for finding in &findings {
//!     println!("{finding}");
//! }
//! assert!(findings.iter().all(|f| f.status != Status::Fail));
//! ```

use std::fmt;
use std::path::Path;

use petal_data::download::{is_cached, verify_copy, DataConfig};
use petal_data::extract::is_extracted;
use petal_data::flowers::IMAGES_DIR;
use petal_data::{Manifest, ManifestFile};
use petal_zoo::pretrained::{PretrainedWeights, CATALOG};

/// How one check came out, from fine to broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// As it should be.
    Ok,
    /// Worth knowing, nothing to do.
    Note,
    /// Absent or degraded, but Petal still runs (e.g. a dataset not downloaded yet).
    Warn,
    /// Broken: a command that needs it will fail.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Note => "note",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How the check came out.
    pub status: Status,
    /// What was checked.
    pub topic: String,
    /// What was found.
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<5} {:<38} {}", self.status, self.topic, self.text)
    }
}

impl Finding {
    fn new(status: Status, topic: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            status,
            topic: topic.into(),
            text: text.into(),
        }
    }
}

/// Runs every check on the data configuration `config` and the weights folder
/// `weights`, in report order.
pub fn check_environment(config: &DataConfig, weights: &Path) -> Vec<Finding> {
    let manifests = [Manifest::mnist(), Manifest::flowers102()];
    let mut report = vec![
        check_cache(&config.cache_root),
        check_disk(&config.cache_root, &manifests),
        check_mirror(config.mirror.as_deref()),
    ];
    for manifest in &manifests {
        report.extend(check_dataset(config, manifest));
    }
    report.extend(check_weights(weights));
    report.push(check_threads());
    report.push(check_cpu());
    report
}

/// `path` or its nearest ancestor that exists.
fn nearest_existing(path: &Path) -> Option<&Path> {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
}

/// Whether a file can be created in `folder` (tried, then removed).
fn can_write_in(folder: &Path) -> std::io::Result<()> {
    let probe = folder.join(format!(".petal-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// The cache root must be a writable folder, or creatable in one.
fn check_cache(root: &Path) -> Finding {
    let topic = "dataset cache (PETAL_DATA)";
    let shown = root.display();
    if root.exists() && !root.is_dir() {
        return Finding::new(Status::Fail, topic, format!("{shown} is not a folder"));
    }
    let Some(folder) = nearest_existing(root) else {
        return Finding::new(
            Status::Fail,
            topic,
            format!("{shown}: no part of it exists"),
        );
    };
    match can_write_in(folder) {
        Ok(()) if folder == root => Finding::new(Status::Ok, topic, format!("{shown} (writable)")),
        Ok(()) => Finding::new(
            Status::Ok,
            topic,
            format!("{shown} (created on first download)"),
        ),
        Err(e) => Finding::new(
            Status::Fail,
            topic,
            format!("{shown}: cannot write in {}: {e}", folder.display()),
        ),
    }
}

/// Bytes a full cache of `manifests` takes: every payload, plus the extracted archives.
fn full_cache_bytes(manifests: &[Manifest]) -> u64 {
    let files = manifests.iter().flat_map(|m| &m.files);
    files
        .map(|f| f.size * if f.name.ends_with(".tgz") { 2 } else { 1 })
        .sum()
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1 << 30))
}

/// Free space where the cache lives, against what a full cache needs.
fn check_disk(root: &Path, manifests: &[Manifest]) -> Finding {
    let topic = "free disk at the cache";
    let need = full_cache_bytes(manifests);
    let free = nearest_existing(root).map(fs4::available_space);
    match free {
        Some(Ok(free)) if free >= need => Finding::new(
            Status::Ok,
            topic,
            format!("{} free; a full cache takes {}", gib(free), gib(need)),
        ),
        Some(Ok(free)) => Finding::new(
            Status::Warn,
            topic,
            format!(
                "{} free, less than the {} a full cache takes (downloads or extraction may \
                 stop with a full disk)",
                gib(free),
                gib(need)
            ),
        ),
        Some(Err(e)) => Finding::new(Status::Warn, topic, format!("unknown: {e}")),
        None => Finding::new(Status::Warn, topic, "unknown: the cache folder is missing"),
    }
}

/// A mirror that is set must be a folder.
fn check_mirror(mirror: Option<&Path>) -> Finding {
    let topic = "mirror (PETAL_MIRROR)";
    match mirror {
        None => Finding::new(
            Status::Note,
            topic,
            "not set: datasets download from their official URLs",
        ),
        Some(dir) if dir.is_dir() => Finding::new(Status::Ok, topic, dir.display().to_string()),
        Some(dir) => Finding::new(
            Status::Fail,
            topic,
            format!("{} is not a folder: every fetch will fail", dir.display()),
        ),
    }
}

/// One line per file of `manifest` (cached, or in the mirror and verified, or to be
/// downloaded), and for Oxford 102 Flowers whether the archive is extracted.
fn check_dataset(config: &DataConfig, manifest: &Manifest) -> Vec<Finding> {
    let mut findings: Vec<Finding> = manifest
        .files
        .iter()
        .map(|file| check_dataset_file(config, manifest, file))
        .collect();
    if manifest.files.iter().any(|f| f.name.ends_with(".tgz")) {
        let images = config.dataset_dir(manifest).join(IMAGES_DIR);
        let topic = format!("{}/{IMAGES_DIR}/", manifest.dataset);
        findings.push(if is_extracted(&images) {
            Finding::new(Status::Ok, topic, "extracted")
        } else {
            Finding::new(Status::Note, topic, "not extracted yet (done on first use)")
        });
    }
    findings
}

fn check_dataset_file(config: &DataConfig, manifest: &Manifest, file: &ManifestFile) -> Finding {
    let topic = format!("{}/{}", manifest.dataset, file.name);
    match is_cached(config, manifest, file) {
        Ok(true) => return Finding::new(Status::Ok, topic, "verified in the cache"),
        Ok(false) => {}
        Err(e) => return Finding::new(Status::Fail, topic, e.to_string()),
    }
    let Some(mirror) = &config.mirror else {
        return Finding::new(
            Status::Warn,
            topic,
            format!("not cached; will be downloaded from {}", file.url),
        );
    };
    let copy = mirror.join(&manifest.dataset).join(&file.name);
    if !copy.is_file() {
        return Finding::new(
            Status::Fail,
            topic,
            format!("not cached, and the mirror has no {}", copy.display()),
        );
    }
    match verify_copy(&copy, file) {
        Ok(true) => Finding::new(
            Status::Ok,
            topic,
            "not cached yet; the mirror copy verifies",
        ),
        Ok(false) => Finding::new(
            Status::Fail,
            topic,
            format!(
                "the mirror copy {} does not match the manifest's checksum",
                copy.display()
            ),
        ),
        Err(e) => Finding::new(Status::Fail, topic, e.to_string()),
    }
}

/// One line per set of pretrained weights in the catalog.
fn check_weights(folder: &Path) -> Vec<Finding> {
    CATALOG
        .iter()
        .map(|w| check_weight_file(folder, w))
        .collect()
}

fn check_weight_file(folder: &Path, weights: &PretrainedWeights) -> Finding {
    let topic = format!("weights {}", weights.name);
    let (file, classes) = weights.files_in(folder);
    if !file.is_file() {
        return Finding::new(
            Status::Warn,
            topic,
            format!(
                "{} missing (PETAL_WEIGHTS); only `repro pretrained` and the transfer \
                 experiments need it",
                file.display()
            ),
        );
    }
    match weights.verify(&file) {
        Ok(false) => Finding::new(
            Status::Fail,
            topic,
            format!(
                "{} is not the catalog's file (sha256 {} expected)",
                file.display(),
                weights.sha256
            ),
        ),
        Err(e) => Finding::new(Status::Fail, topic, e.to_string()),
        Ok(_) if !classes.is_file() => Finding::new(
            Status::Fail,
            topic,
            format!(
                "verified, but the class names {} are missing",
                classes.display()
            ),
        ),
        Ok(_) => Finding::new(Status::Ok, topic, format!("{} verified", file.display())),
    }
}

fn check_threads() -> Finding {
    let topic = "threads";
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = rayon::current_num_threads();
    let setting = std::env::var("RAYON_NUM_THREADS")
        .map_or_else(|_| "unset".to_string(), |v| format!("{v:?}"));
    let text = format!("{threads} worker threads for {cpus} CPUs (RAYON_NUM_THREADS {setting})");
    if threads > cpus {
        Finding::new(
            Status::Warn,
            topic,
            format!("{text}: more threads than CPUs slows the kernels down"),
        )
    } else {
        Finding::new(Status::Ok, topic, text)
    }
}

/// The matrix-multiply kernel the `gemm` crate picks for these CPU features.
fn gemm_kernel(avx512f: bool, avx2: bool, fma: bool) -> Finding {
    let topic = "CPU features for gemm / conv";
    let flags = format!(
        "AVX-512F {}, AVX2 {}, FMA {}",
        yes(avx512f),
        yes(avx2),
        yes(fma)
    );
    if avx512f {
        Finding::new(Status::Ok, topic, format!("{flags}: AVX-512 kernels"))
    } else if avx2 && fma {
        Finding::new(Status::Ok, topic, format!("{flags}: AVX2+FMA kernels"))
    } else {
        Finding::new(
            Status::Warn,
            topic,
            format!("{flags}: portable kernels, several times slower"),
        )
    }
}

fn yes(present: bool) -> &'static str {
    if present {
        "yes"
    } else {
        "no"
    }
}

#[cfg(target_arch = "x86_64")]
fn check_cpu() -> Finding {
    gemm_kernel(
        std::arch::is_x86_feature_detected!("avx512f"),
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("fma"),
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn check_cpu() -> Finding {
    Finding::new(
        Status::Note,
        "CPU features for gemm / conv",
        format!(
            "{}: gemm's kernels for this architecture",
            std::env::consts::ARCH
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_below_a_file_or_a_missing_mirror_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_cache(dir.path()).status, Status::Ok);
        assert_eq!(
            check_cache(&dir.path().join("new/cache")).status,
            Status::Ok
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let finding = check_cache(&file.join("cache"));
        assert_eq!(finding.status, Status::Fail, "{finding:?}");
        assert_eq!(check_cache(&file).status, Status::Fail);

        assert_eq!(check_mirror(None).status, Status::Note);
        assert_eq!(check_mirror(Some(dir.path())).status, Status::Ok);
        let missing = check_mirror(Some(&dir.path().join("nowhere")));
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.text.contains("nowhere"), "{missing:?}");
    }

    #[test]
    fn datasets_missing_from_a_mirror_fail_and_bad_copies_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror");
        std::fs::create_dir_all(mirror.join("mnist")).unwrap();
        std::fs::write(mirror.join("mnist/t10k-labels-idx1-ubyte.gz"), b"not gzip").unwrap();
        let config = DataConfig {
            cache_root: dir.path().join("cache"),
            mirror: Some(mirror),
        };
        let findings = check_dataset(&config, &Manifest::mnist());
        assert_eq!(findings.len(), 4);
        assert!(
            findings.iter().all(|f| f.status == Status::Fail),
            "{findings:?}"
        );
        let bad = findings
            .iter()
            .find(|f| f.topic.ends_with("t10k-labels-idx1-ubyte.gz"))
            .unwrap();
        assert!(bad.text.contains("t10k-labels-idx1-ubyte.gz"), "{bad:?}");

        let without_mirror = DataConfig::new(dir.path().join("cache"));
        let findings = check_dataset(&without_mirror, &Manifest::flowers102());
        let statuses: Vec<Status> = findings.iter().map(|f| f.status).collect();
        assert_eq!(
            statuses,
            [Status::Warn, Status::Warn, Status::Warn, Status::Note]
        );
    }

    #[test]
    fn weights_that_do_not_verify_fail_and_missing_ones_warn() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_weights(dir.path())
            .iter()
            .all(|f| f.status == Status::Warn));
        for weights in CATALOG {
            std::fs::write(weights.files_in(dir.path()).0, b"tampered").unwrap();
        }
        let findings = check_weights(dir.path());
        assert!(findings.iter().all(|f| f.status == Status::Fail));
        assert!(findings[0].text.contains("expected"), "{findings:?}");
    }

    #[test]
    fn the_kernel_follows_the_cpu_features() {
        assert!(gemm_kernel(true, true, true)
            .text
            .ends_with("AVX-512 kernels"));
        assert!(gemm_kernel(false, true, true)
            .text
            .ends_with("AVX2+FMA kernels"));
        assert_eq!(gemm_kernel(false, true, false).status, Status::Warn);
        assert_eq!(gemm_kernel(false, false, false).status, Status::Warn);
    }
}
