//! AMD SEV-SNP in the guest: attestation reports and the firmware's derived
//! sealing key.
//!
//! * **Reports** come from configfs-tsm (provider `sev_guest`); its
//!   `auxblob` carries the extended report's certificate table when the host
//!   supplies one, and its VCEK/VLEK chain goes into
//!   [`CpuEvidence::certificates`]. When the configfs-tsm root does not exist
//!   (kernels before 6.7), the report comes from `/dev/sev-guest`
//!   (`SNP_GET_EXT_REPORT`, or `SNP_GET_REPORT` when the host has no
//!   certificate buffer). Any other configfs-tsm failure (another provider,
//!   a generation race, an I/O error) halts: it never falls back.
//! * **The derived key** comes from `/dev/sev-guest` (`SNP_GET_DERIVED_KEY`)
//!   with [`SEALING_FIELD_SELECT`]: the firmware mixes the guest policy,
//!   image ID, family ID, launch measurement, guest SVN and a TCB version
//!   into a key derived from the chip's VCEK secret. [`sealed_encryption_key`]
//!   turns it into the loader's X25519 key with
//!   [`crate::keys::derive_snp_sealed_key`]. A failure halts with
//!   `KEY_DERIVATION_FAILED`; there is no ephemeral fallback.
//!
//! The ioctl layouts are those of the kernel uapi `include/uapi/linux/sev-guest.h`;
//! the response layouts (status word first) are the SEV-SNP firmware ABI's
//! `MSG_REPORT_RSP` and `MSG_KEY_RSP`. Only the three `ioctl` calls are
//! `unsafe`; building requests and parsing responses is safe, bounds-checked
//! code that the tests drive without a device.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind};
use tl_evidence::snp::report::{SnpReport, REPORT_LEN};
use tl_seal::grant::RecipientSecretKey;
use zeroize::Zeroizing;

use crate::halt::{Halt, HaltCode};
use crate::keys::{derive_snp_sealed_key, SNP_SEALED_KEY_VERSION};
use crate::tsm::{TsmClient, TsmError, TsmProvider};

/// The SEV-SNP guest device.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";

/// `snp_guest_request_ioctl.msg_version` (the only version defined).
pub const MSG_VERSION: u8 = 1;

/// `MSG_REPORT_RSP`: status u32, report_size u32, 24 reserved bytes, report.
pub const REPORT_RSP_REPORT_OFFSET: usize = 0x20;
/// `MSG_KEY_RSP`: status u32, 28 reserved bytes, the 32-byte derived key.
pub const KEY_RSP_KEY_OFFSET: usize = 0x20;
/// `snp_report_resp.data` / `snp_derived_key_resp.data` sizes.
pub const REPORT_RESP_LEN: usize = 4000;
/// See [`REPORT_RESP_LEN`].
pub const KEY_RESP_LEN: usize = 64;
/// The certificate buffer offered to `SNP_GET_EXT_REPORT`: the kernel's
/// `SEV_FW_BLOB_MAX_SIZE` (16 KiB, a multiple of the page size as it requires).
pub const CERTS_BUF_LEN: usize = 0x4000;
/// `exitinfo2` when the host's certificate data does not fit the buffer
/// (VMM error 1, `SNP_GUEST_VMM_ERR_INVALID_LEN`, in bits 63:32).
pub const EXITINFO2_INVALID_CERT_LEN: u64 = 1 << 32;

/// `GUEST_FIELD_SELECT` bits of `MSG_KEY_REQ` (SEV-SNP firmware ABI).
pub mod field_select {
    /// Bit 0: the guest policy.
    pub const GUEST_POLICY: u64 = 1 << 0;
    /// Bit 1: the image ID (from the ID block).
    pub const IMAGE_ID: u64 = 1 << 1;
    /// Bit 2: the family ID (from the ID block).
    pub const FAMILY_ID: u64 = 1 << 2;
    /// Bit 3: the launch measurement.
    pub const MEASUREMENT: u64 = 1 << 3;
    /// Bit 4: the guest SVN (request's `guest_svn`, at most the guest's).
    pub const GUEST_SVN: u64 = 1 << 4;
    /// Bit 5: the TCB version (request's `tcb_version`, at most the committed TCB).
    pub const TCB_VERSION: u64 = 1 << 5;
}

