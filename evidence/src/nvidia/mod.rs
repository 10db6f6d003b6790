//! NVIDIA GPU confidential-computing evidence: SPDM measurement reports
//! signed by the GPU's device identity key, the device certificate chain to
//! NVIDIA's device root, and reference integrity manifests (RIMs).
//!
//! Order of checks in [`verify_report`] (the first failure is reported):
//! 1. the report parses ([`spdm::parse_report`], `GPU_REPORT_MALFORMED`);
//! 2. the device chain: decoding, links, CA constraints, validity at `now`,
//!    ending at a configured device root (`GPU_CHAIN`, `CERT_*`,
//!    `GPU_UNTRUSTED_ROOT`);
//! 3. the leaf's FWID (TCG DICE TcbInfo extension) equals the FWID in the
//!    report's opaque data (`GPU_FWID_MISMATCH`);
//! 4. the ECDSA P-384 / SHA-384 signature over request || response up to
//!    the signature, with the leaf key (`GPU_REPORT_SIGNATURE`);
//! 5. the request nonce equals the expected nonce (`GPU_NONCE_MISMATCH`).
//!
//! NVSwitches ([`verify_switch_report`]) answer in the same SPDM layout with
//! a chain to the same device root; the one difference, as in NVIDIA's own
//! verifier, is step 3: a switch report without an FWID field is accepted
//! (the signature by the chain's leaf still authenticates it), while one
//! that carries an FWID must match the leaf's. GPU reports must carry it.
//!
//! CC mode: the report carries no field that states the GPU's
//! confidential-computing mode (on, off, devtools). The loader reads it
//! through NVML and refuses to produce GPU evidence unless it is "on"; so
//! [`GpuClaims::cc_mode`] is a loader-asserted value, bound through the
//! loader's own measurement in the CPU evidence. Device identity (FWID,
//! leaf serial, SKU) is returned beside the claims in [`GpuDevice`].

pub mod certs;
pub mod rim;
pub mod spdm;

use std::collections::BTreeMap;

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};

use crate::claims::{GpuClaims, NvSwitchClaims};
use crate::error::EvidenceError;
use certs::{Anchor, ChainKind, VerifiedChain};
use spdm::{opaque_type as ot, SpdmReport};

type Result<T> = core::result::Result<T, EvidenceError>;

/// NVIDIA Device Identity CA (PEM), the root of every GPU device chain.
pub const NVIDIA_DEVICE_ROOT_PEM: &[u8] =
    include_bytes!("../../roots/nvidia/verifier_device_root.pem");
/// NVIDIA CoRIM signing Root CA (PEM), the root of RIM signing chains.
pub const NVIDIA_RIM_ROOT_PEM: &[u8] = include_bytes!("../../roots/nvidia/verifier_RIM_root.pem");

/// The device roots a verifier trusts for GPU evidence.
#[derive(Clone, Debug)]
pub struct GpuAnchors {
    roots: Vec<Anchor>,
}

impl GpuAnchors {
    /// NVIDIA's device root, shipped with this crate.
    pub fn nvidia() -> GpuAnchors {
        // Invariant: the shipped root is a valid P-384 certificate; the
        // `shipped_roots_decode` test checks it.
        #[allow(clippy::expect_used)]
        let root = Anchor::from_pem(NVIDIA_DEVICE_ROOT_PEM).expect("shipped NVIDIA device root");
        GpuAnchors { roots: vec![root] }
    }

    /// Other roots (DER), for tests and simulated GPUs; the caller chooses
    /// them explicitly.
    pub fn from_der(roots: &[&[u8]]) -> Result<GpuAnchors> {
        Ok(GpuAnchors {
            roots: roots
                .iter()
                .map(|d| Anchor::from_der(d))
                .collect::<Result<_>>()?,
        })
    }

    /// These roots and one more (DER), e.g. NVIDIA's and the simulated one.
    pub fn and_der(mut self, root: &[u8]) -> Result<GpuAnchors> {
        self.roots.push(Anchor::from_der(root)?);
        Ok(self)
    }

