//! The README's main command, end to end: the multi-party story passes, and
//! every tamper kind halts with its reason code before the engine starts,
//! leaving no plaintext behind.

mod common;

use std::path::Path;

use common::{any_file_contains, demo, files_below};

const LAB_ROW: &[u8] = b"marker_a,marker_b,marker_c,marker_d,label";

#[test]
fn the_story_runs_end_to_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, stderr, out) = demo(tmp.path(), &[]);
    assert!(out.status.success(), "tl demo failed:\n{stderr}");
    assert_eq!(v["ok"], true, "{stderr}");
    assert_eq!(v["report_verified"], true);
    assert_eq!(v["loader_exit"], 0);
    assert!(v["halt_code"].is_null());
    assert!(v["log_index"].is_u64());
    // The engine ran and really trained something on both datasets.
    assert_eq!(v["engine_started"], true);
    let model = &v["model"];
    let acc = model["accuracy_holdout"].as_f64().expect("accuracy");
    assert!(acc > 0.8, "holdout accuracy {acc}");
    assert_eq!(
        model["train_rows_per_dataset"].as_array().map(Vec::len),
        Some(2)
    );
    // The CVM's work area holds nothing after the run; outputs left the CVM
    // only sealed.
    let cvm = tmp.path().join("cvm");
    assert!(files_below(&cvm.join("work")).is_empty());
    assert!(any_file_contains(&cvm.join("outputs"), b"accuracy_holdout").is_none());
    assert!(any_file_contains(&cvm.join("order-in"), LAB_ROW).is_none());
    // Every stage is shown.
    for stage in [
        "evidence",
        "enroll",
        "order",
        "component",
        "launch",
        "output",
        "wipe",
        "report",
        "verify",
        "model",
    ] {
        assert!(stderr.contains(stage), "stage {stage} not shown:\n{stderr}");
    }
}

fn tamper(kind: &str, expected: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, stderr, out) = demo(tmp.path(), &["--tamper", kind]);
    assert!(
        out.status.success(),
        "tl demo --tamper {kind} did not show the expected halt:\n{stderr}"
    );
    let code = v["halt_code"]
        .as_str()
        .unwrap_or_else(|| panic!("no halt code:\n{stderr}"));
    assert!(
        expected.contains(&code),
        "tamper {kind}: halt {code}, expected one of {expected:?}\n{stderr}"
    );
    assert_ne!(v["loader_exit"], 0);
    assert!(
        stderr.contains(&format!("HALT {code}")),
        "the console line names the code:\n{stderr}"
    );
    // The engine never started: it writes a marker outside the work area first thing.
    assert!(
        !tmp.path().join("markers").join("engine-started").exists(),
        "{kind}: the engine started"
    );
    // No plaintext remains anywhere in the CVM's work area, nor any output.
    let work = tmp.path().join("cvm").join("work");
    assert_eq!(
        files_below(&work),
        Vec::<std::path::PathBuf>::new(),
        "{kind}: files left in the work area"
    );
    assert!(
        any_file_contains(&tmp.path().join("cvm"), LAB_ROW).is_none(),
        "{kind}: dataset plaintext left"
    );
    assert!(
        files_below(&tmp.path().join("cvm").join("outputs")).is_empty(),
        "{kind}: outputs written"
    );
    assert!(
        !tmp.path().join("cvm").join("report.json").exists(),
        "{kind}: a success report was written"
    );
}

#[test]
fn tampered_dataset_halts() {
    tamper("dataset", &["COMPONENT_CORRUPT"]);
}

#[test]
fn swapped_engine_halts() {
    tamper("engine", &["COMPONENT_DIGEST_MISMATCH"]);
}

#[test]
fn tampered_order_halts() {
    tamper("order", &["ORDER_SIGNATURE"]);
}

#[test]
fn tampered_grant_halts() {
    tamper("grant", &["GRANT_INVALID"]);
}

#[test]
fn corrupted_quote_halts() {
    tamper("quote", &["ENROLL_REJECTED"]);
}

#[test]
fn rolled_back_order_halts() {
    tamper("rollback", &["ORDER_ROLLBACK"]);
}

#[test]
fn wrong_platform_halts() {
    tamper("platform", &["PLATFORM_MISMATCH"]);
}

#[test]
fn dead_ca_halts() {
    tamper("ca-down", &["ENROLL_UNREACHABLE", "ENROLL_TIMEOUT"]);
}

#[test]
fn out_of_date_tcb_halts() {
    tamper("tcb", &["ENROLL_REJECTED"]);
}

#[test]
fn moved_tpm_pcr_halts_instead_of_a_fresh_key() {
    tamper("tpm-pcr", &["KEY_DERIVATION_FAILED"]);
}

