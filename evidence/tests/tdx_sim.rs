//! The simulated TEE's quotes through the real verifier.

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::claims::{TcbStatus, TeeKind};
use tl_evidence::sim::{SimMeasurements, SimTee, SIM_NOT_AFTER_UNIX, SIM_NOT_BEFORE_UNIX};
use tl_evidence::tdx::{Quote, HEADER_LEN, TD10_BODY_LEN};
use tl_evidence::verify::{verify_bundle, TrustAnchors, VerifyOptions};

const SEED: [u8; 32] = [7u8; 32];
const NOW: u64 = 1_760_000_000; // 2025-10-09

fn bundle(quote: Vec<u8>) -> EvidenceBundle {
    EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote,
        certificates: vec![],
    })
}

fn sim_opts(sim: &SimTee) -> VerifyOptions {
    VerifyOptions::new(NOW, TrustAnchors::simulated(sim.root_certificate_der()))
}

fn code(sim: &SimTee, quote: Vec<u8>) -> &'static str {
    match verify_bundle(&bundle(quote), &sim_opts(sim)) {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

#[test]
fn sim_quote_verifies_with_simulated_root() {
    let sim = SimTee::from_seed(SEED);
    let rd = [0x5au8; 64];
    let mut m = SimMeasurements::default();
    m.rtmr[3] = [3u8; 48];
    let v = verify_bundle(&bundle(sim.tdx_quote(&rd, &m)), &sim_opts(&sim)).expect("verifies");
    let c = &v.claims;
    assert_eq!(c.tee, TeeKind::Tdx);
    assert!(c.simulated);
    assert!(!c.debug);
    assert_eq!(c.tcb_status, TcbStatus::UpToDate);
    assert_eq!(sim.tcb(), TcbStatus::UpToDate);
    assert_eq!(c.report_data, rd);
    let t = c.tdx.as_ref().expect("tdx claims");
    assert_eq!(t.mrtd, m.mrtd);
    assert_eq!(t.rtmr, m.rtmr.to_vec());
    assert_eq!(t.td_attributes, m.td_attributes);
    assert_eq!(t.xfam, m.xfam);
    assert_eq!(t.tee_tcb_svn, m.tee_tcb_svn);
    assert_eq!(t.mrservicetd, None);
    assert_eq!(v.pck.map(|p| p.fmspc), Some(tl_evidence::sim::SIM_FMSPC));
}

#[test]
fn debug_attribute_is_reported() {
    let sim = SimTee::from_seed(SEED);
    // DEBUG (bit 0) or a profiling bit of the TUD byte (4 to 6): a TD under
    // debug, left to the acceptance policy.
    for tud in [0x01u64, 0x10, 0x20, 0x40, 0x71] {
        let m = SimMeasurements {
            td_attributes: 0x1000_0000 | tud,
            ..Default::default()
        };
        let v = verify_bundle(&bundle(sim.tdx_quote(&[0; 64], &m)), &sim_opts(&sim)).expect("ok");
        assert!(v.claims.debug, "TUD {tud:#x}");
        let r = tl_evidence::AcceptPolicy::default()
            .evaluate(&v.claims)
            .expect_err("debug refused by default");
        assert!(r.iter().any(|r| r.code == "DEBUG_NOT_ALLOWED"), "{r:?}");
    }
}

/// Attributes Intel's verifier and dcap-qvl refuse whatever the policy: each
/// is refused here with `TDX_TD_ATTRIBUTES`, on a quote whose signatures and
/// chain are otherwise valid.
#[test]
fn unsafe_td_attributes_are_refused() {
    let sim = SimTee::from_seed(SEED);
    let sept_ve = 1u64 << 28;
    let mut cases: Vec<(u64, &str)> = vec![
        (0, "SEPT_VE_DISABLE is clear"),
        (sept_ve | 1 << 29, "MIGRATABLE"),
        (sept_ve | 1 << 17, "SERVTD_EXT"),
    ];
    // Every reserved (must-be-zero) bit, one at a time.
    for bit in (1..=3).chain(7..=15).chain(23..=26).chain(32..=61) {
        cases.push((sept_ve | 1u64 << bit, "reserved"));
    }
    for (attrs, why) in cases {
        let m = SimMeasurements {
            td_attributes: attrs,
            ..Default::default()
        };
        let e = verify_bundle(&bundle(sim.tdx_quote(&[0; 64], &m)), &sim_opts(&sim))
            .expect_err("refused");
        assert_eq!(e.code(), "TDX_TD_ATTRIBUTES", "{attrs:#018x}");
        assert!(e.to_string().contains(why), "{attrs:#018x}: {e}");
    }
    // The bits a production TD may carry pass: SEPT_VE_DISABLE with ICSSD,
    // LASS, PKS, KL, TPA and PERFMON (bits 16, 27, 30, 31, 62, 63) and the
    // TDX 1.5 bits 18-22.
    let allowed =
        sept_ve | 1 << 16 | (0x1f << 18) | 1 << 27 | 1 << 30 | 1 << 31 | 1 << 62 | 1 << 63;
    let m = SimMeasurements {
        td_attributes: allowed,
        ..Default::default()
    };
    let v = verify_bundle(&bundle(sim.tdx_quote(&[0; 64], &m)), &sim_opts(&sim)).expect("ok");
    assert!(!v.claims.debug);
}

#[test]
fn simulated_root_needs_explicit_anchor() {
    let sim = SimTee::from_seed(SEED);
    let b = bundle(sim.tdx_quote(&[0; 64], &SimMeasurements::default()));
    let intel = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/tdx/dcap-qvl/TrustedRootCA.der"
    ))
    .expect("test data present");
    let e = verify_bundle(&b, &VerifyOptions::new(NOW, TrustAnchors::intel(intel)))
        .expect_err("must be rejected");
    assert_eq!(e.code(), "SIMULATED_ROOT_NOT_ALLOWED");
    let e = verify_bundle(&b, &VerifyOptions::new(NOW, TrustAnchors::default()))
        .expect_err("must be rejected");
    assert_eq!(e.code(), "EVIDENCE_NO_TRUST_ANCHOR");
}

