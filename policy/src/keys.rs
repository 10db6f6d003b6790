//! Signing keys of the parties to an order: Ed25519 and ECDSA P-256.
//!
//! Public keys have one text form, used in orders and `.pub` files:
//! `ed25519:<base64 of the 32 raw bytes>` or
//! `ecdsa-p256:<base64 of the 65-byte SEC1 uncompressed point>`
//! (standard alphabet, padded). Private keys are PKCS#8 (v1 or v2) DER in a
//! PEM block labelled `PRIVATE KEY`.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Largest PEM private key file accepted (a PKCS#8 Ed25519 or P-256 key is
/// well under 300 bytes).
pub const MAX_PEM_BYTES: usize = 16 * 1024;

const ED25519_PREFIX: &str = "ed25519:";
const P256_PREFIX: &str = "ecdsa-p256:";
const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Errors about keys and signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The public key text is not one of the accepted forms.
    #[error("bad public key: {0}")]
    BadPublicKey(String),
    /// The private key is not a PEM PKCS#8 Ed25519 or P-256 key.
    #[error("bad private key: {0}")]
    BadPrivateKey(String),
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    BadSignature,
    /// The algorithm name is not `ed25519` or `ecdsa-p256`.
    #[error("unknown signing algorithm {0:?} (expected ed25519 or ecdsa-p256)")]
    UnknownAlgorithm(String),
    /// The crypto library failed (key generation or signing).
    #[error("crypto library failure: {0}")]
    Internal(&'static str),
}

impl KeyError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::BadPublicKey(_) => "KEY_BAD_PUBLIC_KEY",
            KeyError::BadPrivateKey(_) => "KEY_BAD_PRIVATE_KEY",
            KeyError::BadSignature => "KEY_BAD_SIGNATURE",
            KeyError::UnknownAlgorithm(_) => "KEY_UNKNOWN_ALGORITHM",
            KeyError::Internal(_) => "KEY_INTERNAL",
        }
    }
}

/// A signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (RFC 8032), 64-byte signatures.
    Ed25519,
    /// ECDSA over P-256 with SHA-256, ASN.1 DER signatures.
    EcdsaP256,
}

impl Algorithm {
    /// The name used in text forms and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "ecdsa-p256" => Ok(Algorithm::EcdsaP256),
            other => Err(KeyError::UnknownAlgorithm(other.to_string())),
        }
    }
}

/// A verified-well-formed public signing key.
///
/// Construction checks the length and, for P-256, that the point is on the
/// curve, so every value can verify signatures.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PublicKey {
    /// 32 raw bytes.
    #[non_exhaustive]
    Ed25519([u8; 32]),
    /// 65-byte SEC1 uncompressed point (`0x04 || X || Y`), checked on the curve.
    #[non_exhaustive]
    EcdsaP256([u8; 65]),
}

impl PublicKey {
    /// Build from raw public key bytes.
    pub fn from_raw(alg: Algorithm, raw: &[u8]) -> Result<Self, KeyError> {
        match alg {
            Algorithm::Ed25519 => {
                let arr: [u8; 32] = raw.try_into().map_err(|_| {
                    KeyError::BadPublicKey(format!(
                        "ed25519 key must be 32 bytes, got {}",
                        raw.len()
                    ))
                })?;
                ParsedPublicKey::new(&signature::ED25519, arr)
                    .map_err(|_| KeyError::BadPublicKey("invalid ed25519 key".into()))?;
                Ok(PublicKey::Ed25519(arr))
            }
            Algorithm::EcdsaP256 => {
                let arr: [u8; 65] = raw.try_into().map_err(|_| {
                    KeyError::BadPublicKey(format!(
                        "ecdsa-p256 key must be a 65-byte uncompressed point, got {} bytes",
                        raw.len()
                    ))
                })?;
                if arr[0] != 0x04 {
                    return Err(KeyError::BadPublicKey(
                        "ecdsa-p256 key must be an uncompressed point (0x04 prefix)".into(),
                    ));
                }
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, arr).map_err(|_| {
                    KeyError::BadPublicKey("ecdsa-p256 point is not on the curve".into())
                })?;
                Ok(PublicKey::EcdsaP256(arr))
            }
        }
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::Ed25519,
            PublicKey::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The raw key bytes (32 for Ed25519, 65 for P-256).
    pub fn raw(&self) -> &[u8] {
        match self {
            PublicKey::Ed25519(b) => b,
            PublicKey::EcdsaP256(b) => b,
        }
    }

