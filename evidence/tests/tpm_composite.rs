//! Composite evidence: a vTPM quote beside a (simulated) TDX quote. The TPM
//! AK is bound into the CPU report data, the quote's extraData is that report
//! data, and the firmware event log (a real one from the test data) replays
//! to the quoted PCRs. Every link is tampered with once.

#![allow(clippy::unwrap_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest, Sha256};
use tl_evidence::binding::{gpu_evidence_digest, tpm_ak_digest, Binding};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle, TpmEvidence};
use tl_evidence::sim::{SimMeasurements, SimTee};
use tl_evidence::tpm::attest::TPM_ALG_SHA256;
use tl_evidence::tpm::TpmQuoteEvidence;
use tl_evidence::verify::{verify_bundle, TrustAnchors, VerifyOptions};
use tl_measured_boot::eventlog::{EventLog, HashAlg};

const NOW: u64 = 1_760_000_000;
const NONCE: &[u8] = b"ca-nonce-0123456789abcdef0123456";
const LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tpm-eventlog/go-eventlog-tpm/cos-101-amd-sev.bin"
);

/// The replayed SHA-256 PCRs 0..=7 of the test log.
fn logged_pcrs(log: &[u8]) -> Vec<[u8; 32]> {
    let r = EventLog::parse(log).expect("log parses").replay();
    (0..8)
        .map(|i| {
            r.value(HashAlg::SHA256, i)
                .expect("the log replays SHA-256")
                .try_into()
                .expect("32 bytes")
        })
        .collect()
}

/// A TPMS_ATTEST quote over SHA-256 PCRs 0..=7.
fn attest(extra: &[u8], pcrs: &[[u8; 32]]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&0xff54_4347u32.to_be_bytes());
    a.extend_from_slice(&0x8018u16.to_be_bytes());
    a.extend_from_slice(&[0, 0]); // qualifiedSigner
    a.extend_from_slice(&(extra.len() as u16).to_be_bytes());
    a.extend_from_slice(extra);
    a.extend_from_slice(&[0; 17]); // clock info
    a.extend_from_slice(&[0; 8]); // firmware version
    a.extend_from_slice(&1u32.to_be_bytes());
    a.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    a.extend_from_slice(&[3, 0xff, 0, 0]); // PCRs 0..=7
    let mut h = Sha256::new();
    for p in pcrs {
        h.update(p);
    }
    a.extend_from_slice(&32u16.to_be_bytes());
    a.extend_from_slice(&h.finalize());
    a
}

fn sign(ak: &EcdsaKeyPair, msg: &[u8]) -> Vec<u8> {
    let sig = ak.sign(&SystemRandom::new(), msg).expect("sign");
    let rs = sig.as_ref();
    let mut s = vec![0x00, 0x18, 0x00, 0x0b, 0, 32];
    s.extend_from_slice(&rs[..32]);
    s.extend_from_slice(&[0, 32]);
    s.extend_from_slice(&rs[32..]);
    s
}

/// SubjectPublicKeyInfo DER of a P-256 key (uncompressed point).
fn spki(ak: &EcdsaKeyPair) -> Vec<u8> {
    let mut v = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    v.extend_from_slice(ak.public_key().as_ref());
    v
}

/// (PCR, offset of the SHA-256 digest) of the first event after the
/// SHA-1-format Spec ID event of a crypto-agile log.
fn first_sha256_digest(log: &[u8]) -> (u32, usize) {
    let u32le = |o: usize| u32::from_le_bytes(log[o..o + 4].try_into().unwrap());
    let u16le = |o: usize| u16::from_le_bytes(log[o..o + 2].try_into().unwrap());
    let first = 4 + 4 + 20 + 4 + u32le(28) as usize;
    let pcr = u32le(first);
    let count = u32le(first + 8);
    let mut o = first + 12;
    for _ in 0..count {
        let alg = u16le(o);
        let len = match alg {
            0x0004 => 20,
            0x000b => 32,
            0x000c => 48,
            0x000d => 64,
            other => panic!("alg {other:#x}"),
        };
        if alg == 0x000b {
            return (pcr, o + 2);
        }
        o += 2 + len;
    }
    panic!("no SHA-256 digest");
}

struct Case {
    sim: SimTee,
    ak: EcdsaKeyPair,
    log: Vec<u8>,
    pcrs: Vec<[u8; 32]>,
}

