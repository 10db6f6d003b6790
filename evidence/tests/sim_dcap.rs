//! The simulated TEE in full DCAP shape: its PCK certificate carries the
//! Intel SGX extension and its collateral goes through the same appraisal
//! as Intel's, anchored at the simulated root.

use tl_evidence::accept::AcceptPolicy;
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::claims::TcbStatus;
use tl_evidence::sim::{
    SimCollateralOptions, SimMeasurements, SimTee, SIM_CPU_SVN_COMPONENTS, SIM_FMSPC, SIM_PCE_ID,
    SIM_PCE_SVN,
};
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};
use tl_evidence::{TdxCollateral, VerifiedEvidence};

const SEED: [u8; 32] = [7u8; 32];
const NOW: u64 = 1_760_000_000;

fn bundle(sim: &SimTee, m: &SimMeasurements) -> EvidenceBundle {
    EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: sim.tdx_quote(&[0x42; 64], m),
        certificates: vec![],
    })
}

fn verify_with(sim: &SimTee, col: Option<TdxCollateral>) -> Result<VerifiedEvidence, String> {
    let mut opts = VerifyOptions::new(NOW, TrustAnchors::simulated(sim.root_certificate_der()));
    opts.collateral = col.map(Collateral::tdx);
    verify_bundle(&bundle(sim, &SimMeasurements::default()), &opts).map_err(|e| e.code().to_owned())
}

fn json_col(sim: &SimTee, o: &SimCollateralOptions) -> serde_json::Value {
    serde_json::from_slice(&sim.tdx_collateral_json(o)).expect("collateral JSON")
}

fn parse(v: &serde_json::Value) -> TdxCollateral {
    TdxCollateral::from_json(v.to_string().as_bytes()).expect("parses")
}

#[test]
fn pck_certificate_carries_the_sgx_extension() {
    let sim = SimTee::from_seed(SEED);
    let v = verify_with(&sim, None).expect("verifies");
    let pck = v.pck.expect("SGX extension read");
    assert_eq!(pck.fmspc, SIM_FMSPC);
    assert_eq!(pck.pce_id, SIM_PCE_ID);
    assert_eq!(pck.cpu_svn_components, SIM_CPU_SVN_COMPONENTS);
    assert_eq!(pck.pce_svn, SIM_PCE_SVN);
    // Without collateral: UpToDate by construction, as before.
    assert_eq!(v.claims.tcb_status, TcbStatus::UpToDate);
    assert!(v.claims.simulated);
    // The chain is leaf, PCK CA, root, as Intel's.
    assert_eq!(sim.pck_chain_pem().matches("BEGIN CERTIFICATE").count(), 3);
}

#[test]
fn sim_quote_and_sim_collateral_appraise_up_to_date() {
    let sim = SimTee::from_seed(SEED);
    let col = sim.tdx_collateral(&SimCollateralOptions::at(NOW));
    assert_eq!(col.fmspc(), SIM_FMSPC);
    let (from, to) = col.validity_window();
    assert!(from <= NOW && NOW <= to);
    let v = verify_with(&sim, Some(col)).expect("appraises");
    assert_eq!(v.claims.tcb_status, TcbStatus::UpToDate);
    assert!(v.claims.advisory_ids.is_empty());
    assert!(v.claims.simulated);
    assert_eq!(AcceptPolicy::default().evaluate(&v.claims), Ok(()));
    // The same bytes again (deterministic signatures).
    assert_eq!(
        sim.tdx_collateral_json(&SimCollateralOptions::at(NOW)),
        sim.tdx_collateral_json(&SimCollateralOptions::at(NOW))
    );
}

#[test]
fn appraisal_detail_through_the_public_dcap_api() {
    let sim = SimTee::from_seed(SEED);
    let col = sim.tdx_collateral(&SimCollateralOptions::at(NOW));
    let root = sim.root_certificate_der();
    let vq = tl_evidence::tdx::verify::verify_quote_signatures(
        &sim.tdx_quote(&[0; 64], &SimMeasurements::default()),
        &TrustAnchors::simulated(root.clone()),
        NOW,
    )
    .expect("signatures");
    let e = tl_evidence::verify::appraise_tdx(&vq, &col, &root, NOW).expect("appraises");
    assert_eq!(e.platform_status, TcbStatus::UpToDate);
    assert_eq!(e.qe_status, TcbStatus::UpToDate);
    assert_eq!(e.tdx_module_status, Some(TcbStatus::UpToDate));
    assert_eq!(e.tcb_evaluation_data_number, 17);
    // The Intel root is not the collateral's anchor.
    let err = tl_evidence::verify::appraise_tdx(&vq, &col, tl_evidence::INTEL_SGX_ROOT_CA_DER, NOW)
        .expect_err("wrong root");
    assert_eq!(err.code(), "TDX_COLLATERAL_CHAIN");
}

#[test]
fn revoked_sim_pck_is_rejected() {
    let sim = SimTee::from_seed(SEED);
    let mut o = SimCollateralOptions::at(NOW);
    o.revoked_pck_serials = vec![vec![0x41; 16], sim.pck_serial()];
    let col = sim.tdx_collateral(&o);
    assert_eq!(col.pck_crl().revoked_count(), 2);
    assert!(col.pck_crl().is_revoked(&sim.pck_serial()));
    assert_eq!(
        verify_with(&sim, Some(col)).map(|_| ()),
        Err("TDX_PCK_REVOKED".into())
    );
    // Another serial revoked: still fine.
    let mut o = SimCollateralOptions::at(NOW);
    o.revoked_pck_serials = vec![vec![0x41; 16]];
    assert!(verify_with(&sim, Some(sim.tdx_collateral(&o))).is_ok());
}

