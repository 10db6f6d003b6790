//! Order acceptance: the loader tells the CA it is about to run an order, and
//! the CA enforces that no family goes back to an older version. Pure.
//!
//! The loader signs `"tl-order-accept/v1\n" || <canonical JSON of OrderAccept>`
//! with its certified key (ECDSA P-256 / SHA-256, ASN.1 DER, base64).

use aws_lc_rs::signature::EcdsaKeyPair;
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tl_evidence::hexser;

use crate::canonical;
use crate::certs::{self, CertError, VerifiedLeaf};

/// Domain prefix of the acceptance signature.
pub const ACCEPT_SIGNATURE_DOMAIN: &[u8] = b"tl-order-accept/v1\n";
/// Longest order family name.
pub const MAX_FAMILY_LEN: usize = 128;

/// What the loader accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderAccept {
    pub family: String,
    pub version: u64,
    #[serde(with = "hexser::array")]
    pub order_digest: [u8; 32],
}

/// The request body of `POST /v1/orders/accept`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedOrderAccept {
    /// Canonical JSON of an [`OrderAccept`].
    pub accept: String,
    /// Signature over [`signing_message`], base64.
    pub signature: String,
    /// The loader's certificate (PEM; the first certificate is used).
    pub certificate_pem: String,
}

/// Why an acceptance was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    #[error("acceptance is malformed: {0}")]
    Malformed(String),
    #[error("order family name is empty, too long or not printable")]
    Family,
    #[error("certificate: {0}")]
    Certificate(#[from] CertError),
    #[error("acceptance signature does not verify")]
    Signature,
    #[error("version {version} is below the family's floor {floor}")]
    Rollback { version: u64, floor: u64 },
    #[error("signing failed")]
    Signing,
}

impl OrderError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "ORDER_ACCEPT_MALFORMED",
            Self::Family => "ORDER_FAMILY",
            Self::Certificate(e) => e.code(),
            Self::Signature => "ORDER_ACCEPT_SIGNATURE",
            Self::Rollback { .. } => "ORDER_ROLLBACK",
            Self::Signing => "ORDER_ACCEPT_SIGNING",
        }
    }
}

/// The bytes the certified key signs.
pub fn signing_message(accept_json: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(ACCEPT_SIGNATURE_DOMAIN.len() + accept_json.len());
    m.extend_from_slice(ACCEPT_SIGNATURE_DOMAIN);
    m.extend_from_slice(accept_json.as_bytes());
    m
}

/// Signs an acceptance (the loader's side).
pub fn sign_accept(
    accept: &OrderAccept,
    key: &EcdsaKeyPair,
    certificate_pem: &str,
) -> Result<SignedOrderAccept, OrderError> {
    let text = canonical::to_string(accept).map_err(|e| OrderError::Malformed(e.to_string()))?;
    let sig = crate::sign_p256(key, &signing_message(&text)).map_err(|_| OrderError::Signing)?;
    Ok(SignedOrderAccept {
        accept: text,
        signature: STANDARD.encode(sig),
        certificate_pem: certificate_pem.to_string(),
    })
}

/// Verifies a signed acceptance against the CA root at `now_unix`.
pub fn verify_accept(
    signed: &SignedOrderAccept,
    ca_root_der: &[u8],
    now_unix: u64,
) -> Result<(OrderAccept, VerifiedLeaf), OrderError> {
    let leaf = certs::verify_leaf_pem(&signed.certificate_pem, ca_root_der, now_unix)?;
    let sig = STANDARD
        .decode(&signed.signature)
        .map_err(|_| OrderError::Signature)?;
    leaf.verify_signature(&signing_message(&signed.accept), &sig)
        .map_err(|_| OrderError::Signature)?;
    let accept: OrderAccept =
        canonical::from_str(&signed.accept).map_err(|e| OrderError::Malformed(e.to_string()))?;
    if accept.family.is_empty()
        || accept.family.len() > MAX_FAMILY_LEN
        || accept.family.chars().any(char::is_control)
    {
        return Err(OrderError::Family);
    }
    Ok((accept, leaf))
}

/// Version floors by order family.
pub type Floors = BTreeMap<String, u64>;

/// Raises `family`'s floor to `version` if `version >= floor`; refuses a rollback.
pub fn raise_floor(floors: &mut Floors, family: &str, version: u64) -> Result<(), OrderError> {
    let floor = floors.get(family).copied().unwrap_or(0);
    if version < floor {
        return Err(OrderError::Rollback { version, floor });
    }
    floors.insert(family.to_string(), version);
    Ok(())
}