impl Case {
    fn new() -> Case {
        let log = std::fs::read(LOG).unwrap_or_else(|e| panic!("{LOG}: {e}"));
        let pcrs = logged_pcrs(&log);
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let ak = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("pkcs8");
        Case {
            sim: SimTee::from_seed([3; 32]),
            ak,
            log,
            pcrs,
        }
    }

    fn binding<'a>(&self, ak_public: &[u8]) -> Binding<'a> {
        Binding {
            nonce: NONCE,
            signing_public_key: b"spki",
            encryption_public_key: &[9u8; 32],
            gpu_evidence_digest: gpu_evidence_digest([]),
            tpm_ak_digest: Some(tpm_ak_digest(ak_public)),
        }
    }

    /// A bundle whose TDX report data binds `bound_ak` and whose TPM quote
    /// (extraData `extra`, or the report data) is signed by this case's AK.
    fn bundle(&self, bound_ak: &[u8], extra: Option<&[u8]>, log: &[u8]) -> EvidenceBundle {
        let rd = self.binding(bound_ak).report_data();
        let a = attest(extra.unwrap_or(&rd), &self.pcrs);
        let ev = TpmQuoteEvidence {
            signature: sign(&self.ak, &a),
            attest: a,
            ak_public: spki(&self.ak),
            pcrs: [(
                "sha256".to_string(),
                self.pcrs
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i as u32, hex::encode(p)))
                    .collect(),
            )]
            .into_iter()
            .collect(),
        };
        EvidenceBundle {
            tpm: Some(TpmEvidence {
                quote: ev.to_json(),
                event_log: log.to_vec(),
            }),
            ..EvidenceBundle::new(CpuEvidence {
                kind: CpuEvidenceKind::TdxQuote,
                quote: self.sim.tdx_quote(&rd, &SimMeasurements::default()),
                certificates: vec![],
            })
        }
    }

    fn opts(&self) -> VerifyOptions {
        VerifyOptions::new(
            NOW,
            TrustAnchors::simulated(self.sim.root_certificate_der()),
        )
    }
}

#[test]
fn composite_evidence_verifies_with_replayed_log() {
    let c = Case::new();
    let ak = spki(&c.ak);
    let b = c.bundle(&ak, None, &c.log);
    assert_eq!(b.tpm_ak_digest(), Some(tpm_ak_digest(&ak)));
    let v = verify_bundle(&b, &c.opts()).expect("composite verifies");
    v.check_binding(&c.binding(&ak)).expect("binding");
    let tpm = v.claims.tpm.as_ref().expect("TPM claims");
    assert_eq!(tpm.pcrs["sha256"].len(), 8);
    assert_eq!(tpm.pcrs["sha256"][&0], hex::encode(c.pcrs[0]));
    assert_eq!(
        tpm.event_log_sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&c.log)).as_str())
    );
    assert_eq!(v.claims.tee, tl_evidence::TeeKind::Tdx);
    // The bundle round-trips through JSON, and its digest covers the TPM part.
    let back: EvidenceBundle = serde_json::from_slice(&b.to_json()).expect("json");
    assert_eq!(back, b);
    let mut no_tpm = b.clone();
    no_tpm.tpm = None;
    assert_ne!(no_tpm.digest(), b.digest());
    // Without a log the quote still verifies, with no log digest claimed.
    let v = verify_bundle(&c.bundle(&ak, None, &[]), &c.opts()).expect("no log");
    assert_eq!(v.claims.tpm.expect("tpm").event_log_sha256, None);
}

#[test]
fn a_tpm_part_never_changes_the_encoding_of_bundles_without_one() {
    let c = Case::new();
    let b = c.bundle(&spki(&c.ak), None, &[]);
    let mut plain = b.clone();
    plain.tpm = None;
    let json = String::from_utf8(plain.to_json()).expect("utf-8");
    assert!(!json.contains("tpm"), "{json}");
    assert_eq!(plain.tpm_ak_digest(), None);
}

