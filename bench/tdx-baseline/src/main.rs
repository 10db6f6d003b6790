//! Full DCAP verifications per second of a real TDX quote with its
//! collateral: tl-evidence (collateral parsed once per FMSPC and shared, as
//! the CA does, and parsed afresh every time) beside dcap-qvl's one-shot
//! `verify` (which takes the collateral as data and parses it on every call),
//! interleaved batch by batch on the same core, medians and ratios reported
//! as JSON. Also dcap-qvl's verifier as tl ships it (`tl evidence verify
//! --reference`: its Config on x509-cert and aws-lc-rs). All must say
//! UpToDate before anything is timed.

use std::time::Instant;

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/tdx/dcap-qvl/"
);
/// MANIFEST.md: the dcap-qvl sample verifies at 2025-07-19T10:00:34Z.
const T: u64 = 1_752_919_234;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batches: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let per_batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let quote = std::fs::read(format!("{DATA}tdx_quote")).expect("tdx_quote");
    let col_json = std::fs::read(format!("{DATA}tdx_quote_collateral.json")).expect("collateral");

    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: quote.clone(),
        certificates: vec![],
    });
    let anchors = TrustAnchors::intel(tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec());
    let parsed = tl_evidence::dcap::TdxCollateral::from_json(&col_json).expect("collateral parses");
    let mut cached = VerifyOptions::new(T, anchors.clone());
    cached.collateral = Some(Collateral::tdx(parsed));
    let ours_cached = || verify_bundle(&bundle, &cached).expect("tl-evidence verifies");
    let ours_fresh = || {
        let mut o = VerifyOptions::new(T, anchors.clone());
        o.collateral = Some(Collateral::tdx(
            tl_evidence::dcap::TdxCollateral::from_json(&col_json).expect("parses"),
        ));
        verify_bundle(&bundle, &o).expect("tl-evidence verifies")
    };
    let qvl_col: dcap_qvl::QuoteCollateralV3 =
        serde_json::from_slice(&col_json).expect("dcap-qvl reads the collateral");
    let qvl = || dcap_qvl::verify::verify(&quote, &qvl_col, T).expect("dcap-qvl verifies");
    let shared = tl_evidence::dcap::TdxCollateral::from_json(&col_json).expect("parses");
    let root = tl_evidence::INTEL_SGX_ROOT_CA_DER;
    let in_tree = || {
        tl_evidence::dcap::reference::verify_with_dcap_qvl(&quote, &shared, root, T, false)
            .expect("dcap-qvl on tl's crypto verifies")
    };

    // Same verdict first.
    assert_eq!(
        ours_cached().claims.tcb_status,
        tl_evidence::TcbStatus::UpToDate
    );
    assert_eq!(qvl().status, "UpToDate");
    assert_eq!(in_tree().status, "UpToDate");

    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / per_batch as f64
    };
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm-up, then interleaved batches.
    time(&|| drop(ours_cached()));
    time(&|| drop(qvl()));
    for _ in 0..batches {
        a.push(time(&|| drop(ours_cached())));
        b.push(time(&|| drop(ours_fresh())));
        c.push(time(&|| drop(qvl())));
        d.push(time(&|| drop(in_tree())));
    }
    let (a, b, c, d) = (
        median(&mut a),
        median(&mut b),
        median(&mut c),
        median(&mut d),
    );
    println!(
        "{}",
        serde_json::json!({
            "quote": "dcap-qvl sample tdx_quote (v4) + tdx_quote_collateral.json, UpToDate at 2025-07-19T10:00:34Z",
            "batches": batches,
            "per_batch": per_batch,
            "median_us": {
                "tl_evidence_cached_collateral": a,
                "tl_evidence_fresh_collateral": b,
                "dcap_qvl_verify": c,
                "dcap_qvl_on_tl_crypto": d,
            },
            "per_second_one_core": {
                "tl_evidence_cached_collateral": 1e6 / a,
                "tl_evidence_fresh_collateral": 1e6 / b,
                "dcap_qvl_verify": 1e6 / c,
                "dcap_qvl_on_tl_crypto": 1e6 / d,
            },
            "speedup_cached_vs_dcap_qvl": c / a,
            "speedup_fresh_vs_dcap_qvl": c / b,
            "speedup_on_tl_crypto_vs_dcap_qvl": c / d,
        })
    );
}