/// The fields the loader's sealing key is bound to: all six (0x3F).
pub const SEALING_FIELD_SELECT: u64 = field_select::GUEST_POLICY
    | field_select::IMAGE_ID
    | field_select::FAMILY_ID
    | field_select::MEASUREMENT
    | field_select::GUEST_SVN
    | field_select::TCB_VERSION;

/// `ROOT_KEY_SELECT` 0: the chip's VCEK secret (on firmware with a VLEK
/// installed and key selection support, 0 lets the firmware choose the VLEK).
pub const ROOT_KEY_VCEK: u32 = 0;

/// The report data of the report the loader takes to learn its own
/// measurement, policy and TCB before deriving its key (not sent anywhere).
pub const PROBE_REPORT_DATA: [u8; 64] = {
    let mut b = [0u8; 64];
    let tag = b"trusted-loader/snp-probe/v1";
    let mut i = 0;
    while i < tag.len() {
        b[i] = tag[i];
        i += 1;
    }
    b
};

/// Errors of the SEV-SNP guest device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnpGuestError {
    /// The device could not be opened.
    #[error("{path}: {source}")]
    DeviceUnavailable {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The ioctl failed; `exitinfo2` holds the firmware (bits 31:0) and VMM
    /// (bits 63:32) error codes.
    #[error("{op} failed: {errno} (firmware error {fw:#x}, VMM error {vmm:#x})")]
    Ioctl {
        /// The request.
        op: &'static str,
        /// The OS error.
        errno: nix::errno::Errno,
        /// Firmware error code.
        fw: u32,
        /// VMM error code.
        vmm: u32,
    },
    /// The firmware answered with a non-zero status word.
    #[error("{op}: firmware status {status:#x}")]
    FirmwareStatus {
        /// The request.
        op: &'static str,
        /// The status word.
        status: u32,
    },
    /// The response does not have the firmware ABI's shape.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

impl SnpGuestError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            SnpGuestError::DeviceUnavailable { .. } => "SNP_DEVICE_UNAVAILABLE",
            SnpGuestError::Ioctl { .. } => "SNP_IOCTL_FAILED",
            SnpGuestError::FirmwareStatus { .. } => "SNP_FIRMWARE_STATUS",
            SnpGuestError::Malformed(_) => "SNP_RESPONSE_MALFORMED",
        }
    }
}

/// A `MSG_KEY_REQ` as the kernel takes it (`snp_derived_key_req`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerivedKeyRequest {
    /// [`ROOT_KEY_VCEK`].
    pub root_key_select: u32,
    /// Which guest fields are mixed in ([`field_select`]).
    pub guest_field_select: u64,
    /// The VMPL mixed in (at least the caller's VMPL).
    pub vmpl: u32,
    /// The guest SVN mixed in (at most the guest's).
    pub guest_svn: u32,
    /// The TCB version mixed in (at most the committed TCB).
    pub tcb_version: u64,
}

/// The request the loader makes for its sealing key, from a report of
/// itself: every field of [`SEALING_FIELD_SELECT`], the report's VMPL and
/// guest SVN, and its COMMITTED_TCB. Pure.
///
/// COMMITTED_TCB is the anti-rollback floor the firmware enforces: the
/// firmware derives keys only for a TCB at most its committed one, so a
/// platform whose committed TCB is lower (older, possibly vulnerable
/// firmware) cannot derive this key. The key changes when the operator
/// commits a newer TCB, so owners re-grant after a firmware update.
pub fn sealing_request(report: &SnpReport) -> DerivedKeyRequest {
    DerivedKeyRequest {
        root_key_select: ROOT_KEY_VCEK,
        guest_field_select: SEALING_FIELD_SELECT,
        vmpl: report.vmpl,
        guest_svn: report.guest_svn,
        tcb_version: report.committed_tcb.0,
    }
}