#[test]
fn an_unbound_ak_fails_the_binding() {
    let c = Case::new();
    // The CPU report binds another AK and the quote's extraData is that
    // report data: every check of the bundle alone passes, but the binding
    // rebuilt with the AK that signed the quote does not hold.
    let b = c.bundle(b"another AK", None, &c.log);
    let v = verify_bundle(&b, &c.opts()).expect("quote checks pass");
    let ak = spki(&c.ak);
    assert_eq!(
        v.check_binding(&c.binding(&ak)).expect_err("AK").code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
    assert_eq!(
        v.check_binding(&c.binding(b"another AK"))
            .expect_err("AK digest differs from the verified one")
            .code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
    // A binding that omits the TPM fails too.
    let mut without = c.binding(&ak);
    without.tpm_ak_digest = None;
    assert!(v.check_binding(&without).is_err());
}

#[test]
fn tampered_tpm_parts_are_rejected_with_their_codes() {
    let c = Case::new();
    let ak = spki(&c.ak);
    // extraData other than the report data.
    let b = c.bundle(&ak, Some(&[0u8; 64]), &c.log);
    assert_eq!(
        verify_bundle(&b, &c.opts()).unwrap_err().code(),
        "TPM_NONCE_MISMATCH"
    );
    // A flipped byte in the SHA-256 digest of the log's first crypto-agile
    // event (a PCR the quote covers).
    let mut log = c.log.clone();
    let (pcr, at) = first_sha256_digest(&log);
    assert!(pcr < 8, "PCR {pcr}");
    log[at] ^= 1;
    let err = verify_bundle(&c.bundle(&ak, None, &log), &c.opts()).unwrap_err();
    assert_eq!(err.code(), "TPM_EVENT_LOG_MISMATCH", "{err}");
    assert!(
        err.to_string()
            .contains(&format!("sha256 PCR{pcr} (events ")),
        "{err}"
    );
    // A log that extends none of the quoted PCRs (only its Spec ID header)
    // explains nothing: refused, not accepted as "replayed".
    let header_len =
        4 + 4 + 20 + 4 + u32::from_le_bytes(c.log[28..32].try_into().unwrap()) as usize;
    let err = verify_bundle(&c.bundle(&ak, None, &c.log[..header_len]), &c.opts()).unwrap_err();
    assert_eq!(err.code(), "TPM_EVENT_LOG_MISMATCH", "{err}");
    assert!(
        err.to_string().contains("none of the expected registers"),
        "{err}"
    );
    // A log cut short is malformed.
    let code = verify_bundle(&c.bundle(&ak, None, &c.log[..c.log.len() - 3]), &c.opts())
        .unwrap_err()
        .code();
    assert_eq!(code, "TPM_EVENT_LOG_MALFORMED");
    // A flipped byte in the signature, in the attest, in a PCR value.
    let good = c.bundle(&ak, None, &c.log);
    let ev = TpmQuoteEvidence::from_json(&good.tpm.as_ref().unwrap().quote).unwrap();
    for (what, want) in [
        ("signature", "TPM_QUOTE_SIGNATURE"),
        ("attest", "TPM_QUOTE_SIGNATURE"),
        ("pcr", "TPM_PCR_DIGEST_MISMATCH"),
    ] {
        let mut e = ev.clone();
        match what {
            "signature" => {
                let n = e.signature.len();
                e.signature[n - 1] ^= 1
            }
            "attest" => e.attest[10] ^= 1,
            _ => {
                let p = e.pcrs.get_mut("sha256").unwrap().get_mut(&3).unwrap();
                *p = hex::encode([0x11u8; 32]);
            }
        }
        let mut b = good.clone();
        b.tpm.as_mut().unwrap().quote = e.to_json();
        let err = verify_bundle(&b, &c.opts()).unwrap_err();
        assert_eq!(err.code(), want, "{what}: {err}");
    }
    // A quote replayed from an earlier enrollment (another nonce).
    let mut other = good.clone();
    let rd_old = Binding {
        nonce: b"an earlier nonce",
        ..c.binding(&ak)
    }
    .report_data();
    other.tpm = c.bundle(&ak, Some(&rd_old), &c.log).tpm;
    assert_eq!(
        verify_bundle(&other, &c.opts()).unwrap_err().code(),
        "TPM_NONCE_MISMATCH"
    );
    // Composite TPM evidence beside a TPM quote as CPU evidence.
    let mut b = good.clone();
    b.cpu.kind = CpuEvidenceKind::TpmQuote;
    b.cpu.quote = b.tpm.as_ref().unwrap().quote.clone();
    let anchors = TrustAnchors {
        tpm_pinned_aks: vec![ak.clone()],
        ..TrustAnchors::simulated(c.sim.root_certificate_der())
    };
    assert_eq!(
        verify_bundle(&b, &VerifyOptions::new(NOW, anchors))
            .unwrap_err()
            .code(),
        "TPM_COMPOSITE_MISPLACED"
    );
    // Garbage where the quote JSON belongs.
    let mut b = good;
    b.tpm.as_mut().unwrap().quote = b"{".to_vec();
    assert_eq!(
        verify_bundle(&b, &c.opts()).unwrap_err().code(),
        "TPM_ATTEST_MALFORMED"
    );
}
