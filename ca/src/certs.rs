//! Leaf certificate verification and PEM helpers. Pure.
//!
//! [`verify_leaf`] is what every relying party calls (the loader, `tl cert
//! verify`, `tl report verify`, the CA itself): it checks that the leaf is
//! signed by the given CA root (ECDSA P-256 / SHA-256), that the time lies in
//! its validity, that its key is a P-256 key, and decodes the claims
//! extension ([`crate::claims_ext`]).

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::{engine::general_purpose::STANDARD, Engine};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::claims_ext::{CertClaims, CLAIMS_OID_DER};

/// DER prefix of every P-256 SubjectPublicKeyInfo with an uncompressed point.
pub const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Length of a P-256 SubjectPublicKeyInfo with an uncompressed point.
pub const P256_SPKI_LEN: usize = 91;
/// DER content of the OID ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
pub const ECDSA_SHA256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// DER of the AlgorithmIdentifier ecdsa-with-SHA256 (parameters absent).
pub const ECDSA_SHA256_ALG_DER: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// Largest certificate accepted.
pub const MAX_CERT_LEN: usize = 64 * 1024;
/// Largest PEM input accepted.
pub const MAX_PEM_LEN: usize = 512 * 1024;

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("certificate is not valid DER X.509: {0}")]
    Malformed(String),
    #[error("certificate was not issued by this CA")]
    IssuerMismatch,
    #[error("certificate signature algorithm is not ecdsa-with-SHA256")]
    SignatureAlgorithm,
    #[error("certificate signature does not verify with the CA key")]
    Signature,
    #[error("certificate is not yet valid")]
    NotYetValid,
    #[error("certificate has expired")]
    Expired,
    #[error("key is not an ECDSA P-256 key")]
    KeyType,
    #[error("certificate has no claims extension")]
    ClaimsMissing,
    #[error("claims extension is invalid: {0}")]
    ClaimsInvalid(String),
    #[error("PEM input is malformed")]
    Pem,
    #[error("certificate chain is empty")]
    EmptyChain,
    #[error("signature by the certified key does not verify")]
    KeySignature,
}

impl CertError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "CERT_MALFORMED",
            Self::IssuerMismatch => "CERT_ISSUER_MISMATCH",
            Self::SignatureAlgorithm => "CERT_SIGNATURE_ALGORITHM",
            Self::Signature => "CERT_SIGNATURE",
            Self::NotYetValid => "CERT_NOT_YET_VALID",
            Self::Expired => "CERT_EXPIRED",
            Self::KeyType => "CERT_KEY_TYPE",
            Self::ClaimsMissing => "CERT_CLAIMS_MISSING",
            Self::ClaimsInvalid(_) => "CERT_CLAIMS_INVALID",
            Self::Pem => "CERT_PEM",
            Self::EmptyChain => "CERT_EMPTY_CHAIN",
            Self::KeySignature => "CERT_KEY_SIGNATURE",
        }
    }
}

/// A leaf that [`verify_leaf`] accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLeaf {
    /// The decoded claims extension.
    pub claims: CertClaims,
    /// The leaf's SubjectPublicKeyInfo (DER), the loader's signing key.
    pub spki_der: Vec<u8>,
    /// The uncompressed P-256 point of that key (65 bytes).
    pub public_key: Vec<u8>,
    /// Serial number, hex.
    pub serial_hex: String,
    /// Validity, unix seconds (inclusive bounds).
    pub not_before: u64,
    pub not_after: u64,
    /// SHA-256 of the leaf DER.
    pub leaf_sha256: [u8; 32],
}

impl VerifiedLeaf {
    /// Verifies an ECDSA P-256 / SHA-256 ASN.1 DER signature by the certified key.
    pub fn verify_signature(&self, message: &[u8], signature_der: &[u8]) -> Result<(), CertError> {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &self.public_key)
            .verify(message, signature_der)
            .map_err(|_| CertError::KeySignature)
    }
}

/// The uncompressed point of a P-256 SubjectPublicKeyInfo.
pub fn p256_point(spki_der: &[u8]) -> Result<&[u8], CertError> {
    if spki_der.len() != P256_SPKI_LEN {
        return Err(CertError::KeyType);
    }
    match spki_der.strip_prefix(P256_SPKI_PREFIX) {
        Some(point) if point.first() == Some(&0x04) => Ok(point),
        _ => Err(CertError::KeyType),
    }
}