/// What an SEV-SNP guest device does (the real one is [`SevGuestDevice`];
/// tests use a fake).
pub trait SnpGuest {
    /// `SNP_GET_REPORT`: the 1184-byte report.
    fn report(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, SnpGuestError>;
    /// `SNP_GET_EXT_REPORT`: the report and the certificate table (empty
    /// when the host supplies none).
    fn ext_report(&mut self, report_data: &[u8; 64]) -> Result<(Vec<u8>, Vec<u8>), SnpGuestError>;
    /// `SNP_GET_DERIVED_KEY`: the 32-byte key.
    fn derived_key(
        &mut self,
        req: &DerivedKeyRequest,
    ) -> Result<Zeroizing<[u8; 32]>, SnpGuestError>;
}

/// Parse a `MSG_REPORT_RSP`: status 0, REPORT_SIZE = 1184, then the report.
pub fn parse_report_response(resp: &[u8]) -> Result<Vec<u8>, SnpGuestError> {
    let word = |at: usize| {
        resp.get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or(SnpGuestError::Malformed("response shorter than its header"))
    };
    let status = word(0)?;
    if status != 0 {
        return Err(SnpGuestError::FirmwareStatus {
            op: "MSG_REPORT_REQ",
            status,
        });
    }
    let size = usize::try_from(word(4)?).unwrap_or(usize::MAX);
    if size != REPORT_LEN {
        return Err(SnpGuestError::Malformed("REPORT_SIZE is not 1184"));
    }
    resp.get(REPORT_RSP_REPORT_OFFSET..REPORT_RSP_REPORT_OFFSET + REPORT_LEN)
        .map(<[u8]>::to_vec)
        .ok_or(SnpGuestError::Malformed("report past the response's end"))
}

/// Parse a `MSG_KEY_RSP`: status 0, then the key at offset 0x20.
pub fn parse_key_response(resp: &[u8]) -> Result<Zeroizing<[u8; 32]>, SnpGuestError> {
    let status = resp
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or(SnpGuestError::Malformed("response shorter than its header"))?;
    if status != 0 {
        return Err(SnpGuestError::FirmwareStatus {
            op: "MSG_KEY_REQ",
            status,
        });
    }
    let key = resp
        .get(KEY_RSP_KEY_OFFSET..KEY_RSP_KEY_OFFSET + 32)
        .ok_or(SnpGuestError::Malformed("key past the response's end"))?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(key);
    Ok(out)
}

/// The kernel's ioctl structures (`include/uapi/linux/sev-guest.h`), with
/// their C layout.
mod uapi {
    /// `struct snp_guest_request_ioctl` (32 bytes).
    #[repr(C)]
    #[derive(Debug, Default)]
    pub struct GuestRequest {
        pub msg_version: u8,
        pub req_data: u64,
        pub resp_data: u64,
        /// Bits 31:0 firmware error, 63:32 VMM error.
        pub exitinfo2: u64,
    }

    /// `struct snp_report_req` (96 bytes).
    #[repr(C)]
    #[derive(Debug)]
    pub struct ReportReq {
        pub user_data: [u8; 64],
        pub vmpl: u32,
        pub rsvd: [u8; 28],
    }

    /// `struct snp_ext_report_req` (112 bytes with its tail padding).
    #[repr(C)]
    #[derive(Debug)]
    pub struct ExtReportReq {
        pub data: ReportReq,
        pub certs_address: u64,
        pub certs_len: u32,
    }

    /// `struct snp_derived_key_req` (32 bytes).
    #[repr(C)]
    #[derive(Debug, Default)]
    pub struct DerivedKeyReq {
        pub root_key_select: u32,
        pub rsvd: u32,
        pub guest_field_select: u64,
        pub vmpl: u32,
        pub guest_svn: u32,
        pub tcb_version: u64,
    }

    const _: () = assert!(core::mem::size_of::<GuestRequest>() == 32);
    const _: () = assert!(core::mem::size_of::<ReportReq>() == 96);
    const _: () = assert!(core::mem::size_of::<ExtReportReq>() == 112);
    const _: () = assert!(core::mem::size_of::<DerivedKeyReq>() == 32);

