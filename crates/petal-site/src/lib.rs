//! The static site of Petal's experiments, built from the reports the runner writes:
//! an index of experiment cards, a page per experiment, the benchmark page, the CNN
//! explainer (with a trained MNIST model's weights and predictions), and the API docs;
//! and [`site_test`], which opens every page in headless Chromium.
//!
//! `cargo xtask docs` and `cargo xtask site-test` parse their flags and call [`build`]
//! and [`site_test`]; everything the site needs to know comes in through
//! [`SiteOptions`] and [`SiteTestOptions`].

mod bench;
mod browser;
mod cost_curves;
mod explainer;
mod guides;
mod lessons;
mod networks;
mod page;
mod reports;
mod site;
mod tables;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use petal_data::Dataset;
use petal_zoo::BipyramidalConfig;

pub use browser::{run as site_test, SiteTestOptions, SCREENSHOT_PAGES};
pub use networks::{LayerLine, NetworkTable};

/// An experiment the runner knows, whether or not it has run: the name of its report
/// folder under `docs/` (and of its page) and a one-line description for its card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Experiment {
    /// The report folder and page name, e.g. `mnist`.
    pub slug: String,
    /// What the experiment shows, in one line.
    pub description: String,
}

/// A benchmark workload: its name in `docs/bench/results.json` and what it measures,
/// for the benchmark page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchWorkload {
    /// The name in the results' rows, e.g. `keras_mnist_train`.
    pub name: String,
    /// What it measures, in one line.
    pub description: String,
}

/// The trained model the explainer page runs in the browser.
#[derive(Clone, Copy)]
pub struct ExplainerModel<'a> {
    /// The network the weights belong to.
    pub network: &'a BipyramidalConfig,
    /// The weights file (safetensors).
    pub weights: &'a Path,
    /// Test digits: the page shows a few of each class with the model's predictions.
    pub test: &'a dyn Dataset,
}

/// What [`build`] reads and writes.
#[derive(Clone)]
pub struct SiteOptions<'a> {
    /// The workspace root: reports are read from `<root>/docs/<experiment>/`, the crates
    /// listed from `<root>/crates/`, and `cargo doc` runs there.
    pub root: PathBuf,
    /// Where to write the site.
    pub out: PathBuf,
    /// The experiments the runner knows, in its order (any other report folder in
    /// `docs/` follows, by name).
    pub experiments: Vec<Experiment>,
    /// The benchmark's workloads, to say on its page what each one is.
    pub workloads: Vec<BenchWorkload>,
    /// The model for the explainer page; without one the page asks for a trained model.
    pub explainer: Option<ExplainerModel<'a>>,
    /// Whether to build the API docs (`cargo doc --workspace --no-deps`) into `<out>/api`.
    pub api_docs: bool,
}

/// Builds the site as `options` say; returns the pages written, relative to `out`.
pub fn build(options: &SiteOptions<'_>) -> anyhow::Result<Vec<PathBuf>> {
    let root = &options.root;
    let out = &options.out;
    let crates = workspace_crates(root)?;
    let pages = site::write_site(
        &root.join("docs"),
        out,
        &crates,
        &options.experiments,
        &options.workloads,
    )?;
    if let Some(model) = options.explainer {
        explainer::write_model_js(
            model.network,
            model.weights,
            model.test,
            &out.join("explainer"),
        )?;
    }
    if options.api_docs {
        api_docs(root, &out.join("api"))?;
    }
    Ok(pages)
}

/// The crates whose API the site documents: every workspace crate but the runner and
/// this site generator, which are tools rather than libraries for users.
const TOOLS: [&str; 2] = ["xtask", env!("CARGO_PKG_NAME")];

/// The workspace's library crates (the folders under `crates/` but [`TOOLS`]), by name.
fn workspace_crates(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("crates");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !TOOLS.contains(&name.as_str()))
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo doc --workspace --no-deps`, copied into `dest`.
fn api_docs(root: &Path, dest: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["doc", "--workspace", "--no-deps"])
        .args(TOOLS.iter().flat_map(|tool| ["--exclude", tool]))
        .current_dir(root)
        .status()
        .context("cannot run cargo doc")?;
    if !status.success() {
        bail!("cargo doc failed ({status})");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let built = target.join("doc");
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("cannot clear {}", dest.display()))?;
    }
    copy_dir(&built, dest)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_lists_the_library_crates_but_not_the_tools() {
        let root = tempfile::tempdir().unwrap();
        for name in ["petal-nn", "petal-site", "xtask", "notes"] {
            let dir = root.path().join("crates").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if name != "notes" {
                std::fs::write(dir.join("Cargo.toml"), "").unwrap();
            }
        }
        std::fs::create_dir_all(root.path().join("docs")).unwrap();
        let out = root.path().join("docs/site");
        let pages = build(&SiteOptions {
            root: root.path().to_path_buf(),
            out: out.clone(),
            experiments: vec![],
            workloads: vec![],
            explainer: None,
            api_docs: false,
        })
        .unwrap();
        assert_eq!(pages.len(), 8, "{pages:?}"); // index, bench, explainer, 5 guides
        let index = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(index.contains("api/petal_nn/index.html"));
        assert!(!index.contains("api/petal_site/") && !index.contains("api/xtask/"));
        assert!(!index.contains("api/notes/"));
        assert!(!out.join("explainer/model.js").exists());
    }

    #[test]
    fn a_missing_docs_folder_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("crates")).unwrap();
        let err = build(&SiteOptions {
            root: root.path().to_path_buf(),
            out: root.path().join("site"),
            experiments: vec![],
            workloads: vec![],
            explainer: None,
            api_docs: false,
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("docs"), "{err:#}");
    }
}