#[test]
fn other_seed_is_untrusted() {
    let sim = SimTee::from_seed(SEED);
    let other = SimTee::from_seed([8u8; 32]);
    let q = other.tdx_quote(&[0; 64], &SimMeasurements::default());
    assert_eq!(code(&sim, q), "CERT_UNTRUSTED_ROOT");
}

#[test]
fn derivation_is_deterministic() {
    let a = SimTee::from_seed(SEED);
    let b = SimTee::from_seed(SEED);
    assert_eq!(a.root_certificate_der(), b.root_certificate_der());
    assert_eq!(a.root_certificate_pem(), b.root_certificate_pem());
    let m = SimMeasurements::default();
    assert_eq!(a.tdx_quote(&[1; 64], &m), b.tdx_quote(&[1; 64], &m));
    assert_ne!(
        a.root_certificate_der(),
        SimTee::from_seed([8u8; 32]).root_certificate_der()
    );
}

#[test]
fn validity_window_is_enforced() {
    let sim = SimTee::from_seed(SEED);
    let b = bundle(sim.tdx_quote(&[0; 64], &SimMeasurements::default()));
    let at = |t| {
        verify_bundle(
            &b,
            &VerifyOptions::new(t, TrustAnchors::simulated(sim.root_certificate_der())),
        )
        .map(|_| ())
        .map_err(|e| e.code())
    };
    assert_eq!(at(SIM_NOT_BEFORE_UNIX), Ok(()));
    assert_eq!(at(SIM_NOT_AFTER_UNIX), Ok(()));
    assert_eq!(at(SIM_NOT_BEFORE_UNIX - 1), Err("CERT_NOT_YET_VALID"));
    assert_eq!(at(SIM_NOT_AFTER_UNIX + 1), Err("CERT_EXPIRED"));
}

#[test]
fn every_signed_byte_is_covered() {
    let sim = SimTee::from_seed(SEED);
    let q = sim.tdx_quote(&[9; 64], &SimMeasurements::default());
    for i in 0..HEADER_LEN + TD10_BODY_LEN {
        let mut t = q.clone();
        t[i] ^= 0x01;
        let c = code(&sim, t);
        let expect: &[&str] = match i {
            // version, attestation key type, TEE type
            0..=7 => &["EVIDENCE_UNSUPPORTED", "EVIDENCE_MALFORMED"],
            // QE vendor ID: Intel's only, checked before any signature
            12..=27 => &["EVIDENCE_UNSUPPORTED"],
            _ => &["TDX_QUOTE_SIGNATURE"],
        };
        assert!(expect.contains(&c), "byte {i}: {c}");
    }
}