    /// SNP_GUEST_REQ_IOC_TYPE 'S'; `_IOWR(type, nr, struct snp_guest_request_ioctl)`.
    /// The macros generate `unsafe fn`s, called only from
    /// `SevGuestDevice::request`.
    #[allow(unsafe_code)]
    pub mod ioctl {
        use super::GuestRequest;
        nix::ioctl_readwrite!(snp_get_report, b'S', 0x0, GuestRequest);
        nix::ioctl_readwrite!(snp_get_derived_key, b'S', 0x1, GuestRequest);
        nix::ioctl_readwrite!(snp_get_ext_report, b'S', 0x2, GuestRequest);
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Report,
    DerivedKey,
    ExtReport,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Report => "SNP_GET_REPORT",
            Op::DerivedKey => "SNP_GET_DERIVED_KEY",
            Op::ExtReport => "SNP_GET_EXT_REPORT",
        }
    }
}

/// `/dev/sev-guest`.
#[derive(Debug)]
pub struct SevGuestDevice {
    file: File,
}

impl SevGuestDevice {
    /// Open the device (read-write, as the driver requires).
    pub fn open(path: &Path) -> Result<Self, SnpGuestError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(|file| SevGuestDevice { file })
            .map_err(|source| SnpGuestError::DeviceUnavailable {
                path: path.to_owned(),
                source,
            })
    }

    /// One guest request. `req` and `resp` are the request and response
    /// structures of `op`, borrowed for the whole call.
    fn request<Q, R>(&self, op: Op, req: &mut Q, resp: &mut R) -> Result<u64, SnpGuestError> {
        let mut g = uapi::GuestRequest {
            msg_version: MSG_VERSION,
            req_data: req as *mut Q as u64,
            resp_data: resp as *mut R as u64,
            exitinfo2: 0,
        };
        let fd = self.file.as_raw_fd();
        // SAFETY: `fd` is an open descriptor owned by `self.file`. `g` has the
        // layout of `struct snp_guest_request_ioctl` (size asserted in `uapi`)
        // and lives across the call. Its `req_data` and `resp_data` point at
        // `req` and `resp`, exclusively borrowed for this call; the callers
        // below pass the uapi structures `op` expects (`ReportReq` and a
        // 4000-byte response, `DerivedKeyReq` and a 64-byte response,
        // `ExtReportReq` whose `certs_address`/`certs_len` describe a live,
        // exclusively borrowed buffer of that length). The driver reads and
        // writes only within those sizes.
        #[allow(unsafe_code)]
        let r = unsafe {
            match op {
                Op::Report => uapi::ioctl::snp_get_report(fd, &mut g),
                Op::DerivedKey => uapi::ioctl::snp_get_derived_key(fd, &mut g),
                Op::ExtReport => uapi::ioctl::snp_get_ext_report(fd, &mut g),
            }
        };
        match r {
            Ok(_) => Ok(g.exitinfo2),
            Err(errno) => Err(SnpGuestError::Ioctl {
                op: op.name(),
                errno,
                fw: (g.exitinfo2 & 0xffff_ffff) as u32,
                vmm: (g.exitinfo2 >> 32) as u32,
            }),
        }
    }
}

