//! Offline DCAP collateral in the CA: files read at start, selection by the
//! quote's PCK FMSPC, real Intel quotes appraised at the test data's time,
//! and simulated quotes appraised through the same DCAP path over TLS.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use tl_ca::collateral::{load_collateral_dir, read_collateral};
use tl_ca::issuance_policy::IssuancePolicy;
use tl_ca::server::ServerConfig;
use tl_ca::{DcapVerifier, EvidenceVerifier, SimAwareVerifier};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::sim::{SimCollateralOptions, SimMeasurements, SimQuoteOptions, SimTd15, SimTee};
use tl_evidence::verify::TrustAnchors;
use tl_evidence::TcbStatus;

/// The time MANIFEST.md gives for the dcap-qvl TDX quote and its collateral.
const MANIFEST_NOW: u64 = 1_752_919_234;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../shared/testdata/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

fn tdx_bundle(quote: Vec<u8>) -> EvidenceBundle {
    EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote,
        certificates: vec![],
    })
}

fn copy_into(dir: &Path, rel: &str, name: &str) {
    std::fs::copy(data(rel), dir.join(name)).unwrap();
}

fn intel_verifier(dir: &Path) -> DcapVerifier {
    DcapVerifier::new(TrustAnchors::intel(
        tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec(),
    ))
    .with_collateral(load_collateral_dir(dir).unwrap())
}

#[test]
fn real_quote_with_collateral_dir_is_up_to_date() {
    let d = tempfile::tempdir().unwrap();
    copy_into(
        d.path(),
        "tdx/dcap-qvl/tdx_quote_collateral.json",
        "tdx.json",
    );
    copy_into(
        d.path(),
        "tdx/dcap-qvl/sgx_quote_collateral.json",
        "sgx.json",
    );
    let v = intel_verifier(d.path());
    assert_eq!(v.collateral().len(), 2);
    let quote = std::fs::read(data("tdx/dcap-qvl/tdx_quote")).unwrap();
    let claims = v
        .verify(&tdx_bundle(quote.clone()), &[0u8; 32], MANIFEST_NOW)
        .unwrap();
    assert_eq!(claims.tcb_status, TcbStatus::UpToDate);
    assert!(!claims.simulated);
    assert!(claims.tdx.is_some());
    // The CA's issuance policy decides on the status, not the verifier.
    assert_eq!(IssuancePolicy::default().appraise(&claims), Ok(()));
    // Past the collateral's nextUpdate.
    let (_, until) = v.collateral().iter().next().unwrap().validity_window();
    let late = v
        .verify(&tdx_bundle(quote), &[0u8; 32], until + 1)
        .unwrap_err();
    assert_eq!(late.code, "TDX_COLLATERAL_EXPIRED");
}

#[test]
fn collateral_for_another_fmspc_is_missing() {
    let d = tempfile::tempdir().unwrap();
    // SGX collateral and simulated collateral: neither is for this quote.
    copy_into(
        d.path(),
        "tdx/dcap-qvl/sgx_quote_collateral.json",
        "sgx.json",
    );
    let sim = SimTee::from_seed([7; 32]);
    std::fs::write(
        d.path().join("sim.json"),
        sim.tdx_collateral_json(&SimCollateralOptions::at(MANIFEST_NOW)),
    )
    .unwrap();
    let v = intel_verifier(d.path());
    let quote = std::fs::read(data("tdx/dcap-qvl/tdx_quote")).unwrap();
    let r = v
        .verify(&tdx_bundle(quote.clone()), &[0u8; 32], MANIFEST_NOW)
        .unwrap_err();
    assert_eq!(r.code, "EVIDENCE_COLLATERAL_MISSING");
    assert!(r.detail.contains("FMSPC"), "{}", r.detail);
    // No collateral configured at all.
    let bare = SimAwareVerifier::new(TrustAnchors::intel(
        tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec(),
    ));
    assert_eq!(
        bare.verify(&tdx_bundle(quote), &[0u8; 32], MANIFEST_NOW)
            .unwrap_err()
            .code,
        "EVIDENCE_COLLATERAL_MISSING"
    );
}

