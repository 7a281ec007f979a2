//! The static site: an index of experiment cards, a page per experiment, the benchmark
//! page and the explainer page, with their shared CSS and scripts. Pages depend only on
//! the reports, so the same reports give the same files.

use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;

use crate::bench::bench_page;
use crate::guides::GUIDES;
use crate::lessons::{how_to_read, Lesson};
use crate::page::{escape, Page};
use crate::reports::{Figure, Report};
use crate::tables::json_sections;
use crate::{BenchWorkload, Experiment};

const STYLE: &str = include_str!("assets/style.css");
const CHECKS: &str = include_str!("assets/checks.js");
const EXPLAINER_JS: &str = include_str!("assets/explainer.js");
const EXPLAINER_BODY: &str = include_str!("assets/explainer.html");

/// Fields shown in the page's header lines rather than in its facts table.
const HEADER_FIELDS: [&str; 7] = [
    "experiment",
    "command",
    "finished_unix_seconds",
    "cpu",
    "threads",
    "figures",
    "summary",
];

/// Writes the site for the reports in `docs` into `out`, with a card for each of
/// `experiments`; returns the pages written, relative to `out`.
pub fn write_site(
    docs: &Path,
    out: &Path,
    crates: &[String],
    experiments: &[Experiment],
    workloads: &[BenchWorkload],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out.join("explainer"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let reports = read_reports(docs, experiments)?;
    let docs_from_out = relative(out, docs)?;
    let mut pages = Vec::new();
    let mut write = |name: &str, text: &str, page: bool| -> anyhow::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if page {
            pages.push(PathBuf::from(name));
        }
        Ok(())
    };
    write("style.css", STYLE, false)?;
    write("checks.js", CHECKS, false)?;
    write("explainer/explainer.js", EXPLAINER_JS, false)?;
    write(
        "index.html",
        &index(&reports, experiments, &docs_from_out, crates),
        true,
    )?;
    let ran: Vec<&Report> = reports.iter().filter_map(|(_, r)| r.as_ref()).collect();
    for (_, report) in &reports {
        if let Some(report) = report {
            let description = description(experiments, &report.slug);
            write(
                &format!("{}.html", report.slug),
                &experiment_page(report, &description, &docs_from_out, &ran),
                true,
            )?;
        }
    }
    write(
        "bench.html",
        &bench_page(docs, &docs_from_out, workloads)?,
        true,
    )?;
    write("explainer/index.html", &explainer_page(), true)?;
    for guide in &GUIDES {
        write(&format!("{}.html", guide.slug), &guide.render(), true)?;
    }
    Ok(pages)
}

