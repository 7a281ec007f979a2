//! `cargo xtask docs`: the API docs and a static site in `docs/site/` gathering every
//! experiment's report, the benchmark, and the CNN explainer.

mod browser;
mod explainer;
mod page;
mod reports;
mod site;
mod tables;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::paths::{mnist_model_path, workspace_root};
use crate::repro::mnist::{network, MnistSplits};

pub use browser::{run as site_test, SiteTestOptions};

/// Flags of `cargo xtask docs`.
#[derive(Clone, Debug, clap::Args)]
pub struct DocsOptions {
    /// Where to write the site (relative to the workspace root).
    #[arg(long, default_value = "docs/site")]
    pub out: PathBuf,
    /// The trained MNIST weights for the explainer (default: where `repro mnist` saves them).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Explain the model of `repro mnist --quick` instead of the full run's.
    #[arg(long)]
    pub quick: bool,
    /// Skip the API docs (`cargo doc`), e.g. in CI.
    #[arg(long)]
    pub no_api: bool,
}

/// Builds the site (and the API docs unless `--no-api`).
pub fn run(options: &DocsOptions) -> anyhow::Result<()> {
    let root = workspace_root();
    let out = if options.out.is_absolute() {
        options.out.clone()
    } else {
        root.join(&options.out)
    };
    let crates = workspace_crates(&root)?;
    let pages = site::write_site(&root.join("docs"), &out, &crates)?;
    let model = options
        .model
        .clone()
        .unwrap_or_else(|| mnist_model_path(options.quick));
    if options.model.is_none() && !model.is_file() {
        // The explainer page then asks for `repro mnist`; an explicit --model must exist.
        eprintln!(
            "warning: no trained MNIST model at {}: the explainer stays empty until `cargo xtask repro mnist{}` has run",
            model.display(),
            if options.quick { " --quick" } else { "" }
        );
    } else {
        // The first 1000 test digits hold five of every class.
        let mnist = MnistSplits::load(true)?;
        explainer::write_model_js(&network(), &model, mnist.test(), &out.join("explainer"))?;
    }
    if !options.no_api {
        api_docs(&root, &out.join("api"))?;
    }
    println!("site in {}:", out.display());
    for page in pages {
        println!("  {}", page.display());
    }
    Ok(())
}

/// The workspace's library crates (the folders under `crates/`), by name.
fn workspace_crates(root: &Path) -> anyhow::Result<Vec<String>> {
    let dir = root.join("crates");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo doc --workspace --no-deps`, copied into `dest`.
fn api_docs(root: &Path, dest: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["doc", "--workspace", "--no-deps", "--exclude", "xtask"])
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
    copy_dir(&built, dest)?;
    println!("API docs in {}", dest.display());
    Ok(())
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