#[test]
fn collateral_dir_errors() {
    let d = tempfile::tempdir().unwrap();
    let code = |p: &Path| load_collateral_dir(p).unwrap_err().code();
    assert_eq!(code(d.path()), "COLLATERAL_DIR_EMPTY");
    assert_eq!(code(&d.path().join("absent")), "COLLATERAL_FILE_UNREADABLE");
    copy_into(d.path(), "tdx/dcap-qvl/tdx_quote_collateral.json", "a.json");
    copy_into(d.path(), "tdx/dcap-qvl/tdx_quote_collateral.json", "b.json");
    assert_eq!(code(d.path()), "COLLATERAL_DUPLICATE");
    std::fs::remove_file(d.path().join("b.json")).unwrap();
    std::fs::write(d.path().join("c.json"), b"{\"not\": \"collateral\"}").unwrap();
    assert_eq!(code(d.path()), "TDX_COLLATERAL_MALFORMED");
    std::fs::remove_file(d.path().join("c.json")).unwrap();
    // Other files are ignored.
    std::fs::write(d.path().join("README"), b"notes").unwrap();
    assert_eq!(load_collateral_dir(d.path()).unwrap().len(), 1);
}

/// Write simulated collateral in the PCS-response layout (separate files),
/// keeping the signed JSON bytes exactly.
fn write_pcs_layout(dir: &Path, v3_json: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(v3_json).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    std::fs::create_dir_all(dir).unwrap();
    let w = |name: &str, b: &[u8]| std::fs::write(dir.join(name), b).unwrap();
    w(
        "tcb_info.json",
        format!(
            "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
            s("tcb_info"),
            s("tcb_info_signature")
        )
        .as_bytes(),
    );
    w(
        "qe_identity.json",
        format!(
            "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
            s("qe_identity"),
            s("qe_identity_signature")
        )
        .as_bytes(),
    );
    w(
        "tcb_info_issuer_chain.pem",
        s("tcb_info_issuer_chain").as_bytes(),
    );
    w(
        "pck_crl_issuer_chain.pem",
        s("pck_crl_issuer_chain").as_bytes(),
    );
    w("pck_crl.der", &hex::decode(s("pck_crl")).unwrap());
    w("root_ca_crl.der", s("root_ca_crl").as_bytes()); // hex DER is accepted too
}

#[test]
fn pcs_layout_reads_like_the_json_shape() {
    let sim = SimTee::from_seed([7; 32]);
    let json = sim.tdx_collateral_json(&SimCollateralOptions::at(MANIFEST_NOW));
    let d = tempfile::tempdir().unwrap();
    write_pcs_layout(&d.path().join("sim"), &json);
    let from_dir = read_collateral(&d.path().join("sim")).unwrap();
    let f = d.path().join("sim.json");
    std::fs::write(&f, &json).unwrap();
    assert_eq!(from_dir, read_collateral(&f).unwrap());
    // A directory that is itself one PCS layout, and a subdirectory layout.
    assert_eq!(load_collateral_dir(&d.path().join("sim")).unwrap().len(), 1);
    std::fs::remove_file(&f).unwrap();
    assert_eq!(load_collateral_dir(d.path()).unwrap().len(), 1);
    // A missing part names its file.
    std::fs::remove_file(d.path().join("sim/pck_crl.der")).unwrap();
    let e = read_collateral(&d.path().join("sim")).unwrap_err();
    assert_eq!(e.code(), "COLLATERAL_FILE_UNREADABLE");
    assert!(e.to_string().contains("pck_crl.der"));
}

fn sim_dcap_config(
    dir: &Path,
    sim: &SimTee,
    clock: Arc<ManualClock>,
    o: &SimCollateralOptions,
) -> ServerConfig {
    let verifier = SimAwareVerifier::new(TrustAnchors::simulated(sim.root_certificate_der()))
        .with_sim_collateral(sim.tdx_collateral(o));
    let policy = IssuancePolicy {
        allow_simulated: true,
        ..IssuancePolicy::default()
    };
    let mut c = ServerConfig::new(dir.to_path_buf(), Arc::new(verifier), policy);
    c.clock = clock;
    c
}

async fn enroll_status(o: SimCollateralOptions) -> (u16, serde_json::Value) {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let h = start(sim_dcap_config(d.path(), &sim, ManualClock::new(), &o)).await;
    let c = Client::new(&h);
    let l = Loader::new();
    let n = c.nonce().await;
    c.post("/v1/enroll", &l.request(&sim, &n)).await
}