impl SnpGuest for SevGuestDevice {
    fn report(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, SnpGuestError> {
        let mut req = uapi::ReportReq {
            user_data: *report_data,
            vmpl: 0,
            rsvd: [0; 28],
        };
        let mut resp = [0u8; REPORT_RESP_LEN];
        self.request(Op::Report, &mut req, &mut resp)?;
        parse_report_response(&resp)
    }

    fn ext_report(&mut self, report_data: &[u8; 64]) -> Result<(Vec<u8>, Vec<u8>), SnpGuestError> {
        let mut certs = vec![0u8; CERTS_BUF_LEN];
        let mut req = uapi::ExtReportReq {
            data: uapi::ReportReq {
                user_data: *report_data,
                vmpl: 0,
                rsvd: [0; 28],
            },
            certs_address: certs.as_mut_ptr() as u64,
            certs_len: CERTS_BUF_LEN as u32,
        };
        let mut resp = [0u8; REPORT_RESP_LEN];
        match self.request(Op::ExtReport, &mut req, &mut resp) {
            Ok(_) => {}
            Err(SnpGuestError::Ioctl { .. }) if req.certs_len as usize > CERTS_BUF_LEN => {
                // The host's certificates do not fit the largest buffer the
                // kernel takes: report without them (the CA may hold the VCEK).
                return Ok((self.report(report_data)?, Vec::new()));
            }
            Err(e) => return Err(e),
        }
        let report = parse_report_response(&resp)?;
        // The kernel sets certs_len to 0 when the host has no certificates.
        let n = (req.certs_len as usize).min(CERTS_BUF_LEN);
        certs.truncate(n);
        Ok((report, certs))
    }

    fn derived_key(&mut self, r: &DerivedKeyRequest) -> Result<Zeroizing<[u8; 32]>, SnpGuestError> {
        let mut req = uapi::DerivedKeyReq {
            root_key_select: r.root_key_select,
            rsvd: 0,
            guest_field_select: r.guest_field_select,
            vmpl: r.vmpl,
            guest_svn: r.guest_svn,
            tcb_version: r.tcb_version,
        };
        let mut resp = Zeroizing::new([0u8; KEY_RESP_LEN]);
        self.request(Op::DerivedKey, &mut req, &mut *resp)?;
        parse_key_response(&resp[..])
    }
}

/// What the loader learned while deriving its sealed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKeyInfo {
    /// The request sent to the firmware.
    pub request: DerivedKeyRequest,
    /// The launch measurement bound in.
    pub measurement: [u8; 48],
    /// The guest policy bound in.
    pub policy: u64,
    /// The key version bound in.
    pub key_version: u32,
}

/// The loader's sealed encryption key on SEV-SNP: a report of itself gives
/// its measurement, policy, VMPL, guest SVN and committed TCB;
/// [`sealing_request`] asks the firmware for the derived key bound to them;
/// [`derive_snp_sealed_key`] turns it into the X25519 key. Every failure is
/// `KEY_DERIVATION_FAILED`.
pub fn sealed_encryption_key(
    dev: &mut dyn SnpGuest,
) -> Result<(RecipientSecretKey, SealedKeyInfo), Halt> {
    let bad = |what: &str, e: &dyn std::fmt::Display, code: &str| {
        Halt::new(
            HaltCode::KeyDerivationFailed,
            format!("SEV-SNP {what}: {e} ({code})"),
        )
    };
    let raw = dev
        .report(&PROBE_REPORT_DATA)
        .map_err(|e| bad("self report", &e, e.code()))?;
    let report = SnpReport::parse(&raw).map_err(|e| bad("self report", &e, e.code()))?;
    if report.report_data != PROBE_REPORT_DATA {
        return Err(Halt::new(
            HaltCode::KeyDerivationFailed,
            "SEV-SNP self report answers other report data",
        ));
    }
    let request = sealing_request(&report);
    let key = dev
        .derived_key(&request)
        .map_err(|e| bad("derived key", &e, e.code()))?;
    let secret = derive_snp_sealed_key(
        &key,
        &report.measurement,
        report.policy,
        request.tcb_version,
        SNP_SEALED_KEY_VERSION,
    );
    Ok((
        secret,
        SealedKeyInfo {
            request,
            measurement: report.measurement,
            policy: report.policy,
            key_version: SNP_SEALED_KEY_VERSION,
        },
    ))
}

/// [`sealed_encryption_key`] with the device at `path`.
pub fn sealed_encryption_key_from(
    path: &Path,
) -> Result<(RecipientSecretKey, SealedKeyInfo), Halt> {
    let mut dev = SevGuestDevice::open(path).map_err(|e| {
        Halt::new(
            HaltCode::KeyDerivationFailed,
            format!("SEV-SNP derived key: {e} ({})", e.code()),
        )
    })?;
    sealed_encryption_key(&mut dev)
}

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSource {
    /// configfs-tsm, provider `sev_guest`.
    ConfigfsTsm,
    /// `/dev/sev-guest` ioctls.
    Ioctl,
}

