//! The certificate claims extension. Pure.
//!
//! * OID: `2.25.155217205948223905044396063534323960446`, the UUID arc
//!   (ITU-T X.667) for UUID `74c5bf19-716d-4cf3-ada7-345a07ad8a7e`.
//!   Note: the last arc is 128 bits wide; tools that store arcs in 32 or 64
//!   bits (rcgen, const-oid/x509-cert 0.2) cannot write or decode it, which is
//!   why the leaf is written by [`crate::issue`] and read with x509-parser.
//! * Non-critical.
//! * `extnValue` holds the DER encoding of an OCTET STRING whose content is
//!   the canonical JSON (see [`crate::canonical`]) of [`CertClaims`].

use serde::{Deserialize, Serialize};
use tl_evidence::PlatformClaims;

use crate::canonical;

/// The dotted form of the claims extension OID.
pub const CLAIMS_OID: &str = "2.25.155217205948223905044396063534323960446";

/// The DER content octets of [`CLAIMS_OID`] (without tag and length).
pub const CLAIMS_OID_DER: &[u8] = &[
    0x69, 0x81, 0xe9, 0xc5, 0xdf, 0xc6, 0xae, 0x96, 0xea, 0xb3, 0xe7, 0xad, 0xd3, 0xcd, 0x8b, 0xa0,
    0xbd, 0xb6, 0x94, 0x7e,
];

/// The only claims version this crate writes or reads.
pub const CLAIMS_VERSION: u32 = 1;

/// Largest extension value accepted when decoding.
pub const MAX_CLAIMS_LEN: usize = 256 * 1024;

/// What the CA certifies about the holder of a leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertClaims {
    /// Always [`CLAIMS_VERSION`].
    pub version: u32,
    /// The appraised platform claims from the verified evidence.
    pub platform: PlatformClaims,
    /// The loader's encryption (HPKE X25519) public key, `"x25519:<base64>"`.
    pub encryption_public_key: String,
    /// SHA-256 of the evidence bundle (`EvidenceBundle::digest`), hex.
    #[serde(with = "tl_evidence::hexser::array")]
    pub evidence_digest: [u8; 32],
    /// A short description of the issuance policy that accepted the claims.
    pub issuance_policy: String,
}

/// Why claims could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    #[error("claims extension is not a DER OCTET STRING")]
    NotOctetString,
    #[error("claims extension is too large")]
    TooLarge,
    #[error("claims JSON: {0}")]
    Json(#[from] canonical::CanonicalError),
    #[error("unsupported claims version {0}")]
    Version(u32),
    #[error("encryption public key is not \"x25519:<base64 of 32 bytes>\"")]
    EncryptionKey,
}

impl ClaimsError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotOctetString => "CLAIMS_NOT_OCTET_STRING",
            Self::TooLarge => "CLAIMS_TOO_LARGE",
            Self::Json(_) => "CLAIMS_JSON",
            Self::Version(_) => "CLAIMS_VERSION",
            Self::EncryptionKey => "CLAIMS_ENCRYPTION_KEY",
        }
    }
}

impl CertClaims {
    /// The DER `extnValue` content: OCTET STRING of the canonical JSON.
    pub fn to_extension_value(&self) -> Result<Vec<u8>, ClaimsError> {
        let json = canonical::to_string(self)?;
        Ok(yasna::construct_der(|w| w.write_bytes(json.as_bytes())))
    }

    /// Decodes an `extnValue` written by [`Self::to_extension_value`].
    pub fn from_extension_value(der: &[u8]) -> Result<Self, ClaimsError> {
        if der.len() > MAX_CLAIMS_LEN {
            return Err(ClaimsError::TooLarge);
        }
        let bytes =
            yasna::parse_der(der, |r| r.read_bytes()).map_err(|_| ClaimsError::NotOctetString)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| canonical::CanonicalError::Parse(e.to_string()))?;
        let claims: CertClaims = canonical::from_str(text)?;
        if claims.version != CLAIMS_VERSION {
            return Err(ClaimsError::Version(claims.version));
        }
        parse_x25519_text(&claims.encryption_public_key)?;
        Ok(claims)
    }

    /// The raw 32-byte X25519 encryption public key.
    pub fn encryption_key_bytes(&self) -> Result<[u8; 32], ClaimsError> {
        parse_x25519_text(&self.encryption_public_key)
    }
}