#[tokio::test]
async fn enrollment_over_tls_with_sim_collateral() {
    let now = T0_MS / 1000;
    let (s, v) = enroll_status(SimCollateralOptions::at(now)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["claims"]["platform"]["tcb_status"], "UpToDate");
    assert_eq!(v["claims"]["platform"]["simulated"], true);

    // The simulated TCB level OutOfDate: verified, refused by issuance policy.
    let mut o = SimCollateralOptions::at(now);
    o.platform_status = TcbStatus::OutOfDate;
    let (s, v) = enroll_status(o).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(code(&v), "ENROLL_POLICY_REJECTED");
    assert!(v.to_string().contains("ISSUANCE_TCB_STATUS"), "{v}");

    // The simulated PCK revoked.
    let mut o = SimCollateralOptions::at(now);
    o.revoked_pck_serials = vec![sim().pck_serial()];
    let (s, v) = enroll_status(o).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(code(&v), "TDX_PCK_REVOKED");

    // Expired simulated collateral.
    let mut o = SimCollateralOptions::at(now);
    o.issued_at_unix = now - 1000;
    o.validity_secs = 10;
    let (s, v) = enroll_status(o).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(code(&v), "TDX_COLLATERAL_EXPIRED");
}

/// `--reference-check`: dcap-qvl's whole verifier must reach the same
/// verdict. A TD 1.5 launched on a TCB out of date by a platform TDX
/// component (TEE_TCB_SVN[2]) and running on an up-to-date one now: this
/// project follows Intel's narrower relaunch rule (`OutOfDate`), dcap-qvl
/// advises a relaunch (scripts/crosscheck-dcap lists the same variant).
/// With the check, the disagreement refuses the enrollment; without it the
/// policy (which accepts OutOfDate here) decides. A quote both judge alike
/// enrolls either way.
#[tokio::test]
async fn reference_check_over_tls() {
    let now = T0_MS / 1000;
    let sim = sim();
    // The lower platform level: the top level's SGX components and PCESVN,
    // TDX component 2 at 2 (as the crosscheck's variant).
    let json = sim.tdx_collateral_json_edited(&SimCollateralOptions::at(now), |t, _| {
        let top = t["tcbLevels"][0]["tcb"].clone();
        let lower = &mut t["tcbLevels"][1]["tcb"];
        lower["sgxtcbcomponents"] = top["sgxtcbcomponents"].clone();
        lower["pcesvn"] = top["pcesvn"].clone();
        lower["tdxtcbcomponents"][2]["svn"] = 2.into();
    });
    let mut m = SimMeasurements::default();
    m.tee_tcb_svn[0] = 6;
    m.tee_tcb_svn[2] = 2;
    let mut svn2 = m.tee_tcb_svn;
    svn2[2] = 3;
    let td15 = SimQuoteOptions {
        td15: Some(SimTd15 {
            tee_tcb_svn2: svn2,
            mrservicetd: [0; 48],
        }),
        ..SimQuoteOptions::default()
    };
    for check in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let verifier = SimAwareVerifier::new(TrustAnchors::simulated(sim.root_certificate_der()))
            .with_sim_collateral(tl_evidence::dcap::TdxCollateral::from_json(&json).unwrap())
            .with_reference_check(check);
        let policy = IssuancePolicy {
            allow_simulated: true,
            accepted_tcb: vec![TcbStatus::UpToDate, TcbStatus::OutOfDate],
            ..IssuancePolicy::default()
        };
        let mut c = ServerConfig::new(d.path().to_path_buf(), Arc::new(verifier), policy);
        c.clock = ManualClock::new();
        let h = start(c).await;
        let client = Client::new(&h);
        let l = Loader::new();

        let n = client.nonce().await;
        let (s, v) = client.post("/v1/enroll", &l.request(&sim, &n)).await;
        assert_eq!(s, 200, "check {check}: {v}");
        assert_eq!(v["claims"]["platform"]["tcb_status"], "UpToDate");

        let n = client.nonce().await;
        let ev = Loader::evidence_with(&sim, &n, &l.spki_der(), &l.encryption_key, &m, &td15);
        let (s, v) = client.post("/v1/enroll", &l.request_with(&n, &ev)).await;
        if check {
            assert_eq!(s, 403, "{v}");
            assert_eq!(code(&v), "REFERENCE_DISAGREES");
            assert!(
                v.to_string()
                    .contains("TCB status OutOfDate here, TDRelaunchAdvised by dcap-qvl"),
                "{v}"
            );
        } else {
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["claims"]["platform"]["tcb_status"], "OutOfDate");
        }
    }
}