/// Offsets inside a simulated quote's signature data.
struct Layout {
    quote_sig: usize,
    ak: usize,
    qe_report: usize,
    qe_sig: usize,
    qe_auth: usize,
    pem: usize,
    pem_len: usize,
}

fn layout(q: &[u8]) -> Layout {
    let parsed = Quote::parse(q).expect("parses");
    let quote_sig = HEADER_LEN + TD10_BODY_LEN + 4;
    let ak = quote_sig + 64;
    let qe_report = ak + 64 + 6;
    let qe_sig = qe_report + 384;
    let qe_auth = qe_sig + 64 + 2;
    let pem = qe_auth + parsed.qe_auth_data.len() + 6;
    assert_eq!(&q[pem..], &parsed.pck_chain_pem[..]);
    Layout {
        quote_sig,
        ak,
        qe_report,
        qe_sig,
        qe_auth,
        pem,
        pem_len: parsed.pck_chain_pem.len(),
    }
}

#[test]
fn signature_data_tampering_is_rejected_with_its_code() {
    let sim = SimTee::from_seed(SEED);
    let q = sim.tdx_quote(&[9; 64], &SimMeasurements::default());
    let l = layout(&q);
    let flip = |i: usize| {
        let mut t = q.clone();
        t[i] ^= 0x01;
        code(&sim, t)
    };
    for i in l.quote_sig..l.quote_sig + 64 {
        assert_eq!(flip(i), "TDX_QUOTE_SIGNATURE", "quote signature byte {i}");
    }
    for i in l.ak..l.ak + 64 {
        assert_eq!(flip(i), "TDX_QE_BINDING", "attestation key byte {i}");
    }
    for i in l.qe_report..l.qe_report + 384 {
        assert_eq!(flip(i), "TDX_QE_REPORT_SIGNATURE", "QE report byte {i}");
    }
    for i in l.qe_sig..l.qe_sig + 64 {
        assert_eq!(flip(i), "TDX_QE_REPORT_SIGNATURE", "QE signature byte {i}");
    }
    for i in l.qe_auth..l.qe_auth + 32 {
        assert_eq!(flip(i), "TDX_QE_BINDING", "QE auth data byte {i}");
    }
    let chain_codes = [
        "EVIDENCE_MALFORMED",
        "TDX_PCK_CHAIN",
        "CERT_UNTRUSTED_ROOT",
        "CERT_EXPIRED",
        "CERT_NOT_YET_VALID",
    ];
    for i in (l.pem..l.pem + l.pem_len).step_by(7) {
        let c = flip(i);
        assert!(chain_codes.contains(&c), "PEM byte {i}: {c}");
    }
    // Every length field and structure byte between the parts.
    for i in [
        l.quote_sig - 4,
        l.quote_sig - 1,
        l.ak + 64,
        l.ak + 66,
        l.qe_auth - 2,
        l.pem - 6,
        l.pem - 4,
    ] {
        assert_ne!(flip(i), "OK", "structure byte {i}");
    }
}

#[test]
fn truncated_and_extended_sim_quotes() {
    let sim = SimTee::from_seed(SEED);
    let q = sim.tdx_quote(&[9; 64], &SimMeasurements::default());
    for n in 0..q.len() {
        assert_eq!(code(&sim, q[..n].to_vec()), "EVIDENCE_MALFORMED", "len {n}");
    }
    let mut ext = q.clone();
    ext.extend_from_slice(&[0u8; 70]);
    assert_eq!(
        code(&sim, ext),
        "OK",
        "trailing bytes are not signed and are ignored"
    );
}

#[test]
fn gpu_evidence_is_not_passed_unchecked() {
    let sim = SimTee::from_seed(SEED);
    let mut b = bundle(sim.tdx_quote(&[0; 64], &SimMeasurements::default()));
    b.gpus.push(tl_evidence::bundle::GpuEvidence {
        index: 0,
        report: vec![1],
        certificates: vec![],
    });
    assert_eq!(
        verify_bundle(&b, &sim_opts(&sim))
            .expect_err("must be rejected")
            .code(),
        "GPU_NONCE_MISSING"
    );
}