#[test]
fn out_of_date_sim_tcb_is_reported_and_refused_by_default() {
    let sim = SimTee::from_seed(SEED);
    let mut o = SimCollateralOptions::at(NOW);
    o.platform_status = TcbStatus::OutOfDate;
    let v = verify_with(&sim, Some(sim.tdx_collateral(&o))).expect("appraises");
    assert_eq!(v.claims.tcb_status, TcbStatus::OutOfDate);
    let reasons = AcceptPolicy::default()
        .evaluate(&v.claims)
        .expect_err("default policy refuses OutOfDate");
    let codes: Vec<&str> = reasons.iter().map(|r| r.code).collect();
    assert_eq!(codes, ["TCB_STATUS_NOT_ACCEPTED"]);
    let lenient = AcceptPolicy::accepting([TcbStatus::UpToDate, TcbStatus::OutOfDate]);
    assert_eq!(lenient.evaluate(&v.claims), Ok(()));
}

#[test]
fn platform_below_every_level_is_not_found() {
    // A platform whose SGX components are below both levels.
    let sim = SimTee::from_seed(SEED);
    let mut m = SimMeasurements::default();
    m.tee_tcb_svn[0] = 1; // module minor below every TDX_01 level
    let mut opts = VerifyOptions::new(NOW, TrustAnchors::simulated(sim.root_certificate_der()));
    opts.collateral = Some(Collateral::tdx(
        sim.tdx_collateral(&SimCollateralOptions::at(NOW)),
    ));
    assert_eq!(
        verify_bundle(&bundle(&sim, &m), &opts)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("TDX_TCB_LEVEL_NOT_FOUND")
    );
    // Module minor 3: module level OutOfDate, converged OutOfDate.
    m.tee_tcb_svn[0] = 3;
    let v = verify_bundle(&bundle(&sim, &m), &opts).expect("appraises");
    assert_eq!(v.claims.tcb_status, TcbStatus::OutOfDate);
}

#[test]
fn tampered_sim_collateral_gives_its_code() {
    let sim = SimTee::from_seed(SEED);
    let base = json_col(&sim, &SimCollateralOptions::at(NOW));
    let flip_hex = |v: &serde_json::Value, key: &str, at: usize| {
        let mut v = v.clone();
        let mut b = hex::decode(v[key].as_str().expect("hex")).expect("hex");
        b[at] ^= 1;
        v[key] = hex::encode(b).into();
        v
    };
    let cases = [
        (
            flip_hex(&base, "tcb_info_signature", 5),
            "TDX_TCB_INFO_SIGNATURE",
        ),
        (
            flip_hex(&base, "tcb_info_signature", 40),
            "TDX_TCB_INFO_SIGNATURE",
        ),
        (
            flip_hex(&base, "qe_identity_signature", 7),
            "TDX_QE_IDENTITY_SIGNATURE",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(
            verify_with(&sim, Some(parse(&v))).map(|_| ()),
            Err(want.into())
        );
    }
    // A signed byte of the TCB info changed (a space added: still parses).
    let mut v = base.clone();
    let t = v["tcb_info"].as_str().expect("text").replacen(',', ", ", 1);
    v["tcb_info"] = t.into();
    assert_eq!(
        verify_with(&sim, Some(parse(&v))).map(|_| ()),
        Err("TDX_TCB_INFO_SIGNATURE".into())
    );
    // The last byte of a CRL signature.
    for key in ["pck_crl", "root_ca_crl"] {
        let n = hex::decode(base[key].as_str().expect("hex"))
            .expect("hex")
            .len();
        let v = flip_hex(&base, key, n - 3);
        assert_eq!(
            verify_with(&sim, Some(parse(&v))).map(|_| ()),
            Err("TDX_CRL_INVALID".into()),
            "{key}"
        );
    }
    // Collateral of another seed: chains end at another root.
    let other = SimTee::from_seed([8; 32]).tdx_collateral(&SimCollateralOptions::at(NOW));
    assert_eq!(
        verify_with(&sim, Some(other)).map(|_| ()),
        Err("TDX_COLLATERAL_CHAIN".into())
    );
}

#[test]
fn sim_collateral_time_window() {
    let sim = SimTee::from_seed(SEED);
    let mut o = SimCollateralOptions::at(NOW);
    o.issued_at_unix = NOW + 10;
    assert_eq!(
        verify_with(&sim, Some(sim.tdx_collateral(&o))).map(|_| ()),
        Err("TDX_COLLATERAL_EXPIRED".into())
    );
    let mut o = SimCollateralOptions::at(NOW);
    o.issued_at_unix = NOW - 100;
    o.validity_secs = 99;
    assert_eq!(
        verify_with(&sim, Some(sim.tdx_collateral(&o))).map(|_| ()),
        Err("TDX_COLLATERAL_EXPIRED".into())
    );
    // Bounds are inclusive.
    o.validity_secs = 100;
    assert!(verify_with(&sim, Some(sim.tdx_collateral(&o))).is_ok());
}

#[test]
fn sim_collateral_without_simulated_root_is_refused() {
    let sim = SimTee::from_seed(SEED);
    let mut opts = VerifyOptions::new(
        NOW,
        TrustAnchors::intel(tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec()),
    );
    opts.collateral = Some(Collateral::tdx(
        sim.tdx_collateral(&SimCollateralOptions::at(NOW)),
    ));
    assert_eq!(
        verify_bundle(&bundle(&sim, &SimMeasurements::default()), &opts)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("SIMULATED_ROOT_NOT_ALLOWED")
    );
}