/// SNP CPU evidence and how it was obtained.
#[derive(Debug, Clone)]
pub struct SnpEvidence {
    /// Kind `snp-report`: the bare 1184-byte report; the VCEK/VLEK chain
    /// from the host's certificate table when it had one (else empty: the CA
    /// finds the VCEK in its cache).
    pub cpu: CpuEvidence,
    /// Where the report came from.
    pub source: ReportSource,
    /// Why the host's certificate table was not used, when it was not.
    pub table_note: Option<String>,
}

/// The VCEK/VLEK chain (leaf first) from a certificate table. An empty or
/// all-zero table, one that does not parse, or one without a VCEK or VLEK
/// gives no chain and says why. Pure.
pub fn chain_from_aux(table: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    if table.iter().all(|&b| b == 0) {
        return (Vec::new(), Some("the host supplied no certificates".into()));
    }
    match tl_evidence::snp::verify::chain_from_table(table) {
        Ok(chain) => (chain, None),
        Err(e) => (
            Vec::new(),
            Some(format!("certificate table not used: {e} ({})", e.code())),
        ),
    }
}

/// Check what a device returned: a parseable report with our report data.
fn checked_report(raw: Vec<u8>, report_data: &[u8; 64]) -> Result<Vec<u8>, Halt> {
    let r = SnpReport::parse(&raw).map_err(|e| {
        Halt::new(
            HaltCode::EvidenceCollectFailed,
            format!("SEV-SNP report: {e} ({})", e.code()),
        )
    })?;
    if &r.report_data != report_data {
        return Err(Halt::new(
            HaltCode::EvidenceCollectFailed,
            "SEV-SNP report answers other report data",
        ));
    }
    Ok(raw)
}

