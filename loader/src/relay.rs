//! The relayed order source: for a CVM whose only route out is a forwarded
//! port (the QEMU harness, image/README.md), the owners' side runs a small
//! HTTP endpoint. The loader `POST`s what it publishes (certificate,
//! encryption key, claims; later the sealed outputs and the run report) to
//! `publish_url`, and polls `order_url` until it answers with the order
//! bundle, which it unpacks into `order_source_dir` for the unchanged
//! directory path of the pipeline.
//!
//! The relay is untrusted transport, like a shared folder: the order is
//! DSSE-signed, grants are HPKE-sealed to the loader's key and bound to the
//! order digest, components are authenticated and pinned by digest, and what
//! is published is public. A relay that lies ends in the same halts as a host
//! that edits the directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};

use crate::halt::{Halt, HaltCode};
use crate::pipeline::source;

/// Largest bundle (JSON text) the loader reads.
pub const MAX_BUNDLE: u64 = 256 << 20;

/// Files by relative name, base64 contents. Used in both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Relative name -> base64 content.
    pub files: BTreeMap<String, String>,
}

/// Whether `name` is a file the order source may hold: `order.dsse.json`,
/// `grants/<n>.grant` or `components/<n>.sealed`, where `<n>` is 1..=64 of
/// `[A-Za-z0-9_.-]` not starting with a dot.
pub fn order_file_name_ok(name: &str) -> bool {
    if name == source::ORDER {
        return true;
    }
    let ok_stem = |n: &str| {
        (1..=64).contains(&n.len())
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    let check = |dir: &str, ext: &str| {
        name.strip_prefix(dir)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.strip_suffix(ext))
            .is_some_and(ok_stem)
    };
    check(source::GRANTS, ".grant") || check(source::COMPONENTS, ".sealed")
}

/// The relay's HTTP client; an `https://` relay must present a certificate
/// chaining to the CA root (`ca_root_der`), like the CA itself.
pub fn client(ca_root_der: &[u8], timeout: Duration) -> Result<reqwest::blocking::Client, Halt> {
    let tls = tl_ca::server::client_config(ca_root_der)
        .map_err(|e| Halt::new(HaltCode::ConfigInvalid, format!("CA root: {e}")))?;
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| Halt::new(HaltCode::ConfigInvalid, format!("relay client: {e}")))
}

/// `POST` `files` to `url` as a [`Bundle`]; failures halt with `code`.
pub fn publish(
    http: &reqwest::blocking::Client,
    url: &str,
    files: &[(String, Vec<u8>)],
    code: HaltCode,
) -> Result<(), Halt> {
    let bundle = Bundle {
        files: files
            .iter()
            .map(|(n, b)| (n.clone(), STANDARD.encode(b)))
            .collect(),
    };
    let resp = http
        .post(url)
        .json(&bundle)
        .send()
        .map_err(|e| Halt::new(code, format!("publishing to {url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(Halt::new(
            code,
            format!("publishing to {url}: HTTP {}", resp.status()),
        ));
    }
    Ok(())
}

