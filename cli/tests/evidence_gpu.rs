//! `tl evidence verify` on real NVIDIA H100 evidence: report, device chain,
//! nonce and RIM comparison, with every mismatch listed.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(rel: &str) -> PathBuf {
    let p = PathBuf::from(format!(
        "{}/../../shared/testdata/nvidia-gpu/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ));
    assert!(p.is_file(), "test data {} missing", p.display());
    p
}

fn tl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tl"))
        .args(args)
        .output()
        .expect("running tl")
}

const SAMPLE_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
const COCO_NONCE: &str = "87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec";
const AT: &str = "2024-06-01T00:00:00Z";

#[test]
fn gpu_report_verifies_and_prints_claims() {
    let report = data("trustee/hopperAttestationReport.txt");
    let chain = data("trustee/hopper_cert_chain_case1.txt");
    let out = tl(&[
        "evidence",
        "verify",
        report.to_str().unwrap(),
        "--gpu-certs",
        chain.to_str().unwrap(),
        "--gpu-nonce",
        SAMPLE_NONCE,
        "--at",
        AT,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ok"], true);
    assert!(!v["claims"]["driver_version"].as_str().unwrap().is_empty());
    assert!(v["claims"]["measurements"].as_object().unwrap().len() > 10);
}

#[test]
fn wrong_nonce_and_broken_chain_are_rejected_with_their_codes() {
    let report = data("trustee/hopperAttestationReport.txt");
    let chain = data("trustee/hopper_cert_chain_case1.txt");
    let out = tl(&[
        "evidence",
        "verify",
        report.to_str().unwrap(),
        "--gpu-certs",
        chain.to_str().unwrap(),
        "--gpu-nonce",
        COCO_NONCE,
        "--at",
        AT,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GPU_NONCE_MISMATCH"));
    let bad_chain = data("trustee/hopper_cert_chain_case2.txt");
    let out = tl(&[
        "evidence",
        "verify",
        report.to_str().unwrap(),
        "--gpu-certs",
        bad_chain.to_str().unwrap(),
        "--gpu-nonce",
        SAMPLE_NONCE,
        "--at",
        AT,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GPU_CHAIN"));
}

#[test]
fn rim_mismatch_is_reported_not_hidden() {
    // The VBIOS RIM 96.00.74.00.1A against the CoCo report differs at SPDM
    // index 10 (RIM index 9): reported and failing, unless policy tolerates it.
    let report = data("trustee/hopper_coco_report1.txt");
    let chain = data("trustee/hopper_coco_certs1.txt");
    let rim = data("nvtrust/1010_0200_882_960074001A_PROD.swidtag");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "evidence".to_owned(),
            "verify".into(),
            report.display().to_string(),
            "--gpu-certs".into(),
            chain.display().to_string(),
            "--gpu-nonce".into(),
            COCO_NONCE.into(),
            "--at".into(),
            AT.into(),
            "--rim".into(),
            rim.display().to_string(),
            "--json".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = args(&[]);
    let out = tl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["code"], "GPU_RIM_MISMATCH");
    let idx: Vec<u64> = v["rim_mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![10]);
    let a = args(&["--tolerate-index", "10"]);
    let out = tl(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["rim_tolerated"][0]["index"], 10);
}

#[test]
fn nvswitch_report_verifies_with_its_own_rules() {
    use tl_evidence::sim::{SimNvKind, SimTee};
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimTee::from_seed([4; 32]);
    let d = sim.nvidia_device(SimNvKind::NvSwitch, 0);
    let nonce = [0x5a; 32];
    let p = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let report = p("switch.bin", &d.report(&nonce));
    let bare = p("switch-no-fwid.bin", &d.report_without_fwid(&nonce));
    let chain = p("chain.pem", d.chain_pem().as_bytes());
    let root = p("root.der", &sim.nvidia_root_der());
    let nonce_hex = hex::encode(nonce);
    let run = |file: &str, extra: &[&str]| {
        let mut args = vec![
            "evidence",
            "verify",
            file,
            "--gpu-certs",
            &chain,
            "--gpu-nonce",
            &nonce_hex,
        ];
        args.extend_from_slice(extra);
        tl(&args)
    };
    let json =
        |o: &Output| -> serde_json::Value { serde_json::from_slice(&o.stdout).expect("json") };

    let out = run(&report, &["--nvswitch", "--gpu-root", &root, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json(&out);
    assert_eq!(v["device"], "nvswitch");
    assert_eq!(v["nvswitch_claims"]["vbios_version"], "96.10.55.00.01");
    assert_eq!(
        v["nvswitch_claims"]["measurements"]
            .as_object()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(v["fwid"], hex::encode(d.fwid()));

    // A switch report without an FWID passes as a switch, not as a GPU.
    let out = run(&bare, &["--nvswitch", "--gpu-root", &root]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("(none in the report)"));
    let out = run(&bare, &["--gpu-root", &root, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["code"], "GPU_FWID_MISMATCH");

    // NVIDIA's root (the default) does not vouch for the simulated one.
    let out = run(&report, &["--nvswitch"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NVSwitch report: REJECTED (GPU_UNTRUSTED_ROOT)"),
        "{text}"
    );
}

#[test]
fn a_real_spdm_report_also_verifies_under_the_switch_rules() {
    // NVSwitch reports are GPU-format SPDM reports: the real H100 report
    // passes the switch checks (it carries an FWID, so it is compared).
    let report = data("trustee/hopperAttestationReport.txt");
    let chain = data("trustee/hopper_cert_chain_case1.txt");
    let out = tl(&[
        "evidence",
        "verify",
        report.to_str().unwrap(),
        "--nvswitch",
        "--gpu-certs",
        chain.to_str().unwrap(),
        "--gpu-nonce",
        SAMPLE_NONCE,
        "--at",
        AT,
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["device"], "nvswitch");
    assert_eq!(v["nvswitch_claims"]["vbios_version"], "96.00.9f.00.01");
}
