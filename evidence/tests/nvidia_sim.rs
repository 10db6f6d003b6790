//! GPU evidence inside `verify_bundle`: a test GPU (P-384 chain to a test
//! root, SPDM report in NVIDIA's layout) answering nonces derived from the
//! enrollment nonce, with a simulated TDX quote binding the reports.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
use rcgen::{BasicConstraints, CertificateParams, CustomExtension, IsCa, KeyPair, KeyUsagePurpose};
use tl_evidence::binding::{gpu_evidence_digest, gpu_nonce, Binding};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle, GpuEvidence};
use tl_evidence::nvidia::spdm::opaque_type as ot;
use tl_evidence::nvidia::GpuAnchors;
use tl_evidence::sim::{SimMeasurements, SimTee};
use tl_evidence::verify::{verify_bundle, TrustAnchors, VerifyOptions};

const NOW: u64 = 1_760_000_000;
const NONCE: &[u8] = b"enrollment nonce";

/// A test GPU: root -> leaf (with an NVIDIA-style FWID extension).
struct TestGpu {
    root_der: Vec<u8>,
    chain: Vec<Vec<u8>>,
    signer: EcdsaKeyPair,
    fwid: [u8; 48],
}

impl TestGpu {
    fn new(fwid_byte: u8) -> TestGpu {
        let root_kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("root key");
        let mut rp = CertificateParams::new(Vec::<String>::new()).expect("params");
        rp.distinguished_name
            .push(rcgen::DnType::CommonName, "test GPU root");
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let root = rp.self_signed(&root_kp).expect("root");
        let leaf_kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("leaf key");
        let fwid = [fwid_byte; 48];
        // SEQUENCE { INTEGER 1, SEQUENCE { OID sha384, OCTET STRING fwid } }
        let mut fw = vec![
            0x30, 0x3d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x04,
            0x30,
        ];
        fw.extend_from_slice(&fwid);
        let mut ext = vec![0x30, (3 + fw.len()) as u8, 0x02, 0x01, 0x01];
        ext.extend_from_slice(&fw);
        let mut lp = CertificateParams::new(Vec::<String>::new()).expect("params");
        lp.distinguished_name
            .push(rcgen::DnType::CommonName, "test GPU leaf");
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        lp.custom_extensions = vec![CustomExtension::from_oid_content(
            &[2, 23, 133, 5, 4, 1],
            ext,
        )];
        let leaf = lp.signed_by(&leaf_kp, &root, &root_kp).expect("leaf");
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &leaf_kp.serialize_der())
                .expect("signer");
        TestGpu {
            root_der: root.der().to_vec(),
            chain: vec![leaf.der().to_vec(), root.der().to_vec()],
            signer,
            fwid,
        }
    }

    /// An SPDM 1.1 GET_MEASUREMENTS request+response answering `nonce`.
    fn report(&self, nonce: &[u8; 32]) -> Vec<u8> {
        let mut r = vec![0x11, 0xe0, 0x01, 0xff];
        r.extend_from_slice(nonce);
        r.push(0);
        r.extend_from_slice(&[0x11, 0x60, 0, 0, 2]);
        let mut rec = Vec::new();
        for i in 1u8..=2 {
            rec.extend_from_slice(&[i, 1, 51, 0, 1, 48, 0]);
            rec.extend_from_slice(&[i; 48]);
        }
        r.extend_from_slice(&(rec.len() as u32).to_le_bytes()[..3]);
        r.extend_from_slice(&rec);
        r.extend_from_slice(&[0xaa; 32]);
        let mut op = Vec::new();
        for (k, v) in [
            (ot::DRIVER_VERSION, b"580.95.05\0".to_vec()),
            (
                ot::VBIOS_VERSION,
                vec![0x00, 0x74, 0x00, 0x96, 0x1a, 0, 0, 0],
            ),
            (ot::FWID, self.fwid.to_vec()),
        ] {
            op.extend_from_slice(&k.to_le_bytes());
            op.extend_from_slice(&(v.len() as u16).to_le_bytes());
            op.extend_from_slice(&v);
        }
        r.extend_from_slice(&(op.len() as u16).to_le_bytes());
        r.extend_from_slice(&op);
        let sig = self.signer.sign(&SystemRandom::new(), &r).expect("sign");
        r.extend_from_slice(sig.as_ref());
        r
    }
}

struct Setup {
    sim: SimTee,
    gpu: TestGpu,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            sim: SimTee::from_seed([9; 32]),
            gpu: TestGpu::new(0x42),
        }
    }

    fn opts(&self) -> VerifyOptions {
        let mut o = VerifyOptions::new(
            NOW,
            TrustAnchors::simulated(self.sim.root_certificate_der()),
        );
        o.expected_nonce = Some(NONCE.to_vec());
        o.gpu_anchors = GpuAnchors::from_der(&[self.gpu.root_der.as_slice()]).expect("anchor");
        o
    }

    /// A bundle with the given GPU entries and a quote binding them.
    fn bundle(&self, gpus: Vec<GpuEvidence>) -> (EvidenceBundle, [u8; 32]) {
        let digest = gpu_evidence_digest(gpus.iter().map(|g| g.report.as_slice()));
        let rd = binding(digest).report_data();
        let b = EvidenceBundle {
            gpus,
            ..EvidenceBundle::new(CpuEvidence {
                kind: CpuEvidenceKind::TdxQuote,
                quote: self.sim.tdx_quote(&rd, &SimMeasurements::default()),
                certificates: vec![],
            })
        };
        (b, digest)
    }

    fn entry(&self, index: u32, nonce_index: u32) -> GpuEvidence {
        GpuEvidence {
            index,
            report: self.gpu.report(&gpu_nonce(NONCE, nonce_index)),
            certificates: self.gpu.chain.clone(),
        }
    }
}