/// A report binding `report_data`: configfs-tsm at `tsm_root` (provider
/// `sev_guest`); only when that root does not exist, the device at `device`.
pub fn collect_evidence(
    tsm_root: &Path,
    device: &Path,
    report_data: &[u8; 64],
) -> Result<SnpEvidence, Halt> {
    let tsm = TsmClient::new(tsm_root.to_owned(), TsmProvider::Snp);
    let (raw, aux, source) = match tsm.get_report(report_data) {
        Ok(r) => (r.outblob, r.auxblob, ReportSource::ConfigfsTsm),
        Err(TsmError::Unavailable(_)) => {
            let mut dev = SevGuestDevice::open(device).map_err(|e| {
                Halt::new(
                    HaltCode::TeeUnavailable,
                    format!(
                        "no configfs-tsm at {} and {e} ({})",
                        tsm_root.display(),
                        e.code()
                    ),
                )
            })?;
            let (report, table) = dev.ext_report(report_data).map_err(|e| {
                Halt::new(
                    HaltCode::EvidenceCollectFailed,
                    format!("{e} ({})", e.code()),
                )
            })?;
            (report, Some(table), ReportSource::Ioctl)
        }
        Err(e) => return Err(Halt::from(e)),
    };
    let quote = checked_report(raw, report_data)?;
    let (certificates, table_note) = match aux {
        Some(t) => chain_from_aux(&t),
        None => (Vec::new(), Some("the host supplied no certificates".into())),
    };
    Ok(SnpEvidence {
        cpu: CpuEvidence {
            kind: CpuEvidenceKind::SnpReport,
            quote,
            certificates,
        },
        source,
        table_note,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tl_evidence::sim::{SimSnpMeasurements, SimTee};
    use tl_evidence::snp::report::{build_cert_table, CertKind};

    fn sim() -> SimTee {
        SimTee::from_seed([7; 32])
    }

    fn report_rsp(status: u32, size: u32, report: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; REPORT_RESP_LEN];
        r[..4].copy_from_slice(&status.to_le_bytes());
        r[4..8].copy_from_slice(&size.to_le_bytes());
        r[0x20..0x20 + report.len()].copy_from_slice(report);
        r
    }

    #[test]
    fn report_response() {
        let (rep, _) = sim().snp_report(&[1; 64], &SimSnpMeasurements::default());
        assert_eq!(
            parse_report_response(&report_rsp(0, 1184, &rep)).unwrap(),
            rep
        );
        let e = parse_report_response(&report_rsp(0x16, 1184, &rep)).unwrap_err();
        assert_eq!(e.code(), "SNP_FIRMWARE_STATUS");
        let e = parse_report_response(&report_rsp(0, 1000, &rep)).unwrap_err();
        assert_eq!(e.code(), "SNP_RESPONSE_MALFORMED");
        let e = parse_report_response(&report_rsp(0, u32::MAX, &rep)).unwrap_err();
        assert_eq!(e.code(), "SNP_RESPONSE_MALFORMED");
        // Truncated buffers never panic.
        for n in [0, 3, 7, 0x20, 0x20 + 1183] {
            let e = parse_report_response(&report_rsp(0, 1184, &rep)[..n]).unwrap_err();
            assert_eq!(e.code(), "SNP_RESPONSE_MALFORMED", "length {n}");
        }
    }

    #[test]
    fn key_response() {
        let mut r = [0u8; KEY_RESP_LEN];
        r[0x20..].copy_from_slice(&[0xab; 32]);
        r[4..0x20].fill(0xff); // reserved bytes are ignored
        assert_eq!(*parse_key_response(&r).unwrap(), [0xab; 32]);
        r[0] = 0x16;
        assert_eq!(
            parse_key_response(&r).unwrap_err().code(),
            "SNP_FIRMWARE_STATUS"
        );
        r[0] = 0;
        for n in [0, 2, 0x20, 63] {
            assert_eq!(
                parse_key_response(&r[..n]).unwrap_err().code(),
                "SNP_RESPONSE_MALFORMED"
            );
        }
    }

    #[test]
    fn field_select_bits() {
        assert_eq!(SEALING_FIELD_SELECT, 0x3f);
        let m = SimSnpMeasurements {
            guest_svn: 3,
            vmpl: 0,
            ..Default::default()
        };
        let (rep, _) = sim().snp_report(&[0; 64], &m);
        let r = SnpReport::parse(&rep).unwrap();
        let q = sealing_request(&r);
        assert_eq!(q.guest_field_select, 0x3f);
        assert_eq!(q.root_key_select, 0);
        assert_eq!(q.guest_svn, 3);
        assert_eq!(q.vmpl, 0);
        assert_eq!(q.tcb_version, r.committed_tcb.0);
    }

    /// A device that answers with the simulated TEE and a key that depends
    /// on the request, like the firmware's.
    struct Fake {
        tee: SimTee,
        m: SimSnpMeasurements,
        fail_key: bool,
        seen: Vec<DerivedKeyRequest>,
    }

    impl SnpGuest for Fake {
        fn report(&mut self, rd: &[u8; 64]) -> Result<Vec<u8>, SnpGuestError> {
            Ok(self.tee.snp_report(rd, &self.m).0)
        }
        fn ext_report(&mut self, rd: &[u8; 64]) -> Result<(Vec<u8>, Vec<u8>), SnpGuestError> {
            Ok((self.report(rd)?, Vec::new()))
        }
        fn derived_key(
            &mut self,
            req: &DerivedKeyRequest,
        ) -> Result<Zeroizing<[u8; 32]>, SnpGuestError> {
            self.seen.push(*req);
            if self.fail_key {
                return Err(SnpGuestError::Ioctl {
                    op: "SNP_GET_DERIVED_KEY",
                    errno: nix::errno::Errno::EIO,
                    fw: 0x16,
                    vmm: 0,
                });
            }
            let mut k = Zeroizing::new([0u8; 32]);
            let d = tl_ca::sha256(
                &[
                    &self.m.measurement[..],
                    &self.m.policy.to_le_bytes(),
                    &req.tcb_version.to_le_bytes(),
                    &req.guest_field_select.to_le_bytes(),
                ]
                .concat(),
            );
            k.copy_from_slice(&d);
            Ok(k)
        }
    }

    fn fake(m: SimSnpMeasurements) -> Fake {
        Fake {
            tee: sim(),
            m,
            fail_key: false,
            seen: Vec::new(),
        }
    }

    #[test]
    fn sealed_key_is_stable_and_bound() {
        let mut a = fake(SimSnpMeasurements::default());
        let (k1, info) = sealed_encryption_key(&mut a).unwrap();
        let (k2, _) = sealed_encryption_key(&mut a).unwrap();
        assert_eq!(k1.public_key().as_bytes(), k2.public_key().as_bytes());
        assert_eq!(a.seen[0].guest_field_select, SEALING_FIELD_SELECT);
        assert_eq!(info.key_version, SNP_SEALED_KEY_VERSION);
        assert_eq!(info.measurement, SimSnpMeasurements::default().measurement);
        // Another image: another key.
        let mut m = SimSnpMeasurements::default();
        m.measurement[0] ^= 1;
        let (k3, _) = sealed_encryption_key(&mut fake(m)).unwrap();
        assert_ne!(k1.public_key().as_bytes(), k3.public_key().as_bytes());
    }

    #[test]
    fn failing_derived_key_halts_without_fallback() {
        let mut f = fake(SimSnpMeasurements::default());
        f.fail_key = true;
        let h = sealed_encryption_key(&mut f).unwrap_err();
        assert_eq!(h.code(), "KEY_DERIVATION_FAILED");
        assert!(h.detail.contains("SNP_IOCTL_FAILED"), "{}", h.detail);
        let dir = tempfile::tempdir().unwrap();
        let h = sealed_encryption_key_from(&dir.path().join("sev-guest")).unwrap_err();
        assert_eq!(h.code(), "KEY_DERIVATION_FAILED");
        assert!(h.detail.contains("SNP_DEVICE_UNAVAILABLE"), "{}", h.detail);
    }

    #[test]
    fn aux_table_gives_the_chain_or_a_note() {
        let (_, chain) = sim().snp_report(&[0; 64], &SimSnpMeasurements::default());
        let table = build_cert_table(&[(CertKind::Vcek, &chain[0]), (CertKind::Ask, &chain[1])]);
        let (got, note) = chain_from_aux(&table);
        assert_eq!(got, vec![chain[0].clone(), chain[1].clone()]);
        assert!(note.is_none());
        // The kernel's zeroed buffer, nothing, garbage, a truncated table.
        for t in [vec![0u8; 4096], vec![], vec![1u8; 30], table[..30].to_vec()] {
            let (got, note) = chain_from_aux(&t);
            assert!(got.is_empty());
            assert!(note.is_some());
        }
    }

    fn serve(dir: &Path, provider: &str) -> crate::sim_tsm::SimTsmServer {
        let tee = sim();
        crate::sim_tsm::SimTsmServer::start(
            dir.to_owned(),
            provider,
            std::sync::Arc::new(move |rd: &[u8; 64]| {
                tee.snp_report(rd, &SimSnpMeasurements::default()).0
            }),
        )
        .unwrap()
    }

    #[test]
    fn configfs_report_and_no_fallback() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("report");
        let _srv = serve(&root, "sev_guest");
        let rd = [0x5a; 64];
        let ev = collect_evidence(&root, &d.path().join("sev-guest"), &rd).unwrap();
        assert_eq!(ev.source, ReportSource::ConfigfsTsm);
        assert_eq!(ev.cpu.kind, CpuEvidenceKind::SnpReport);
        assert_eq!(SnpReport::parse(&ev.cpu.quote).unwrap().report_data, rd);
        assert!(ev.cpu.certificates.is_empty());
        assert!(ev.table_note.is_some());

        // Another provider: halt, and never the device fallback.
        let root2 = d.path().join("report2");
        let _srv2 = serve(&root2, "tdx_guest");
        let h = collect_evidence(&root2, &d.path().join("sev-guest"), &rd).unwrap_err();
        assert_eq!(h.code(), "TEE_UNAVAILABLE");
        assert!(h.detail.contains("TSM_PROVIDER_MISMATCH"), "{}", h.detail);
    }

    #[test]
    fn configfs_missing_and_no_device_is_tee_unavailable() {
        let d = tempfile::tempdir().unwrap();
        let h = collect_evidence(
            &d.path().join("no-such-root"),
            &d.path().join("sev-guest"),
            &[0; 64],
        )
        .unwrap_err();
        assert_eq!(h.code(), "TEE_UNAVAILABLE");
        assert!(h.detail.contains("SNP_DEVICE_UNAVAILABLE"), "{}", h.detail);
    }
}
