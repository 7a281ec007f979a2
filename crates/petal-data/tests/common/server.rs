//! A tiny HTTP server for download tests, std only, so that other crates' tests can
//! include this file too (`#[path = ".../petal-data/tests/common/server.rs"] mod server;`).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the test server saw: the `Range` header of each request (None when absent).
pub type SeenRanges = Arc<Mutex<Vec<Option<String>>>>;

/// Serves `body` at every path on 127.0.0.1; honours `Range: bytes=N-` when
/// `honour_range`, else always replies 200 with the whole body. Returns the base URL and
/// the log of Range headers.
pub fn serve(body: Vec<u8>, honour_range: bool) -> (String, SeenRanges) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: SeenRanges = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("range") {
                        range = Some(value.trim().to_string());
                    }
                }
            }
            log.lock().unwrap().push(range.clone());
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|_| honour_range);
            let response = match start {
                Some(start) if start >= body.len() => {
                    format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", body.len()).into_bytes()
                }
                Some(start) => {
                    let mut r = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len() - 1,
                        body.len(),
                        body.len() - start
                    )
                    .into_bytes();
                    r.extend_from_slice(&body[start..]);
                    r
                }
                None => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                }
            };
            let _ = stream.write_all(&response);
            let _ = stream.flush();
        }
    });
    (url, seen)
}
