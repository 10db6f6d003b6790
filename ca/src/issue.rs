//! CSR parsing, the CA key, and issuance of leaf, root and TLS certificates.
//! Pure: random bytes come from aws-lc-rs's generator; time is a parameter.
//!
//! Leaves are written field by field (X.509 v3, DER) because their claims
//! extension OID has a 128-bit arc that rcgen cannot express; the root and
//! the TLS server certificate are made with rcgen.
//!
//! A leaf carries: serial (16 random bytes), issuer = root subject (copied
//! byte for byte), validity `[now - 60 s, now + lifetime]`, subject
//! `CN=trusted-loader <first 16 hex digits of the evidence digest>`, the CSR's
//! SubjectPublicKeyInfo (ECDSA P-256 only), and the extensions
//! basicConstraints (critical, cA false), keyUsage (critical,
//! digitalSignature), extKeyUsage clientAuth, subjectKeyIdentifier,
//! authorityKeyIdentifier and the claims extension (non-critical).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use yasna::models::ObjectIdentifier;
use yasna::Tag;

use crate::certs::{self, p256_point, ECDSA_SHA256_OID};
use crate::claims_ext::{CertClaims, CLAIMS_OID_DER};

/// Largest CSR accepted.
pub const MAX_CSR_LEN: usize = 16 * 1024;
/// Default leaf lifetime in seconds (1 h).
pub const DEFAULT_LEAF_LIFETIME_SECS: u64 = 3600;
/// Clock skew allowance: a leaf's notBefore is this far before issuance.
pub const NOT_BEFORE_SKEW_SECS: u64 = 60;
/// Root validity in seconds (10 years).
pub const ROOT_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// TLS server certificate validity in seconds (90 days).
pub const TLS_LIFETIME_SECS: u64 = 90 * 24 * 3600;

/// Why a CSR was refused or a certificate could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error("CSR is too large")]
    CsrTooLarge,
    #[error("CSR is not valid DER PKCS#10")]
    CsrMalformed,
    #[error("CSR key is not an ECDSA P-256 key")]
    CsrKeyType,
    #[error("CSR signature algorithm is not ecdsa-with-SHA256")]
    CsrSignatureAlgorithm,
    #[error("CSR self-signature does not verify")]
    CsrSignature,
    #[error("CA key or root is unusable: {0}")]
    CaKey(String),
    #[error("claims: {0}")]
    Claims(String),
    #[error("time out of range")]
    Time,
    #[error("signing or random generation failed")]
    Crypto,
}

impl IssueError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CsrTooLarge => "ENROLL_CSR_TOO_LARGE",
            Self::CsrMalformed => "ENROLL_CSR_MALFORMED",
            Self::CsrKeyType => "ENROLL_CSR_KEY_TYPE",
            Self::CsrSignatureAlgorithm => "ENROLL_CSR_SIGNATURE_ALGORITHM",
            Self::CsrSignature => "ENROLL_CSR_SIGNATURE",
            Self::CaKey(_) => "CA_KEY",
            Self::Claims(_) => "CA_CLAIMS",
            Self::Time => "CA_TIME",
            Self::Crypto => "CA_CRYPTO",
        }
    }
}

/// A CSR whose self-signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCsr {
    /// The requested key's SubjectPublicKeyInfo (DER, P-256).
    pub spki_der: Vec<u8>,
}

