//! The simulated SEV-SNP platform: round trips through the real verifier,
//! tampering, trust-anchor gating, extension errors and CRLs.

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::claims::{TcbStatus, TeeKind};
use tl_evidence::snp::report::{build_cert_table, offset, CertKind, SIGNED_LEN};
use tl_evidence::snp::verify_snp_evidence;
use tl_evidence::verify::{verify_bundle, AnchorKind, TrustAnchors, VerifyOptions};
use tl_evidence::{SimSnpMeasurements, SimTee};

const NOW: u64 = 1_750_000_000;

fn sim() -> SimTee {
    SimTee::from_seed([7u8; 32])
}

fn anchors(t: &SimTee) -> TrustAnchors {
    TrustAnchors::simulated(t.root_certificate_der())
}

fn bundle(report: Vec<u8>, chain: Vec<Vec<u8>>) -> EvidenceBundle {
    EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::SnpReport,
        quote: report,
        certificates: chain,
    })
}

#[test]
fn round_trip_through_verify_bundle() {
    let t = sim();
    let m = SimSnpMeasurements {
        host_data: [0x42; 32],
        ..Default::default()
    };
    let rd = [0x5a; 64];
    let (r, chain) = t.snp_report(&rd, &m);
    assert_eq!(r.len(), 1184);
    assert_eq!(chain.len(), 3);
    let v = verify_bundle(&bundle(r, chain), &VerifyOptions::new(NOW, anchors(&t)))
        .expect("simulated report verifies");
    let c = &v.claims;
    assert_eq!(c.tee, TeeKind::SevSnp);
    assert!(c.simulated);
    assert!(!c.debug);
    assert_eq!(c.tcb_status, TcbStatus::NotApplicable);
    assert_eq!(c.report_data, rd);
    let s = c.snp.as_ref().expect("snp");
    assert_eq!(s.measurement, m.measurement);
    assert_eq!(s.host_data, [0x42; 32]);
    assert_eq!(s.policy, 0x30000);
    assert_eq!(s.reported_tcb, m.reported_tcb);
    let snp = v.snp.as_ref().expect("verified report");
    assert_eq!(snp.anchor, AnchorKind::Simulated);
    assert_eq!(snp.report.chip_id, t.snp_chip_id());
}

#[test]
fn deterministic_from_the_seed() {
    let m = SimSnpMeasurements::default();
    let a = sim().snp_report(&[1; 64], &m);
    let b = sim().snp_report(&[1; 64], &m);
    assert_eq!(a, b);
    let c = SimTee::from_seed([8u8; 32]).snp_report(&[1; 64], &m);
    assert_ne!(a.0, c.0);
    assert_ne!(a.1, c.1);
}

#[test]
fn debug_policy_is_flagged() {
    let t = sim();
    let m = SimSnpMeasurements {
        policy: 0x30000 | 1 << 19,
        ..Default::default()
    };
    let (r, chain) = t.snp_report(&[0; 64], &m);
    let v = verify_snp_evidence(&r, &chain, &[], &anchors(&t), NOW).expect("verifies");
    let claims = tl_evidence::snp::snp_claims(&v);
    assert!(claims.debug);
    assert_eq!(
        tl_evidence::snp::SnpAppraisal::default().appraise(&claims),
        vec![tl_evidence::snp::SnpFinding::Debug]
    );
}