    /// True when `chain` ended at NVIDIA's shipped device root.
    pub fn is_nvidia_root(chain: &VerifiedChain) -> bool {
        static NVIDIA_KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let key = NVIDIA_KEY.get_or_init(|| {
            GpuAnchors::nvidia()
                .roots
                .first()
                .map(|a| a.0.public_key().to_vec())
                .unwrap_or_default()
        });
        !key.is_empty() && chain.anchor_public_key() == key.as_slice()
    }

    /// No root at all: every GPU chain fails.
    pub fn none() -> GpuAnchors {
        GpuAnchors { roots: Vec::new() }
    }

    pub(crate) fn roots(&self) -> &[Anchor] {
        &self.roots
    }
}

impl Default for GpuAnchors {
    fn default() -> Self {
        GpuAnchors::nvidia()
    }
}

impl PartialEq for GpuAnchors {
    fn eq(&self, other: &Self) -> bool {
        self.roots.len() == other.roots.len()
            && self
                .roots
                .iter()
                .zip(&other.roots)
                .all(|(a, b)| a.0.public_key() == b.0.public_key())
    }
}
impl Eq for GpuAnchors {}

/// What the NVIDIA opaque data says, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpaqueInfo {
    pub driver_version: String,
    /// Dotted lowercase hex, e.g. `96.00.9f.00.01`.
    pub vbios_version: String,
    pub board_id: String,
    pub chip_sku: String,
    pub chip_sku_mod: String,
    pub project: String,
    pub project_sku: String,
    pub project_sku_mod: String,
    pub gpu_info: String,
    pub cpr_info: String,
    pub nvdec0_status: String,
    pub protected_pcie_status: String,
    pub fwid: Option<[u8; 48]>,
    /// MSRSCNT: measurement index (1-based) to its count.
    pub measurement_count: BTreeMap<u32, u32>,
}

fn text(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(v.get(..end).unwrap_or_default()).into_owned()
}

/// `00 9f 00 96 01 00 00 00` -> `96.00.9f.00.01` (NVIDIA's rendering).
pub fn format_vbios_version(v: &[u8]) -> Option<String> {
    match v {
        [a, b, c, d, e, ..] => Some(format!("{d:02x}.{c:02x}.{b:02x}.{a:02x}.{e:02x}")),
        _ => None,
    }
}

impl OpaqueInfo {
    /// Decode the fields this crate knows; unknown fields are ignored.
    pub fn from_report(r: &SpdmReport) -> Result<OpaqueInfo> {
        let get = |k| r.opaque(k).unwrap_or_default();
        let vbios = r.opaque(ot::VBIOS_VERSION);
        let fwid = match r.opaque(ot::FWID) {
            None => None,
            Some(f) => Some(
                f.try_into()
                    .map_err(|_| EvidenceError::GpuReportMalformed("FWID length"))?,
            ),
        };
        let mut measurement_count = BTreeMap::new();
        for (i, c) in get(ot::MSRSCNT).chunks(4).enumerate() {
            let c: [u8; 4] = c
                .try_into()
                .map_err(|_| EvidenceError::GpuReportMalformed("MSRSCNT length"))?;
            let i = u32::try_from(i + 1).unwrap_or(u32::MAX);
            measurement_count.insert(i, u32::from_le_bytes(c));
        }
        Ok(OpaqueInfo {
            driver_version: text(get(ot::DRIVER_VERSION)),
            vbios_version: match vbios {
                None => String::new(),
                Some(v) => format_vbios_version(v)
                    .ok_or(EvidenceError::GpuReportMalformed("VBIOS version length"))?,
            },
            board_id: hex::encode(get(ot::BOARD_ID)),
            chip_sku: text(get(ot::CHIP_SKU)),
            chip_sku_mod: text(get(ot::CHIP_SKU_MOD)),
            project: text(get(ot::PROJECT)),
            project_sku: text(get(ot::PROJECT_SKU)),
            project_sku_mod: hex::encode(get(ot::PROJECT_SKU_MOD)),
            gpu_info: hex::encode(get(ot::GPU_INFO)),
            cpr_info: hex::encode(get(ot::CPRINFO)),
            nvdec0_status: text(get(ot::NVDEC0_STATUS)),
            protected_pcie_status: text(get(ot::PROTECTED_PCIE_STATUS)),
            fwid,
            measurement_count,
        })
    }
}

