//! HTTP downloads into a `.part` file, resuming what an earlier attempt left with `Range`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::error::{DataError, Result};

/// A callback told the bytes done so far and the total when known, e.g. to draw a bar.
pub type Progress<'a> = &'a dyn Fn(u64, Option<u64>);

/// Appends `url` to `part`, resuming from its current length.
///
/// A `206` reply is appended; a `200` reply (the server ignored the range) starts the
/// file over; a `416` (the range starts past the end) discards `part` and starts over.
/// The file is fsynced before returning. On error `part` keeps what arrived, so the
/// next call resumes.
pub(crate) fn download(url: &str, part: &Path, progress: Option<Progress>) -> Result<()> {
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        path: part.to_path_buf(),
        reason,
    };
    let offset = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = agent.get(url);
    if offset > 0 {
        request = request.header("Range", format!("bytes={offset}-"));
    }
    let mut response = request.call().map_err(|e| fail(e.to_string()))?;
    let status = response.status().as_u16();
    let (opened, start) = match status {
        206 if offset > 0 => {
            let range = response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !range.starts_with(&format!("bytes {offset}-")) {
                return Err(fail(format!(
                    "asked for bytes from {offset} but the server sent Content-Range {range:?}"
                )));
            }
            (OpenOptions::new().append(true).open(part), offset)
        }
        200 => (File::create(part), 0),
        416 if offset > 0 => {
            fs::remove_file(part).map_err(|e| DataError::io(part, "removing", e))?;
            return download(url, part, progress);
        }
        _ => {
            return Err(fail(format!(
                "the server replied with HTTP status {status}"
            )))
        }
    };
    let mut out = opened.map_err(|e| DataError::io(part, "opening", e))?;
    let total = response.body().content_length().map(|n| n + start);
    let mut body = response.body_mut().as_reader();
    copy_with_progress(&mut body, &mut out, start, total, progress)
        .map_err(|e| fail(e.to_string()))?;
    out.sync_all()
        .map_err(|e| DataError::io(part, "syncing", e))
}

/// Copies `from` to `to`, reporting `done` (starting at `start`) and `total` to `progress`.
pub(crate) fn copy_with_progress(
    from: &mut impl Read,
    to: &mut impl Write,
    start: u64,
    total: Option<u64>,
    progress: Option<Progress>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        done += n as u64;
        if let Some(report) = progress {
            report(done, total);
        }
    }
    to.flush()
}
