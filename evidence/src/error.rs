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
    /// DCAP collateral (TCB info, QE identity, CRLs, issuer chains) does
    /// not decode or lacks a required field.
    #[error("TDX collateral malformed: {0}")]
    TdxCollateralMalformed(&'static str),
    /// The verification time lies outside a collateral item's validity
    /// window (TCB info or QE identity issueDate..nextUpdate, a CRL's
    /// thisUpdate..nextUpdate).
    #[error("TDX collateral outside its validity window: {0}")]
    TdxCollateralExpired(&'static str),
    /// A collateral signing chain (TCB signing or PCK CRL issuer chain) is
    /// broken or does not end at the Intel root.
    #[error("TDX collateral issuer chain invalid: {0}")]
    TdxCollateralChain(&'static str),
    /// The TCB info signature does not verify with the TCB signing key.
    #[error("TDX TCB info signature does not verify")]
    TdxTcbInfoSignature,
    /// The QE identity signature does not verify with the TCB signing key.
    #[error("TDX QE identity signature does not verify")]
    TdxQeIdentitySignature,
    /// The QE report does not match the QE identity (MRSIGNER, ISVPRODID,
    /// MISCSELECT or ATTRIBUTES under their masks, or identity kind).
    #[error("TDX QE report does not match the QE identity: {0}")]
    TdxQeIdentityMismatch(&'static str),
    /// A certificate of the PCK chain is listed in a CRL.
    #[error("TDX PCK certificate revoked: {0}")]
    TdxPckRevoked(&'static str),
    /// A collateral signing certificate is listed in the root CA CRL.
    #[error("TDX collateral signing certificate revoked")]
    TdxCollateralSignerRevoked,
    /// A CRL does not decode, is not signed by its issuer, or is not the
    /// CRL of the PCK certificate's issuer.
    #[error("TDX CRL invalid: {0}")]
    TdxCrlInvalid(&'static str),
    /// The TCB info is for another FMSPC than the PCK certificate's.
    #[error("TDX TCB info FMSPC does not match the PCK certificate")]
    TdxFmspcMismatch,
    /// The collateral is for another kind of platform (TCB info id, PCE-ID,
    /// QE identity id or version).
    #[error("TDX collateral does not apply to this quote: {0}")]
    TdxCollateralMismatch(&'static str),
    /// No TCB level of the TCB info (platform or TDX module) or of the QE
    /// identity matches the reported SVNs.
    /// The first field names the structure (`platform`, `TDX module`, `QE
    /// identity`), the second how the reported SVNs fall short of its lowest
    /// level.
    #[error("no matching TCB level ({0}): {1}")]
    TdxTcbLevelNotFound(&'static str, String),
    /// MRSIGNERSEAM or SEAMATTRIBUTES do not match the TDX module identity.
    #[error("TDX module does not match its identity: {0}")]
    TdxModuleMismatch(&'static str),
    /// The TD's attributes make it unfit for confidential work whatever the
    /// policy: a reserved bit set, SEPT_VE_DISABLE clear, MIGRATABLE or
    /// SERVTD_EXT set, or a service TD bound (MRSERVICETD not zero). Intel's
    /// quote verification and dcap-qvl refuse the same. Debug is policy
    /// ([`crate::accept::AcceptPolicy::allow_debug`]).
    #[error("TD attributes not acceptable: {0}")]
    TdxTdAttributes(&'static str),
    /// A matching TCB level (platform, QE or TDX module, at launch or, for
    /// TD 1.5, now) is `Revoked`: the platform's keys are compromised. Never
    /// acceptable, so an error rather than a status.
    #[error("TCB revoked: {0}")]
    TdxTcbRevoked(&'static str),
    /// The SEV-SNP report or its certificate table does not have the layout
    /// it claims.
    #[error("SEV-SNP report malformed: {0}")]
    SnpReportMalformed(&'static str),
    /// The SEV-SNP report's ECDSA P-384 signature does not verify with the
    /// VCEK/VLEK key.
    #[error("SEV-SNP report signature does not verify with the VCEK/VLEK")]
    SnpReportSignature,
    /// The report says it is unsigned (SIGNING_KEY none or MASK_CHIP_KEY).
    #[error("SEV-SNP report is not signed")]
    SnpReportUnsigned,
    /// The VCEK/VLEK -> ASK/ASVK -> ARK chain is broken.
    #[error("SEV-SNP certificate chain invalid: {0}")]
    SnpVcekChain(&'static str),
    /// The chain belongs to another processor generation than the report
    /// or the leaf.
    #[error("SEV-SNP certificate chain is for another product")]
    SnpWrongProductChain,
    /// The processor generation is not one this crate has roots for.
    #[error("SEV-SNP product unknown: {0}")]
    SnpUnknownProduct(&'static str),
    /// The leaf's TCB extensions differ from the report's REPORTED_TCB.
    #[error("VCEK/VLEK TCB does not match the report's REPORTED_TCB")]
    SnpTcbMismatch,
    /// The VCEK's hwID differs from the report's CHIP_ID.
    #[error("VCEK hwID does not match the report's CHIP_ID")]
    SnpChipIdMismatch,
    /// A VLEK-signed report was presented with a VCEK chain or vice versa.
    #[error("SEV-SNP signing key kind (VCEK/VLEK) does not match the chain")]
    SnpVlekVcekMismatch,
    /// An AMD extension of the VCEK/VLEK is missing or does not decode.
    #[error("VCEK/VLEK extension invalid: {0}")]
    SnpCertExtension(&'static str),
    /// A certificate of the chain is listed in a valid CRL of its issuer.
    #[error("SEV-SNP certificate revoked")]
    SnpCertRevoked,
    /// A CRL does not decode, is not signed by the ARK or is not current.
    #[error("SEV-SNP CRL invalid: {0}")]
    SnpCrl(&'static str),
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
    /// Composite TPM evidence beside a TPM quote as the CPU evidence.
    #[error("a vTPM quote beside the CPU evidence needs TDX or SEV-SNP CPU evidence")]
    TpmCompositeMisplaced,
    /// The firmware event log does not parse.
    #[error("firmware event log: {0}")]
    TpmEventLogMalformed(String),
    /// The replayed firmware event log does not give the quoted PCR values.
    #[error("firmware event log does not replay to the quoted PCRs: {0}")]
    TpmEventLogMismatch(String),
    /// An Azure HCL report does not decode.
    #[error("malformed HCL report: {0}")]
    HclReportMalformed(&'static str),
    /// The CPU report data does not bind the HCL variable data (which holds the AK).
    #[error("HCL variable data digest does not match the CPU report data")]
    HclVarDataMismatch,
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
    /// An NVSwitch's evidence failed a check. NVSwitch reports have the
    /// GPUs' SPDM layout and chain, so the inner error is one of the `GPU_*`
    /// errors and its reason code is this error's code; the message names
    /// the switch.
    #[error("NVSwitch {index}: {source}")]
    NvSwitch {
        index: u32,
        source: Box<EvidenceError>,
    },
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
            Self::TdxCollateralMalformed(_) => "TDX_COLLATERAL_MALFORMED",
            Self::TdxCollateralExpired(_) => "TDX_COLLATERAL_EXPIRED",
            Self::TdxCollateralChain(_) => "TDX_COLLATERAL_CHAIN",
            Self::TdxTcbInfoSignature => "TDX_TCB_INFO_SIGNATURE",
            Self::TdxQeIdentitySignature => "TDX_QE_IDENTITY_SIGNATURE",
            Self::TdxQeIdentityMismatch(_) => "TDX_QE_IDENTITY_MISMATCH",
            Self::TdxPckRevoked(_) => "TDX_PCK_REVOKED",
            Self::TdxCollateralSignerRevoked => "TDX_COLLATERAL_SIGNER_REVOKED",
            Self::TdxCrlInvalid(_) => "TDX_CRL_INVALID",
            Self::TdxFmspcMismatch => "TDX_FMSPC_MISMATCH",
            Self::TdxCollateralMismatch(_) => "TDX_COLLATERAL_MISMATCH",
            Self::TdxTcbLevelNotFound(..) => "TDX_TCB_LEVEL_NOT_FOUND",
            Self::TdxModuleMismatch(_) => "TDX_MODULE_MISMATCH",
            Self::TdxTdAttributes(_) => "TDX_TD_ATTRIBUTES",
            Self::TdxTcbRevoked(_) => "TDX_TCB_REVOKED",
            Self::SnpReportMalformed(_) => "SNP_REPORT_MALFORMED",
            Self::SnpReportSignature => "SNP_REPORT_SIGNATURE",
            Self::SnpReportUnsigned => "SNP_REPORT_UNSIGNED",
            Self::SnpVcekChain(_) => "SNP_VCEK_CHAIN",
            Self::SnpWrongProductChain => "SNP_WRONG_PRODUCT_CHAIN",
            Self::SnpUnknownProduct(_) => "SNP_UNKNOWN_PRODUCT",
            Self::SnpTcbMismatch => "SNP_TCB_MISMATCH",
            Self::SnpChipIdMismatch => "SNP_CHIP_ID_MISMATCH",
            Self::SnpVlekVcekMismatch => "SNP_VLEK_VCEK_MISMATCH",
            Self::SnpCertExtension(_) => "SNP_CERT_EXTENSION",
            Self::SnpCertRevoked => "SNP_CERT_REVOKED",
            Self::SnpCrl(_) => "SNP_CRL_INVALID",
            Self::TpmAttestMalformed(_) => "TPM_ATTEST_MALFORMED",
            Self::TpmAlgUnsupported(_) => "TPM_ALG_UNSUPPORTED",
            Self::TpmQuoteSignature => "TPM_QUOTE_SIGNATURE",
            Self::TpmPcrDigestMismatch => "TPM_PCR_DIGEST_MISMATCH",
            Self::TpmPcrValues(_) => "TPM_PCR_VALUES",
            Self::TpmNonceMismatch => "TPM_NONCE_MISMATCH",
            Self::TpmAkUntrusted(_) => "TPM_AK_UNTRUSTED",
            Self::TpmAkMalformed(_) => "TPM_AK_MALFORMED",
            Self::TpmCompositeMisplaced => "TPM_COMPOSITE_MISPLACED",
            Self::TpmEventLogMalformed(_) => "TPM_EVENT_LOG_MALFORMED",
            Self::TpmEventLogMismatch(_) => "TPM_EVENT_LOG_MISMATCH",
            Self::HclReportMalformed(_) => "TPM_HCL_REPORT_MALFORMED",
            Self::HclVarDataMismatch => "TPM_HCL_VAR_DATA_MISMATCH",
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
            Self::NvSwitch { source, .. } => source.code(),
        }
    }
}