/// Poll `url` until it returns the order bundle (any answer but 200 means
/// "not yet"), write its files below `dir` and then `READY`. Halts with
/// `ORDER_UNAVAILABLE` past `deadline`, `ORDER_INVALID` on a malformed bundle.
pub fn fetch_order(
    http: &reqwest::blocking::Client,
    url: &str,
    dir: &Path,
    deadline: Instant,
) -> Result<usize, Halt> {
    let body = loop {
        if Instant::now() >= deadline {
            return Err(Halt::new(
                HaltCode::OrderUnavailable,
                format!("no order at {url} before the deadline"),
            ));
        }
        if let Ok(resp) = http.get(url).send() {
            if resp.status() == reqwest::StatusCode::OK {
                let mut body = Vec::new();
                resp.take(MAX_BUNDLE + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| Halt::new(HaltCode::OrderUnavailable, format!("{url}: {e}")))?;
                break body;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let bad = |d: String| Halt::new(HaltCode::OrderInvalid, d);
    if body.len() as u64 > MAX_BUNDLE {
        return Err(bad(format!("order bundle larger than {MAX_BUNDLE} bytes")));
    }
    let bundle: Bundle =
        serde_json::from_slice(&body).map_err(|e| bad(format!("order bundle: {e}")))?;
    drop(body);
    if !bundle.files.contains_key(source::ORDER) {
        return Err(bad("order bundle holds no order".into()));
    }
    for (name, b64) in &bundle.files {
        if !order_file_name_ok(name) {
            return Err(bad(format!("order bundle names {name:?}")));
        }
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| bad(format!("order bundle {name}: {e}")))?;
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Halt::new(
                    HaltCode::WorkdirFailed,
                    format!("{}: {e}", parent.display()),
                )
            })?;
        }
        std::fs::write(&path, bytes)
            .map_err(|e| Halt::new(HaltCode::WorkdirFailed, format!("{}: {e}", path.display())))?;
    }
    let ready = dir.join(source::READY);
    std::fs::write(&ready, b"")
        .map_err(|e| Halt::new(HaltCode::WorkdirFailed, format!("{}: {e}", ready.display())))?;
    Ok(bundle.files.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn test_client() -> reqwest::blocking::Client {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        client(cert.der(), Duration::from_secs(5)).unwrap()
    }

    /// Serve one canned HTTP answer per connection, `n` times.
    fn serve(body: &'static str, n: usize) -> String {
        use std::io::{BufRead, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/order", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for _ in 0..n {
                let (c, _) = l.accept().unwrap();
                let mut r = std::io::BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let mut c = c;
                write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        url
    }

    #[test]
    fn fetch_writes_files_then_ready() {
        let dir = tempfile::tempdir().unwrap();
        let url = serve(
            r#"{"files":{"order.dsse.json":"e30=","grants/lab.grant":"AQI=","components/lab.sealed":"AwQ="}}"#,
            1,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let n = fetch_order(&test_client(), &url, dir.path(), deadline).unwrap();
        assert_eq!(n, 3);
        let d = dir.path();
        assert_eq!(std::fs::read(d.join("order.dsse.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(d.join("grants/lab.grant")).unwrap(), [1, 2]);
        assert_eq!(
            std::fs::read(d.join("components/lab.sealed")).unwrap(),
            [3, 4]
        );
        assert!(d.join(source::READY).exists());
    }

    #[test]
    fn hostile_bundles_are_order_invalid() {
        for body in [
            r#"{"files":{"order.dsse.json":"e30=","grants/../../escape.grant":"AQI="}}"#,
            r#"{"files":{"grants/lab.grant":"AQI="}}"#,
            r#"{"files":{"order.dsse.json":"not base64!"}}"#,
            r#"{"files":{"order.dsse.json":"e30="},"extra":1}"#,
            r#"not json"#,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let url = serve(body, 1);
            let deadline = Instant::now() + Duration::from_secs(10);
            let e = fetch_order(&test_client(), &url, dir.path(), deadline).unwrap_err();
            assert_eq!(e.code(), "ORDER_INVALID", "{body}");
            assert!(!dir.path().join(source::READY).exists(), "{body}");
            assert!(!dir.path().parent().unwrap().join("escape.grant").exists());
        }
    }

    #[test]
    fn names() {
        for ok in [
            "order.dsse.json",
            "grants/lab.grant",
            "components/engine.sealed",
            "components/a-b_c.1.sealed",
        ] {
            assert!(order_file_name_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "READY",
            "grants/.grant",
            "grants/../x.grant",
            "grants/a/b.grant",
            "components/../../etc/passwd.sealed",
            "/order.dsse.json",
            "grants/lab.sealed",
            "components/.hidden.sealed",
            "other/x.grant",
        ] {
            assert!(!order_file_name_ok(bad), "{bad}");
        }
        assert!(!order_file_name_ok(&format!(
            "grants/{}.grant",
            "a".repeat(65)
        )));
    }

    #[test]
    fn fetch_past_deadline_is_order_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens on port 9 of the loopback: every poll fails.
        let http = test_client();
        let e = fetch_order(
            &http,
            "http://127.0.0.1:9/order",
            dir.path(),
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "ORDER_UNAVAILABLE");
        assert!(!dir.path().join(source::READY).exists());
    }
}