/// Parses a PKCS#10 CSR and verifies its self-signature (ECDSA P-256 / SHA-256 only).
pub fn parse_csr(der: &[u8]) -> Result<VerifiedCsr, IssueError> {
    if der.len() > MAX_CSR_LEN {
        return Err(IssueError::CsrTooLarge);
    }
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|_| IssueError::CsrMalformed)?;
    if !rest.is_empty() {
        return Err(IssueError::CsrMalformed);
    }
    let info = &csr.certification_request_info;
    let spki_der = info.subject_pki.raw.to_vec();
    let point = p256_point(&spki_der).map_err(|_| IssueError::CsrKeyType)?;
    if csr.signature_algorithm.algorithm.as_bytes() != ECDSA_SHA256_OID
        || csr.signature_algorithm.parameters.is_some()
        || !certs::outer_alg_is_ecdsa_sha256(der, info.raw)
        || csr.signature_value.unused_bits != 0
    {
        return Err(IssueError::CsrSignatureAlgorithm);
    }
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(info.raw, &csr.signature_value.data)
        .map_err(|_| IssueError::CsrSignature)?;
    Ok(VerifiedCsr { spki_der })
}

/// The CA's signing key together with its root certificate.
#[derive(Debug)]
pub struct CaKey {
    key: EcdsaKeyPair,
    pkcs8_der: Vec<u8>,
    root_der: Vec<u8>,
    root_subject_der: Vec<u8>,
    root_key_id: Option<Vec<u8>>,
    rng: SystemRandom,
}

/// The root's subject and settings; the same at init and whenever rcgen
/// needs the root as an issuer.
fn root_params(not_before: u64, not_after: u64) -> Result<rcgen::CertificateParams, IssueError> {
    let mut p = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "trusted-loader");
    dn.push(rcgen::DnType::CommonName, "tl-ca root");
    p.distinguished_name = dn;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = odt(not_before)?;
    p.not_after = odt(not_after)?;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()?));
    Ok(p)
}

fn odt(unix: u64) -> Result<time::OffsetDateTime, IssueError> {
    let s = i64::try_from(unix).map_err(|_| IssueError::Time)?;
    time::OffsetDateTime::from_unix_timestamp(s).map_err(|_| IssueError::Time)
}

fn random_serial() -> Result<[u8; 16], IssueError> {
    let mut s = [0u8; 16];
    SystemRandom::new()
        .fill(&mut s)
        .map_err(|_| IssueError::Crypto)?;
    // Positive, 16 bytes long and never zero.
    s[0] = (s[0] & 0x7f) | 0x40;
    Ok(s)
}

/// Makes a new CA key and self-signed root valid from `now_unix`;
/// returns `(PKCS#8 DER key, root certificate DER)`.
pub fn generate_root(now_unix: u64) -> Result<(Vec<u8>, Vec<u8>), IssueError> {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| IssueError::CaKey(e.to_string()))?;
    let params = root_params(
        now_unix.saturating_sub(NOT_BEFORE_SKEW_SECS),
        now_unix.saturating_add(ROOT_LIFETIME_SECS),
    )?;
    let cert = params
        .self_signed(&kp)
        .map_err(|e| IssueError::CaKey(e.to_string()))?;
    Ok((kp.serialize_der(), cert.der().to_vec()))
}

/// What a leaf certificate says, besides its key.
#[derive(Clone, Debug)]
pub struct LeafRequest<'a> {
    /// The certified key (from [`parse_csr`]).
    pub csr: &'a VerifiedCsr,
    pub claims: &'a CertClaims,
    pub now_unix: u64,
    pub lifetime_secs: u64,
}

/// A freshly issued leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedLeaf {
    pub der: Vec<u8>,
    pub serial_hex: String,
    pub not_before: u64,
    pub not_after: u64,
}