#[test]
fn nvswitch_on_other_firmware_halts() {
    tamper("nvswitch", &["PLATFORM_MISMATCH"]);
}

#[test]
fn simulated_gpus_and_nvswitches_are_attested_and_certified() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, stderr, out) = demo(tmp.path(), &["--gpus", "2", "--nvswitches", "3"]);
    assert!(out.status.success(), "tl demo --gpus failed:\n{stderr}");
    assert_eq!(v["ok"], true, "{stderr}");
    assert_eq!(v["report_verified"], true, "{stderr}");
    // The certificate carries every device beside the TDX claims, and the
    // order pinned their count and measurements.
    let p = &v["certified_claims"]["platform"];
    assert_eq!(p["tee"], "tdx");
    assert_eq!(p["gpus"].as_array().map(Vec::len), Some(2), "{p}");
    let switches = p["nvswitches"].as_array().expect("nvswitch claims");
    assert_eq!(switches.len(), 3);
    assert!(switches
        .iter()
        .all(|s| s["tnvl_mode"] == true && s["locked"] == true));
    let order = std::fs::read_to_string(tmp.path().join("order.toml")).expect("order");
    assert!(order.contains("[platform.gpu]\ncount = 2"), "{order}");
    assert!(order.contains("[platform.nvswitch]\ncount = 3"), "{order}");
    let m1 = switches[0]["measurements"]["1"]
        .as_str()
        .expect("measurement 1");
    assert!(order.contains(m1), "the order pins the switch firmware");
    // The loader's evidence carried them, bound into the quote.
    assert!(
        stderr.contains("2 GPU and 3 NVSwitch report(s)"),
        "{stderr}"
    );
    // A reviewer re-verifies the published bundle: the GPU and switch
    // reports against the nonces derived from the published enrollment nonce.
    let publish = tmp.path().join("cvm/publish");
    let nonce = std::fs::read_to_string(publish.join("nonce")).expect("published nonce");
    let verify = |extra: &[&str]| {
        std::process::Command::new(common::bin("tl"))
            .args(["evidence", "verify"])
            .arg(publish.join("evidence.json"))
            .arg("--simulated-root")
            .arg(tmp.path().join("ca/sim-root.pem"))
            .arg("--gpu-root")
            .arg(tmp.path().join("ca/sim-gpu-root.der"))
            .args(extra)
            .output()
            .expect("tl evidence verify")
    };
    let out = verify(&["--nonce", nonce.trim()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("GPU 1:"), "{text}");
    assert!(
        text.contains("NVSwitch 2:  firmware 96.10.55.00.01"),
        "{text}"
    );
    // The certificate binds the same device evidence: the report data
    // covers the GPU and switch reports the bundle carries.
    let cert = publish.join("certificate.pem");
    let root = tmp.path().join("ca/ca-root.pem");
    let (cert, root) = (cert.to_str().expect("utf-8"), root.to_str().expect("utf-8"));
    let out = verify(&[
        "--nonce",
        nonce.trim(),
        "--certificate",
        cert,
        "--ca-root",
        root,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "report data binds the nonce, the certificate's keys and the device evidence: ok"
        ),
        "{text}"
    );
    // Without the nonce the device reports cannot be checked: refused.
    let out = verify(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("GPU_NONCE_MISSING"));
}

#[test]
fn tpm_sealed_key_and_composite_evidence() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, stderr, out) = demo(tmp.path(), &["--tpm"]);
    assert!(out.status.success(), "tl demo --tpm failed:\n{stderr}");
    assert_eq!(v["ok"], true, "{stderr}");
    assert_eq!(v["report_verified"], true, "{stderr}");
    // The key the loader used is the one provisioned by sealing, before the
    // loader ever ran: the same seed, unsealed from the TPM.
    let provisioned = stderr
        .lines()
        .find_map(|l| l.split("the loader's key will be ").nth(1))
        .unwrap_or_else(|| panic!("no provisioning line:\n{stderr}"))
        .trim();
    let claims = &v["certified_claims"];
    assert_eq!(claims["encryption_public_key"], provisioned, "{stderr}");
    assert!(
        stderr.contains("TPM-sealed encryption key"),
        "the loader names its key source:\n{stderr}"
    );
    // The certificate carries the vTPM's quoted PCR 8 beside the TDX claims,
    // the value the order pinned.
    let pcr8 = claims["platform"]["tpm"]["pcrs"]["sha256"]["8"]
        .as_str()
        .unwrap_or_else(|| panic!("no TPM claims: {claims}"));
    assert_eq!(pcr8.len(), 64);
    assert_eq!(claims["platform"]["tee"], "tdx");
    let order = std::fs::read_to_string(tmp.path().join("order.toml")).expect("order");
    assert!(
        order.contains(&format!("\"8\" = \"{pcr8}\"")),
        "the order pins PCR 8:\n{order}"
    );
    // A reviewer re-verifies the published evidence bundle: TDX quote and
    // the vTPM quote beside it, with the quoted PCR.
    let out = std::process::Command::new(common::bin("tl"))
        .args(["evidence", "verify"])
        .arg(tmp.path().join("cvm/publish/evidence.json"))
        .arg("--simulated-root")
        .arg(tmp.path().join("ca/sim-root.pem"))
        .output()
        .expect("tl evidence verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("PCR sha256:8   {pcr8}")), "{text}");
    // The certificate's binding covers the vTPM's attestation key too.
    let nonce = std::fs::read_to_string(tmp.path().join("cvm/publish/nonce")).expect("nonce");
    let (ok, codes, v) = review(
        tmp.path(),
        &tmp.path().join("cvm/publish/certificate.pem"),
        &tmp.path().join("ca/ca-root.pem"),
        nonce.trim(),
        &[],
    );
    assert!(ok, "{codes:?} {v}");
    assert_eq!(v["certificate"]["binding"], true);
}

