//! Attestation key (AK) public keys: from `TPMT_PUBLIC`/`TPM2B_PUBLIC`,
//! SubjectPublicKeyInfo DER, or a JWK; signature verification.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use der::Decode;

use super::attest::*;
use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

fn bad(what: &'static str) -> EvidenceError {
    EvidenceError::TpmAkMalformed(what)
}

/// An AK public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AkPublic {
    /// RSA modulus and public exponent, unsigned big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An ECC point, uncompressed SEC1 (0x04 || x || y), on `curve`.
    Ecc { curve: u16, point: Vec<u8> },
}

const RSA_OID: &str = "1.2.840.113549.1.1.1";
const EC_OID: &str = "1.2.840.10045.2.1";
const P256_OID: &str = "1.2.840.10045.3.1.7";
const P384_OID: &str = "1.3.132.0.34";

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(i..).unwrap_or(&[]).to_vec()
}

fn coord_len(curve: u16) -> Option<usize> {
    match curve {
        TPM_ECC_NIST_P256 => Some(32),
        TPM_ECC_NIST_P384 => Some(48),
        _ => None,
    }
}

/// Left-pad `v` (unsigned big-endian) to `len` bytes.
fn pad(v: &[u8], len: usize) -> Option<Vec<u8>> {
    let v = strip_zeros(v);
    if v.len() > len {
        return None;
    }
    let mut out = vec![0u8; len - v.len()];
    out.extend_from_slice(&v);
    Some(out)
}

impl AkPublic {
    /// Parse a `TPM2B_PUBLIC` (u16 size prefix) or a bare `TPMT_PUBLIC`.
    pub fn from_tpm_public(bytes: &[u8]) -> Result<AkPublic> {
        let inner = match bytes {
            [a, b, rest @ ..] if u16::from_be_bytes([*a, *b]) as usize == rest.len() => rest,
            _ => bytes,
        };
        let mut r = Be::new(inner, bad);
        let ty = r.u16("type")?;
        let _name_alg = r.u16("nameAlg")?;
        let _attrs = r.u32("objectAttributes")?;
        let _policy = r.tpm2b("authPolicy")?;
        // symmetric (TPMT_SYM_DEF_OBJECT)
        if r.u16("symmetric")? != TPM_ALG_NULL {
            r.u16("symmetric keyBits")?;
            r.u16("symmetric mode")?;
        }
        // scheme
        if r.u16("scheme")? != TPM_ALG_NULL {
            r.u16("scheme hash")?;
        }
        let key = match ty {
            TPM_ALG_RSA => {
                let _bits = r.u16("keyBits")?;
                let exp = r.u32("exponent")?;
                let n = strip_zeros(r.tpm2b("RSA modulus")?);
                let e = if exp == 0 { 65537 } else { exp };
                AkPublic::Rsa {
                    n,
                    e: strip_zeros(&e.to_be_bytes()),
                }
            }
            TPM_ALG_ECC => {
                let curve = r.u16("curveID")?;
                if r.u16("kdf")? != TPM_ALG_NULL {
                    r.u16("kdf hash")?;
                }
                let len = coord_len(curve).ok_or(EvidenceError::TpmAlgUnsupported("ECC curve"))?;
                let x = pad(r.tpm2b("x")?, len).ok_or(bad("x too long"))?;
                let y = pad(r.tpm2b("y")?, len).ok_or(bad("y too long"))?;
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                AkPublic::Ecc { curve, point }
            }
            _ => return Err(EvidenceError::TpmAlgUnsupported("AK key type")),
        };
        r.end("trailing bytes after TPMT_PUBLIC")?;
        key.check()?;
        Ok(key)
    }