#[test]
fn binding_check() {
    use tl_evidence::binding::{gpu_evidence_digest, Binding};
    let sim = SimTee::from_seed(SEED);
    let binding = Binding {
        nonce: b"nonce",
        signing_public_key: b"spki",
        encryption_public_key: b"hpke",
        gpu_evidence_digest: gpu_evidence_digest([]),
        tpm_ak_digest: None,
    };
    let q = sim.tdx_quote(&binding.report_data(), &SimMeasurements::default());
    let v = verify_bundle(&bundle(q), &sim_opts(&sim)).expect("verifies");
    v.check_binding(&binding).expect("binding matches");
    let other = Binding {
        nonce: b"other",
        ..binding
    };
    assert_eq!(
        v.check_binding(&other)
            .expect_err("must be rejected")
            .code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
}

/// Regression pins for seed = 32 zero bytes: the derivation, the
/// certificate encoding and the deterministic signatures must not drift, or
/// roots handed to verifiers stop matching. (MRTD is SHA-384 of a fixed
/// string and was checked with an independent SHA-384.)
#[test]
fn known_answer_zero_seed() {
    use sha2::Digest;
    let sim = SimTee::from_seed([0u8; 32]);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(sim.root_certificate_der())),
        "44220a0b1f89d605680cfcaab94b9b5b8986f226c427bc2b7890df694b3dff9d"
    );
    assert_eq!(
        hex::encode(sim.attestation_public_key()),
        "9c31488a1a91949dd20460c8c3fbd25a2bb4dc2eb6da4e4c55029a87ed723826\
         ac4879962049c0a2916def2ca878745476508efa4d13e23574e426f275611779"
    );
    let m = SimMeasurements::default();
    assert_eq!(
        hex::encode(m.mrtd),
        "d93bb2cf8e5537b2b6e1a55d54a6c4323007bf8c5cc4e8ef0c3c61857eb51e02\
         0835d472f2908545f01dfccf4d692b0f"
    );
    let q = sim.tdx_quote(&[0u8; 64], &m);
    assert_eq!(q.len(), 4269);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&q)),
        "c30647a63d3205fa1abbd9a4e2e6a1a7849ea68a949706c6e1cbf2756b558943"
    );
}

/// A quote must name Intel's QE (Intel's QVL checks every quote), and under
/// Intel's root its leaf must be an SGX PCK Certificate by name: the
/// simulated chain, configured as if its root were Intel's, fails the
/// second.
#[test]
fn intel_root_needs_intel_qe_and_a_pck_leaf() {
    use tl_evidence::sim::{SimQuoteOptions, INTEL_QE_VENDOR_ID};
    use tl_evidence::tdx::verify::verify_quote_signatures;
    let sim = SimTee::from_seed(SEED);
    let as_intel = TrustAnchors::intel(sim.root_certificate_der());
    let m = SimMeasurements::default();
    let err = |q: &[u8]| {
        verify_quote_signatures(q, &as_intel, NOW)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut other_vendor = INTEL_QE_VENDOR_ID;
    other_vendor[0] ^= 1;
    let other_qe = SimQuoteOptions {
        qe_vendor_id: other_vendor,
        ..SimQuoteOptions::default()
    };
    assert_eq!(
        err(&sim.tdx_quote_with(&[0; 64], &m, &other_qe)),
        Err("unsupported evidence: QE vendor ID is not Intel's".into())
    );
    let intel_qe = SimQuoteOptions::default();
    assert_eq!(intel_qe.qe_vendor_id, INTEL_QE_VENDOR_ID);
    assert_eq!(
        err(&sim.tdx_quote_with(&[0; 64], &m, &intel_qe)),
        Err(
            "TDX PCK certificate chain invalid: leaf subject does not name an SGX PCK Certificate"
                .into()
        )
    );
    // Under the simulated root the leaf's name is not asked for; the vendor is.
    let sim_root = TrustAnchors::simulated(sim.root_certificate_der());
    assert_eq!(
        verify_quote_signatures(&sim.tdx_quote_with(&[0; 64], &m, &other_qe), &sim_root, NOW)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("EVIDENCE_UNSUPPORTED")
    );
    assert!(
        verify_quote_signatures(&sim.tdx_quote_with(&[0; 64], &m, &intel_qe), &sim_root, NOW)
            .is_ok()
    );
}
