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
    /// Where to write the screenshots of [`SCREENSHOT_PAGES`] (`None`: `<site>/screenshots`).
    pub screenshots: Option<PathBuf>,
    /// The Chromium binary.
    pub chromium: PathBuf,
}

/// How long one page may take before the test gives up on it.
const PAGE_TIMEOUT: Duration = Duration::from_secs(90);

/// The pages photographed whole by [`site_test`](crate::site_test): the front page, one
/// experiment, the benchmarks and the explainer.
pub const SCREENSHOT_PAGES: [&str; 4] = [
    "index.html",
    "flowers102.html",
    "bench.html",
    "explainer/index.html",
];

/// The browser window's width for the check and the screenshots; the page's height is
/// measured at this width.
const WINDOW_WIDTH: u32 = 1280;

/// The tallest screenshot taken (Chromium's own limit is 16384 pixels).
const MAX_SCREENSHOT_HEIGHT: u32 = 12000;

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
    let mut heights = std::collections::HashMap::new();
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
        if let Some(height) = page_height(&dom) {
            heights.insert(relative.clone(), height);
        }
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
    for page in SCREENSHOT_PAGES {
        let Some(&height) = heights.get(page) else {
            failures.push(format!(
                "{page}: not in the site or no height recorded, so no screenshot"
            ));
            continue;
        };
        let path = shots.join(screenshot_name(page));
        chromium.screenshot(
            &file_url(&site.join(page)),
            &path,
            WINDOW_WIDTH,
            height.clamp(600, MAX_SCREENSHOT_HEIGHT),
        )?;
        println!("wrote {} ({WINDOW_WIDTH} x {height} px)", path.display());
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
        let window = format!("--window-size={WINDOW_WIDTH},1000");
        self.run(&[&window, "--dump-dom", url])
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

/// The page's full height in pixels, as `checks.js` measured it.
fn page_height(dom: &str) -> Option<u32> {
    let height = check_report(dom)?["height"].as_u64()?;
    u32::try_from(height).ok()
}

/// `flowers102.html` -> `flowers102.png`, `explainer/index.html` -> `explainer.png`.
fn screenshot_name(page: &str) -> String {
    let stem = page.strip_suffix("/index.html").unwrap_or(page);
    format!("{}.png", stem.trim_end_matches(".html"))
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
    fn screenshots_take_the_recorded_height_and_the_page_name() {
        let report = dom(r#"{"errors":[],"images":[],"height":4321,"extra":{}}"#);
        assert_eq!(page_height(&report), Some(4321));
        assert_eq!(
            page_height(&dom(r#"{"errors":[],"images":[],"extra":{}}"#)),
            None
        );
        assert_eq!(
            SCREENSHOT_PAGES.map(screenshot_name),
            ["index.png", "flowers102.png", "bench.png", "explainer.png"]
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