    /// Parse a DER SubjectPublicKeyInfo (RSA, or EC on P-256/P-384).
    pub fn from_spki_der(der_bytes: &[u8]) -> Result<AkPublic> {
        let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(der_bytes)
            .map_err(|_| bad("SubjectPublicKeyInfo does not decode"))?;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or(bad("public key bit string"))?;
        let oid = spki.algorithm.oid.to_string();
        let key = if oid == RSA_OID {
            let (n, e) = der::SliceReader::new(key_bytes)
                .and_then(|mut rd| {
                    use der::Reader;
                    rd.sequence(|s| {
                        let n = der::asn1::UintRef::decode(s)?;
                        let e = der::asn1::UintRef::decode(s)?;
                        Ok((n.as_bytes().to_vec(), e.as_bytes().to_vec()))
                    })
                })
                .map_err(|_| bad("RSAPublicKey does not decode"))?;
            AkPublic::Rsa {
                n: strip_zeros(&n),
                e: strip_zeros(&e),
            }
        } else if oid == EC_OID {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                .map(|o| o.to_string());
            let curve = match curve_oid.as_deref() {
                Some(P256_OID) => TPM_ECC_NIST_P256,
                Some(P384_OID) => TPM_ECC_NIST_P384,
                _ => return Err(EvidenceError::TpmAlgUnsupported("ECC curve")),
            };
            AkPublic::Ecc {
                curve,
                point: key_bytes.to_vec(),
            }
        } else {
            return Err(EvidenceError::TpmAlgUnsupported("AK key type"));
        };
        key.check()?;
        Ok(key)
    }

    /// Parse an RSA JWK (`{"kty":"RSA","n":..,"e":..}`, base64url).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<AkPublic> {
        if jwk.get("kty").and_then(|v| v.as_str()) != Some("RSA") {
            return Err(EvidenceError::TpmAlgUnsupported("JWK key type"));
        }
        let field = |k: &str| -> Result<Vec<u8>> {
            let s = jwk
                .get(k)
                .and_then(|v| v.as_str())
                .ok_or(bad("JWK field missing"))?;
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| bad("JWK field is not base64url"))
        };
        let key = AkPublic::Rsa {
            n: strip_zeros(&field("n")?),
            e: strip_zeros(&field("e")?),
        };
        key.check()?;
        Ok(key)
    }

    fn check(&self) -> Result<()> {
        match self {
            AkPublic::Rsa { n, e } => {
                if !(256..=1024).contains(&n.len()) || e.is_empty() || e.len() > 8 {
                    return Err(bad("RSA key size"));
                }
            }
            AkPublic::Ecc { curve, point } => {
                let len = coord_len(*curve).ok_or(EvidenceError::TpmAlgUnsupported("ECC curve"))?;
                if point.len() != 1 + 2 * len || point.first() != Some(&4) {
                    return Err(bad("ECC point"));
                }
            }
        }
        Ok(())
    }

    /// Verify `sig` over `msg` (the raw `TPMS_ATTEST` bytes).
    pub fn verify(&self, msg: &[u8], sig: &TpmSignature) -> Result<()> {
        let fail = EvidenceError::TpmQuoteSignature;
        match (self, sig) {
            (AkPublic::Rsa { n, e }, TpmSignature::RsaSsa { hash_alg, sig }) => {
                let params = match *hash_alg {
                    TPM_ALG_SHA1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    TPM_ALG_SHA256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    TPM_ALG_SHA384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    TPM_ALG_SHA512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    _ => return Err(EvidenceError::TpmAlgUnsupported("signature hash")),
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .map_err(|_| fail)
            }
            (AkPublic::Rsa { n, e }, TpmSignature::RsaPss { hash_alg, sig }) => {
                let params = match *hash_alg {
                    TPM_ALG_SHA256 => &signature::RSA_PSS_2048_8192_SHA256,
                    TPM_ALG_SHA384 => &signature::RSA_PSS_2048_8192_SHA384,
                    TPM_ALG_SHA512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(EvidenceError::TpmAlgUnsupported("signature hash")),
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .map_err(|_| fail)
            }
            (AkPublic::Ecc { curve, point }, TpmSignature::Ecdsa { hash_alg, r, s }) => {
                let alg = match (*curve, *hash_alg) {
                    (TPM_ECC_NIST_P256, TPM_ALG_SHA256) => &signature::ECDSA_P256_SHA256_FIXED,
                    (TPM_ECC_NIST_P384, TPM_ALG_SHA384) => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return Err(EvidenceError::TpmAlgUnsupported("ECDSA curve and hash")),
                };
                let len = coord_len(*curve).ok_or(EvidenceError::TpmAlgUnsupported("ECC curve"))?;
                let mut rs = pad(r, len).ok_or(fail.clone())?;
                rs.extend_from_slice(&pad(s, len).ok_or(fail.clone())?);
                UnparsedPublicKey::new(alg, point)
                    .verify(msg, &rs)
                    .map_err(|_| fail)
            }
            _ => Err(EvidenceError::TpmQuoteSignature),
        }
    }
}