impl CaKey {
    /// Loads the CA key (PKCS#8 DER) and checks that `root_der` certifies it.
    pub fn from_pkcs8_and_root(pkcs8_der: &[u8], root_der: &[u8]) -> Result<Self, IssueError> {
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8_der)
            .map_err(|e| IssueError::CaKey(e.to_string()))?;
        let root = certs::parse_cert(root_der).map_err(|e| IssueError::CaKey(e.to_string()))?;
        let point = p256_point(root.tbs_certificate.subject_pki.raw)
            .map_err(|e| IssueError::CaKey(e.to_string()))?;
        if point != key.public_key().as_ref() {
            return Err(IssueError::CaKey("root does not certify this key".into()));
        }
        let root_key_id =
            root.tbs_certificate
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                    _ => None,
                });
        Ok(Self {
            root_subject_der: root.tbs_certificate.subject.as_raw().to_vec(),
            key,
            pkcs8_der: pkcs8_der.to_vec(),
            root_der: root_der.to_vec(),
            root_key_id,
            rng: SystemRandom::new(),
        })
    }

    /// The root certificate (DER).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The signing key (for tree heads).
    pub fn signing_key(&self) -> &EcdsaKeyPair {
        &self.key
    }

    /// The CA public key (uncompressed P-256 point).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// Signs `message` (ECDSA P-256 / SHA-256, ASN.1 DER).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IssueError> {
        self.key
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| IssueError::Crypto)
    }

    /// Issues a TLS server certificate for `127.0.0.1` and `localhost`;
    /// returns `(PKCS#8 DER key, certificate DER)`.
    pub fn issue_tls_server(&self, now_unix: u64) -> Result<(Vec<u8>, Vec<u8>), IssueError> {
        let ca_kp = rcgen::KeyPair::try_from(self.pkcs8_der.as_slice())
            .map_err(|e| IssueError::CaKey(e.to_string()))?;
        let issuer = root_params(0, ROOT_LIFETIME_SECS)?
            .self_signed(&ca_kp)
            .map_err(|e| IssueError::CaKey(e.to_string()))?;
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| IssueError::CaKey(e.to_string()))?;
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .map_err(|e| IssueError::CaKey(e.to_string()))?;
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress(std::net::IpAddr::V4(
                std::net::Ipv4Addr::LOCALHOST,
            )));
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "tl-ca server");
        p.distinguished_name = dn;
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        p.not_before = odt(now_unix.saturating_sub(NOT_BEFORE_SKEW_SECS))?;
        p.not_after = odt(now_unix.saturating_add(TLS_LIFETIME_SECS))?;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()?));
        let cert = p
            .signed_by(&kp, &issuer, &ca_kp)
            .map_err(|e| IssueError::CaKey(e.to_string()))?;
        Ok((kp.serialize_der(), cert.der().to_vec()))
    }

    /// Issues a leaf certificate for the CSR's key carrying `claims`.
    pub fn issue_leaf(&self, req: &LeafRequest<'_>) -> Result<IssuedLeaf, IssueError> {
        let point = p256_point(&req.csr.spki_der).map_err(|_| IssueError::CsrKeyType)?;
        let ext_value = req
            .claims
            .to_extension_value()
            .map_err(|e| IssueError::Claims(e.to_string()))?;
        let serial = random_serial()?;
        let not_before = req.now_unix.saturating_sub(NOT_BEFORE_SKEW_SECS);
        let not_after = req.now_unix.saturating_add(req.lifetime_secs);
        let nb = x509_time(not_before)?;
        let na = x509_time(not_after)?;
        // The hex of a 32-byte digest is 64 ASCII characters; 16 are taken.
        let cn = format!(
            "trusted-loader {}",
            &hex::encode(req.claims.evidence_digest)[..16]
        );
        let ski = {
            let d = crate::sha256(point);
            d[..20].to_vec()
        };
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_tagged(Tag::context(0), |w| w.write_u8(2));
                w.next().write_bigint_bytes(&serial, true);
                write_ecdsa_sha256(w.next());
                w.next().write_der(&self.root_subject_der);
                w.next().write_sequence(|w| {
                    w.next().write_der(&nb);
                    w.next().write_der(&na);
                });
                w.next().write_sequence(|w| {
                    w.next().write_set(|w| {
                        w.next().write_sequence(|w| {
                            w.next()
                                .write_oid(&ObjectIdentifier::from_slice(&[2, 5, 4, 3]));
                            w.next().write_utf8_string(&cn);
                        });
                    });
                });
                w.next().write_der(&req.csr.spki_der);
                w.next().write_tagged(Tag::context(3), |w| {
                    w.write_sequence(|w| {
                        // basicConstraints, critical, cA FALSE (the default, so empty).
                        ext(
                            w.next(),
                            &[2, 5, 29, 19],
                            true,
                            &yasna::construct_der(|w| w.write_sequence(|_| {})),
                        );
                        // keyUsage, critical, digitalSignature.
                        ext(
                            w.next(),
                            &[2, 5, 29, 15],
                            true,
                            &yasna::construct_der(|w| w.write_bitvec_bytes(&[0x80], 1)),
                        );
                        // extKeyUsage clientAuth.
                        ext(
                            w.next(),
                            &[2, 5, 29, 37],
                            false,
                            &yasna::construct_der(|w| {
                                w.write_sequence(|w| {
                                    w.next().write_oid(&ObjectIdentifier::from_slice(&[
                                        1, 3, 6, 1, 5, 5, 7, 3, 2,
                                    ]))
                                })
                            }),
                        );
                        // subjectKeyIdentifier.
                        ext(
                            w.next(),
                            &[2, 5, 29, 14],
                            false,
                            &yasna::construct_der(|w| w.write_bytes(&ski)),
                        );
                        if let Some(kid) = &self.root_key_id {
                            // authorityKeyIdentifier [0] keyIdentifier.
                            ext(
                                w.next(),
                                &[2, 5, 29, 35],
                                false,
                                &yasna::construct_der(|w| {
                                    w.write_sequence(|w| {
                                        w.next().write_tagged_implicit(Tag::context(0), |w| {
                                            w.write_bytes(kid)
                                        })
                                    })
                                }),
                            );
                        }
                        // The claims extension, non-critical (DEFAULT FALSE is omitted).
                        w.next().write_sequence(|w| {
                            w.next().write_der(&raw_oid(CLAIMS_OID_DER));
                            w.next().write_bytes(&ext_value);
                        });
                    })
                });
            })
        });
        let sig = self.sign(&tbs)?;
        let der = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                write_ecdsa_sha256(w.next());
                w.next().write_bitvec_bytes(&sig, sig.len() * 8);
            })
        });
        Ok(IssuedLeaf {
            der,
            serial_hex: hex::encode(serial),
            not_before,
            not_after,
        })
    }
}

