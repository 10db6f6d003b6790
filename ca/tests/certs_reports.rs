//! Leaf issuance and verification, run reports and order acceptances,
//! without the service.
#![allow(clippy::unwrap_used)]

use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::{engine::general_purpose::STANDARD, Engine};
use tl_ca::certs::{der_to_pem, verify_leaf, CertError};
use tl_ca::claims_ext::{format_x25519_text, CertClaims};
use tl_ca::issue::{generate_root, parse_csr, CaKey, LeafRequest};
use tl_ca::report::{self, RunReport, SignedRunReport, Timestamp};
use tl_evidence::{PlatformClaims, TcbStatus, TeeKind};

const NOW: u64 = 1_770_000_000;

fn ca() -> CaKey {
    let (k, r) = generate_root(NOW - 1000).unwrap();
    CaKey::from_pkcs8_and_root(&k, &r).unwrap()
}

fn claims() -> CertClaims {
    CertClaims {
        version: 1,
        platform: PlatformClaims {
            tee: TeeKind::Tdx,
            simulated: true,
            debug: false,
            tcb_status: TcbStatus::UpToDate,
            advisory_ids: vec![],
            report_data: [1; 64],
            tdx: None,
            snp: None,
            tpm: None,
            gpus: vec![],
            nvswitches: Vec::new(),
        },
        encryption_public_key: format_x25519_text(&[2; 32]),
        evidence_digest: [0xee; 32],
        issuance_policy: "test".into(),
    }
}

struct Subject {
    kp: rcgen::KeyPair,
    key: EcdsaKeyPair,
}

fn subject() -> Subject {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &kp.serialize_der()).unwrap();
    Subject { kp, key }
}

fn issue(ca: &CaKey, s: &Subject, now: u64) -> Vec<u8> {
    let csr_der = rcgen::CertificateParams::default()
        .serialize_request(&s.kp)
        .unwrap()
        .der()
        .to_vec();
    let csr = parse_csr(&csr_der).unwrap();
    ca.issue_leaf(&LeafRequest {
        csr: &csr,
        claims: &claims(),
        now_unix: now,
        lifetime_secs: 3600,
    })
    .unwrap()
    .der
}

#[test]
fn leaf_verifies_and_tampering_fails() {
    let ca = ca();
    let s = subject();
    let leaf = issue(&ca, &s, NOW);
    let v = verify_leaf(&leaf, ca.root_der(), NOW).unwrap();
    assert_eq!(v.claims, claims());
    assert_eq!(v.spki_der, s.kp.public_key_der());
    assert_eq!((v.not_before, v.not_after), (NOW - 60, NOW + 3600));
    assert_eq!(v.serial_hex.len(), 32);

    // Validity bounds are inclusive.
    assert!(verify_leaf(&leaf, ca.root_der(), NOW + 3600).is_ok());
    assert_eq!(
        verify_leaf(&leaf, ca.root_der(), NOW + 3601).unwrap_err(),
        CertError::Expired
    );
    assert_eq!(
        verify_leaf(&leaf, ca.root_der(), NOW - 61).unwrap_err(),
        CertError::NotYetValid
    );
    // Another CA (same subject name, other key).
    let other = self::ca();
    assert_eq!(
        verify_leaf(&leaf, other.root_der(), NOW)
            .unwrap_err()
            .code(),
        "CERT_SIGNATURE"
    );
    // Truncation, trailing bytes.
    assert_eq!(
        verify_leaf(&leaf[..leaf.len() - 1], ca.root_der(), NOW)
            .unwrap_err()
            .code(),
        "CERT_MALFORMED"
    );
    let mut longer = leaf.clone();
    longer.push(0);
    assert_eq!(
        verify_leaf(&longer, ca.root_der(), NOW).unwrap_err().code(),
        "CERT_MALFORMED"
    );
    // Every single-byte flip is refused (with some code, never a panic).
    for i in 0..leaf.len() {
        let mut bad = leaf.clone();
        bad[i] ^= 0x01;
        assert!(
            verify_leaf(&bad, ca.root_der(), NOW).is_err(),
            "flip at {i} of {}: {:02x?}",
            leaf.len(),
            &leaf[i.saturating_sub(4)..(i + 4).min(leaf.len())]
        );
    }
    // A flip inside the claims JSON is a signature failure.
    let pos = leaf
        .windows(8)
        .position(|w| w == b"\"test\"}}"[..8].as_ref() || w == b"\"issuanc")
        .unwrap();
    let mut bad = leaf.clone();
    bad[pos + 2] ^= 0x01;
    assert_eq!(
        verify_leaf(&bad, ca.root_der(), NOW).unwrap_err(),
        CertError::Signature
    );
}