    /// Lowercase hex SHA-256 of the text form: the DSSE `keyid`.
    pub fn key_id(&self) -> String {
        let d = digest::digest(&digest::SHA256, self.to_string().as_bytes());
        hex::encode(d.as_ref())
    }

    /// Verify `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let alg: &'static dyn signature::VerificationAlgorithm = match self {
            PublicKey::Ed25519(_) => &signature::ED25519,
            PublicKey::EcdsaP256(_) => &signature::ECDSA_P256_SHA256_ASN1,
        };
        signature::UnparsedPublicKey::new(alg, self.raw())
            .verify(msg, sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self {
            PublicKey::Ed25519(_) => ED25519_PREFIX,
            PublicKey::EcdsaP256(_) => P256_PREFIX,
        };
        write!(f, "{prefix}{}", B64.encode(self.raw()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let (alg, b64) = if let Some(rest) = s.strip_prefix(ED25519_PREFIX) {
            (Algorithm::Ed25519, rest)
        } else if let Some(rest) = s.strip_prefix(P256_PREFIX) {
            (Algorithm::EcdsaP256, rest)
        } else {
            return Err(KeyError::BadPublicKey(
                "expected ed25519:<base64> or ecdsa-p256:<base64>".into(),
            ));
        };
        if b64.len() > 128 {
            return Err(KeyError::BadPublicKey("key text too long".into()));
        }
        let raw = B64
            .decode(b64)
            .map_err(|e| KeyError::BadPublicKey(format!("base64: {e}")))?;
        let key = PublicKey::from_raw(alg, &raw)?;
        // Only the canonical encoding is accepted, so that the text form (and
        // with it the key id) is unique per key.
        if key.to_string() != s {
            return Err(KeyError::BadPublicKey("non-canonical base64".into()));
        }
        Ok(key)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

enum Inner {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

/// A private signing key with its PKCS#8 encoding.
pub struct SigningKey {
    inner: Inner,
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public)
    }
}

impl SigningKey {
    /// Generate a fresh key.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let doc = match alg {
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
            Algorithm::EcdsaP256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
        }
        .map_err(|_| KeyError::Internal("key generation failed"))?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// An Ed25519 key from its 32-byte seed (RFC 8032 private key). Used for
    /// test vectors; real keys come from [`SigningKey::generate`].
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        let kp = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| KeyError::BadPrivateKey("invalid ed25519 seed".into()))?;
        let doc = kp
            .to_pkcs8v1()
            .map_err(|_| KeyError::Internal("pkcs8 encoding failed"))?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Parse PKCS#8 (v1 or v2) DER holding an Ed25519 or P-256 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8(der) {
            let public = PublicKey::from_raw(Algorithm::Ed25519, kp.public_key().as_ref())?;
            return Ok(SigningKey {
                inner: Inner::Ed25519(kp),
                pkcs8: Zeroizing::new(der.to_vec()),
                public,
            });
        }
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            let public = PublicKey::from_raw(Algorithm::EcdsaP256, kp.public_key().as_ref())?;
            return Ok(SigningKey {
                inner: Inner::EcdsaP256(kp),
                pkcs8: Zeroizing::new(der.to_vec()),
                public,
            });
        }
        Err(KeyError::BadPrivateKey(
            "not a PKCS#8 Ed25519 or ECDSA P-256 private key".into(),
        ))
    }

    /// Parse a PEM `PRIVATE KEY` block (PKCS#8).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if pem.len() > MAX_PEM_BYTES {
            return Err(KeyError::BadPrivateKey("PEM too large".into()));
        }
        let start = pem
            .find(PEM_BEGIN)
            .ok_or_else(|| KeyError::BadPrivateKey(format!("no {PEM_BEGIN} line")))?;
        let body_and_rest = &pem[start + PEM_BEGIN.len()..];
        let end = body_and_rest
            .find(PEM_END)
            .ok_or_else(|| KeyError::BadPrivateKey(format!("no {PEM_END} line")))?;
        let b64: String = body_and_rest[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = Zeroizing::new(
            B64.decode(b64.as_bytes())
                .map_err(|e| KeyError::BadPrivateKey(format!("PEM base64: {e}")))?,
        );
        Self::from_pkcs8_der(&der)
    }

    /// The PKCS#8 DER encoding.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// PEM encoding (`PRIVATE KEY`, 64-column lines, trailing newline).
    pub fn to_pem(&self) -> Zeroizing<String> {
        let b64 = Zeroizing::new(B64.encode(&*self.pkcs8));
        let mut out = Zeroizing::new(String::with_capacity(b64.len() + 80));
        out.push_str(PEM_BEGIN);
        out.push('\n');
        for chunk in b64.as_bytes().chunks(64) {
            // Base64 output is ASCII, so every chunk is valid UTF-8.
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(PEM_END);
        out.push('\n');
        out
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// Sign `msg`. Ed25519 signatures are deterministic; ECDSA ones are DER
    /// and randomized.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ed25519(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
            Inner::EcdsaP256(kp) => kp
                .sign(&SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Internal("ecdsa signing failed")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_both_algorithms() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let k = SigningKey::generate(alg).unwrap();
            let pem = k.to_pem();
            let k2 = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(k.public_key(), k2.public_key());
            let text = k.public_key().to_string();
            assert!(text.starts_with(alg.as_str()));
            let parsed: PublicKey = text.parse().unwrap();
            assert_eq!(&parsed, k.public_key());
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            let back: PublicKey = serde_json::from_str(&json).unwrap();
            assert_eq!(back, parsed);
            let sig = k2.sign(b"hello").unwrap();
            parsed.verify(b"hello", &sig).unwrap();
            assert_eq!(parsed.verify(b"hellO", &sig), Err(KeyError::BadSignature));
            assert_eq!(parsed.key_id().len(), 64);
        }
    }

    #[test]
    fn wrong_key_rejected() {
        let a = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let b = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let sig = a.sign(b"m").unwrap();
        assert_eq!(
            b.public_key().verify(b"m", &sig),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn pkcs8_v2_accepted() {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let k = SigningKey::from_pkcs8_der(doc.as_ref()).unwrap();
        assert_eq!(k.algorithm(), Algorithm::Ed25519);
        let doc1 = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
        SigningKey::from_pkcs8_der(doc1.as_ref()).unwrap();
    }

    #[test]
    fn bad_public_keys_rejected() {
        let good = SigningKey::generate(Algorithm::EcdsaP256)
            .unwrap()
            .public_key()
            .to_string();
        let cases = [
            "".to_string(),
            "ed25519:".to_string(),
            format!("ed25519:{}", B64.encode([1u8; 31])),
            format!("ed25519:{}", B64.encode([1u8; 33])),
            format!("ecdsa-p256:{}", B64.encode([4u8; 65])),
            format!("ecdsa-p256:{}", B64.encode([2u8; 33])),
            format!("rsa:{}", B64.encode([1u8; 32])),
            format!("ED25519:{}", B64.encode([1u8; 32])),
            good.replace("ecdsa-p256:", "ed25519:"),
            format!("{good}="),
            format!(" {good}"),
        ];
        for c in cases {
            let e = c.parse::<PublicKey>().unwrap_err();
            assert_eq!(e.code(), "KEY_BAD_PUBLIC_KEY", "{c}");
        }
    }

    #[test]
    fn bad_private_keys_rejected() {
        for c in [
            "",
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
        ] {
            assert_eq!(
                SigningKey::from_pem(c).unwrap_err().code(),
                "KEY_BAD_PRIVATE_KEY"
            );
        }
    }

    proptest! {
        #[test]
        fn public_key_parser_total(s in ".{0,200}") {
            let _ = s.parse::<PublicKey>();
        }

        #[test]
        fn ed25519_text_round_trip(seed in any::<[u8; 32]>()) {
            let k = SigningKey::ed25519_from_seed(&seed).unwrap();
            let t = k.public_key().to_string();
            prop_assert_eq!(t.parse::<PublicKey>().unwrap(), k.public_key().clone());
        }
    }
}