fn write_ecdsa_sha256(w: yasna::DERWriter<'_>) {
    w.write_sequence(|w| w.next().write_der(&raw_oid(ECDSA_SHA256_OID)));
}

fn raw_oid(content: &[u8]) -> Vec<u8> {
    // OIDs here are constants far shorter than 128 bytes (short-form length).
    let mut v = vec![0x06, content.len() as u8];
    v.extend_from_slice(content);
    v
}

fn ext(w: yasna::DERWriter<'_>, oid: &[u64], critical: bool, value: &[u8]) {
    w.write_sequence(|w| {
        w.next().write_oid(&ObjectIdentifier::from_slice(oid));
        if critical {
            w.next().write_bool(true);
        }
        w.next().write_bytes(value);
    });
}

/// RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050.
fn x509_time(unix: u64) -> Result<Vec<u8>, IssueError> {
    let t = odt(unix)?;
    let year = t.year();
    let (tag, text) = if (1950..2050).contains(&year) {
        (
            0x17u8,
            format!(
                "{:02}{:02}{:02}{:02}{:02}{:02}Z",
                year % 100,
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
        )
    } else if (0..=9999).contains(&year) {
        (
            0x18u8,
            format!(
                "{:04}{:02}{:02}{:02}{:02}{:02}Z",
                year,
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
        )
    } else {
        return Err(IssueError::Time);
    };
    // Both forms are at most 15 bytes (short-form length).
    let mut v = vec![tag, text.len() as u8];
    v.extend_from_slice(text.as_bytes());
    Ok(v)
}