fn binding(gpu_evidence_digest: [u8; 32]) -> Binding<'static> {
    Binding {
        nonce: NONCE,
        signing_public_key: b"spki",
        encryption_public_key: b"hpke",
        gpu_evidence_digest,
        tpm_ak_digest: None,
    }
}

#[test]
fn two_gpus_verify_and_bind() {
    let s = Setup::new();
    let (b, digest) = s.bundle(vec![s.entry(0, 0), s.entry(1, 1)]);
    let v = verify_bundle(&b, &s.opts()).expect("verifies");
    assert_eq!(v.claims.gpus.len(), 2);
    let g = &v.claims.gpus[1];
    assert_eq!(g.index, 1);
    assert!(g.cc_mode);
    assert!(!g.debug);
    assert_eq!(g.driver_version, "580.95.05");
    assert_eq!(g.vbios_version, "96.00.74.00.1a");
    assert_eq!(
        g.measurements.get(&2).map(String::as_str),
        Some(hex::encode([2u8; 48]).as_str())
    );
    assert_eq!(v.gpu_devices[0].fwid, hex::encode([0x42u8; 48]));
    v.check_binding(&binding(digest)).expect("binding holds");
}

#[test]
fn nonce_missing_mismatch_and_swapped_index() {
    let s = Setup::new();
    let (b, _) = s.bundle(vec![s.entry(0, 0)]);
    let mut o = s.opts();
    o.expected_nonce = None;
    assert_eq!(
        verify_bundle(&b, &o).expect_err("missing").code(),
        "GPU_NONCE_MISSING"
    );
    o.expected_nonce = Some(b"another nonce".to_vec());
    assert_eq!(
        verify_bundle(&b, &o).expect_err("other").code(),
        "GPU_NONCE_MISMATCH"
    );
    // A report made for index 1 presented as index 0.
    let (b, _) = s.bundle(vec![s.entry(0, 1)]);
    assert_eq!(
        verify_bundle(&b, &s.opts()).expect_err("swap").code(),
        "GPU_NONCE_MISMATCH"
    );
    // The same index twice.
    let (b, _) = s.bundle(vec![s.entry(0, 0), s.entry(0, 0)]);
    assert_eq!(
        verify_bundle(&b, &s.opts()).expect_err("dup").code(),
        "GPU_INDEX_DUPLICATE"
    );
}

#[test]
fn default_anchors_reject_a_test_gpu() {
    let s = Setup::new();
    let (b, _) = s.bundle(vec![s.entry(0, 0)]);
    let mut o = s.opts();
    o.gpu_anchors = GpuAnchors::nvidia();
    assert_eq!(
        verify_bundle(&b, &o).expect_err("root").code(),
        "GPU_UNTRUSTED_ROOT"
    );
}

/// A report taken from another machine (valid signature and right nonce)
/// is relayed into a bundle whose CPU quote did not bind it: the binding
/// check fails.
#[test]
fn relayed_report_fails_the_binding_check() {
    let s = Setup::new();
    // The quote binds "no GPU"...
    let (mut b, empty_digest) = s.bundle(vec![]);
    // ...and a valid report is added afterwards.
    b.gpus.push(s.entry(0, 0));
    let v = verify_bundle(&b, &s.opts()).expect("each part verifies on its own");
    assert_eq!(
        v.check_binding(&binding(empty_digest))
            .expect_err("relayed")
            .code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
    let with_gpu = gpu_evidence_digest([b.gpus[0].report.as_slice()]);
    assert_eq!(
        v.check_binding(&binding(with_gpu))
            .expect_err("quote does not bind it")
            .code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
    // Replacing a bound report by another valid one fails the same way.
    let (mut b, digest) = s.bundle(vec![s.entry(0, 0)]);
    b.gpus[0] = GpuEvidence {
        report: s.gpu.report(&gpu_nonce(NONCE, 0)),
        ..b.gpus[0].clone()
    };
    let v = verify_bundle(&b, &s.opts()).expect("verifies");
    assert_eq!(
        v.check_binding(&binding(digest))
            .expect_err("swapped")
            .code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
}

#[test]
fn tampered_gpu_report_and_chain() {
    let s = Setup::new();
    let mut e = s.entry(0, 0);
    let last = e.report.len() - 1;
    e.report[last] ^= 1;
    let (b, _) = s.bundle(vec![e]);
    assert_eq!(
        verify_bundle(&b, &s.opts()).expect_err("sig").code(),
        "GPU_REPORT_SIGNATURE"
    );
    let mut e = s.entry(0, 0);
    e.certificates.truncate(1);
    let (b, _) = s.bundle(vec![e]);
    assert_eq!(
        verify_bundle(&b, &s.opts()).expect_err("chain").code(),
        "GPU_CHAIN"
    );
    // Another GPU's chain (different key and FWID).
    let other = TestGpu::new(0x43);
    let mut e = s.entry(0, 0);
    e.certificates = other.chain.clone();
    let (b, _) = s.bundle(vec![e]);
    let mut o = s.opts();
    o.gpu_anchors = GpuAnchors::from_der(&[s.gpu.root_der.as_slice(), other.root_der.as_slice()])
        .expect("anchors");
    assert_eq!(
        verify_bundle(&b, &o).expect_err("fwid").code(),
        "GPU_FWID_MISMATCH"
    );
}