/// Parses `"x25519:<standard base64 of 32 bytes>"`.
pub fn parse_x25519_text(s: &str) -> Result<[u8; 32], ClaimsError> {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let b64 = s
        .strip_prefix("x25519:")
        .ok_or(ClaimsError::EncryptionKey)?;
    if b64.len() > 64 {
        return Err(ClaimsError::EncryptionKey);
    }
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| ClaimsError::EncryptionKey)?;
    <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| ClaimsError::EncryptionKey)
}

/// Formats a raw X25519 public key as `"x25519:<base64>"`.
pub fn format_x25519_text(key: &[u8; 32]) -> String {
    use base64::{engine::general_purpose::STANDARD, Engine};
    format!("x25519:{}", STANDARD.encode(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use tl_evidence::{TcbStatus, TeeKind};

    pub(crate) fn sample() -> CertClaims {
        CertClaims {
            version: 1,
            platform: PlatformClaims {
                tee: TeeKind::Tdx,
                simulated: true,
                debug: false,
                tcb_status: TcbStatus::UpToDate,
                advisory_ids: vec!["INTEL-SA-00001".into()],
                report_data: [7; 64],
                tdx: None,
                snp: None,
                tpm: None,
                gpus: vec![],
                nvswitches: Vec::new(),
            },
            encryption_public_key: format_x25519_text(&[9; 32]),
            evidence_digest: [0xab; 32],
            issuance_policy: "test".into(),
        }
    }

    #[test]
    fn oid_bytes_match_the_uuid() {
        let uuid: u128 = 0x74c5bf19_716d_4cf3_ada7_345a07ad8a7e;
        assert_eq!(CLAIMS_OID, format!("2.25.{uuid}"));
        let mut arc = Vec::new();
        let mut n = uuid;
        loop {
            arc.insert(0, (n & 0x7f) as u8 | if arc.is_empty() { 0 } else { 0x80 });
            n >>= 7;
            if n == 0 {
                break;
            }
        }
        let mut expected = vec![2 * 40 + 25];
        expected.extend(arc);
        assert_eq!(CLAIMS_OID_DER, expected.as_slice());
    }

    #[test]
    fn round_trip_and_tamper() {
        let c = sample();
        let der = c.to_extension_value().unwrap();
        assert_eq!(der[0], 0x04);
        assert_eq!(CertClaims::from_extension_value(&der).unwrap(), c);
        assert_eq!(c.encryption_key_bytes().unwrap(), [9; 32]);
        // Truncation and a wrong tag fail.
        let e = CertClaims::from_extension_value(&der[..der.len() - 1]).unwrap_err();
        assert_eq!(e.code(), "CLAIMS_NOT_OCTET_STRING");
        let mut bad = der.clone();
        bad[0] = 0x0c;
        let e = CertClaims::from_extension_value(&bad).unwrap_err();
        assert_eq!(e.code(), "CLAIMS_NOT_OCTET_STRING");
        // A non-canonical JSON body fails.
        let json = canonical::to_string(&c).unwrap().replacen(',', ", ", 1);
        let der = yasna::construct_der(|w| w.write_bytes(json.as_bytes()));
        let e = CertClaims::from_extension_value(&der).unwrap_err();
        assert_eq!(e.code(), "CLAIMS_JSON");
        // Wrong version fails.
        let mut v2 = c.clone();
        v2.version = 2;
        let e = CertClaims::from_extension_value(&v2.to_extension_value().unwrap()).unwrap_err();
        assert_eq!(e.code(), "CLAIMS_VERSION");
    }

    #[test]
    fn x25519_text() {
        assert!(parse_x25519_text("x25519:AAAA").is_err());
        assert!(parse_x25519_text("ed25519:").is_err());
        let t = format_x25519_text(&[1; 32]);
        assert_eq!(parse_x25519_text(&t).unwrap(), [1; 32]);
    }
}
