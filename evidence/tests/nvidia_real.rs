//! Real NVIDIA H100 SPDM reports and device chains from the shared test data.

use std::collections::BTreeMap;

use tl_evidence::nvidia::certs::{pem_certificates, ChainKind};
use tl_evidence::nvidia::spdm::{decode_hex_report, parse_report};
use tl_evidence::nvidia::{
    verify_device_chain, verify_report, verify_report_with_chain, GpuAnchors,
};

/// 2025-01-01T00:00:00Z: the device chains are valid from 2022 to 9999.
const NOW: u64 = 1_735_689_600;

fn data(rel: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../shared/testdata/nvidia-gpu/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
}

fn report(rel: &str) -> Vec<u8> {
    decode_hex_report(&data(rel)).expect("hex report")
}

fn chain(rel: &str) -> Vec<Vec<u8>> {
    pem_certificates(&data(rel), ChainKind::Device).expect("PEM chain")
}

fn nonce(h: &str) -> [u8; 32] {
    hex::decode(h).expect("hex").try_into().expect("32 bytes")
}

const SAMPLE_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
const COCO_NONCE: &str = "87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec";

/// Every report in the test data with its chain and nonce.
fn cases() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "nvtrust/hopperAttestationReport.txt",
            "nvtrust/hopperCertChain.txt",
            SAMPLE_NONCE,
        ),
        (
            "trustee/hopperAttestationReport.txt",
            "trustee/hopper_cert_chain_case1.txt",
            SAMPLE_NONCE,
        ),
        (
            "trustee/hopper_coco_report1.txt",
            "trustee/hopper_coco_certs1.txt",
            COCO_NONCE,
        ),
    ]
}

#[test]
fn every_report_verifies_with_its_chain_and_nonce() {
    for (r, c, n) in cases() {
        let v = verify_report(&report(r), &chain(c), &nonce(n), &GpuAnchors::nvidia(), NOW)
            .unwrap_or_else(|e| panic!("{r}: {e} ({})", e.code()));
        assert_eq!(v.report.blocks.len(), 64, "{r}");
        assert_eq!(v.info.chip_sku, "882");
        assert!(v.nvidia_root, "{r}: chained to NVIDIA's root");
    }
}

#[test]
fn coco_report_fields() {
    let v = verify_report(
        &report("trustee/hopper_coco_report1.txt"),
        &chain("trustee/hopper_coco_certs1.txt"),
        &nonce(COCO_NONCE),
        &GpuAnchors::nvidia(),
        NOW,
    )
    .expect("verifies");
    assert_eq!(v.info.driver_version, "580.95.05");
    assert_eq!(v.info.vbios_version, "96.00.74.00.1a");
    assert_eq!(v.report.trailing_len, 1);
    assert_eq!(
        v.device(0).fwid,
        "f1ae7d0093a3f5689cced58045c9744f94eb2aa4ddca88135197fb41a7be45576c2881cf920e2cbcc090b1cb921f7b2d"
    );
}

/// trustee's expected claims for the sample report, field by field.
#[test]
fn sample_matches_trustee_expected_claims() {
    let want: serde_json::Value =
        serde_json::from_slice(&data("trustee/hopperAttestationReport-claims.txt")).expect("json");
    let v = verify_report(
        &report("trustee/hopperAttestationReport.txt"),
        &chain("trustee/hopper_cert_chain_case1.txt"),
        &nonce(SAMPLE_NONCE),
        &GpuAnchors::nvidia(),
        NOW,
    )
    .expect("verifies");
    let cfg = &want["config"];
    let s = |k: &str| cfg[k].as_str().unwrap_or_else(|| panic!("{k}")).to_owned();
    let i = &v.info;
    assert_eq!(i.board_id, s("board_id"));
    assert_eq!(i.chip_sku, s("chip_sku"));
    assert_eq!(i.chip_sku_mod, s("chip_sku_mod"));
    assert_eq!(i.cpr_info, s("cpr_info"));
    assert_eq!(i.driver_version, s("driver_version"));
    assert_eq!(i.fwid.map(hex::encode), Some(s("fwid")));
    assert_eq!(i.gpu_info, s("gpu_info"));
    assert_eq!(i.nvdec0_status, s("nvdec0_status"));
    assert_eq!(i.project, s("project"));
    assert_eq!(i.project_sku, s("project_sku"));
    assert_eq!(i.project_sku_mod, s("project_sku_mod"));
    assert_eq!(i.protected_pcie_status, s("protected_pcie_status"));
    assert_eq!(i.vbios_version, s("vbios_version"));
    let counts: BTreeMap<u32, u32> = cfg["measurement_count"]
        .as_object()
        .expect("counts")
        .iter()
        .map(|(k, v)| (k.parse().expect("index"), v.as_u64().expect("count") as u32))
        .collect();
    assert_eq!(i.measurement_count, counts);
    let claims = v.claims(0, true, false);
    let meas: BTreeMap<u32, String> = want["measurements"]
        .as_object()
        .expect("measurements")
        .iter()
        .map(|(k, v)| {
            (
                k.parse().expect("index"),
                v.as_str().expect("hex").to_owned(),
            )
        })
        .collect();
    assert_eq!(meas.len(), 64);
    assert_eq!(claims.measurements, meas);
    assert_eq!(claims.driver_version, "550.90.07");
    assert_eq!(claims.vbios_version, "96.00.9f.00.01");
}

