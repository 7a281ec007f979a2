//! The browser test of a built site: opens every page of a built site in headless Chromium from
//! `file://`, reads what the page's self-check (`checks.js`) recorded, fails on a broken
//! image, a script or console error, a failed load, or an explainer whose predictions
//! differ from Petal's; checks that local links resolve; and takes screenshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

/// What [`site_test`](crate::site_test) opens and where it writes its screenshots.
#[derive(Clone, Debug)]
pub struct SiteTestOptions {
    /// The site to test, as [`build`](crate::build) wrote it.
    pub site: PathBuf,
    /// Where to write `index.png` and `explainer.png` (`None`: `<site>/screenshots`).
    pub screenshots: Option<PathBuf>,
    /// The Chromium binary.
    pub chromium: PathBuf,
}

/// How long one page may take before the test gives up on it.
const PAGE_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs the browser test on the site: prints a line per page, writes the screenshots,
/// and fails listing every problem found.
pub fn run(options: &SiteTestOptions) -> anyhow::Result<()> {
    let site = std::fs::canonicalize(&options.site)
        .with_context(|| format!("no site at {}", options.site.display()))?;
    if !options.chromium.is_file() {
        bail!(
            "{}: no Chromium there; install it (apt-get install -y chromium) or pass --chromium FILE",
            options.chromium.display()
        );
    }
    let chromium = Chromium {
        binary: options.chromium.clone(),
    };
    let pages = html_pages(&site)?;
    let mut failures = Vec::new();
    for page in &pages {
        let relative = page
            .strip_prefix(&site)
            .unwrap_or(page)
            .display()
            .to_string();
        let query = if relative == "explainer/index.html" {
            "?check&selftest"
        } else {
            "?check"
        };
        let dom = chromium.dump_dom(&format!("{}{query}", file_url(page)))?;
        let problems = judge(&dom, relative == "explainer/index.html");
        let links = broken_links(&site, page)?;
        println!(
            "{relative}: {}",
            if problems.is_empty() && links.is_empty() {
                "ok"
            } else {
                "FAILED"
            }
        );
        failures.extend(
            problems
                .into_iter()
                .chain(links)
                .map(|p| format!("{relative}: {p}")),
        );
    }
    let shots = options
        .screenshots
        .clone()
        .unwrap_or_else(|| site.join("screenshots"));
    std::fs::create_dir_all(&shots)
        .with_context(|| format!("cannot create {}", shots.display()))?;
    for (page, name, height) in [
        ("index.html", "index.png", 1400),
        ("explainer/index.html", "explainer.png", 2000),
    ] {
        let path = shots.join(name);
        chromium.screenshot(&file_url(&site.join(page)), &path, 1280, height)?;
        println!("wrote {}", path.display());
    }
    if !failures.is_empty() {
        bail!(
            "{} problem(s) in the site:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    println!("{} pages passed", pages.len());
    Ok(())
}

/// Every `.html` file of the site but the API docs, sorted.
fn html_pages(site: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut pages = Vec::new();
    let mut folders = vec![site.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)
            .with_context(|| format!("cannot list {}", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() && path != site.join("api") {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    Ok(pages)
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Headless Chromium with a fresh profile per run.
struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// The page's DOM once it has loaded and its scripts have run.
    fn dump_dom(&self, url: &str) -> anyhow::Result<String> {
        self.run(&["--dump-dom", url])
    }

    fn screenshot(&self, url: &str, path: &Path, width: u32, height: u32) -> anyhow::Result<()> {
        self.run(&[
            "--hide-scrollbars",
            &format!("--window-size={width},{height}"),
            &format!("--screenshot={}", path.display()),
            url,
        ])?;
        if !path.is_file() {
            bail!("Chromium wrote no screenshot of {url}");
        }
        Ok(())
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let profile = tempfile::tempdir().context("cannot create a Chromium profile folder")?;
        let output_file = tempfile::NamedTempFile::new()?;
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
                "--virtual-time-budget=30000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdout(output_file.reopen()?)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if start.elapsed() > PAGE_TIMEOUT {
                child.kill().ok();
                child.wait().ok();
                bail!("Chromium took more than {PAGE_TIMEOUT:?} on {args:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            bail!("Chromium failed ({status}) on {args:?}");
        }
        std::fs::read_to_string(output_file.path()).context("cannot read Chromium's output")
    }
}

/// What is wrong with a page, from its dumped DOM: the report `checks.js` wrote (errors,
/// images that did not load) and, on the explainer, its self-test against Petal.
fn judge(dom: &str, explainer: bool) -> Vec<String> {
    let Some(report) = check_report(dom) else {
        return vec!["the page wrote no self-check report (did checks.js load and run?)".into()];
    };
    let mut problems: Vec<String> = report["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    problems.extend(
        report["images"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["ok"] != Value::Bool(true))
            .map(|i| format!("image {} did not load", i["src"].as_str().unwrap_or("?"))),
    );
    if explainer {
        let test = &report["extra"]["selftest"];
        if test["ok"] != Value::Bool(true) {
            problems.push(format!("the explainer's self-test failed: {test}"));
        }
    }
    problems
}

/// The JSON inside `<pre id="site-check" ...>`, its text unescaped.
fn check_report(dom: &str) -> Option<Value> {
    let start = dom.find("<pre id=\"site-check\"")?;
    let open_end = start + dom[start..].find('>')? + 1;
    let close = open_end + dom[open_end..].find("</pre>")?;
    let text = dom[open_end..close]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&text).ok()
}

/// Local `href`/`src` targets of `page` that do not exist (the API docs excepted when
/// they were not built).
fn broken_links(site: &Path, page: &Path) -> anyhow::Result<Vec<String>> {
    let html =
        std::fs::read_to_string(page).with_context(|| format!("cannot read {}", page.display()))?;
    let folder = page.parent().unwrap_or(site);
    let api_built = site.join("api").is_dir();
    let mut broken = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for piece in html.split(attribute).skip(1) {
            let target = piece.split('"').next().unwrap_or_default();
            let path = target.split(['#', '?']).next().unwrap_or_default();
            if path.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if path.starts_with("api/") && !api_built {
                continue;
            }
            if !folder.join(path).exists() {
                broken.push(format!("link to {target} leads nowhere"));
            }
        }
    }
    Ok(broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(report: &str) -> String {
        format!("<html><body><main></main><pre id=\"site-check\" hidden=\"\">{report}</pre></body></html>")
    }

    #[test]
    fn a_clean_page_passes() {
        let ok = dom(r#"{"errors":[],"images":[{"src":"../a.png","ok":true}],"extra":{}}"#);
        assert!(judge(&ok, false).is_empty());
    }

    #[test]
    fn broken_images_and_console_errors_fail() {
        let bad = dom(
            r#"{"errors":["console.error: x &lt; y"],"images":[{"src":"gone.png","ok":false}],"extra":{}}"#,
        );
        assert_eq!(
            judge(&bad, false),
            ["console.error: x < y", "image gone.png did not load"]
        );
        assert_eq!(
            judge("<html><body></body></html>", false),
            ["the page wrote no self-check report (did checks.js load and run?)"]
        );
    }

    #[test]
    fn an_explainer_disagreeing_with_petal_fails() {
        let agree = dom(r#"{"errors":[],"images":[],"extra":{"selftest":{"ok":true}}}"#);
        assert!(judge(&agree, true).is_empty());
        let differ = dom(
            r#"{"errors":[],"images":[],"extra":{"selftest":{"ok":false,"shown_prediction":3}}}"#,
        );
        assert_eq!(judge(&differ, true).len(), 1);
        let silent = dom(r#"{"errors":[],"images":[],"extra":{}}"#);
        assert_eq!(judge(&silent, true).len(), 1);
    }

    #[test]
    fn links_to_missing_local_files_are_reported() {
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("a.html"), "x").unwrap();
        let page = site.path().join("index.html");
        std::fs::write(
            &page,
            r#"<a href="a.html#top">a</a> <img src="b.png"> <a href="https://x.org/c">c</a> <a href="api/petal_nn/index.html">api</a>"#,
        )
        .unwrap();
        assert_eq!(
            broken_links(site.path(), &page).unwrap(),
            ["link to b.png leads nowhere"]
        );
    }
}
