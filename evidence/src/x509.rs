//! X.509 chains of ECDSA P-256 certificates (Intel PCK chains and the
//! simulated TEE's chain): decoding, link checks and trust-anchor matching.
//!
//! A trust anchor is matched by subject name and public key (RFC 5280
//! section 6.1.1 (d)): the chain's top certificate must carry exactly the
//! anchor's subject and SubjectPublicKeyInfo, and its own signature must
//! verify with that key (an altered copy of the root is rejected). Both the anchor and every
//! certificate in the chain must be valid at the verification time.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use der::asn1::ObjectIdentifier;
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// What a strictly decoded ECDSA certificate must use.
#[derive(Debug)]
pub(crate) struct EcProfile {
    /// The named curve of the subject key.
    pub(crate) curve: ObjectIdentifier,
    /// The outer and inner signature algorithm (no parameters).
    pub(crate) signature: ObjectIdentifier,
    /// Length of the uncompressed SEC1 point (65 for P-256, 97 for P-384).
    pub(crate) point_len: usize,
}

/// P-256 keys signed with ECDSA-SHA256 (Intel PCK chains, the simulator).
pub(crate) const P256_PROFILE: EcProfile = EcProfile {
    curve: SECP256R1,
    signature: ECDSA_WITH_SHA256,
    point_len: 65,
};

/// The parts of a strictly decoded ECDSA certificate.
#[derive(Debug)]
pub(crate) struct DecodedEc {
    pub(crate) cert: Certificate,
    pub(crate) tbs_der: Vec<u8>,
    pub(crate) subject_der: Vec<u8>,
    pub(crate) issuer_der: Vec<u8>,
    pub(crate) spki_der: Vec<u8>,
    /// The uncompressed SEC1 point (0x04 || x || y).
    pub(crate) public_key: Vec<u8>,
}

/// Decode `der` as a certificate with a key on `profile`'s curve signed with
/// `profile`'s algorithm; `bad` is returned otherwise. Only the exact DER
/// encoding is accepted, so the bytes whose signature is checked are the
/// bytes that were received.
pub(crate) fn decode_strict_ec(
    der: &[u8],
    profile: &EcProfile,
    bad: EvidenceError,
) -> Result<DecodedEc> {
    let cert = Certificate::from_der(der).map_err(|_| bad.clone())?;
    let enc = |r: der::Result<Vec<u8>>| r.map_err(|_| bad.clone());
    if enc(cert.to_der())? != der {
        return Err(bad);
    }
    let tbs = &cert.tbs_certificate;
    let spki = &tbs.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(profile.curve) {
        return Err(bad);
    }
    let public_key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad.clone())?
        .to_vec();
    if public_key.len() != profile.point_len || public_key.first() != Some(&4) {
        return Err(bad);
    }
    if cert.signature_algorithm.oid != profile.signature
        || cert.signature_algorithm.parameters.is_some()
        || tbs.signature != cert.signature_algorithm
    {
        return Err(bad);
    }
    Ok(DecodedEc {
        tbs_der: enc(tbs.to_der())?,
        subject_der: enc(tbs.subject.to_der())?,
        issuer_der: enc(tbs.issuer.to_der())?,
        spki_der: enc(spki.to_der())?,
        public_key,
        cert,
    })
}

/// The most certificates a chain may hold (Intel's have three).
pub(crate) const MAX_CHAIN_LEN: usize = 8;

/// A decoded certificate with a P-256 key and an ECDSA-SHA256 signature.
#[derive(Clone, Debug)]
pub(crate) struct P256Cert {
    pub(crate) der: Vec<u8>,
    pub(crate) cert: Certificate,
    pub(crate) tbs_der: Vec<u8>,
    pub(crate) subject_der: Vec<u8>,
    pub(crate) issuer_der: Vec<u8>,
    pub(crate) spki_der: Vec<u8>,
    /// The uncompressed SEC1 point (0x04 || x || y).
    pub(crate) public_key: Vec<u8>,
}

impl P256Cert {
    /// Decode `der`; `what` is the error to report when it is not a strict
    /// DER certificate with a P-256 key signed by ECDSA-SHA256.
    pub(crate) fn parse(der: &[u8], bad: EvidenceError) -> Result<P256Cert> {
        let d = decode_strict_ec(der, &P256_PROFILE, bad)?;
        Ok(P256Cert {
            der: der.to_vec(),
            tbs_der: d.tbs_der,
            subject_der: d.subject_der,
            issuer_der: d.issuer_der,
            spki_der: d.spki_der,
            public_key: d.public_key,
            cert: d.cert,
        })
    }

