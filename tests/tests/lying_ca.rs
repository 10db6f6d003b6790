//! A CA that is slow or answers garbage: the loader halts within its
//! configured bound, never hangs, and never gets as far as an order.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::bin;

/// Write a loader configuration pointing at `port` with a sim TEE directory.
fn config(dir: &Path, port: u16, ca_timeout: u64) -> std::path::PathBuf {
    let sim = tl_evidence::sim::SimTee::from_seed([7; 32]);
    let root = dir.join("ca-root.pem");
    std::fs::write(&root, sim.root_certificate_pem()).expect("root");
    for d in ["tsm", "in", "publish", "out", "work"] {
        std::fs::create_dir_all(dir.join(d)).expect("dirs");
    }
    let cfg = format!(
        "ca_url = \"https://127.0.0.1:{port}\"\nca_root = \"{}\"\ntee = \"sim\"\nallow_simulation = true\ntsm_root = \"{}\"\norder_source_dir = \"{}\"\ndeadline_seconds = 5\nwork_base = \"{}\"\ntmpfs = false\nkey_mode = \"ephemeral\"\nreport_out = \"{}\"\npublish_dir = \"{}\"\noutput_dir = \"{}\"\nca_timeout_seconds = {ca_timeout}\n",
        root.display(),
        dir.join("tsm").display(),
        dir.join("in").display(),
        dir.join("work").display(),
        dir.join("report.json").display(),
        dir.join("publish").display(),
        dir.join("out").display(),
    );
    let p = dir.join("loader.toml");
    std::fs::write(&p, cfg).expect("config");
    p
}

fn run_loader(cfg: &Path, limit: Duration) -> (i32, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new(bin("trusted-loader"))
        .arg("run")
        .arg("--config")
        .arg(cfg)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start loader");
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let mut err = String::new();
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)
                .expect("read");
            return (st.code().unwrap_or(-1), err, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the loader hung for more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn halt_code(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("HALT "))
        .and_then(|l| l.split(':').next())
        .map(str::to_owned)
}

#[test]
fn slow_ca_times_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Accepts connections and never says a word.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    let cfg = config(tmp.path(), port, 3);
    let (code, err, took) = run_loader(&cfg, Duration::from_secs(30));
    assert_ne!(code, 0);
    let h = halt_code(&err).unwrap_or_else(|| panic!("no halt line:\n{err}"));
    assert!(
        h == "ENROLL_TIMEOUT" || h == "ENROLL_UNREACHABLE",
        "{h}\n{err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(!tmp.path().join("publish").join("certificate.pem").exists());
}

#[test]
fn garbage_speaking_ca_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Answers every connection with bytes that are not TLS.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        }
    });
    let cfg = config(tmp.path(), port, 3);
    let (code, err, took) = run_loader(&cfg, Duration::from_secs(30));
    assert_ne!(code, 0);
    let h = halt_code(&err).unwrap_or_else(|| panic!("no halt line:\n{err}"));
    assert!(
        h.starts_with("ENROLL_") || h == "CA_RESPONSE_INVALID",
        "{h}\n{err}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn simulation_needs_explicit_opt_in() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), 1, 3);
    let text = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("allow_simulation = true\n", "");
    std::fs::write(&cfg, text).expect("write");
    let (code, err, _) = run_loader(&cfg, Duration::from_secs(30));
    assert_ne!(code, 0);
    assert_eq!(
        halt_code(&err).as_deref(),
        Some("SIMULATION_NOT_ENABLED"),
        "{err}"
    );
}

#[test]
fn auto_never_falls_back_to_the_simulator() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), 1, 3);
    let text = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("tee = \"sim\"", "tee = \"auto\"");
    std::fs::write(&cfg, text).expect("write");
    let (code, err, _) = run_loader(&cfg, Duration::from_secs(30));
    assert_ne!(code, 0);
    assert_eq!(halt_code(&err).as_deref(), Some("TEE_UNAVAILABLE"), "{err}");
}
