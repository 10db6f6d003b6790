//! Typed claims: what verified evidence says about the platform.
//!
//! Claims are produced only by the verifiers in this crate, after every
//! signature and chain check has passed. They are what the CA appraises
//! against its issuance policy, what it writes into the certificate's claims
//! extension, and what `tl-policy` appraises an order against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hexser;

/// The kind of CPU TEE that produced the evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TeeKind {
    /// Intel TDX (quote v4 or v5).
    Tdx,
    /// AMD SEV-SNP attestation report.
    SevSnp,
    /// A TPM 2.0 quote (vTPM or discrete).
    Tpm,
}

/// Intel-style TCB status, kept as data: the acceptance decision belongs to
/// policy, never to the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked,
    /// TD 1.5 only: the TD launched on an out-of-date TCB, but the TCB it
    /// runs on now (after a TD-preserving TDX module update) is not out of
    /// date; relaunching the TD would bring it up to date.
    TDRelaunchAdvised,
    /// [`Self::TDRelaunchAdvised`] where the launch or current TCB also
    /// needs platform configuration.
    TDRelaunchAdvisedConfigurationNeeded,
    /// The evidence kind has no TCB status of its own (for example a TPM quote).
    NotApplicable,
}

/// Measurements of a TDX trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxClaims {
    #[serde(with = "hexser::array")]
    pub mrtd: [u8; 48],
    #[serde(with = "hexser::array_vec")]
    pub rtmr: Vec<[u8; 48]>,
    #[serde(with = "hexser::array")]
    pub mrconfigid: [u8; 48],
    #[serde(with = "hexser::array")]
    pub mrowner: [u8; 48],
    #[serde(with = "hexser::array")]
    pub mrownerconfig: [u8; 48],
    /// TD attributes (TDATTRIBUTES), little-endian u64 as in the quote.
    pub td_attributes: u64,
    pub xfam: u64,
    #[serde(with = "hexser::array")]
    pub tee_tcb_svn: [u8; 16],
    /// Present in TD 1.5 bodies only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrservicetd: Option<String>,
}

/// Measurements and policy of an SEV-SNP guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpClaims {
    #[serde(with = "hexser::array")]
    pub measurement: [u8; 48],
    #[serde(with = "hexser::array")]
    pub host_data: [u8; 32],
    pub policy: u64,
    pub vmpl: u32,
    pub reported_tcb: u64,
    pub committed_tcb: u64,
}

/// PCR values by bank name ("sha256", "sha384", ...) and index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmClaims {
    pub pcrs: BTreeMap<String, BTreeMap<u32, String>>,
    /// SHA-256 (hex) of the firmware event log that replayed to these PCRs
    /// (composite evidence with a log); absent when none was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_log_sha256: Option<String>,
}

/// One attested GPU.
///
/// `driver_version`, `vbios_version` and `measurements` come from the
/// signed SPDM report. `cc_mode` and `debug` (devtools mode) are not stated
/// by the report: they are what the measured loader read through NVML (it
/// produces GPU evidence only in CC mode "on"), so they are loader-asserted
/// and bound through the loader's measurement (see `crate::nvidia`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuClaims {
    pub index: u32,
    pub cc_mode: bool,
    pub debug: bool,
    pub driver_version: String,
    pub vbios_version: String,
    /// Measurement index to hex digest.
    pub measurements: BTreeMap<u32, String>,
}

/// One attested NVSwitch.
///
/// `vbios_version` and `measurements` come from the signed SPDM report;
/// `tnvl_mode` (trusted NVLink, the switch's confidential-computing mode)
/// and `locked` are what the measured loader read through NSCQ (it produces
/// switch evidence only for switches in TNVL mode and locked), so they are
/// loader-asserted like a GPU's `cc_mode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvSwitchClaims {
    pub index: u32,
    pub tnvl_mode: bool,
    pub locked: bool,
    pub vbios_version: String,
    /// Measurement index to hex digest.
    pub measurements: BTreeMap<u32, String>,
}

/// Everything verified evidence says about a platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformClaims {
    pub tee: TeeKind,
    /// True when the evidence chained to the simulated TEE's root, or a GPU
    /// or NVSwitch chain ended at another root than NVIDIA's (the simulated
    /// NVIDIA root); a verifier accepts either only when its operator enabled
    /// it explicitly.
    pub simulated: bool,
    /// True when the TEE runs in debug mode (TDX attribute DEBUG, SNP policy DEBUG).
    pub debug: bool,
    pub tcb_status: TcbStatus,
    pub advisory_ids: Vec<String>,
    /// The 64 bytes the guest bound into the evidence (see [`crate::binding`]).
    #[serde(with = "hexser::array")]
    pub report_data: [u8; 64],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<TdxClaims>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp: Option<SnpClaims>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmClaims>,
    #[serde(default)]
    pub gpus: Vec<GpuClaims>,
    /// Attested NVSwitches; empty (and not encoded) without switches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nvswitches: Vec<NvSwitchClaims>,
}