#[test]
fn trustee_chain_negative_cases() {
    let r = report("trustee/hopperAttestationReport.txt");
    let n = nonce(SAMPLE_NONCE);
    let a = GpuAnchors::nvidia();
    // case2: only the root.
    let e = verify_report(
        &r,
        &chain("trustee/hopper_cert_chain_case2.txt"),
        &n,
        &a,
        NOW,
    )
    .expect_err("case2");
    assert_eq!(e.code(), "GPU_CHAIN");
    // case3: an intermediate missing, so a link fails.
    let e = verify_report(
        &r,
        &chain("trustee/hopper_cert_chain_case3.txt"),
        &n,
        &a,
        NOW,
    )
    .expect_err("case3");
    assert_eq!(e.code(), "GPU_CHAIN");
    // case4: the signing (leaf) certificate missing: no FWID in the first one.
    let e = verify_report(
        &r,
        &chain("trustee/hopper_cert_chain_case4.txt"),
        &n,
        &a,
        NOW,
    )
    .expect_err("case4");
    assert_eq!(e.code(), "GPU_FWID_MISMATCH");
    // case1 is the valid chain.
    assert!(verify_report(
        &r,
        &chain("trustee/hopper_cert_chain_case1.txt"),
        &n,
        &a,
        NOW
    )
    .is_ok());
}

#[test]
fn wrong_nonce_wrong_chain_wrong_root() {
    let r = report("nvtrust/hopperAttestationReport.txt");
    let c = chain("nvtrust/hopperCertChain.txt");
    let a = GpuAnchors::nvidia();
    let e = verify_report(&r, &c, &nonce(COCO_NONCE), &a, NOW).expect_err("nonce");
    assert_eq!(e.code(), "GPU_NONCE_MISMATCH");
    // The coco GPU's chain: its FWID differs from the sample's.
    let e = verify_report(
        &r,
        &chain("trustee/hopper_coco_certs1.txt"),
        &nonce(SAMPLE_NONCE),
        &a,
        NOW,
    )
    .expect_err("other GPU");
    assert_eq!(e.code(), "GPU_FWID_MISMATCH");
    // No device root configured.
    let e =
        verify_report(&r, &c, &nonce(SAMPLE_NONCE), &GpuAnchors::none(), NOW).expect_err("none");
    assert_eq!(e.code(), "EVIDENCE_NO_TRUST_ANCHOR");
    // A root that is not the chain's (the RIM root).
    let rim_root =
        pem_certificates(tl_evidence::nvidia::NVIDIA_RIM_ROOT_PEM, ChainKind::Rim).expect("pem");
    let other = GpuAnchors::from_der(&[rim_root[0].as_slice()]).expect("anchor");
    let e = verify_report(&r, &c, &nonce(SAMPLE_NONCE), &other, NOW).expect_err("root");
    assert_eq!(e.code(), "GPU_UNTRUSTED_ROOT");
    // Before the device chain existed.
    let e = verify_report(&r, &c, &nonce(SAMPLE_NONCE), &a, 1_600_000_000).expect_err("early");
    assert_eq!(e.code(), "CERT_NOT_YET_VALID");
}

#[test]
fn without_the_root_in_the_chain_the_anchor_completes_it() {
    let r = report("nvtrust/hopperAttestationReport.txt");
    let mut c = chain("nvtrust/hopperCertChain.txt");
    c.pop();
    assert!(verify_report(&r, &c, &nonce(SAMPLE_NONCE), &GpuAnchors::nvidia(), NOW).is_ok());
}

#[test]
fn every_signed_byte_is_covered() {
    let r = report("nvtrust/hopperAttestationReport.txt");
    let c = verify_device_chain(
        &chain("nvtrust/hopperCertChain.txt"),
        &GpuAnchors::nvidia(),
        NOW,
    )
    .expect("chain");
    let n = nonce(SAMPLE_NONCE);
    let signed_len = parse_report(&r).expect("parse").signed_len;
    // Flip one bit at a spread of positions (every 7th byte, plus the
    // signature); each must fail, with a signature or parse error, or with a
    // nonce/FWID error where the flip lands there.
    for pos in (0..r.len()).step_by(7).chain(signed_len..r.len()) {
        let mut t = r.clone();
        t[pos] ^= 0x01;
        let e = verify_report_with_chain(&t, &c, &n, NOW).expect_err("tampered");
        assert!(
            matches!(
                e.code(),
                "GPU_REPORT_SIGNATURE" | "GPU_REPORT_MALFORMED" | "GPU_FWID_MISMATCH"
            ),
            "byte {pos}: {}",
            e.code()
        );
    }
    // Truncation at every length fails.
    for len in (0..r.len()).step_by(13) {
        assert!(verify_report_with_chain(&r[..len], &c, &n, NOW).is_err());
    }
    // A non-zero trailing byte is rejected; zero padding is accepted.
    let mut t = r.clone();
    t.push(0);
    assert!(verify_report_with_chain(&t, &c, &n, NOW).is_ok());
    t.push(1);
    assert_eq!(
        verify_report_with_chain(&t, &c, &n, NOW)
            .expect_err("trailing")
            .code(),
        "GPU_REPORT_MALFORMED"
    );
}