#[test]
fn leaf_is_accepted_by_webpki_as_a_client_certificate() {
    // An independent X.509 implementation accepts the hand-written leaf
    // (structure, signature, validity, clientAuth EKU).
    tl_ca::server::install_crypto_provider();
    let ca = ca();
    let leaf = issue(&ca, &subject(), NOW);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            ca.root_der().to_vec(),
        ))
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(roots.into())
        .build()
        .unwrap();
    let now = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW));
    verifier
        .verify_client_cert(&rustls::pki_types::CertificateDer::from(leaf), &[], now)
        .unwrap();
}

#[test]
fn csr_must_be_p256_and_self_signed() {
    for alg in [&rcgen::PKCS_ED25519, &rcgen::PKCS_ECDSA_P384_SHA384] {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        let der = rcgen::CertificateParams::default()
            .serialize_request(&kp)
            .unwrap()
            .der()
            .to_vec();
        assert_eq!(parse_csr(&der).unwrap_err().code(), "ENROLL_CSR_KEY_TYPE");
    }
    let s = subject();
    let der = rcgen::CertificateParams::default()
        .serialize_request(&s.kp)
        .unwrap()
        .der()
        .to_vec();
    assert!(parse_csr(&der).is_ok());
    assert_eq!(
        parse_csr(&der[..10]).unwrap_err().code(),
        "ENROLL_CSR_MALFORMED"
    );
    assert_eq!(parse_csr(b"").unwrap_err().code(), "ENROLL_CSR_MALFORMED");
    for i in 0..der.len() {
        let mut bad = der.clone();
        bad[i] ^= 0x01;
        assert!(
            parse_csr(&bad).is_err(),
            "flip at {i} of {}: {:02x?}",
            der.len(),
            &der[i.saturating_sub(4)..(i + 4).min(der.len())]
        );
    }
}

fn report_for(cert_pem: &str, at: i64) -> RunReport {
    RunReport {
        loader_version: "0.1.0".into(),
        evidence_digest: [0xee; 32],
        certificate_pem: cert_pem.into(),
        order: report::OrderRef {
            family: "f".into(),
            version: 1,
            digest: [3; 32],
        },
        components: vec![],
        outputs: vec![],
        started_at: Timestamp(at - 5),
        finished_at: Timestamp(at),
        exit_status: Some(report::ExitStatus::Signal(9)),
        wipe_done: true,
        event_log_sha256: [4; 32],
        halt: Some(report::Halt {
            code: "ENGINE_KILLED".into(),
            detail: "limit".into(),
        }),
    }
}