/// Every known experiment (run or not) in the runner's order, then any other report
/// folder in `docs`, by name.
fn read_reports(
    docs: &Path,
    experiments: &[Experiment],
) -> anyhow::Result<Vec<(String, Option<Report>)>> {
    let known: Vec<String> = experiments.iter().map(|e| e.slug.clone()).collect();
    let mut others: Vec<String> = std::fs::read_dir(docs)
        .with_context(|| format!("cannot list {}", docs.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("metrics.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !known.contains(name))
        .collect();
    others.sort();
    known
        .into_iter()
        .chain(others)
        .map(|slug| Ok((slug.clone(), Report::read(&docs.join(&slug))?)))
        .collect()
}

/// The one-line description of the experiment `slug` (empty for an unknown one).
fn description(experiments: &[Experiment], slug: &str) -> String {
    experiments
        .iter()
        .find(|e| e.slug == slug)
        .map(|e| e.description.clone())
        .unwrap_or_default()
}

/// The `<img>` of a report's figure, linked from the site's root.
fn figure_img(docs_from_out: &str, slug: &str, figure: &Figure) -> String {
    format!(
        "<img src=\"{}\" alt=\"{}\"{}>",
        escape(&format!("{docs_from_out}{slug}/{}", figure.path)),
        escape(&figure.caption),
        if figure.small {
            " class=\"pixels\""
        } else {
            ""
        }
    )
}

/// An experiment's card on the index: headline figure, status, best result, date and
/// machine; a grey card with the command when it has not run.
fn card(slug: &str, description: &str, report: Option<&Report>, docs_from_out: &str) -> String {
    let description = escape(description);
    let Some(r) = report else {
        return format!(
            "<div class=\"card missing\">\n<h2>{slug}</h2>\n<p>{description}</p>\n<p class=\"status missing\">not run yet</p>\n<p class=\"meta\"><code>cargo xtask repro {slug}</code></p>\n</div>\n"
        );
    };
    let image = r.figures.first().map_or(String::new(), |f| {
        format!(
            "<div class=\"thumb\">{}</div>\n",
            figure_img(docs_from_out, slug, f)
        )
    });
    let (class, status) = if r.quick() {
        ("quick", "quick smoke run")
    } else {
        ("done", "reproduced")
    };
    let headline = r.best_test_accuracy().map_or(String::new(), |(name, a)| {
        format!(
            "<p class=\"headline\">best test accuracy <strong>{:.2}%</strong>: {}</p>\n",
            100.0 * a,
            escape(&name)
        )
    });
    let meta: Vec<String> = [r.date(), r.machine()].into_iter().flatten().collect();
    format!(
        "<a class=\"card\" href=\"{slug}.html\">\n{image}<h2>{slug}</h2>\n<p>{description}</p>\n<p class=\"status {class}\">{status}</p>\n{headline}<p class=\"meta\">{}</p>\n</a>\n",
        escape(&meta.join(" · "))
    )
}

fn index(
    reports: &[(String, Option<Report>)],
    experiments: &[Experiment],
    docs_from_out: &str,
    crates: &[String],
) -> String {
    let cards: String = reports
        .iter()
        .map(|(slug, report)| {
            let description = description(experiments, slug);
            card(slug, &description, report.as_ref(), docs_from_out)
        })
        .collect();
    let api: String = crates
        .iter()
        .map(|c| {
            format!(
                "<li><a href=\"api/{0}/index.html\"><code>{0}</code></a></li>\n",
                c.replace('-', "_")
            )
        })
        .collect();
    let guides: String = GUIDES
        .iter()
        .map(|g| {
            format!(
                "<li><a href=\"{}.html\">{}</a></li>\n",
                g.slug,
                escape(g.title)
            )
        })
        .collect();
    let body = format!(
        r#"<p class="lead">Petal reproduces the experiments of a lecture on convolutional neural networks in Rust. Each card is one
<code>cargo xtask repro &lt;experiment&gt;</code> run: its tables, figures and the command that reproduces it.</p>
<section class="cards">
{cards}</section>
<h2>Guides</h2>
<ul>
{guides}</ul>
<h2>More</h2>
<ul>
<li><a href="explainer/index.html">CNN explainer</a>: the trained MNIST network computed in your browser, layer by layer.</li>
<li><a href="bench.html">Benchmark</a>: Petal against PyTorch on the same machine.</li>
</ul>
<h2 id="api">API documentation</h2>
<p><code>cargo xtask docs</code> builds it with <code>cargo doc --workspace --no-deps</code> into <code>api/</code> beside these pages (not committed):</p>
<ul>
{api}</ul>
"#
    );
    Page {
        title: "Experiments",
        root: "",
        body,
        scripts: &[],
    }
    .render()
}

/// The lecture's claims for the experiment and, for each, what Petal measured with the
/// verdict.
fn lesson_section(report: &Report, others: &[&Report]) -> String {
    let lessons = Lesson::of(&report.slug);
    if lessons.is_empty() {
        return String::new();
    }
    let mut html = String::from("<h2>What the lecture shows, and what Petal measured</h2>\n");
    for lesson in &lessons {
        html += &format!("<p class=\"claim\">{}</p>\n", escape(lesson.claim));
        if let Some(finding) = lesson.finding(report, others) {
            let (label, class) = finding.verdict.label();
            html += &format!(
                "<p class=\"finding\"><span class=\"verdict {class}\">{label}</span> {}</p>\n",
                escape(&finding.measured)
            );
        }
    }
    html
}

fn experiment_page(
    report: &Report,
    description: &str,
    docs_from_out: &str,
    others: &[&Report],
) -> String {
    let slug = &report.slug;
    let mut body = format!("<p class=\"lead\">{}</p>\n", escape(description));
    if report.quick() {
        body += "<p class=\"status quick\">This report is a --quick smoke run, not the full experiment.</p>\n";
    }
    body += &lesson_section(report, others);
    if !report.figures.is_empty() {
        body += "<h2>Figures</h2>\n<div class=\"figures\">\n";
        for f in &report.figures {
            let note = how_to_read(&f.path).map_or(String::new(), |n| {
                format!("<span class=\"look\">{}</span>", escape(n))
            });
            body += &format!(
                "<figure>{}<figcaption>{}{note}</figcaption></figure>\n",
                figure_img(docs_from_out, slug, f),
                escape(&f.caption)
            );
        }
        body += "</div>\n";
    }
    body += &json_sections(&report.metrics, &HEADER_FIELDS);
    if let Some(summary) = report.text("summary") {
        body += &format!("<h2>Model</h2>\n<pre>{}</pre>\n", escape(summary));
    }
    body += &reproduce_section(report);
    Page {
        title: slug,
        root: "",
        body,
        scripts: &[],
    }
    .render()
}

/// The command that rewrites the report, how long its training took and where.
fn reproduce_section(report: &Report) -> String {
    let mut html = format!(
        "<h2>Reproduce</h2>\n<pre><code>{}</code></pre>\n",
        escape(&report.command())
    );
    let took = report.training_seconds().map(|s| match s {
        s if s < 90.0 => format!("{s:.0} s"),
        s => format!("{:.0} min", s / 60.0),
    });
    let machine = report
        .machine()
        .map(|m| format!(" on {m}"))
        .unwrap_or_default();
    let date = report
        .date()
        .map(|d| format!(" (run {d})"))
        .unwrap_or_default();
    let what = match &took {
        Some(took) => format!("Its training took {took}"),
        None => "Run".to_string(),
    };
    if took.is_some() || !machine.is_empty() || !date.is_empty() {
        html += &format!(
            "<p class=\"meta\">{}</p>\n",
            escape(&format!("{what}{machine}{date}."))
        );
    }
    html += &format!(
        "<p>It rewrites <code>docs/{}/</code>; then <code>cargo xtask docs</code> rebuilds these pages.</p>\n",
        report.slug
    );
    html
}

fn explainer_page() -> String {
    Page {
        title: "CNN explainer",
        root: "../",
        body: EXPLAINER_BODY.to_string(),
        scripts: &["model.js", "explainer.js"],
    }
    .render()
}

/// The relative URL prefix from folder `from` to folder `to` (with a trailing `/`), both
/// taken as absolute paths.
pub fn relative(from: &Path, to: &Path) -> anyhow::Result<String> {
    let absolute = |p: &Path| {
        std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))
    };
    let (from, to) = (absolute(from)?, absolute(to)?);
    let (a, b): (Vec<Component>, Vec<Component>) =
        (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut url = "../".repeat(a.len() - common);
    for part in &b[common..] {
        url += &part.as_os_str().to_string_lossy();
        url.push('/');
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_climb_then_descend() {
        let root = tempfile::tempdir().unwrap();
        let (docs, site, ci) = (
            root.path().join("docs"),
            root.path().join("docs/site"),
            root.path().join("target/ci"),
        );
        for d in [&site, &ci] {
            std::fs::create_dir_all(d).unwrap();
        }
        assert_eq!(relative(&site, &docs).unwrap(), "../");
        assert_eq!(relative(&ci, &docs).unwrap(), "../../docs/");
        assert_eq!(relative(&docs, &docs).unwrap(), "");
    }

    #[test]
    fn the_site_has_a_card_per_experiment_and_pages_for_the_runs() {
        let root = tempfile::tempdir().unwrap();
        let docs = root.path().join("docs");
        std::fs::create_dir_all(docs.join("mnist")).unwrap();
        std::fs::write(
            docs.join("mnist/metrics.json"),
            r#"{"command": "repro mnist", "finished_unix_seconds": 0, "cpu": "X", "threads": 2, "seed": 42,
               "figures": [{"path": "curves.png", "caption": "Curves"}],
               "runs": [{"name": "cnn", "test_accuracy": 0.99}], "summary": "conv2d (Conv2D)"}"#,
        )
        .unwrap();
        std::fs::write(docs.join("mnist/curves.png"), b"png").unwrap();
        let out = docs.join("site");
        let experiments = [
            Experiment {
                slug: "mnist".into(),
                description: "The lecture's CNN on MNIST".into(),
            },
            Experiment {
                slug: "flowers102-transfer".into(),
                description: "Transfer learning on the flowers".into(),
            },
        ];
        let write = || write_site(&docs, &out, &["petal-nn".into()], &experiments, &[]).unwrap();
        let pages = write();
        let names: Vec<String> = pages.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "index.html",
                "mnist.html",
                "bench.html",
                "explainer/index.html",
                "guide-getting-started.html",
                "guide-transfer-learning.html",
                "guide-custom-layer.html",
                "guide-reproduce.html"
            ]
        );
        let index = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(index.contains(r#"<a class="card" href="mnist.html">"#));
        assert!(index.contains(r#"<img src="../mnist/curves.png" alt="Curves">"#));
        assert!(index.contains("99.00%") && index.contains("1970-01-01 00:00 UTC · X, 2 threads"));
        assert!(
            index.contains("not run yet")
                && index.contains("cargo xtask repro flowers102-transfer")
        );
        assert!(index.contains(r#"href="api/petal_nn/index.html""#));
        let page = std::fs::read_to_string(out.join("mnist.html")).unwrap();
        assert!(page.contains("<pre><code>cargo xtask repro mnist</code></pre>"));
        assert!(page.contains("<p class=\"lead\">The lecture&#39;s CNN on MNIST</p>"));
        assert!(page.contains("<th>Seed</th><td>42</td>"));
        // The lecture's claim, and the verdict computed from the run's 99%.
        assert!(page.contains("<h2>What the lecture shows, and what Petal measured</h2>"));
        assert!(
            page.contains("<span class=\"verdict agrees\">agrees with the lecture</span>"),
            "{page}"
        );
        assert!(page.contains("<td>cnn</td>") && page.contains("<pre>conv2d (Conv2D)</pre>"));
        let again = write();
        assert_eq!(pages, again);
        assert_eq!(
            page,
            std::fs::read_to_string(out.join("mnist.html")).unwrap()
        );
        assert!(std::fs::read_to_string(out.join("bench.html"))
            .unwrap()
            .contains("No benchmark results yet"));
        assert!(out.join("explainer/explainer.js").is_file() && out.join("checks.js").is_file());
    }
}
