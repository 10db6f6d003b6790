//! The `tl-ca` binary: init, serve (one JSON line on stdout), answer over TLS.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use base64::{engine::general_purpose::STANDARD, Engine};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};

#[tokio::test]
async fn init_then_serve_prints_the_ready_line() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("ca");
    let exe = env!("CARGO_BIN_EXE_tl-ca");
    let out = Command::new(exe)
        .args(["init", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A second init refuses to overwrite the CA.
    let again = Command::new(exe)
        .args(["init", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());

    let sim = tl_evidence::sim::SimTee::from_seed([7; 32]);
    let sim_root = d.path().join("sim-root.pem");
    std::fs::write(&sim_root, sim.root_certificate_pem()).unwrap();
    let sim_gpu_root = d.path().join("sim-gpu-root.der");
    std::fs::write(&sim_gpu_root, sim.nvidia_root_der()).unwrap();
    // The simulated GPU root only beside the simulated TEE root.
    let refused = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .arg("--allow-simulated-gpu-root")
        .arg(&sim_gpu_root)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-simulated-root"));
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .arg("--allow-simulated-root")
        .arg(&sim_root)
        .arg("--allow-simulated-gpu-root")
        .arg(&sim_gpu_root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["ca_root_sha256"], info["ca_root_sha256"]);
    let addr: std::net::SocketAddr = ready["listening"].as_str().unwrap().parse().unwrap();

    let root_pem = std::fs::read_to_string(dir.join("ca-root.pem")).unwrap();
    let root = tl_ca::certs::pem_to_certs(&root_pem).unwrap().remove(0);
    tl_ca::server::install_crypto_provider();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tl_ca::server::client_config(&root).unwrap())
        .build()
        .unwrap();
    let v: serde_json::Value = http
        .get(format!("https://127.0.0.1:{}/v1/ca", addr.port()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["sha256"], info["ca_root_sha256"]);
    let r = http
        .post(format!("https://localhost:{}/v1/nonce", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let nonce: serde_json::Value = r.json().await.unwrap();
    let nonce = STANDARD.decode(nonce["nonce"].as_str().unwrap()).unwrap();

    // A real TDX quote: the shipped Intel root is trusted without
    // --intel-root, so the quote's chain verifies and the refusal is the
    // missing collateral (none was given), not an untrusted root.
    let quote = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/tdx/dcap-qvl/tdx_quote"
    ))
    .unwrap();
    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote,
        certificates: vec![],
    });
    let r = http
        .post(format!("https://localhost:{}/v1/enroll", addr.port()))
        .json(&common::Loader::new().request_with(&nonce, &bundle))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "EVIDENCE_COLLATERAL_MISSING", "{v}");
    child.kill().unwrap();
    child.wait().unwrap();
}
