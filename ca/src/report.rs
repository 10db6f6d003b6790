//! The run report, its canonical JSON and its signature. Pure.
//!
//! A [`RunReport`] is serialized as canonical JSON ([`crate::canonical`]:
//! sorted keys, no whitespace, no floats; absent options are `null`; times are
//! RFC 3339 UTC with whole seconds, `YYYY-MM-DDTHH:MM:SSZ`; digests are
//! lowercase hex). The loader signs
//!
//! ```text
//! "tl-run-report/v1\n" || <canonical JSON of the report>
//! ```
//!
//! with its certified key (ECDSA P-256 / SHA-256, ASN.1 DER, base64 in JSON);
//! the domain prefix keeps a report signature from ever being valid for
//! another message the same key signs (such as an order acceptance).
//!
//! **Time of verification.** A report is signed while its certificate is
//! valid. [`verify_signed_report`] checks the certificate at the `now` the
//! caller passes and requires that `now` and the report's `finished_at` both
//! lie in the certificate's validity. The CA passes its clock, so it logs a
//! report only while the certificate is valid. A verifier that checks a
//! report later (after the short-lived certificate expired) uses
//! [`verify_signed_report_at_signing_time`], which verifies at `finished_at`:
//! that time is asserted by the signer itself, so the evidence that the
//! report existed while the certificate was valid is its inclusion in the
//! CA's log (check the proof with [`crate::log::verify_inclusion`]).

use aws_lc_rs::signature::EcdsaKeyPair;
use base64::{engine::general_purpose::STANDARD, Engine};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tl_evidence::hexser;

use crate::canonical;
use crate::certs::{self, CertError, VerifiedLeaf};

/// Domain prefix of the report signature.
pub const REPORT_SIGNATURE_DOMAIN: &[u8] = b"tl-run-report/v1\n";
/// Largest report text accepted.
pub const MAX_REPORT_LEN: usize = 1024 * 1024;

/// A point in time, unix seconds, written as RFC 3339 UTC (`2026-01-02T03:04:05Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The RFC 3339 text.
    pub fn to_rfc3339(self) -> Option<String> {
        let t = time::OffsetDateTime::from_unix_timestamp(self.0).ok()?;
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    }

    /// Parses RFC 3339 text (any offset; fractions are dropped).
    pub fn parse(s: &str) -> Option<Self> {
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        Some(Self(t.unix_timestamp()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self
            .to_rfc3339()
            .ok_or_else(|| serde::ser::Error::custom("time out of range"))?;
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

/// The order the run executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    pub family: String,
    pub version: u64,
    #[serde(with = "hexser::array")]
    pub digest: [u8; 32],
}

/// One decrypted and verified component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRecord {
    pub name: String,
    #[serde(with = "hexser::array")]
    pub sha256: [u8; 32],
    pub size: u64,
}

/// One sealed output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRecord {
    pub name: String,
    pub recipients: Vec<String>,
    #[serde(with = "hexser::array")]
    pub plaintext_sha256: [u8; 32],
    #[serde(with = "hexser::array")]
    pub sealed_sha256: [u8; 32],
}

/// How the engine ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExitStatus {
    /// Exited with this code: `{"code": 0}`.
    Code(i32),
    /// Killed by this signal: `{"signal": 9}`.
    Signal(i32),
}

/// Why the loader halted (no launch, or a failure after it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halt {
    pub code: String,
    pub detail: String,
}

/// What one run of the loader did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    pub loader_version: String,
    /// `EvidenceBundle::digest` of the enrollment evidence, hex.
    #[serde(with = "hexser::array")]
    pub evidence_digest: [u8; 32],
    /// The loader's certificate (PEM).
    pub certificate_pem: String,
    pub order: OrderRef,
    pub components: Vec<ComponentRecord>,
    pub outputs: Vec<OutputRecord>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// `null` when the engine never ran.
    pub exit_status: Option<ExitStatus>,
    pub wipe_done: bool,
    /// SHA-256 of the canonical event log, hex.
    #[serde(with = "hexser::array")]
    pub event_log_sha256: [u8; 32],
    pub halt: Option<Halt>,
}

impl RunReport {
    /// The canonical JSON text.
    pub fn to_canonical_json(&self) -> Result<String, ReportError> {
        canonical::to_string(self).map_err(|e| ReportError::Malformed(e.to_string()))
    }

    /// Parses canonical JSON text (non-canonical text is refused).
    pub fn from_canonical_json(text: &str) -> Result<Self, ReportError> {
        if text.len() > MAX_REPORT_LEN {
            return Err(ReportError::TooLarge);
        }
        canonical::from_str(text).map_err(|e| match e {
            canonical::CanonicalError::NotCanonical => ReportError::NotCanonical,
            other => ReportError::Malformed(other.to_string()),
        })
    }
}

/// A run report with its signature and the signer's certificate chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRunReport {
    /// The canonical JSON of a [`RunReport`], as signed.
    pub report: String,
    /// ECDSA P-256 / SHA-256 (ASN.1 DER) over [`signing_message`], base64.
    pub signature: String,
    /// Leaf first, then the CA root (PEM).
    pub certificate_chain_pem: String,
    /// A fresh quote bound to the report (base64), when the platform gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
}

