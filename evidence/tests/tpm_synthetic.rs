//! ECDSA AKs certified by a P-256 CA chain, and hostile input.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::tpm::attest::TPM_ALG_SHA256;
use tl_evidence::tpm::{
    verify_quote, AkTrust, CertifiedAk, PcrValues, TpmQuoteEvidence, TpmSignature, TpmsAttest,
};
use tl_evidence::{verify_bundle, TrustAnchors, VerifyOptions};

const NOW: u64 = 1_700_000_000;

struct Fixture {
    root_der: Vec<u8>,
    leaf_der: Vec<u8>,
    ak: EcdsaKeyPair,
    spki: Vec<u8>,
}

fn fixture() -> Fixture {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ca key");
    let mut ca = CertificateParams::new(vec![]).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "AK root");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let ak_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ak key");
    let mut leaf = CertificateParams::new(vec![]).expect("params");
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "AK");
    let leaf_cert = leaf.signed_by(&ak_key, &ca_cert, &ca_key).expect("leaf");
    let ak = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &ak_key.serialize_der())
        .expect("pkcs8");
    Fixture {
        root_der: ca_cert.der().to_vec(),
        leaf_der: leaf_cert.der().to_vec(),
        spki: ak_key.public_key_der(),
        ak,
    }
}

fn attest(nonce: &[u8], pcr0: &[u8; 32]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&0xff54_4347u32.to_be_bytes());
    a.extend_from_slice(&0x8018u16.to_be_bytes());
    a.extend_from_slice(&[0, 0]); // qualifiedSigner
    a.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    a.extend_from_slice(nonce);
    a.extend_from_slice(&[0; 17]); // clock info
    a.extend_from_slice(&[0; 8]); // firmware version
    a.extend_from_slice(&1u32.to_be_bytes());
    a.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    a.extend_from_slice(&[3, 1, 0, 0]); // PCR0
    a.extend_from_slice(&32u16.to_be_bytes());
    a.extend_from_slice(&Sha256::digest(pcr0));
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

fn pcrs(pcr0: &[u8; 32]) -> PcrValues {
    [(
        TPM_ALG_SHA256,
        [(0u32, pcr0.to_vec())].into_iter().collect(),
    )]
    .into_iter()
    .collect()
}

#[test]
fn certified_ecdsa_ak_quote_verifies() {
    let f = fixture();
    let pcr0 = [7u8; 32];
    let nonce = [9u8; 64];
    let msg = attest(&nonce, &pcr0);
    let sig = sign(&f.ak, &msg);
    assert!(matches!(
        TpmSignature::parse(&sig).expect("sig"),
        TpmSignature::Ecdsa { .. }
    ));
    let c =
        CertifiedAk::verify(std::slice::from_ref(&f.leaf_der), &f.root_der, NOW).expect("chain");
    let trust = AkTrust::Certificate(c);
    let v = verify_quote(&msg, &sig, &pcrs(&pcr0), Some(&trust), &nonce).expect("verifies");
    assert_eq!(v.ak_trust, "certificate");
    assert_eq!(v.report_data(), nonce);

    // Through a bundle: the AK certificate rides in `certificates`.
    let ev = TpmQuoteEvidence {
        attest: msg.clone(),
        signature: sig.clone(),
        ak_public: f.spki.clone(),
        pcrs: [(
            "sha256".to_string(),
            [(0u32, hex::encode(pcr0))].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
    };
    let bundle = |certs: Vec<Vec<u8>>| {
        EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::TpmQuote,
            quote: ev.to_json(),
            certificates: certs,
        })
    };
    let anchors = TrustAnchors {
        tpm_ak_root_der: Some(f.root_der.clone()),
        ..TrustAnchors::default()
    };
    let opts = VerifyOptions::new(NOW, anchors);
    let v = verify_bundle(&bundle(vec![f.leaf_der.clone()]), &opts).expect("bundle");
    assert_eq!(v.claims.report_data, nonce);
    // No certificate and nothing pinned: untrusted.
    assert_eq!(
        verify_bundle(&bundle(vec![]), &opts)
            .expect_err("none")
            .code(),
        "TPM_AK_UNTRUSTED"
    );
    // A certificate from another CA: untrusted.
    let other = fixture();
    assert_eq!(
        verify_bundle(&bundle(vec![other.leaf_der.clone()]), &opts)
            .expect_err("other CA")
            .code(),
        "TPM_AK_UNTRUSTED"
    );
    // A certificate for another AK from the right CA: untrusted.
    let mut ev2 = ev.clone();
    ev2.ak_public = other.spki.clone();
    let b2 = EvidenceBundle {
        cpu: CpuEvidence {
            quote: ev2.to_json(),
            ..bundle(vec![f.leaf_der.clone()]).cpu
        },
        ..bundle(vec![])
    };
    assert_eq!(
        verify_bundle(&b2, &opts).expect_err("key").code(),
        "TPM_AK_UNTRUSTED"
    );
    // Signed by another key: signature failure.
    let bad_sig = sign(&other.ak, &msg);
    assert_eq!(
        verify_quote(&msg, &bad_sig, &pcrs(&pcr0), Some(&trust), &nonce)
            .expect_err("sig")
            .code(),
        "TPM_QUOTE_SIGNATURE"
    );
    // Expired at the verification time (rcgen's default validity ends in 4096).
    assert_eq!(
        CertifiedAk::verify(
            std::slice::from_ref(&f.leaf_der),
            &f.root_der,
            70_000_000_000
        )
        .expect_err("expired")
        .code(),
        "CERT_EXPIRED"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_are_total(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = TpmsAttest::parse(&b);
        let _ = TpmSignature::parse(&b);
        let _ = tl_evidence::tpm::AkPublic::from_tpm_public(&b);
        let _ = tl_evidence::tpm::AkPublic::from_spki_der(&b);
        let _ = tl_evidence::tpm::azure::HclReport::parse(&b);
        let _ = TpmQuoteEvidence::from_json(&b);
    }

    #[test]
    fn mutated_quote_never_verifies(pos in 0usize..200, x in 1u8..=255) {
        let f = fixture();
        let pcr0 = [1u8; 32];
        let nonce = [2u8; 64];
        let mut msg = attest(&nonce, &pcr0);
        let sig = sign(&f.ak, &msg);
        let trust = AkTrust::Certificate(CertifiedAk::verify(std::slice::from_ref(&f.leaf_der), &f.root_der, NOW).expect("chain"));
        let n = msg.len();
        msg[pos % n] ^= x;
        prop_assert!(verify_quote(&msg, &sig, &pcrs(&pcr0), Some(&trust), &nonce).is_err());
    }
}
