//! The one error type of evidence parsing and verification.

/// Why evidence was rejected. Each variant has a stable reason code
/// ([`EvidenceError::code`]) that logs, halt messages and the CA's
/// responses carry; the display text is for people and may change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The bytes do not have the layout they claim (a length runs past the
    /// end, a field has an impossible value, a certificate does not decode).
    #[error("malformed evidence: {0}")]
    Malformed(&'static str),
    /// Well-formed but of a kind or version this crate does not verify.
    #[error("unsupported evidence: {0}")]
    Unsupported(&'static str),
    /// The TDX quote's ECDSA signature over header and body does not verify
    /// with the attestation key it carries.
    #[error("TDX quote signature does not verify with the attestation key")]
    TdxQuoteSignature,
    /// The quoting enclave's report is not signed by the PCK leaf key.
    #[error("TDX QE report signature does not verify with the PCK key")]
    TdxQeReportSignature,
    /// The QE report does not bind the attestation key and QE auth data.
    #[error("TDX QE report data does not bind the attestation key")]
    TdxQeBinding,
    /// The PCK certificate chain is broken: a link's names or signature do
    /// not match, a CA lacks its CA constraints, or a key is not P-256.
    #[error("TDX PCK certificate chain invalid: {0}")]
    TdxPckChain(&'static str),
    /// A certificate in the chain (or the trust anchor) has expired at the
    /// verification time.
    #[error("certificate expired at the verification time")]
    CertExpired,
    /// A certificate in the chain (or the trust anchor) is not yet valid at
    /// the verification time.
    #[error("certificate not yet valid at the verification time")]
    CertNotYetValid,
    /// The chain does not end at any configured trust anchor.
    #[error("certificate chain does not end at a trusted root")]
    CertUntrustedRoot,
    /// The chain ends at a simulated TEE root, and the verifier's operator
    /// did not enable simulated evidence.
    #[error("evidence chains to a simulated TEE root, which is not enabled")]
    SimulatedRootNotAllowed,
    /// No trust anchor is configured at all.
    #[error("no trust anchor configured")]
    NoTrustAnchor,
    /// A configured trust anchor does not decode as a P-256 X.509 certificate.
    #[error("trust anchor invalid: {0}")]
    BadTrustAnchor(&'static str),
    /// Real (non-simulated) evidence needs TCB collateral to be appraised,
    /// and none was given.
    #[error("TCB collateral missing for real evidence")]
    CollateralMissing,
    /// The report data does not equal the expected binding of nonce and keys.
    #[error("report data does not match the expected binding")]
    BindingMismatch,
    /// A GPU attestation report does not have the SPDM layout it claims.
    #[error("GPU attestation report malformed: {0}")]
    GpuReportMalformed(&'static str),
    /// The GPU report's signature does not verify with the device leaf key.
    #[error("GPU attestation report signature does not verify")]
    GpuReportSignature,
    /// The GPU device certificate chain is broken.
    #[error("GPU device certificate chain invalid: {0}")]
    GpuChain(&'static str),
    /// The GPU device chain does not end at a configured device root.
    #[error("GPU device certificate chain does not end at a trusted root")]
    GpuUntrustedRoot,
    /// The FWID in the report and in the device leaf certificate differ (or
    /// one is missing).
    #[error("GPU firmware ID check failed: {0}")]
    GpuFwidMismatch(&'static str),
    /// The GPU report answers another nonce than the expected one.
    #[error("GPU attestation report nonce does not match the expected nonce")]
    GpuNonceMismatch,
    /// GPU evidence was given but no CPU nonce to derive GPU nonces from.
    #[error("GPU evidence present but no expected nonce given")]
    GpuNonceMissing,
    /// Two GPU evidence entries carry the same index.
    #[error("GPU index repeated in the evidence bundle")]
    GpuIndexDuplicate,
    /// A RIM (SWID tag) does not parse or lacks a required part.
    #[error("GPU RIM malformed: {0}")]
    GpuRimMalformed(&'static str),
    /// A RIM's XML signature (digest or signature value) does not verify.
    #[error("GPU RIM signature invalid: {0}")]
    GpuRimSignature(&'static str),
    /// A RIM's signing chain is broken or does not end at the RIM root.
    #[error("GPU RIM certificate chain invalid: {0}")]
    GpuRimChain(&'static str),
}

impl EvidenceError {
    /// The stable reason code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "EVIDENCE_MALFORMED",
            Self::Unsupported(_) => "EVIDENCE_UNSUPPORTED",
            Self::TdxQuoteSignature => "TDX_QUOTE_SIGNATURE",
            Self::TdxQeReportSignature => "TDX_QE_REPORT_SIGNATURE",
            Self::TdxQeBinding => "TDX_QE_BINDING",
            Self::TdxPckChain(_) => "TDX_PCK_CHAIN",
            Self::CertExpired => "CERT_EXPIRED",
            Self::CertNotYetValid => "CERT_NOT_YET_VALID",
            Self::CertUntrustedRoot => "CERT_UNTRUSTED_ROOT",
            Self::SimulatedRootNotAllowed => "SIMULATED_ROOT_NOT_ALLOWED",
            Self::NoTrustAnchor => "EVIDENCE_NO_TRUST_ANCHOR",
            Self::BadTrustAnchor(_) => "EVIDENCE_BAD_TRUST_ANCHOR",
            Self::CollateralMissing => "EVIDENCE_COLLATERAL_MISSING",
            Self::BindingMismatch => "EVIDENCE_BINDING_MISMATCH",
            Self::GpuReportMalformed(_) => "GPU_REPORT_MALFORMED",
            Self::GpuReportSignature => "GPU_REPORT_SIGNATURE",
            Self::GpuChain(_) => "GPU_CHAIN",
            Self::GpuUntrustedRoot => "GPU_UNTRUSTED_ROOT",
            Self::GpuFwidMismatch(_) => "GPU_FWID_MISMATCH",
            Self::GpuNonceMismatch => "GPU_NONCE_MISMATCH",
            Self::GpuNonceMissing => "GPU_NONCE_MISSING",
            Self::GpuIndexDuplicate => "GPU_INDEX_DUPLICATE",
            Self::GpuRimMalformed(_) => "GPU_RIM_MALFORMED",
            Self::GpuRimSignature(_) => "GPU_RIM_SIGNATURE",
            Self::GpuRimChain(_) => "GPU_RIM_CHAIN",
        }
    }
}