#[test]
fn report_signature_and_consistency() {
    let ca = ca();
    let s = subject();
    let leaf = issue(&ca, &s, NOW);
    let pem = der_to_pem("CERTIFICATE", &leaf);
    let chain = format!("{pem}{}", der_to_pem("CERTIFICATE", ca.root_der()));
    let r = report_for(&pem, NOW as i64 + 10);
    let signed = report::sign_report(&r, &s.key, &chain).unwrap();
    assert!(signed
        .report
        .contains("\"finished_at\":\"2026-02-02T02:40:10Z\""));
    assert!(signed.report.contains("\"exit_status\":{\"signal\":9}"));
    let v = report::verify_signed_report(&signed, ca.root_der(), NOW + 20).unwrap();
    assert_eq!(v.report, r);
    // JSON round trip of the envelope.
    let back: SignedRunReport =
        serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
    assert_eq!(back, signed);

    let code = |s: &SignedRunReport| {
        report::verify_signed_report(s, ca.root_der(), NOW + 20)
            .unwrap_err()
            .code()
    };
    // Flipped signature bits.
    let sig = STANDARD.decode(&signed.signature).unwrap();
    for i in [0, 5, sig.len() - 1] {
        let mut bad = signed.clone();
        let mut b = sig.clone();
        b[i] ^= 0x01;
        bad.signature = STANDARD.encode(b);
        assert_eq!(code(&bad), "REPORT_SIGNATURE");
    }
    // Changed report text.
    let mut bad = signed.clone();
    bad.report = bad
        .report
        .replace("\"wipe_done\":true", "\"wipe_done\":false");
    assert_eq!(code(&bad), "REPORT_SIGNATURE");
    // Signed by another key under the same certificate.
    let other = subject();
    let bad = report::sign_report(&r, &other.key, &chain).unwrap();
    assert_eq!(code(&bad), "REPORT_SIGNATURE");
    // Non-canonical text, correctly signed.
    let mut bad = signed.clone();
    bad.report = bad.report.replacen(':', ": ", 1);
    let sig = tl_ca::sign_p256(&s.key, &report::signing_message(&bad.report)).unwrap();
    bad.signature = STANDARD.encode(sig);
    assert_eq!(code(&bad), "REPORT_NOT_CANONICAL");
    // Report names another certificate.
    let other_leaf = der_to_pem("CERTIFICATE", &issue(&ca, &other, NOW));
    let bad = report::sign_report(&report_for(&other_leaf, NOW as i64), &s.key, &chain).unwrap();
    assert_eq!(code(&bad), "REPORT_CERTIFICATE_MISMATCH");
    // Report names other evidence.
    let mut r2 = r.clone();
    r2.evidence_digest = [0; 32];
    let bad = report::sign_report(&r2, &s.key, &chain).unwrap();
    assert_eq!(code(&bad), "REPORT_EVIDENCE_MISMATCH");
    // Finished after the certificate expired, or before it started.
    let bad = report::sign_report(&report_for(&pem, NOW as i64 + 4000), &s.key, &chain).unwrap();
    assert_eq!(code(&bad), "REPORT_TIME");
    let mut r3 = r.clone();
    r3.started_at = Timestamp(NOW as i64 + 11);
    let bad = report::sign_report(&r3, &s.key, &chain).unwrap();
    assert_eq!(code(&bad), "REPORT_TIME");
    // Checked after expiry: refused at the wall clock, accepted at signing time.
    assert_eq!(
        report::verify_signed_report(&signed, ca.root_der(), NOW + 7200)
            .unwrap_err()
            .code(),
        "CERT_EXPIRED"
    );
    assert!(report::verify_signed_report_at_signing_time(&signed, ca.root_der()).is_ok());
    // Another CA's root.
    assert_eq!(
        report::verify_signed_report(&signed, self::ca().root_der(), NOW + 20)
            .unwrap_err()
            .code(),
        "CERT_SIGNATURE"
    );
    // Empty chain.
    let mut bad = signed.clone();
    bad.certificate_chain_pem = String::new();
    assert_eq!(code(&bad), "CERT_EMPTY_CHAIN");
}

#[test]
fn signatures_are_domain_separated() {
    // A report signature is never a valid order acceptance signature.
    let ca = ca();
    let s = subject();
    let pem = der_to_pem("CERTIFICATE", &issue(&ca, &s, NOW));
    let accept = tl_ca::orders::OrderAccept {
        family: "f".into(),
        version: 1,
        order_digest: [0; 32],
    };
    let mut signed = tl_ca::orders::sign_accept(&accept, &s.key, &pem).unwrap();
    assert!(tl_ca::orders::verify_accept(&signed, ca.root_der(), NOW).is_ok());
    let sig = tl_ca::sign_p256(&s.key, &report::signing_message(&signed.accept)).unwrap();
    signed.signature = STANDARD.encode(sig);
    assert_eq!(
        tl_ca::orders::verify_accept(&signed, ca.root_der(), NOW)
            .unwrap_err()
            .code(),
        "ORDER_ACCEPT_SIGNATURE"
    );
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn parsers_are_total(bytes in proptest::collection::vec(any::<u8>(), 0..2048), text in ".{0,512}") {
            let root = generate_root(NOW).unwrap().1;
            let _ = verify_leaf(&bytes, &root, NOW);
            let _ = verify_leaf(&root, &bytes, NOW);
            let _ = parse_csr(&bytes);
            let _ = CertClaims::from_extension_value(&bytes);
            let _ = tl_ca::certs::pem_to_certs(&text);
            let _ = RunReport::from_canonical_json(&text);
            let signed = SignedRunReport {
                report: text.clone(),
                signature: text.clone(),
                certificate_chain_pem: text.clone(),
                quote: None,
            };
            let _ = report::verify_signed_report(&signed, &root, NOW);
            let _ = tl_ca::claims_ext::parse_x25519_text(&text);
        }

        #[test]
        fn truncated_leaves_are_refused(cut in 0usize..2000) {
            let ca = ca();
            let leaf = issue(&ca, &subject(), NOW);
            let cut = cut % leaf.len();
            prop_assert!(verify_leaf(&leaf[..cut], ca.root_der(), NOW).is_err());
        }
    }
}
