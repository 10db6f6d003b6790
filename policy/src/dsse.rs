//! Orders in DSSE v1 envelopes, signed by every required party.
//!
//! The envelope is the standard DSSE JSON
//! `{"payloadType": ..., "payload": <base64>, "signatures": [{"keyid": ..., "sig": <base64>}]}`
//! with [`PAYLOAD_TYPE`]. Each signature is over the DSSE pre-authentication
//! encoding ([`pae`]) of the payload type and the exact payload bytes.
//!
//! The **policy digest** of an order is the SHA-256 of the exact payload
//! bytes (the TOML as signed). Key grants and run reports name the order by
//! it; it does not depend on the signatures, so adding a signature does not
//! change it.

use aws_lc_rs::digest;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::keys::SigningKey;
use crate::order::{Order, OrderError, MAX_ORDER_BYTES};

/// The payload type of an order envelope.
pub const PAYLOAD_TYPE: &str = "application/vnd.trusted-loader.order+toml; version=1";

/// Largest envelope accepted.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// Most signatures in one envelope.
pub const MAX_SIGNATURES: usize = 64;

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// SHA-256 of the payload bytes: the policy digest.
pub fn policy_digest(payload: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// One DSSE signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Hex SHA-256 of the signer's public key text form (may be empty).
    #[serde(default)]
    pub keyid: String,
    /// Base64 signature bytes.
    pub sig: String,
}

/// The DSSE envelope as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    /// Base64 (standard, padded) payload.
    pub payload: String,
    pub signatures: Vec<Signature>,
}

/// An order envelope that may not be fully signed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedOrder {
    envelope: Envelope,
    payload: Vec<u8>,
    order: Order,
}

/// An order whose every required signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedOrder {
    pub order: Order,
    /// SHA-256 of the exact payload bytes (the policy digest).
    pub digest: [u8; 32],
}

impl VerifiedOrder {
    /// The policy digest as lowercase hex.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }
}

fn parse_payload(payload: &[u8]) -> Result<Order, OrderError> {
    let text = std::str::from_utf8(payload)
        .map_err(|_| OrderError::BadEnvelope("payload is not UTF-8".into()))?;
    Order::from_toml(text)
}

impl SignedOrder {
    /// Start an envelope for `order_toml`, signed by `key`. The TOML must be a
    /// valid order and `key` the signing key of one of its signers.
    pub fn sign_new(order_toml: &str, key: &SigningKey) -> Result<SignedOrder, OrderError> {
        let order = Order::from_toml(order_toml)?;
        let payload = order_toml.as_bytes().to_vec();
        let mut s = SignedOrder {
            envelope: Envelope {
                payload_type: PAYLOAD_TYPE.to_string(),
                payload: B64.encode(&payload),
                signatures: Vec::new(),
            },
            payload,
            order,
        };
        s.add_signature(key)?;
        Ok(s)
    }

    /// Parse an envelope and its order without checking signatures (to add a
    /// signature or to show it). Use [`SignedOrder::verify`] to trust it.
    pub fn from_json(envelope_json: &[u8]) -> Result<SignedOrder, OrderError> {
        if envelope_json.len() > MAX_ENVELOPE_BYTES {
            return Err(OrderError::BadEnvelope(format!(
                "{} bytes, more than {MAX_ENVELOPE_BYTES}",
                envelope_json.len()
            )));
        }
        let envelope: Envelope = serde_json::from_slice(envelope_json)
            .map_err(|e| OrderError::BadEnvelope(format!("JSON: {e}")))?;
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(OrderError::PayloadType(envelope.payload_type));
        }
        if envelope.signatures.len() > MAX_SIGNATURES {
            return Err(OrderError::BadEnvelope(format!(
                "more than {MAX_SIGNATURES} signatures"
            )));
        }
        if envelope.payload.len() > MAX_ORDER_BYTES * 4 / 3 + 4 {
            return Err(OrderError::TooLarge(envelope.payload.len() * 3 / 4));
        }
        let payload = B64
            .decode(&envelope.payload)
            .map_err(|e| OrderError::BadEnvelope(format!("payload base64: {e}")))?;
        let order = parse_payload(&payload)?;
        Ok(SignedOrder {
            envelope,
            payload,
            order,
        })
    }

    /// Add `key`'s signature. The key must belong to a listed signer; a
    /// signature by the same key already present is replaced.
    pub fn add_signature(&mut self, key: &SigningKey) -> Result<(), OrderError> {
        let pk = key.public_key();
        if !self.order.signer_keys().iter().any(|(_, k)| *k == pk) {
            return Err(OrderError::UnknownSigner(format!(
                "{} (key {pk} is not the signing_key of any party in signers)",
                pk.key_id()
            )));
        }
        let sig = key
            .sign(&pae(PAYLOAD_TYPE, &self.payload))
            .map_err(|e| OrderError::Signing(e.to_string()))?;
        let keyid = pk.key_id();
        self.envelope.signatures.retain(|s| s.keyid != keyid);
        self.envelope.signatures.push(Signature {
            keyid,
            sig: B64.encode(sig),
        });
        Ok(())
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
    /// The order (not yet trusted).
    pub fn order(&self) -> &Order {
        &self.order
    }
    /// The exact payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The policy digest of the payload.
    pub fn digest(&self) -> [u8; 32] {
        policy_digest(&self.payload)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and vectors cannot fail.
        let mut v = serde_json::to_vec_pretty(&self.envelope).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parse an envelope strictly and require a valid signature from every
    /// party in `signers`.
    ///
    /// Every signature in the envelope must verify under the signing key of
    /// a listed signer: one whose keyid names a signer's key but does not
    /// verify is `ORDER_BAD_SIGNATURE`; one that verifies under no signer's
    /// key is `ORDER_UNKNOWN_SIGNER`. Then every signer must be covered,
    /// else `ORDER_MISSING_SIGNER` naming them. Repeated signatures by the
    /// same key are accepted.
    pub fn verify(envelope_json: &[u8]) -> Result<VerifiedOrder, OrderError> {
        let s = SignedOrder::from_json(envelope_json)?;
        let msg = pae(PAYLOAD_TYPE, &s.payload);
        let signers = s.order.signer_keys();
        let mut covered = vec![false; signers.len()];
        for sig in &s.envelope.signatures {
            let raw = B64
                .decode(&sig.sig)
                .map_err(|e| OrderError::BadEnvelope(format!("signature base64: {e}")))?;
            let named = signers
                .iter()
                .position(|(_, k)| !sig.keyid.is_empty() && k.key_id() == sig.keyid);
            match named {
                Some(i) => {
                    let (name, key) = signers[i];
                    key.verify(&msg, &raw)
                        .map_err(|_| OrderError::BadSignature(name.to_string()))?;
                    covered[i] = true;
                }
                None => {
                    let i = signers
                        .iter()
                        .position(|(_, k)| k.verify(&msg, &raw).is_ok())
                        .ok_or_else(|| OrderError::UnknownSigner(sig.keyid.clone()))?;
                    covered[i] = true;
                }
            }
        }
        let missing: Vec<String> = signers
            .iter()
            .zip(&covered)
            .filter(|(_, c)| !**c)
            .map(|((n, _), _)| n.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(OrderError::MissingSigner(missing.join(", ")));
        }
        Ok(VerifiedOrder {
            digest: policy_digest(&s.payload),
            order: s.order,
        })
    }
}