#[test]
fn every_signed_byte_flip_is_rejected() {
    let t = sim();
    let (r, chain) = t.snp_report(&[3; 64], &SimSnpMeasurements::default());
    let a = anchors(&t);
    for i in 0..SIGNED_LEN {
        let mut x = r.clone();
        x[i] ^= 0x10;
        let e = verify_snp_evidence(&x, &chain, &[], &a, NOW).expect_err("flip");
        let allowed: &[&str] = match i {
            0..=3 => &["EVIDENCE_UNSUPPORTED"],
            0x34..=0x37 => &["SNP_REPORT_MALFORMED"],
            0x48..=0x4b => &[
                "SNP_REPORT_SIGNATURE",
                "SNP_REPORT_MALFORMED",
                "SNP_REPORT_UNSIGNED",
                "SNP_VLEK_VCEK_MISMATCH",
            ],
            0x188..=0x189 => &[
                "SNP_REPORT_SIGNATURE",
                "SNP_UNKNOWN_PRODUCT",
                "SNP_WRONG_PRODUCT_CHAIN",
            ],
            _ => &["SNP_REPORT_SIGNATURE"],
        };
        assert!(allowed.contains(&e.code()), "byte {i:#x}: {}", e.code());
    }
    for i in [offset::SIGNATURE_R, offset::SIGNATURE_S + 47] {
        let mut x = r.clone();
        x[i] ^= 1;
        let e = verify_snp_evidence(&x, &chain, &[], &a, NOW).expect_err("sig");
        assert_eq!(e.code(), "SNP_REPORT_SIGNATURE");
    }
    // Non-zero padding of a signature component is malformed.
    let mut x = r.clone();
    x[offset::SIGNATURE_R + 71] = 1;
    let e = verify_snp_evidence(&x, &chain, &[], &a, NOW).expect_err("pad");
    assert_eq!(e.code(), "SNP_REPORT_MALFORMED");
    // Truncation and extension.
    let e = verify_snp_evidence(&r[..1183], &chain, &[], &a, NOW).expect_err("short");
    assert_eq!(e.code(), "SNP_REPORT_MALFORMED");
    let mut long = r.clone();
    long.push(0);
    let e = verify_snp_evidence(&long, &chain, &[], &a, NOW).expect_err("bad table");
    assert_eq!(e.code(), "SNP_REPORT_MALFORMED");
}

#[test]
fn simulated_root_only_when_configured() {
    let t = sim();
    let (r, chain) = t.snp_report(&[0; 64], &SimSnpMeasurements::default());
    let e = verify_snp_evidence(&r, &chain, &[], &TrustAnchors::default(), NOW)
        .expect_err("not configured");
    assert_eq!(e.code(), "SIMULATED_ROOT_NOT_ALLOWED");
    // Another seed's root is not this chain's root.
    let other = TrustAnchors::simulated(SimTee::from_seed([9; 32]).root_certificate_der());
    let e = verify_snp_evidence(&r, &chain, &[], &other, NOW).expect_err("other root");
    assert!(
        [
            "SNP_UNKNOWN_PRODUCT",
            "SNP_VCEK_CHAIN",
            "SNP_WRONG_PRODUCT_CHAIN"
        ]
        .contains(&e.code()),
        "{}",
        e.code()
    );
    // Leaf alone: it is not signed by AMD's Milan ASK.
    let e = verify_snp_evidence(&r, &chain[..1], &[], &TrustAnchors::default(), NOW)
        .expect_err("leaf only");
    assert_eq!(e.code(), "SNP_VCEK_CHAIN");
    // Chain of another seed with this seed's root configured.
    let (_, chain9) =
        SimTee::from_seed([9; 32]).snp_report(&[0; 64], &SimSnpMeasurements::default());
    let mixed = vec![chain9[0].clone(), chain9[1].clone(), chain[2].clone()];
    let e = verify_snp_evidence(&r, &mixed, &[], &anchors(&t), NOW).expect_err("mixed");
    assert_eq!(e.code(), "SNP_VCEK_CHAIN");
}

#[test]
fn validity_window() {
    let t = sim();
    let (r, chain) = t.snp_report(&[0; 64], &SimSnpMeasurements::default());
    let a = anchors(&t);
    assert_eq!(
        verify_snp_evidence(&r, &chain, &[], &a, 1_600_000_000)
            .expect_err("early")
            .code(),
        "CERT_NOT_YET_VALID"
    );
    assert_eq!(
        verify_snp_evidence(&r, &chain, &[], &a, 4_100_000_000)
            .expect_err("late")
            .code(),
        "CERT_EXPIRED"
    );
}

