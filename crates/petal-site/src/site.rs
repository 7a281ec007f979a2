//! The static site: an index of experiment cards, a page per experiment, the benchmark
//! page and the explainer page, with their shared CSS and scripts. Pages depend only on
//! the reports, so the same reports give the same files.

use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use maud::{html, Markup, PreEscaped};

use crate::bench::bench_page;
use crate::guides::GUIDES;
use crate::lessons::{how_to_read, Lesson};
use crate::networks::networks_section;
use crate::page::Page;
use crate::reports::{Figure, Report};
use crate::tables::json_sections;
use crate::{BenchWorkload, Experiment};

const STYLE: &str = include_str!("assets/style.css");
const CHECKS: &str = include_str!("assets/checks.js");
const EXPLAINER_JS: &str = include_str!("assets/explainer.js");
const EXPLAINER_BODY: &str = include_str!("assets/explainer.html");

/// Fields shown elsewhere than in the page's facts and tables: in its header lines, its
/// figures, or (the recorded confusion matrix) as the confusion figure and the confused
/// pairs.
const SHOWN_ELSEWHERE: [&str; 8] = [
    "experiment",
    "command",
    "finished_unix_seconds",
    "cpu",
    "threads",
    "figures",
    "networks",
    "confusion",
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
fn figure_img(docs_from_out: &str, slug: &str, figure: &Figure) -> Markup {
    html! {
        img src={ (docs_from_out) (slug) "/" (figure.path) } alt=(figure.caption)
            class=[figure.small.then_some("pixels")];
    }
}

/// An experiment's card on the index: headline figure, status, best result, date and
/// machine; a grey card with the command when it has not run.
fn card(slug: &str, description: &str, report: Option<&Report>, docs_from_out: &str) -> Markup {
    let Some(r) = report else {
        return html! {
            div.card.missing {
                "\n" h2 { (slug) } "\n" p { (description) } "\n"
                p.status.missing { "not run yet" } "\n"
                p.meta { code { "cargo xtask repro " (slug) } } "\n"
            }
            "\n"
        };
    };
    let (class, status) = if r.quick() {
        ("quick", "quick smoke run")
    } else {
        ("done", "reproduced")
    };
    let meta: Vec<String> = [r.date(), r.machine()].into_iter().flatten().collect();
    html! {
        a.card href={ (slug) ".html" } {
            "\n"
            @if let Some(f) = r.figures.first() {
                div.thumb { (figure_img(docs_from_out, slug, f)) } "\n"
            }
            h2 { (slug) } "\n"
            p { (description) } "\n"
            p class={ "status " (class) } { (status) } "\n"
            @if let Some((name, a)) = r.best_test_accuracy() {
                p.headline {
                    "best test accuracy " strong { (format!("{:.2}", 100.0 * a)) "%" } ": " (name)
                }
                "\n"
            }
            p.meta { (meta.join(" · ")) } "\n"
        }
        "\n"
    }
}

fn index(
    reports: &[(String, Option<Report>)],
    experiments: &[Experiment],
    docs_from_out: &str,
    crates: &[String],
) -> String {
    let body = html! {
        p.lead {
            "Petal reproduces the experiments of a lecture on convolutional neural networks in Rust. Each card is one\n"
            code { "cargo xtask repro <experiment>" }
            " run: its tables, figures and the command that reproduces it."
        }
        "\n"
        section.cards {
            "\n"
            @for (slug, report) in reports {
                (card(slug, &description(experiments, slug), report.as_ref(), docs_from_out))
            }
        }
        "\n"
        h2 { "Guides" } "\n"
        ul { "\n" @for g in &GUIDES { li { a href={ (g.slug) ".html" } { (g.title) } } "\n" } }
        "\n"
        h2 { "More" } "\n"
        ul {
            "\n"
            li {
                a href="explainer/index.html" { "CNN explainer" }
                ": the trained MNIST network computed in your browser, layer by layer."
            }
            "\n"
            li { a href="bench.html" { "Benchmark" } ": Petal against PyTorch on the same machine." } "\n"
        }
        "\n"
        h2 id="api" { "API documentation" } "\n"
        p {
            code { "cargo xtask docs" } " builds it with " code { "cargo doc --workspace --no-deps" }
            " into " code { "api/" } " beside these pages (not committed):"
        }
        "\n"
        ul {
            "\n"
            @for c in crates {
                @let name = c.replace('-', "_");
                li { a href={ "api/" (name) "/index.html" } { code { (name) } } } "\n"
            }
        }
        "\n"
    };
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
fn lesson_section(report: &Report, others: &[&Report]) -> Markup {
    let lessons = Lesson::of(&report.slug);
    html! {
        @if !lessons.is_empty() {
            h2 { "What the lecture shows, and what Petal measured" } "\n"
            @for lesson in &lessons {
                p.claim { (lesson.claim) } "\n"
                @if let Some(finding) = lesson.finding(report, others) {
                    @let (label, class) = finding.verdict.label();
                    p.finding { span class={ "verdict " (class) } { (label) } " " (finding.measured) } "\n"
                }
            }
        }
    }
}

fn experiment_page(
    report: &Report,
    description: &str,
    docs_from_out: &str,
    others: &[&Report],
) -> String {
    let slug = &report.slug;
    let body = html! {
        p.lead { (description) } "\n"
        @if report.quick() {
            p.status.quick { "This report is a --quick smoke run, not the full experiment." } "\n"
        }
        (lesson_section(report, others))
        @if !report.figures.is_empty() {
            h2 { "Figures" } "\n"
            div.figures {
                "\n"
                @for f in &report.figures {
                    figure class=[f.wide.then_some("wide")] {
                        (figure_img(docs_from_out, slug, f))
                        figcaption {
                            (f.caption)
                            @if let Some(svg) = &f.vector {
                                " (" a href={ (docs_from_out) (slug) "/" (svg) } { "SVG" } ")"
                            }
                            @if let Some(note) = how_to_read(&f.path) { span.look { (note) } }
                        }
                    }
                    "\n"
                }
            }
            "\n"
        }
        (json_sections(&report.metrics, &SHOWN_ELSEWHERE))
        (networks_section(&report.networks))
        (reproduce_section(report))
    };
    Page {
        title: slug,
        root: "",
        body,
        scripts: &[],
    }
    .render()
}

/// The command that rewrites the report, how long its training took and where.
fn reproduce_section(report: &Report) -> Markup {
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
    html! {
        h2 { "Reproduce" } "\n"
        pre { code { (report.command()) } } "\n"
        @if took.is_some() || !machine.is_empty() || !date.is_empty() {
            p.meta { (what) (machine) (date) "." } "\n"
        }
        p {
            "It rewrites " code { "docs/" (report.slug) "/" } "; then " code { "cargo xtask docs" }
            " rebuilds these pages."
        }
        "\n"
    }
}

fn explainer_page() -> String {
    Page {
        title: "CNN explainer",
        root: "../",
        // The explainer's markup is an asset of this crate, not data.
        body: PreEscaped(EXPLAINER_BODY.to_string()),
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
    use crate::page::{ESCAPED, HOSTILE};

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
               "runs": [{"name": "cnn", "test_accuracy": 0.99}], 
               "networks": [{"name": "cnn", "runs": ["cnn"], "trainable": 320, "non_trainable": 0,
                 "layers": [{"name": "conv2d", "kind": "Conv2D", "output_shape": [26, 26, 32], "params": 320, "flops": 389376}]}]}"#,
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
                "guide-reproduce.html",
                "guide-distributed.html"
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
        assert!(page.contains("<p class=\"lead\">The lecture's CNN on MNIST</p>"));
        assert!(page.contains("<th>Seed</th><td>42</td>"));
        // The lecture's claim, and the verdict computed from the run's 99%.
        assert!(page.contains("<h2>What the lecture shows, and what Petal measured</h2>"));
        assert!(
            page.contains("<span class=\"verdict agrees\">agrees with the lecture</span>"),
            "{page}"
        );
        assert!(
            page.contains("<td>cnn</td>")
                && page.contains("<td>conv2d (Conv2D)</td><td>(None, 26, 26, 32)</td>")
        );
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

    #[test]
    fn report_strings_file_names_and_descriptions_are_escaped_on_every_page() {
        let (hostile, escaped) = (HOSTILE, ESCAPED);
        let root = tempfile::tempdir().unwrap();
        let docs = root.path().join("docs");
        let (slug, figure) = (r#"run<b>"&'"#, r#"fig<i>"&'.png"#);
        std::fs::create_dir_all(docs.join(slug)).unwrap();
        let metrics = serde_json::json!({"command": hostile, "cpu": hostile,
            "networks": [{"name": hostile, "runs": [hostile, hostile], "trainable": 1, "non_trainable": 0,
                "layers": [{"name": hostile, "kind": hostile, "output_shape": [1], "params": 1, "flops": 2}]}],
            "figures": [{"path": figure, "caption": hostile}],
            "runs": [{"name": hostile, "test_accuracy": 0.5}]});
        std::fs::write(docs.join(slug).join("metrics.json"), metrics.to_string()).unwrap();
        std::fs::write(docs.join(slug).join(figure), b"png").unwrap();
        let out = docs.join("site");
        let experiments = [Experiment {
            slug: slug.into(),
            description: hostile.into(),
        }];
        write_site(&docs, &out, &[], &experiments, &[]).unwrap();
        let index = std::fs::read_to_string(out.join("index.html")).unwrap();
        let page = std::fs::read_to_string(out.join(format!("{slug}.html"))).unwrap();
        for html in [&index, &page] {
            assert!(
                !html.contains("<script>alert") && !html.contains("<b>") && !html.contains("<i>")
            );
        }
        let slug_escaped = "run&lt;b&gt;&quot;&amp;'";
        let src = format!("../{slug_escaped}/fig&lt;i&gt;&quot;&amp;'.png");
        assert!(
            index.contains(&format!(r#"<a class="card" href="{slug_escaped}.html">"#)),
            "{index}"
        );
        assert!(
            index.contains(&format!("<h2>{slug_escaped}</h2>\n<p>{escaped}</p>")),
            "{index}"
        );
        assert!(
            index.contains(&format!(r#"<img src="{src}" alt="{escaped}">"#)),
            "{index}"
        );
        assert!(
            index.contains(&format!("50.00%</strong>: {escaped}</p>")),
            "{index}"
        );
        assert!(
            index.contains(&format!("<p class=\"meta\">{escaped}</p>")),
            "{index}"
        );
        assert!(page.contains(&format!("<h1>{slug_escaped}</h1>")), "{page}");
        assert!(
            page.contains(&format!("<p class=\"lead\">{escaped}</p>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("<figcaption>{escaped}</figcaption>")),
            "{page}"
        );
        assert!(page.contains(&format!("<td>{escaped}</td>")), "{page}");
        assert!(page.contains(&format!("<h3>{escaped}</h3>")), "{page}");
        assert!(
            page.contains(&format!("<td>{escaped} ({escaped})</td>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("<pre><code>cargo xtask {escaped}</code></pre>")),
            "{page}"
        );
        assert!(
            page.contains(&format!("<code>docs/{slug_escaped}/</code>")),
            "{page}"
        );
    }
}
