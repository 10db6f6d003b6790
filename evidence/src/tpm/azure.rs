//! Azure confidential VMs' vTPM: the HCL report.
//!
//! Layout (little-endian): a 32-byte header ("HCLA", version, size, request
//! type, status, reserved), the hardware report in a 1184-byte slot (an SNP
//! attestation report, or a TDX TDREPORT in its first 1024 bytes), then
//! `IGVM_REQUEST_DATA`: data size, version, report type (2 = SNP, 4 = TDX),
//! hash type of the variable data (1 = SHA-256, 2 = SHA-384, 3 = SHA-512),
//! variable data size, and the variable data: a JSON document whose `keys`
//! hold the vTPM AK as an RSA JWK with `kid` "HCLAkPub".
//!
//! The chain of trust: the CPU report (verified by its own verifier: SNP
//! VCEK chain, or the TD quote of the TDREPORT) carries in its report data
//! the hash of the variable data; the variable data holds the AK; the AK
//! signs the TPM quote; the quote's digest covers the PCRs.

use sha2::{Digest, Sha256, Sha384, Sha512};

use super::public::AkPublic;
use super::{AkTrust, CpuBoundAk};
use crate::claims::TeeKind;
use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

const HEADER_LEN: usize = 0x20;
const HW_REPORT_SLOT: usize = 1184;
const SNP_REPORT_DATA: usize = 0x50;
const TD_REPORT_LEN: usize = 1024;
const TD_REPORT_DATA: usize = 128;
/// The largest variable data accepted (Azure's are about 1.2 KiB).
const MAX_VAR_DATA: usize = 64 * 1024;

fn bad(what: &'static str) -> EvidenceError {
    EvidenceError::HclReportMalformed(what)
}

/// The hardware report inside an HCL report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HclReportType {
    Snp,
    Tdx,
}

/// A parsed HCL report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HclReport {
    pub report_type: HclReportType,
    /// The hardware report: the 1184-byte SNP report, or the 1024-byte TDREPORT.
    pub hw_report: Vec<u8>,
    /// 1 = SHA-256, 2 = SHA-384, 3 = SHA-512.
    pub var_data_hash_type: u32,
    /// The runtime ("variable") data the hardware report binds.
    pub var_data: Vec<u8>,
}

fn le32(b: &[u8], off: usize) -> Result<u32> {
    let s = b.get(off..off + 4).ok_or(bad("truncated"))?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl HclReport {
    /// Parse an HCL report (trailing bytes after the variable data are
    /// allowed: the report is read from a fixed-size NV index).
    pub fn parse(b: &[u8]) -> Result<HclReport> {
        if b.get(0..4) != Some(b"HCLA".as_slice()) {
            return Err(bad("signature is not HCLA"));
        }
        let igvm = HEADER_LEN + HW_REPORT_SLOT;
        let report_type = match le32(b, igvm + 8)? {
            2 => HclReportType::Snp,
            4 => HclReportType::Tdx,
            _ => return Err(bad("unknown report type")),
        };
        let var_data_hash_type = le32(b, igvm + 12)?;
        if !(1..=3).contains(&var_data_hash_type) {
            return Err(bad("unknown variable data hash type"));
        }
        let n = le32(b, igvm + 16)? as usize;
        if n > MAX_VAR_DATA {
            return Err(bad("variable data too large"));
        }
        let start = igvm + 20;
        let var_data = b
            .get(start..start + n)
            .ok_or(bad("variable data truncated"))?
            .to_vec();
        let hw_len = match report_type {
            HclReportType::Snp => HW_REPORT_SLOT,
            HclReportType::Tdx => TD_REPORT_LEN,
        };
        let hw_report = b
            .get(HEADER_LEN..HEADER_LEN + hw_len)
            .ok_or(bad("hardware report truncated"))?
            .to_vec();
        Ok(HclReport {
            report_type,
            hw_report,
            var_data_hash_type,
            var_data,
        })
    }

    /// The report data field of the embedded hardware report, as carried
    /// (unverified: verify the hardware report with its own verifier and use
    /// the report data that verifier returns).
    pub fn hw_report_data(&self) -> Result<[u8; 64]> {
        let off = match self.report_type {
            HclReportType::Snp => SNP_REPORT_DATA,
            HclReportType::Tdx => TD_REPORT_DATA,
        };
        let s = self
            .hw_report
            .get(off..off + 64)
            .ok_or(bad("report data"))?;
        let mut out = [0u8; 64];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// The hash of the variable data with its declared algorithm.
    pub fn var_data_digest(&self) -> Vec<u8> {
        match self.var_data_hash_type {
            1 => Sha256::digest(&self.var_data).to_vec(),
            2 => Sha384::digest(&self.var_data).to_vec(),
            _ => Sha512::digest(&self.var_data).to_vec(),
        }
    }

    /// The AK in the variable data (JWK with `kid` "HCLAkPub").
    pub fn ak_public(&self) -> Result<AkPublic> {
        let v: serde_json::Value = serde_json::from_slice(&self.var_data)
            .map_err(|_| EvidenceError::TpmAkMalformed("HCL variable data is not JSON"))?;
        let jwk = v
            .get("keys")
            .and_then(|k| k.as_array())
            .and_then(|ks| {
                ks.iter()
                    .find(|k| k.get("kid").and_then(|s| s.as_str()) == Some("HCLAkPub"))
            })
            .ok_or(EvidenceError::TpmAkMalformed("no HCLAkPub key"))?;
        AkPublic::from_jwk(jwk)
    }

    /// Bind the AK to a verified CPU report: `verified_report_data` (from
    /// the SNP report or TD quote verifier) must begin with the digest of the
    /// variable data (`TPM_HCL_VAR_DATA_MISMATCH`); the AK is then trusted
    /// as [`AkTrust::BoundByCpuReport`].
    pub fn bind_ak(&self, verified_report_data: &[u8; 64], tee: TeeKind) -> Result<AkTrust> {
        let d = self.var_data_digest();
        if verified_report_data.get(..d.len()) != Some(d.as_slice()) {
            return Err(EvidenceError::HclVarDataMismatch);
        }
        let ak = self.ak_public()?;
        Ok(AkTrust::BoundByCpuReport(CpuBoundAk {
            ak,
            tee,
            report_data: *verified_report_data,
        }))
    }
}