#[test]
fn chain_from_extended_report_table() {
    let t = sim();
    let (r, chain) = t.snp_report(&[0; 64], &SimSnpMeasurements::default());
    let table = build_cert_table(&[
        (CertKind::Vcek, &chain[0]),
        (CertKind::Ask, &chain[1]),
        (CertKind::Ark, &chain[2]),
    ]);
    let mut ext = r.clone();
    ext.extend_from_slice(&table);
    verify_snp_evidence(&ext, &[], &[], &anchors(&t), NOW).expect("table chain");
    // A table whose entry points past its end.
    let mut bad = table.clone();
    bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut ext = r.clone();
    ext.extend_from_slice(&bad);
    let e = verify_snp_evidence(&ext, &[], &[], &anchors(&t), NOW).expect_err("bad table");
    assert_eq!(e.code(), "SNP_REPORT_MALFORMED");
    // No chain at all.
    let e = verify_snp_evidence(&r, &[], &[], &anchors(&t), NOW).expect_err("no chain");
    assert_eq!(e.code(), "SNP_VCEK_CHAIN");
}

#[test]
fn crl_revokes_the_ask() {
    let t = sim();
    let (r, chain) = t.snp_report(&[0; 64], &SimSnpMeasurements::default());
    let a = anchors(&t);
    verify_snp_evidence(&r, &chain, &[t.snp_crl(false)], &a, NOW).expect("empty CRL");
    let e = verify_snp_evidence(&r, &chain, &[t.snp_crl(true)], &a, NOW).expect_err("revoked");
    assert_eq!(e.code(), "SNP_CERT_REVOKED");
    // A CRL of another root.
    let other = SimTee::from_seed([9; 32]).snp_crl(true);
    let e = verify_snp_evidence(&r, &chain, &[other], &a, NOW).expect_err("foreign CRL");
    assert_eq!(e.code(), "SNP_CRL_INVALID");
    // A tampered CRL.
    let mut crl = t.snp_crl(false);
    let n = crl.len();
    crl[n - 5] ^= 1;
    let e = verify_snp_evidence(&r, &chain, &[crl], &a, NOW).expect_err("tampered CRL");
    assert_eq!(e.code(), "SNP_CRL_INVALID");
    // A CRL is not current before its thisUpdate.
    let e = verify_snp_evidence(&r, &chain, &[t.snp_crl(false)], &a, 1_704_067_200 - 1)
        .expect_err("early");
    assert!(["SNP_CRL_INVALID", "CERT_NOT_YET_VALID"].contains(&e.code()));
}

#[test]
fn tcb_mismatch_between_report_and_vcek() {
    let t = sim();
    // A VCEK for TCB A and a report claiming TCB B, re-signed by the VCEK of
    // B: the chain is fine, the report's signature is fine with B's key, but
    // A's VCEK is presented.
    let ma = SimSnpMeasurements::default();
    let mb = SimSnpMeasurements {
        reported_tcb: u64::from_le_bytes([3, 0, 0, 0, 0, 0, 9, 115]),
        ..Default::default()
    };
    let (ra, chain_a) = t.snp_report(&[0; 64], &ma);
    let (rb, chain_b) = t.snp_report(&[0; 64], &mb);
    let a = anchors(&t);
    verify_snp_evidence(&rb, &chain_b, &[], &a, NOW).expect("B with B");
    // B's report with A's VCEK: signature (different key) fails first.
    let e = verify_snp_evidence(&rb, &chain_a, &[], &a, NOW).expect_err("B with A");
    assert_eq!(e.code(), "SNP_REPORT_SIGNATURE");
    let _ = ra;
    // The TCB comparison itself.
    let leaf = tl_evidence::snp::verify_leaf_chain(&chain_a, &[], &a, NOW).expect("A chain");
    let e = tl_evidence::snp::check_tcb(
        tl_evidence::snp::TcbVersion(mb.reported_tcb),
        leaf.product,
        &leaf.extensions,
    )
    .expect_err("tcb");
    assert_eq!(e.code(), "SNP_TCB_MISMATCH");
}