/// True when, in `outer` (a signed DER structure), the bytes right after its
/// signed part `inner` are exactly the ecdsa-with-SHA256 AlgorithmIdentifier.
/// The outer algorithm is not covered by the signature, so it is compared
/// byte for byte rather than trusted to a lenient parser.
pub(crate) fn outer_alg_is_ecdsa_sha256(outer: &[u8], inner: &[u8]) -> bool {
    let start = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    start
        .checked_add(inner.len())
        .and_then(|end| outer.get(end..))
        .is_some_and(|after| after.starts_with(ECDSA_SHA256_ALG_DER))
}

pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    if der.len() > MAX_CERT_LEN {
        return Err(CertError::Malformed("too large".into()));
    }
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Malformed("trailing bytes".into()));
    }
    Ok(cert)
}

/// The CA root's public key (uncompressed P-256 point).
pub fn root_public_key(ca_root_der: &[u8]) -> Result<Vec<u8>, CertError> {
    let root = parse_cert(ca_root_der)?;
    Ok(p256_point(root.tbs_certificate.subject_pki.raw)?.to_vec())
}

fn unix(t: &x509_parser::time::ASN1Time) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// Verifies `leaf_der` against the CA root `ca_root_der` at `now_unix`.
pub fn verify_leaf(
    leaf_der: &[u8],
    ca_root_der: &[u8],
    now_unix: u64,
) -> Result<VerifiedLeaf, CertError> {
    let root = parse_cert(ca_root_der)?;
    let leaf = parse_cert(leaf_der)?;
    let tbs = &leaf.tbs_certificate;
    if tbs.issuer.as_raw() != root.tbs_certificate.subject.as_raw() {
        return Err(CertError::IssuerMismatch);
    }
    for alg in [&leaf.signature_algorithm, &tbs.signature] {
        if alg.algorithm.as_bytes() != ECDSA_SHA256_OID || alg.parameters.is_some() {
            return Err(CertError::SignatureAlgorithm);
        }
    }
    if !outer_alg_is_ecdsa_sha256(leaf_der, tbs.as_ref()) || leaf.signature_value.unused_bits != 0 {
        return Err(CertError::SignatureAlgorithm);
    }
    let root_point = p256_point(root.tbs_certificate.subject_pki.raw)?;
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, root_point)
        .verify(tbs.as_ref(), &leaf.signature_value.data)
        .map_err(|_| CertError::Signature)?;
    let not_before = unix(&tbs.validity.not_before);
    let not_after = unix(&tbs.validity.not_after);
    if now_unix < not_before {
        return Err(CertError::NotYetValid);
    }
    if now_unix > not_after {
        return Err(CertError::Expired);
    }
    let spki_der = tbs.subject_pki.raw.to_vec();
    let public_key = p256_point(&spki_der)?.to_vec();
    let ext = tbs
        .extensions()
        .iter()
        .find(|e| e.oid.as_bytes() == CLAIMS_OID_DER)
        .ok_or(CertError::ClaimsMissing)?;
    let claims = CertClaims::from_extension_value(ext.value)
        .map_err(|e| CertError::ClaimsInvalid(format!("{}: {e}", e.code())))?;
    Ok(VerifiedLeaf {
        claims,
        spki_der,
        public_key,
        serial_hex: hex::encode(tbs.raw_serial()),
        not_before,
        not_after,
        leaf_sha256: crate::sha256(leaf_der),
    })
}

/// Encodes DER as one PEM block with the given label (the evidence crate's
/// encoder, so the CA and the verifiers write PEM one way).
pub use tl_evidence::der_to_pem;

/// Decodes every `label` PEM block of `pem`, in order.
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, CertError> {
    if pem.len() > MAX_PEM_LEN {
        return Err(CertError::Pem);
    }
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        match current.as_mut() {
            None if line == begin => current = Some(String::new()),
            None => {}
            Some(_) if line == end => {
                let b64 = current.take().unwrap_or_default();
                out.push(STANDARD.decode(b64).map_err(|_| CertError::Pem)?);
            }
            Some(buf) => buf.push_str(line),
        }
    }
    if current.is_some() {
        return Err(CertError::Pem);
    }
    Ok(out)
}

/// The certificates of a PEM chain, leaf first.
pub fn pem_to_certs(pem: &str) -> Result<Vec<Vec<u8>>, CertError> {
    pem_blocks(pem, "CERTIFICATE")
}

/// Verifies the first certificate of a PEM chain with [`verify_leaf`].
pub fn verify_leaf_pem(
    chain_pem: &str,
    ca_root_der: &[u8],
    now_unix: u64,
) -> Result<VerifiedLeaf, CertError> {
    let certs = pem_to_certs(chain_pem)?;
    let leaf = certs.first().ok_or(CertError::EmptyChain)?;
    verify_leaf(leaf, ca_root_der, now_unix)
}