/// A report whose chain, FWID, signature and nonce have been checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedGpuReport {
    pub report: SpdmReport,
    pub info: OpaqueInfo,
    /// The device leaf certificate's serial number (hex).
    pub leaf_serial: String,
    /// The chain ended at NVIDIA's device root (not at another root the
    /// verifier was given, such as the simulated one).
    pub nvidia_root: bool,
}

impl VerifiedGpuReport {
    /// Measurement index to value, as the report states them.
    pub fn measurements(&self) -> BTreeMap<u32, Vec<u8>> {
        self.report
            .blocks
            .iter()
            .map(|b| (u32::from(b.index), b.value.clone()))
            .collect()
    }

    /// Claims for the GPU at `index`; `cc_mode` and `debug` are the values
    /// the loader asserted (see the module documentation).
    pub fn claims(&self, index: u32, cc_mode: bool, debug: bool) -> GpuClaims {
        GpuClaims {
            index,
            cc_mode,
            debug,
            driver_version: self.info.driver_version.clone(),
            vbios_version: self.info.vbios_version.clone(),
            measurements: self.measurements_hex(),
        }
    }

    /// Measurement index to hex value, as claims carry them.
    fn measurements_hex(&self) -> BTreeMap<u32, String> {
        self.report
            .blocks
            .iter()
            .map(|b| (u32::from(b.index), hex::encode(&b.value)))
            .collect()
    }
}

impl VerifiedGpuReport {
    /// Claims for the NVSwitch at `index`; `tnvl_mode` and `locked` are what
    /// the loader read through NSCQ (it produces switch evidence only for
    /// switches in trusted NVLink mode, locked), like a GPU's CC mode.
    pub fn switch_claims(&self, index: u32, tnvl_mode: bool, locked: bool) -> NvSwitchClaims {
        NvSwitchClaims {
            index,
            tnvl_mode,
            locked,
            vbios_version: self.info.vbios_version.clone(),
            measurements: self.measurements_hex(),
        }
    }
}

/// Identity and decoded opaque data of one verified GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuDevice {
    pub index: u32,
    /// Hex FWID (equal in the report and the device leaf certificate).
    pub fwid: String,
    /// Hex serial number of the device leaf certificate.
    pub leaf_serial: String,
    pub info: OpaqueInfo,
    /// See [`VerifiedGpuReport::nvidia_root`].
    pub nvidia_root: bool,
}

impl VerifiedGpuReport {
    /// Identity of the GPU at `index`.
    pub fn device(&self, index: u32) -> GpuDevice {
        GpuDevice {
            index,
            fwid: self.info.fwid.map(hex::encode).unwrap_or_default(),
            leaf_serial: self.leaf_serial.clone(),
            info: self.info.clone(),
            nvidia_root: self.nvidia_root,
        }
    }
}

/// Check a device chain (DER, leaf first) once, for reuse with
/// [`verify_report_with_chain`].
pub fn verify_device_chain(
    chain_der: &[Vec<u8>],
    anchors: &GpuAnchors,
    now_unix: u64,
) -> Result<VerifiedChain> {
    certs::verify_chain(chain_der, anchors.roots(), now_unix, ChainKind::Device)
}

/// Verify a binary report with its device chain (DER, leaf first) against
/// `expected_nonce` at `now_unix`.
pub fn verify_report(
    report: &[u8],
    chain_der: &[Vec<u8>],
    expected_nonce: &[u8; 32],
    anchors: &GpuAnchors,
    now_unix: u64,
) -> Result<VerifiedGpuReport> {
    verify_with_rule(
        report,
        chain_der,
        expected_nonce,
        anchors,
        now_unix,
        FwidRule::Required,
    )
}

