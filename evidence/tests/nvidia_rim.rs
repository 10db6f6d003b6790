//! NVIDIA RIMs (signed SWID tags) from the shared test data.

use std::collections::BTreeSet;

use tl_evidence::nvidia::rim::{compare, parse_rim, verify_rim, RimAnchors};
use tl_evidence::nvidia::spdm::decode_hex_report;
use tl_evidence::nvidia::{verify_report, GpuAnchors};

/// 2024-06-01T00:00:00Z: inside every RIM signer's validity window.
const NOW: u64 = 1_717_200_000;

fn data(rel: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../shared/testdata/nvidia-gpu/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
}

const RIMS: [&str; 5] = [
    "nvtrust/1010_0200_882_96005E0001_PROD.swidtag",
    "nvtrust/1010_0200_882_96005E0001_test_no_gpu.swidtag",
    "nvtrust/1010_0200_882_960074001A_PROD.swidtag",
    "nvtrust/1010_0200_882_960074001C_PROD.swidtag",
    "nvtrust/Driver_RIM_test_no_gpu.swidtag",
];

#[test]
fn every_rim_verifies_to_the_rim_root() {
    for r in RIMS {
        let rim = verify_rim(&data(r), &RimAnchors::nvidia(), NOW)
            .unwrap_or_else(|e| panic!("{r}: {e} ({})", e.code()));
        assert_eq!(rim.measurements.len(), 64, "{r}");
    }
}

#[test]
fn tampered_rims_fail_with_their_codes() {
    let good = data("nvtrust/1010_0200_882_960074001A_PROD.swidtag");
    let s = String::from_utf8(good.clone()).expect("utf8");
    // A measurement value changed: the document digest no longer matches.
    let t = s.replacen("b558fdac", "b558fdad", 1);
    assert_ne!(t, s);
    let e = verify_rim(t.as_bytes(), &RimAnchors::nvidia(), NOW).expect_err("digest");
    assert_eq!(e.code(), "GPU_RIM_SIGNATURE");
    // The DigestValue changed: the signature over SignedInfo fails.
    let t = s.replacen("<ds:DigestValue>i", "<ds:DigestValue>j", 1);
    assert_ne!(t, s);
    let e = verify_rim(t.as_bytes(), &RimAnchors::nvidia(), NOW).expect_err("digest value");
    assert_eq!(e.code(), "GPU_RIM_SIGNATURE");
    // Whitespace-only and attribute-order changes are canonicalized away.
    let t = s.replacen(
        " corpus=\"false\" name=\"GH100\"",
        " name=\"GH100\"   corpus=\"false\"",
        1,
    );
    assert_ne!(t, s);
    assert!(verify_rim(t.as_bytes(), &RimAnchors::nvidia(), NOW).is_ok());
    // Wrong root, expired signer.
    let root = tl_evidence::nvidia::certs::pem_certificates(
        tl_evidence::nvidia::NVIDIA_DEVICE_ROOT_PEM,
        tl_evidence::nvidia::certs::ChainKind::Device,
    )
    .expect("pem");
    let other = RimAnchors::from_der(&[root[0].as_slice()]).expect("anchor");
    assert_eq!(
        verify_rim(&good, &other, NOW).expect_err("root").code(),
        "GPU_RIM_CHAIN"
    );
    assert_eq!(
        verify_rim(&good, &RimAnchors::nvidia(), 1_800_000_000)
            .expect_err("expired")
            .code(),
        "CERT_EXPIRED"
    );
    // Hostile inputs: truncation at many points never panics nor verifies.
    for n in (0..good.len()).step_by(97) {
        assert!(verify_rim(&good[..n], &RimAnchors::nvidia(), NOW).is_err());
    }
    assert!(parse_rim(b"<!DOCTYPE x><x/>").is_err());
}

fn coco_measurements() -> std::collections::BTreeMap<u32, Vec<u8>> {
    let certs = tl_evidence::nvidia::certs::pem_certificates(
        &data("trustee/hopper_coco_certs1.txt"),
        tl_evidence::nvidia::certs::ChainKind::Device,
    )
    .expect("pem");
    let nonce: [u8; 32] =
        hex::decode("87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec")
            .expect("hex")
            .try_into()
            .expect("32");
    let r = decode_hex_report(&data("trustee/hopper_coco_report1.txt")).expect("hex");
    verify_report(&r, &certs, &nonce, &GpuAnchors::nvidia(), 1_735_689_600)
        .expect("verifies")
        .measurements()
}

/// The VBIOS RIM for the CoCo report's VBIOS (96.00.74.00.1A): every active
/// index matches except RIM index 9 (SPDM block 10), which is reported.
#[test]
fn vbios_rim_against_coco_report_reports_index_10() {
    let rim = verify_rim(
        &data("nvtrust/1010_0200_882_960074001A_PROD.swidtag"),
        &RimAnchors::nvidia(),
        NOW,
    )
    .expect("rim");
    assert_eq!(rim.colloquial_version, "96.00.74.00.1A");
    let m = coco_measurements();
    let c = compare(&m, &[&rim], &BTreeSet::new());
    assert_eq!(c.compared.len(), 12);
    let idx: Vec<u32> = c.mismatches.iter().map(|x| x.index).collect();
    assert_eq!(idx, vec![10]);
    let mm = &c.mismatches[0];
    assert_eq!(mm.actual.as_deref(), Some(hex::encode(&m[&10]).as_str()));
    assert!(!c.ok());
    // Policy may tolerate it; it is still listed.
    let c = compare(&m, &[&rim], &BTreeSet::from([10]));
    assert!(c.ok());
    assert_eq!(c.tolerated.len(), 1);
    // The neighbouring VBIOS version mismatches more.
    let other = verify_rim(
        &data("nvtrust/1010_0200_882_960074001C_PROD.swidtag"),
        &RimAnchors::nvidia(),
        NOW,
    )
    .expect("rim");
    assert!(compare(&m, &[&other], &BTreeSet::new()).mismatches.len() > 1);
}

/// The test driver RIM (545.00) against the sample report (driver
/// 550.90.07): many active indices differ, and all are listed.
#[test]
fn driver_rim_mismatch_lists_every_index() {
    let rim = verify_rim(
        &data("nvtrust/Driver_RIM_test_no_gpu.swidtag"),
        &RimAnchors::nvidia(),
        NOW,
    )
    .expect("rim");
    let certs = tl_evidence::nvidia::certs::pem_certificates(
        &data("nvtrust/hopperCertChain.txt"),
        tl_evidence::nvidia::certs::ChainKind::Device,
    )
    .expect("pem");
    let nonce: [u8; 32] =
        hex::decode("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
            .expect("hex")
            .try_into()
            .expect("32");
    let r = decode_hex_report(&data("nvtrust/hopperAttestationReport.txt")).expect("hex");
    let m = verify_report(&r, &certs, &nonce, &GpuAnchors::nvidia(), 1_735_689_600)
        .expect("verifies")
        .measurements();
    let c = compare(&m, &[&rim], &BTreeSet::new());
    assert_eq!(c.compared.len(), 21);
    assert_eq!(c.mismatches.len(), 15);
}
