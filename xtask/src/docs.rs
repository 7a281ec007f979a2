//! `cargo xtask docs` and `cargo xtask site-test`: their flags, turned into the options
//! of [`petal_site::build`] and [`petal_site::site_test`].

use std::path::PathBuf;

use clap::ValueEnum;
use petal_tensor::Precision;

use crate::bench::Workload;
use crate::paths::{mnist_model_path, workspace_root};
use crate::repro::mnist::{network, MnistSplits};
use crate::repro::Experiment;

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

/// Flags of `cargo xtask site-test`.
#[derive(Clone, Debug, clap::Args)]
pub struct SiteTestOptions {
    /// The site to test, as `cargo xtask docs --out` wrote it (relative to the workspace
    /// root).
    #[arg(long, default_value = "docs/site")]
    pub site: PathBuf,
    /// Where to write the whole-page screenshots of the index, flowers102, the benchmarks
    /// and the explainer (default: `<site>/screenshots`; relative to the workspace root).
    #[arg(long)]
    pub screenshots: Option<PathBuf>,
    /// The Chromium binary.
    #[arg(long, default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,
}

/// Builds the site (and the API docs unless `--no-api`).
pub fn run(options: &DocsOptions) -> anyhow::Result<()> {
    let root = workspace_root();
    let out = root.join(&options.out);
    let model = options
        .model
        .clone()
        .unwrap_or_else(|| mnist_model_path(options.quick));
    let network = network();
    let mnist = if options.model.is_none() && !model.is_file() {
        // The explainer page then asks for `repro mnist`; an explicit --model must exist.
        eprintln!(
            "warning: no trained MNIST model at {}: the explainer stays empty until `cargo xtask repro mnist{}` has run",
            model.display(),
            if options.quick { " --quick" } else { "" }
        );
        None
    } else {
        // The first 1000 test digits hold five of every class.
        Some(MnistSplits::load(true)?)
    };
    let pages = petal_site::build(&petal_site::SiteOptions {
        root: root.clone(),
        out: out.clone(),
        experiments: experiments(),
        workloads: workloads(),
        explainer: mnist.as_ref().map(|mnist| petal_site::ExplainerModel {
            network: &network,
            weights: &model,
            test: mnist.test(),
        }),
        api_docs: !options.no_api,
    })?;
    if !options.no_api {
        println!("API docs in {}", out.join("api").display());
    }
    println!("site in {}:", out.display());
    for page in pages {
        println!("  {}", page.display());
    }
    Ok(())
}

/// Runs the browser test on the site.
pub fn site_test(options: &SiteTestOptions) -> anyhow::Result<()> {
    let root = workspace_root();
    petal_site::site_test(&petal_site::SiteTestOptions {
        site: root.join(&options.site),
        screenshots: options.screenshots.as_deref().map(|s| root.join(s)),
        chromium: options.chromium.clone(),
    })
}

/// The benchmark's workloads with their descriptions (their doc comments).
/// Every workload's rows: its f32 row and, for the networks and the multiply-add peak,
/// its bf16 row.
fn workloads() -> Vec<petal_site::BenchWorkload> {
    let mut rows = Vec::new();
    for w in Workload::all() {
        let description = w
            .to_possible_value()
            .and_then(|v| v.get_help().map(ToString::to_string))
            .unwrap_or_default();
        if w.runs_in_bf16() {
            rows.push(petal_site::BenchWorkload {
                name: w.row_name(Precision::Bf16),
                description: match w.petal_only() {
                    true => format!("{description}, in bf16 (vdpbf16ps)"),
                    false => format!(
                        "{description}, in bf16: Petal's bf16 products against PyTorch's autocast"
                    ),
                },
            });
        }
        rows.push(petal_site::BenchWorkload {
            name: w.row_name(Precision::F32),
            description,
        });
    }
    rows
}

fn experiments() -> Vec<petal_site::Experiment> {
    Experiment::value_variants()
        .iter()
        .filter_map(|e| e.to_possible_value())
        .map(|v| petal_site::Experiment {
            slug: v.get_name().to_string(),
            description: v.get_help().map(|h| h.to_string()).unwrap_or_default(),
        })
        .collect()
}