/// Why a signed report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("report is too large")]
    TooLarge,
    #[error("report is malformed: {0}")]
    Malformed(String),
    #[error("report is not in canonical form")]
    NotCanonical,
    #[error("certificate: {0}")]
    Certificate(#[from] CertError),
    #[error("report signature does not verify with the certified key")]
    Signature,
    #[error("report names another certificate than the one that signed it")]
    CertificateMismatch,
    #[error("report names other evidence than the certificate")]
    EvidenceMismatch,
    #[error("report times are outside the certificate's validity or out of order")]
    Time,
    #[error("signing failed")]
    Signing,
}

impl ReportError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "REPORT_TOO_LARGE",
            Self::Malformed(_) => "REPORT_MALFORMED",
            Self::NotCanonical => "REPORT_NOT_CANONICAL",
            Self::Certificate(e) => e.code(),
            Self::Signature => "REPORT_SIGNATURE",
            Self::CertificateMismatch => "REPORT_CERTIFICATE_MISMATCH",
            Self::EvidenceMismatch => "REPORT_EVIDENCE_MISMATCH",
            Self::Time => "REPORT_TIME",
            Self::Signing => "REPORT_SIGNING",
        }
    }
}

/// A report whose signature, certificate and consistency checks passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReport {
    pub report: RunReport,
    pub leaf: VerifiedLeaf,
    /// SHA-256 of the canonical report text.
    pub report_sha256: [u8; 32],
}

/// The bytes the certified key signs for a report.
pub fn signing_message(report_json: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(REPORT_SIGNATURE_DOMAIN.len() + report_json.len());
    m.extend_from_slice(REPORT_SIGNATURE_DOMAIN);
    m.extend_from_slice(report_json.as_bytes());
    m
}

/// Signs a report with the certified key (the loader's side).
pub fn sign_report(
    report: &RunReport,
    key: &EcdsaKeyPair,
    certificate_chain_pem: &str,
) -> Result<SignedRunReport, ReportError> {
    let text = report.to_canonical_json()?;
    let sig = crate::sign_p256(key, &signing_message(&text)).map_err(|_| ReportError::Signing)?;
    Ok(SignedRunReport {
        report: text,
        signature: STANDARD.encode(sig),
        certificate_chain_pem: certificate_chain_pem.to_string(),
        quote: None,
    })
}

/// Verifies a signed report against the CA root at `now_unix` (see the module
/// documentation for the choice of time).
pub fn verify_signed_report(
    signed: &SignedRunReport,
    ca_root_der: &[u8],
    now_unix: u64,
) -> Result<VerifiedReport, ReportError> {
    if signed.report.len() > MAX_REPORT_LEN {
        return Err(ReportError::TooLarge);
    }
    let leaf_der = certs::pem_to_certs(&signed.certificate_chain_pem)?
        .into_iter()
        .next()
        .ok_or(CertError::EmptyChain)?;
    let leaf = certs::verify_leaf(&leaf_der, ca_root_der, now_unix)?;
    let sig = STANDARD
        .decode(&signed.signature)
        .map_err(|_| ReportError::Signature)?;
    leaf.verify_signature(&signing_message(&signed.report), &sig)
        .map_err(|_| ReportError::Signature)?;
    let report = RunReport::from_canonical_json(&signed.report)?;
    let named = certs::pem_to_certs(&report.certificate_pem)?;
    if named.first() != Some(&leaf_der) {
        return Err(ReportError::CertificateMismatch);
    }
    if report.evidence_digest != leaf.claims.evidence_digest {
        return Err(ReportError::EvidenceMismatch);
    }
    let in_validity = |t: Timestamp| {
        u64::try_from(t.0).is_ok_and(|t| t >= leaf.not_before && t <= leaf.not_after)
    };
    if report.started_at > report.finished_at || !in_validity(report.finished_at) {
        return Err(ReportError::Time);
    }
    Ok(VerifiedReport {
        report_sha256: crate::sha256(signed.report.as_bytes()),
        report,
        leaf,
    })
}

/// Verifies a signed report at the time it says it finished (for checks made
/// after the certificate expired; see the module documentation).
pub fn verify_signed_report_at_signing_time(
    signed: &SignedRunReport,
    ca_root_der: &[u8],
) -> Result<VerifiedReport, ReportError> {
    let report = RunReport::from_canonical_json(&signed.report)?;
    let at = u64::try_from(report.finished_at.0).map_err(|_| ReportError::Time)?;
    verify_signed_report(signed, ca_root_der, at)
}

/// The transparency-log leaf of a signed report: the canonical JSON of the
/// [`SignedRunReport`] as submitted (so anyone holding it can recompute the
/// leaf and check its inclusion proof).
pub fn log_leaf(signed: &SignedRunReport) -> Result<Vec<u8>, ReportError> {
    canonical::to_string(signed)
        .map(String::into_bytes)
        .map_err(|e| ReportError::Malformed(e.to_string()))
}