/// `tl evidence verify --certificate`: what a reviewer checks on a run's
/// published files (the run in `run`), with the certificate, CA root and
/// nonce given. The verdict and every rejection code, from JSON.
fn review(
    run: &Path,
    certificate: &Path,
    ca_root: &Path,
    nonce: &str,
    extra: &[&str],
) -> (bool, Vec<String>, serde_json::Value) {
    let out = std::process::Command::new(common::bin("tl"))
        .args(["evidence", "verify", "--json"])
        .arg(run.join("cvm/publish/evidence.json"))
        .arg("--simulated-root")
        .arg(run.join("ca/sim-root.pem"))
        .arg("--certificate")
        .arg(certificate)
        .arg("--ca-root")
        .arg(ca_root)
        .args(["--nonce", nonce])
        .args(extra)
        .output()
        .expect("tl evidence verify");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.success(),
        v["ok"] == true,
        "exit status follows the verdict"
    );
    let codes = v["rejections"]
        .as_array()
        .expect("rejections")
        .iter()
        .map(|r| r["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    (out.status.success(), codes, v)
}

#[test]
fn reviewers_tie_the_certificate_to_the_evidence() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    for d in [&a, &b] {
        let (v, stderr, out) = demo(d.path(), &[]);
        assert!(out.status.success() && v["ok"] == true, "{stderr}");
    }
    let (a, b) = (a.path(), b.path());
    let cert = |run: &Path| run.join("cvm/publish/certificate.pem");
    let root = |run: &Path| run.join("ca/ca-root.pem");
    let nonce = std::fs::read_to_string(a.join("cvm/publish/nonce")).expect("nonce");
    let nonce = nonce.trim();

    // The run's own certificate: signed by its CA, issued for this bundle,
    // and the quote binds the nonce and the certificate's keys.
    let (ok, codes, v) = review(a, &cert(a), &root(a), nonce, &[]);
    assert!(ok, "{codes:?} {v}");
    assert_eq!(v["certificate"]["valid"], true);
    assert_eq!(v["certificate"]["evidence_matches"], true);
    assert_eq!(v["certificate"]["binding"], true);
    let enc = std::fs::read_to_string(a.join("cvm/publish/encryption.pub")).expect("key");
    assert_eq!(v["certificate"]["encryption_public_key"], enc.trim());
    let until = v["certificate"]["not_after"]
        .as_str()
        .expect("not_after")
        .to_owned();

    // Another run's certificate (from its own, genuine CA) for this bundle.
    let (ok, codes, _) = review(a, &cert(b), &root(b), nonce, &[]);
    assert!(!ok);
    assert_eq!(codes, ["CERTIFICATE_EVIDENCE_MISMATCH", "BINDING_MISMATCH"]);

    // This run's certificate against another CA's root.
    let (ok, codes, v) = review(a, &cert(a), &root(b), nonce, &[]);
    assert!(!ok);
    assert_eq!(codes, ["CERT_SIGNATURE"], "{v}");
    assert_eq!(v["certificate"]["valid"], false);

    // Another nonce than the one the CA handed out for this enrollment.
    let mut other = hex::decode(nonce).expect("hex nonce");
    other[0] ^= 1;
    let (ok, codes, _) = review(a, &cert(a), &root(a), &hex::encode(other), &[]);
    assert!(!ok);
    assert_eq!(codes, ["BINDING_MISMATCH"]);

    // A certificate checked after it expired.
    let later = tl_evidence::dcap::time::parse_rfc3339_utc(&until).expect("time") + 60;
    let (ok, codes, _) = review(a, &cert(a), &root(a), nonce, &["--at", &later.to_string()]);
    assert!(!ok);
    assert!(codes.contains(&"CERT_EXPIRED".to_owned()), "{codes:?}");
}