    /// Whether `issuer`'s key signed this certificate.
    pub(crate) fn signed_by(&self, issuer: &P256Cert) -> bool {
        let Some(sig) = self.cert.signature.as_bytes() else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &issuer.public_key)
            .verify(&self.tbs_der, sig)
            .is_ok()
    }

    /// Valid at `now` (seconds since the Unix epoch), bounds inclusive.
    pub(crate) fn check_validity(&self, now_unix: u64) -> Result<()> {
        let v = &self.cert.tbs_certificate.validity;
        if now_unix < v.not_before.to_unix_duration().as_secs() {
            return Err(EvidenceError::CertNotYetValid);
        }
        if now_unix > v.not_after.to_unix_duration().as_secs() {
            return Err(EvidenceError::CertExpired);
        }
        Ok(())
    }

    /// The extension with this OID, if present exactly once.
    pub(crate) fn extension(&self, oid: ObjectIdentifier) -> Result<Option<&[u8]>> {
        let mut found = None;
        for ext in self.cert.tbs_certificate.extensions.iter().flatten() {
            if ext.extn_id == oid {
                if found.is_some() {
                    return Err(EvidenceError::TdxPckChain("duplicate extension"));
                }
                found = Some(ext.extn_value.as_bytes());
            }
        }
        Ok(found)
    }

    /// May sign certificates with `below` CA certificates under it on the way
    /// to the leaf: basicConstraints cA = true with a sufficient path
    /// length, and keyCertSign if a key usage is given.
    fn check_ca(&self, below: usize) -> Result<()> {
        let bc = self
            .extension(BasicConstraints::OID)?
            .ok_or(EvidenceError::TdxPckChain("CA without basic constraints"))?;
        let bc = BasicConstraints::from_der(bc)
            .map_err(|_| EvidenceError::TdxPckChain("basic constraints do not decode"))?;
        if !bc.ca {
            return Err(EvidenceError::TdxPckChain("issuer is not a CA"));
        }
        if let Some(max) = bc.path_len_constraint {
            if usize::from(max) < below {
                return Err(EvidenceError::TdxPckChain("path length exceeded"));
            }
        }
        if let Some(ku) = self.extension(KeyUsage::OID)? {
            let ku = KeyUsage::from_der(ku)
                .map_err(|_| EvidenceError::TdxPckChain("key usage does not decode"))?;
            if !ku.key_cert_sign() {
                return Err(EvidenceError::TdxPckChain(
                    "issuer may not sign certificates",
                ));
            }
        }
        Ok(())
    }
}

/// DER as one PEM block with the given label, base64 in 64-character lines.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        // Base64 is ASCII: every index is a char boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decode a PEM sequence of certificates (leaf first). Only whitespace and
/// NUL bytes (Intel's chains end with one) may stand around the blocks.
pub(crate) fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>> {
    use base64::{engine::general_purpose::STANDARD, Engine};
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let bad = EvidenceError::Malformed("PCK certificate chain PEM");
    let mut out = Vec::new();
    let mut rest = pem;
    loop {
        let skip = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace() && *b != 0)
            .unwrap_or(rest.len());
        rest = rest.get(skip..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        rest = rest.strip_prefix(BEGIN).ok_or_else(|| bad.clone())?;
        let end = find(rest, END).ok_or_else(|| bad.clone())?;
        let (body, tail) = rest.split_at(end);
        let b64: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .collect();
        out.push(STANDARD.decode(b64).map_err(|_| bad.clone())?);
        if out.len() > MAX_CHAIN_LEN {
            return Err(EvidenceError::TdxPckChain("too many certificates"));
        }
        rest = tail.get(END.len()..).unwrap_or_default();
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Check the links of `chain` (leaf first, the top certificate last):
/// names, signatures, CA constraints and validity at `now`. The top
/// certificate's own signature is not checked here: it is matched against
/// a trust anchor instead.
pub(crate) fn check_links(chain: &[P256Cert], now_unix: u64) -> Result<()> {
    if chain.len() < 2 {
        return Err(EvidenceError::TdxPckChain(
            "chain shorter than leaf and root",
        ));
    }
    for (i, pair) in chain.windows(2).enumerate() {
        let [child, issuer] = pair else {
            return Err(EvidenceError::TdxPckChain("chain"));
        };
        if child.issuer_der != issuer.subject_der {
            return Err(EvidenceError::TdxPckChain("issuer name does not match"));
        }
        issuer.check_ca(i)?;
        if !child.signed_by(issuer) {
            return Err(EvidenceError::TdxPckChain("certificate signature"));
        }
    }
    for c in chain {
        c.check_validity(now_unix)?;
    }
    Ok(())
}

/// Whether `top` is the anchor: same subject and key. The anchor must be
/// valid at `now`, and `top`'s signature must verify with the anchor's key.
pub(crate) fn is_anchor(top: &P256Cert, anchor: &P256Cert, now_unix: u64) -> Result<bool> {
    if top.subject_der == anchor.subject_der && top.spki_der == anchor.spki_der {
        anchor.check_validity(now_unix)?;
        // The copy carried in the chain must be intact too: its own
        // signature verifies with the anchor's key.
        if !top.signed_by(anchor) {
            return Err(EvidenceError::TdxPckChain("root certificate signature"));
        }
        return Ok(true);
    }
    Ok(false)
}

/// Whether the subject name holds `needle` (used to recognise a simulated root).
pub(crate) fn subject_contains(c: &P256Cert, needle: &[u8]) -> bool {
    find(&c.subject_der, needle).is_some()
}