/// Verify an NVSwitch's binary report with its device chain (DER, leaf
/// first): as [`verify_report`], except that a report without an FWID is
/// accepted (see the module documentation).
pub fn verify_switch_report(
    report: &[u8],
    chain_der: &[Vec<u8>],
    expected_nonce: &[u8; 32],
    anchors: &GpuAnchors,
    now_unix: u64,
) -> Result<VerifiedGpuReport> {
    verify_with_rule(
        report,
        chain_der,
        expected_nonce,
        anchors,
        now_unix,
        FwidRule::IfPresent,
    )
}

fn verify_with_rule(
    report: &[u8],
    chain_der: &[Vec<u8>],
    expected_nonce: &[u8; 32],
    anchors: &GpuAnchors,
    now_unix: u64,
    fwid_rule: FwidRule,
) -> Result<VerifiedGpuReport> {
    let parsed = spdm::parse_report(report)?;
    let chain = verify_device_chain(chain_der, anchors, now_unix)?;
    finish(report, parsed, &chain, expected_nonce, fwid_rule)
}

/// Whether the report must carry an FWID (GPUs) or only match when it
/// does (NVSwitches).
#[derive(Clone, Copy, PartialEq, Eq)]
enum FwidRule {
    Required,
    IfPresent,
}

/// Verify a report with a chain verified earlier by
/// [`verify_device_chain`]; only its validity at `now` is checked again.
pub fn verify_report_with_chain(
    report: &[u8],
    chain: &VerifiedChain,
    expected_nonce: &[u8; 32],
    now_unix: u64,
) -> Result<VerifiedGpuReport> {
    let parsed = spdm::parse_report(report)?;
    chain.check_time(now_unix)?;
    finish(report, parsed, chain, expected_nonce, FwidRule::Required)
}

fn finish(
    report: &[u8],
    parsed: SpdmReport,
    chain: &VerifiedChain,
    expected_nonce: &[u8; 32],
    fwid_rule: FwidRule,
) -> Result<VerifiedGpuReport> {
    let leaf = chain.leaf();
    let info = OpaqueInfo::from_report(&parsed)?;
    let leaf_fwid = || {
        certs::leaf_fwid(leaf)?.ok_or(EvidenceError::GpuFwidMismatch(
            "signing certificate has no FWID",
        ))
    };
    match info.fwid {
        None if fwid_rule == FwidRule::IfPresent => {}
        None => return Err(EvidenceError::GpuFwidMismatch("report has no FWID")),
        Some(f) if f != leaf_fwid()? => {
            return Err(EvidenceError::GpuFwidMismatch(
                "report FWID differs from the signing certificate's",
            ))
        }
        Some(_) => {}
    }
    if !leaf.may_sign_data(ChainKind::Device)? {
        return Err(EvidenceError::GpuChain("signing certificate may not sign"));
    }
    let signed = report
        .get(..parsed.signed_len)
        .ok_or(EvidenceError::GpuReportMalformed("signed length"))?;
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, leaf.public_key())
        .verify(signed, &parsed.signature)
        .map_err(|_| EvidenceError::GpuReportSignature)?;
    if parsed.request.nonce != *expected_nonce {
        return Err(EvidenceError::GpuNonceMismatch);
    }
    Ok(VerifiedGpuReport {
        leaf_serial: hex::encode(leaf.serial()),
        nvidia_root: GpuAnchors::is_nvidia_root(chain),
        report: parsed,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_roots_decode() {
        assert_eq!(GpuAnchors::nvidia().roots().len(), 1);
        assert!(Anchor::from_pem(NVIDIA_RIM_ROOT_PEM).is_ok());
    }

    #[test]
    fn vbios_rendering() {
        assert_eq!(
            format_vbios_version(&hex::decode("009f009601000000").unwrap_or_default()).as_deref(),
            Some("96.00.9f.00.01")
        );
        assert_eq!(format_vbios_version(&[1, 2]), None);
    }
}
