//! The outcome of appraisal: a list of every failed check with a stable code.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why a check failed. Codes (from [`ReasonCode::as_str`]) are stable and
/// documented in `docs/formats/order.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ReasonCode {
    OrderExpired,
    OrderRollback,
    PlatformTeeNotAllowed,
    PlatformSimulated,
    PlatformDebug,
    PlatformTcbStatus,
    /// A reference section needs a claims section the evidence lacks.
    PlatformClaimsMissing,
    TdxMrtdMismatch,
    TdxRtmrMismatch,
    TdxMrconfigidMismatch,
    TdxMrownerMismatch,
    TdxMrownerconfigMismatch,
    TdxAttributesMismatch,
    TdxXfamMismatch,
    SnpMeasurementMismatch,
    SnpHostDataMismatch,
    SnpTcbTooLow,
    SnpVmplMismatch,
    SnpDebugPolicy,
    TpmPcrMismatch,
    GpuCountMismatch,
    GpuCcModeOff,
    GpuDebug,
    GpuDriverVersion,
    GpuVbiosVersion,
    GpuMeasurementMismatch,
    NvSwitchCountMismatch,
    NvSwitchTnvlOff,
    NvSwitchVbiosVersion,
    NvSwitchMeasurementMismatch,
    ComponentUnknown,
    ComponentDigestMismatch,
    ComponentSizeMismatch,
}

impl ReasonCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ReasonCode; 33] = [
        ReasonCode::OrderExpired,
        ReasonCode::OrderRollback,
        ReasonCode::PlatformTeeNotAllowed,
        ReasonCode::PlatformSimulated,
        ReasonCode::PlatformDebug,
        ReasonCode::PlatformTcbStatus,
        ReasonCode::PlatformClaimsMissing,
        ReasonCode::TdxMrtdMismatch,
        ReasonCode::TdxRtmrMismatch,
        ReasonCode::TdxMrconfigidMismatch,
        ReasonCode::TdxMrownerMismatch,
        ReasonCode::TdxMrownerconfigMismatch,
        ReasonCode::TdxAttributesMismatch,
        ReasonCode::TdxXfamMismatch,
        ReasonCode::SnpMeasurementMismatch,
        ReasonCode::SnpHostDataMismatch,
        ReasonCode::SnpTcbTooLow,
        ReasonCode::SnpVmplMismatch,
        ReasonCode::SnpDebugPolicy,
        ReasonCode::TpmPcrMismatch,
        ReasonCode::GpuCountMismatch,
        ReasonCode::GpuCcModeOff,
        ReasonCode::GpuDebug,
        ReasonCode::GpuDriverVersion,
        ReasonCode::GpuVbiosVersion,
        ReasonCode::GpuMeasurementMismatch,
        ReasonCode::NvSwitchCountMismatch,
        ReasonCode::NvSwitchTnvlOff,
        ReasonCode::NvSwitchVbiosVersion,
        ReasonCode::NvSwitchMeasurementMismatch,
        ReasonCode::ComponentUnknown,
        ReasonCode::ComponentDigestMismatch,
        ReasonCode::ComponentSizeMismatch,
    ];

    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        use ReasonCode::*;
        match self {
            OrderExpired => "ORDER_EXPIRED",
            OrderRollback => "ORDER_ROLLBACK",
            PlatformTeeNotAllowed => "PLATFORM_TEE_NOT_ALLOWED",
            PlatformSimulated => "PLATFORM_SIMULATED",
            PlatformDebug => "PLATFORM_DEBUG",
            PlatformTcbStatus => "PLATFORM_TCB_STATUS",
            PlatformClaimsMissing => "PLATFORM_CLAIMS_MISSING",
            TdxMrtdMismatch => "TDX_MRTD_MISMATCH",
            TdxRtmrMismatch => "TDX_RTMR_MISMATCH",
            TdxMrconfigidMismatch => "TDX_MRCONFIGID_MISMATCH",
            TdxMrownerMismatch => "TDX_MROWNER_MISMATCH",
            TdxMrownerconfigMismatch => "TDX_MROWNERCONFIG_MISMATCH",
            TdxAttributesMismatch => "TDX_ATTRIBUTES_MISMATCH",
            TdxXfamMismatch => "TDX_XFAM_MISMATCH",
            SnpMeasurementMismatch => "SNP_MEASUREMENT_MISMATCH",
            SnpHostDataMismatch => "SNP_HOST_DATA_MISMATCH",
            SnpTcbTooLow => "SNP_TCB_TOO_LOW",
            SnpVmplMismatch => "SNP_VMPL_MISMATCH",
            SnpDebugPolicy => "SNP_DEBUG_POLICY",
            TpmPcrMismatch => "TPM_PCR_MISMATCH",
            GpuCountMismatch => "GPU_COUNT_MISMATCH",
            GpuCcModeOff => "GPU_CC_MODE_OFF",
            GpuDebug => "GPU_DEBUG",
            GpuDriverVersion => "GPU_DRIVER_VERSION",
            GpuVbiosVersion => "GPU_VBIOS_VERSION",
            GpuMeasurementMismatch => "GPU_MEASUREMENT_MISMATCH",
            NvSwitchCountMismatch => "NVSWITCH_COUNT_MISMATCH",
            NvSwitchTnvlOff => "NVSWITCH_TNVL_OFF",
            NvSwitchVbiosVersion => "NVSWITCH_VBIOS_VERSION",
            NvSwitchMeasurementMismatch => "NVSWITCH_MEASUREMENT_MISMATCH",
            ComponentUnknown => "COMPONENT_UNKNOWN",
            ComponentDigestMismatch => "COMPONENT_DIGEST_MISMATCH",
            ComponentSizeMismatch => "COMPONENT_SIZE_MISMATCH",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub code: ReasonCode,
    /// What differed, for people (names the field, the value seen and the
    /// value expected).
    pub detail: String,
}

impl Failure {
    /// A failure with a detail.
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Failure {
            code,
            detail: detail.into(),
        }
    }
    /// The stable code string.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// The result of appraisal: every failed check, in check order. Empty means
/// passed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub failures: Vec<Failure>,
}

impl Verdict {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
    /// The failure codes, in order.
    pub fn codes(&self) -> Vec<ReasonCode> {
        self.failures.iter().map(|f| f.code).collect()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            return f.write_str("passed");
        }
        for (i, x) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}
