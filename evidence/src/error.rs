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
    /// A TPM structure (TPMS_ATTEST, TPMT_SIGNATURE, TPM evidence) does not decode.
    #[error("malformed TPM attestation: {0}")]
    TpmAttestMalformed(&'static str),
    /// A TPM algorithm (scheme, hash, curve, key type) is not supported.
    #[error("unsupported TPM algorithm: {0}")]
    TpmAlgUnsupported(&'static str),
    /// The quote's signature does not verify with the AK.
    #[error("TPM quote signature does not verify with the attestation key")]
    TpmQuoteSignature,
    /// The digest of the presented PCR values is not the quote's pcrDigest.
    #[error("PCR values do not match the quote's PCR digest")]
    TpmPcrDigestMismatch,
    /// The presented PCR values do not cover the selection.
    #[error("PCR values invalid: {0}")]
    TpmPcrValues(&'static str),
    /// The quote's extraData is not the expected nonce.
    #[error("TPM quote extraData does not match the expected nonce")]
    TpmNonceMismatch,
    /// No accepted reason to trust the AK (CPU binding, certificate, pin).
    #[error("TPM attestation key not trusted: {0}")]
    TpmAkUntrusted(&'static str),
    /// The AK public key does not decode.
    #[error("malformed TPM attestation key: {0}")]
    TpmAkMalformed(&'static str),
    /// An Azure HCL report does not decode.
    #[error("malformed HCL report: {0}")]
    HclReportMalformed(&'static str),
    /// The CPU report data does not bind the HCL variable data (which holds the AK).
    #[error("HCL variable data digest does not match the CPU report data")]
    HclVarDataMismatch,
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
            Self::TpmAttestMalformed(_) => "TPM_ATTEST_MALFORMED",
            Self::TpmAlgUnsupported(_) => "TPM_ALG_UNSUPPORTED",
            Self::TpmQuoteSignature => "TPM_QUOTE_SIGNATURE",
            Self::TpmPcrDigestMismatch => "TPM_PCR_DIGEST_MISMATCH",
            Self::TpmPcrValues(_) => "TPM_PCR_VALUES",
            Self::TpmNonceMismatch => "TPM_NONCE_MISMATCH",
            Self::TpmAkUntrusted(_) => "TPM_AK_UNTRUSTED",
            Self::TpmAkMalformed(_) => "TPM_AK_MALFORMED",
            Self::HclReportMalformed(_) => "TPM_HCL_REPORT_MALFORMED",
            Self::HclVarDataMismatch => "TPM_HCL_VAR_DATA_MISMATCH",
        }
    }
}
