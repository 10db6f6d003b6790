//! TCG PC Client event logs: parsing and replay.
//!
//! Two on-disk formats are read:
//!
//! * **Crypto-agile** (TCG PC Client Platform Firmware Profile, TPM 2.0): the
//!   first entry is a SHA-1-format `TCG_PCR_EVENT` of type `EV_NO_ACTION`
//!   whose data is the "Spec ID Event03" structure listing every digest
//!   algorithm and its size; every following entry is a `TCG_PCR_EVENT2`
//!   (PCR index, event type, `TPML_DIGEST_VALUES`, event size, event data).
//! * **Legacy SHA-1** (TCG 1.2 format): every entry is a `TCG_PCR_EVENT`
//!   with one 20-byte SHA-1 digest.
//!
//! The Confidential Computing event log (CCEL, Intel TDX) uses the
//! crypto-agile format with measurement-register indexes instead of PCR
//! indexes; see [`ccel`].
//!
//! Architecture invariant: parsing is total on hostile input. Every length is
//! checked against the bytes that remain before anything is copied, so the
//! allocation of a parse is bounded by the input's size; no input panics.

pub mod ccel;
mod detail;
mod replay;

pub use detail::{EfiImageLoad, EfiVariable, EventDetail, PostCode, SpecIdEvent};
pub use replay::{
    CompareScope, Mismatch, Registers, Replay, ReplayMismatch, EBS_INVOCATION, EBS_RETURNED_SUCCESS,
};

use std::fmt;

/// A TPM 2.0 hash algorithm identifier (`TPM_ALG_ID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashAlg(pub u16);

impl HashAlg {
    pub const SHA1: HashAlg = HashAlg(0x0004);
    pub const SHA256: HashAlg = HashAlg(0x000b);
    pub const SHA384: HashAlg = HashAlg(0x000c);
    pub const SHA512: HashAlg = HashAlg(0x000d);
    pub const SM3_256: HashAlg = HashAlg(0x0012);

    /// The lowercase name used in JSON and claims ("sha256"), or `alg-0x....`.
    pub fn name(self) -> String {
        match self {
            Self::SHA1 => "sha1".into(),
            Self::SHA256 => "sha256".into(),
            Self::SHA384 => "sha384".into(),
            Self::SHA512 => "sha512".into(),
            Self::SM3_256 => "sm3_256".into(),
            HashAlg(x) => format!("alg-0x{x:04x}"),
        }
    }

    /// Parse a name produced by [`HashAlg::name`] for the SHA family.
    pub fn from_name(s: &str) -> Option<HashAlg> {
        match s {
            "sha1" => Some(Self::SHA1),
            "sha256" => Some(Self::SHA256),
            "sha384" => Some(Self::SHA384),
            "sha512" => Some(Self::SHA512),
            "sm3_256" => Some(Self::SM3_256),
            _ => None,
        }
    }

    /// The digest size in bytes, for algorithms this crate can hash.
    pub fn digest_len(self) -> Option<usize> {
        self.algorithm().map(|a| a.output_len())
    }

    fn algorithm(self) -> Option<&'static aws_lc_rs::digest::Algorithm> {
        use aws_lc_rs::digest;
        match self {
            Self::SHA1 => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
            Self::SHA256 => Some(&digest::SHA256),
            Self::SHA384 => Some(&digest::SHA384),
            Self::SHA512 => Some(&digest::SHA512),
            _ => None,
        }
    }

    /// Hash `parts` concatenated, or `None` for an algorithm this crate
    /// cannot compute (such as SM3).
    pub fn hash(self, parts: &[&[u8]]) -> Option<Vec<u8>> {
        let mut ctx = aws_lc_rs::digest::Context::new(self.algorithm()?);
        for p in parts {
            ctx.update(p);
        }
        Some(ctx.finish().as_ref().to_vec())
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A TCG event type (`UINT32 eventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventType(pub u32);

impl EventType {
    pub const EV_PREBOOT_CERT: EventType = EventType(0x0);
    pub const EV_POST_CODE: EventType = EventType(0x1);
    pub const EV_NO_ACTION: EventType = EventType(0x3);
    pub const EV_SEPARATOR: EventType = EventType(0x4);
    pub const EV_ACTION: EventType = EventType(0x5);
    pub const EV_EVENT_TAG: EventType = EventType(0x6);
    pub const EV_S_CRTM_CONTENTS: EventType = EventType(0x7);
    pub const EV_S_CRTM_VERSION: EventType = EventType(0x8);
    pub const EV_CPU_MICROCODE: EventType = EventType(0x9);
    pub const EV_PLATFORM_CONFIG_FLAGS: EventType = EventType(0xa);
    pub const EV_TABLE_OF_DEVICES: EventType = EventType(0xb);
    pub const EV_COMPACT_HASH: EventType = EventType(0xc);
    pub const EV_IPL: EventType = EventType(0xd);
    pub const EV_IPL_PARTITION_DATA: EventType = EventType(0xe);
    pub const EV_NONHOST_CODE: EventType = EventType(0xf);
    pub const EV_NONHOST_CONFIG: EventType = EventType(0x10);
    pub const EV_NONHOST_INFO: EventType = EventType(0x11);
    pub const EV_OMIT_BOOT_DEVICE_EVENTS: EventType = EventType(0x12);
    pub const EV_EFI_VARIABLE_DRIVER_CONFIG: EventType = EventType(0x8000_0001);
    pub const EV_EFI_VARIABLE_BOOT: EventType = EventType(0x8000_0002);
    pub const EV_EFI_BOOT_SERVICES_APPLICATION: EventType = EventType(0x8000_0003);
    pub const EV_EFI_BOOT_SERVICES_DRIVER: EventType = EventType(0x8000_0004);
    pub const EV_EFI_RUNTIME_SERVICES_DRIVER: EventType = EventType(0x8000_0005);
    pub const EV_EFI_GPT_EVENT: EventType = EventType(0x8000_0006);
    pub const EV_EFI_ACTION: EventType = EventType(0x8000_0007);
    pub const EV_EFI_PLATFORM_FIRMWARE_BLOB: EventType = EventType(0x8000_0008);
    pub const EV_EFI_HANDOFF_TABLES: EventType = EventType(0x8000_0009);
    pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: EventType = EventType(0x8000_000a);
    pub const EV_EFI_HANDOFF_TABLES2: EventType = EventType(0x8000_000b);
    pub const EV_EFI_VARIABLE_BOOT2: EventType = EventType(0x8000_000c);
    pub const EV_EFI_HCRTM_EVENT: EventType = EventType(0x8000_0010);
    pub const EV_EFI_VARIABLE_AUTHORITY: EventType = EventType(0x8000_00e0);
    pub const EV_EFI_SPDM_FIRMWARE_BLOB: EventType = EventType(0x8000_00e1);
    pub const EV_EFI_SPDM_FIRMWARE_CONFIG: EventType = EventType(0x8000_00e2);

    /// The specification's name for this type, when it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "EV_PREBOOT_CERT",
            0x1 => "EV_POST_CODE",
            0x2 => "EV_UNUSED",
            0x3 => "EV_NO_ACTION",
            0x4 => "EV_SEPARATOR",
            0x5 => "EV_ACTION",
            0x6 => "EV_EVENT_TAG",
            0x7 => "EV_S_CRTM_CONTENTS",
            0x8 => "EV_S_CRTM_VERSION",
            0x9 => "EV_CPU_MICROCODE",
            0xa => "EV_PLATFORM_CONFIG_FLAGS",
            0xb => "EV_TABLE_OF_DEVICES",
            0xc => "EV_COMPACT_HASH",
            0xd => "EV_IPL",
            0xe => "EV_IPL_PARTITION_DATA",
            0xf => "EV_NONHOST_CODE",
            0x10 => "EV_NONHOST_CONFIG",
            0x11 => "EV_NONHOST_INFO",
            0x12 => "EV_OMIT_BOOT_DEVICE_EVENTS",
            0x8000_0001 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
            0x8000_0002 => "EV_EFI_VARIABLE_BOOT",
            0x8000_0003 => "EV_EFI_BOOT_SERVICES_APPLICATION",
            0x8000_0004 => "EV_EFI_BOOT_SERVICES_DRIVER",
            0x8000_0005 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
            0x8000_0006 => "EV_EFI_GPT_EVENT",
            0x8000_0007 => "EV_EFI_ACTION",
            0x8000_0008 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
            0x8000_0009 => "EV_EFI_HANDOFF_TABLES",
            0x8000_000a => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
            0x8000_000b => "EV_EFI_HANDOFF_TABLES2",
            0x8000_000c => "EV_EFI_VARIABLE_BOOT2",
            0x8000_0010 => "EV_EFI_HCRTM_EVENT",
            0x8000_00e0 => "EV_EFI_VARIABLE_AUTHORITY",
            0x8000_00e1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
            0x8000_00e2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
            _ => return None,
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "0x{:08x}", self.0),
        }
    }
}

/// The on-disk format of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// TPM 2.0 crypto-agile (first event: "Spec ID Event03").
    CryptoAgile,
    /// TCG 1.2 format, SHA-1 digests only.
    Sha1Legacy,
}

/// One event of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the log, from 0 (the Spec ID event, when present, is 0).
    pub index: usize,
    /// The PCR index (for CCEL: the CC measurement-register index).
    pub pcr: u32,
    pub event_type: EventType,
    /// Digests as logged, one per algorithm, in log order.
    pub digests: Vec<(HashAlg, Vec<u8>)>,
    /// The raw event data.
    pub data: Vec<u8>,
    /// The event data decoded by type, for reviewers.
    pub parsed: EventDetail,
}

impl Event {
    /// The logged digest for `alg`, if any.
    pub fn digest(&self, alg: HashAlg) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }

    /// True for `EV_NO_ACTION`, which is never extended.
    pub fn is_no_action(&self) -> bool {
        self.event_type == EventType::EV_NO_ACTION
    }
}

/// A parsed event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    pub format: LogFormat,
    /// The digest algorithms and sizes the log declares (SHA-1/20 for legacy).
    pub algorithms: Vec<(HashAlg, usize)>,
    pub events: Vec<Event>,
    /// Bytes of trailing padding (all 0x00 or all 0xFF) that were skipped.
    pub padding: usize,
}

/// Why a log was rejected. Codes are stable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// An event runs past the end of the input.
    #[error("event log truncated in event {event} at byte {offset}")]
    Truncated { event: usize, offset: usize },
    /// The Spec ID event does not decode or declares no algorithm.
    #[error("malformed Spec ID event: {0}")]
    SpecId(&'static str),
    /// An event carries a digest of an algorithm the Spec ID event does not list.
    #[error("event {event} has a digest of undeclared algorithm 0x{alg:04x}")]
    UndeclaredAlgorithm { event: usize, alg: u16 },
    /// An event does not carry exactly one digest per declared algorithm.
    #[error("event {event} does not carry one digest per declared algorithm")]
    DigestSet { event: usize },
    /// Bytes after the last event that are not padding (or padding where
    /// it is not allowed).
    #[error("unexpected trailing data at byte {offset}")]
    TrailingData { offset: usize },
    /// The log is empty.
    #[error("event log is empty")]
    Empty,
    /// A CCEL event names a measurement register that is not RTMR0..3.
    #[error("CCEL event {event} names measurement register index {index}")]
    CcelMrIndex { event: usize, index: u32 },
    /// The ACPI CCEL table does not decode.
    #[error("malformed ACPI CCEL table: {0}")]
    CcelTable(&'static str),
    /// The workaround for missing ExitBootServices events was asked for a
    /// log that has them.
    #[error("log already records ExitBootServices")]
    ExitBootServicesPresent,
}

impl EventLogError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "EVENTLOG_TRUNCATED",
            Self::SpecId(_) => "EVENTLOG_SPEC_ID",
            Self::UndeclaredAlgorithm { .. } => "EVENTLOG_UNDECLARED_ALG",
            Self::DigestSet { .. } => "EVENTLOG_DIGEST_SET",
            Self::TrailingData { .. } => "EVENTLOG_TRAILING_DATA",
            Self::Empty => "EVENTLOG_EMPTY",
            Self::CcelMrIndex { .. } => "CCEL_MR_INDEX",
            Self::CcelTable(_) => "CCEL_TABLE_MALFORMED",
            Self::ExitBootServicesPresent => "EVENTLOG_EBS_PRESENT",
        }
    }
}

/// The most digests one event may carry; bounds allocation per event.
const MAX_ALGORITHMS: usize = 16;
const SPEC_ID_03: &[u8] = b"Spec ID Event03\0";

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    event: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EventLogError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e).map(|s| (s, e))) {
            Some((s, e)) => {
                self.pos = e;
                Ok(s)
            }
            None => Err(EventLogError::Truncated {
                event: self.event,
                offset: self.pos,
            }),
        }
    }
    fn u32(&mut self) -> Result<u32, EventLogError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u16(&mut self) -> Result<u16, EventLogError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}

fn is_padding(rest: &[u8]) -> bool {
    !rest.is_empty() && (rest.iter().all(|&b| b == 0) || rest.iter().all(|&b| b == 0xff))
}

impl EventLog {
    /// Parse a log that must end exactly after its last event (a TPM
    /// `binary_bios_measurements` file).
    pub fn parse(bytes: &[u8]) -> Result<EventLog, EventLogError> {
        Self::parse_inner(bytes, false)
    }

    /// Parse a log that lives in a fixed-size region (CCEL, a firmware
    /// buffer): trailing bytes that are all 0x00 or all 0xFF are padding.
    pub fn parse_padded(bytes: &[u8]) -> Result<EventLog, EventLogError> {
        Self::parse_inner(bytes, true)
    }

    fn parse_inner(bytes: &[u8], allow_padding: bool) -> Result<EventLog, EventLogError> {
        if bytes.is_empty() {
            return Err(EventLogError::Empty);
        }
        let mut c = Cursor {
            buf: bytes,
            pos: 0,
            event: 0,
        };
        // The first event is always in the SHA-1 (TCG_PCR_EVENT) format.
        let first = read_legacy(&mut c)?;
        let (format, algorithms) = match &first.parsed {
            EventDetail::SpecId(s) if first.is_no_action() => {
                if s.algorithms.is_empty() || s.algorithms.len() > MAX_ALGORITHMS {
                    return Err(EventLogError::SpecId("algorithm count"));
                }
                (LogFormat::CryptoAgile, s.algorithms.clone())
            }
            EventDetail::Unparsed(_) if first.data.starts_with(SPEC_ID_03) => {
                return Err(EventLogError::SpecId("does not decode"))
            }
            _ => (LogFormat::Sha1Legacy, vec![(HashAlg::SHA1, 20)]),
        };
        let mut events = vec![first];
        let mut padding = 0;
        loop {
            let rest = c.rest();
            if rest.is_empty() {
                break;
            }
            if is_padding(rest) {
                if !allow_padding {
                    return Err(EventLogError::TrailingData { offset: c.pos });
                }
                padding = rest.len();
                break;
            }
            c.event = events.len();
            let ev = match format {
                LogFormat::Sha1Legacy => read_legacy(&mut c)?,
                LogFormat::CryptoAgile => read_agile(&mut c, &algorithms)?,
            };
            events.push(ev);
        }
        Ok(EventLog {
            format,
            algorithms,
            events,
            padding,
        })
    }

    /// The banks that replay computes: declared algorithms this crate can hash.
    pub fn banks(&self) -> Vec<HashAlg> {
        self.algorithms
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| a.digest_len().is_some())
            .collect()
    }
}

fn read_legacy(c: &mut Cursor<'_>) -> Result<Event, EventLogError> {
    let pcr = c.u32()?;
    let event_type = EventType(c.u32()?);
    let digest = c.take(20)?.to_vec();
    let size = c.u32()? as usize;
    let data = c.take(size)?.to_vec();
    let parsed = detail::parse(event_type, pcr, &data);
    Ok(Event {
        index: c.event,
        pcr,
        event_type,
        digests: vec![(HashAlg::SHA1, digest)],
        data,
        parsed,
    })
}

fn read_agile(c: &mut Cursor<'_>, algs: &[(HashAlg, usize)]) -> Result<Event, EventLogError> {
    let pcr = c.u32()?;
    let event_type = EventType(c.u32()?);
    let count = c.u32()? as usize;
    if count != algs.len() {
        return Err(EventLogError::DigestSet { event: c.event });
    }
    let mut digests: Vec<(HashAlg, Vec<u8>)> = Vec::with_capacity(count);
    for _ in 0..count {
        let alg = HashAlg(c.u16()?);
        let Some(&(_, size)) = algs.iter().find(|(a, _)| *a == alg) else {
            return Err(EventLogError::UndeclaredAlgorithm {
                event: c.event,
                alg: alg.0,
            });
        };
        if digests.iter().any(|(a, _)| *a == alg) {
            return Err(EventLogError::DigestSet { event: c.event });
        }
        digests.push((alg, c.take(size)?.to_vec()));
    }
    let size = c.u32()? as usize;
    let data = c.take(size)?.to_vec();
    let parsed = detail::parse(event_type, pcr, &data);
    Ok(Event {
        index: c.event,
        pcr,
        event_type,
        digests,
        data,
        parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_truncated() {
        assert_eq!(EventLog::parse(&[]), Err(EventLogError::Empty));
        let e = EventLog::parse(&[0; 10]).expect_err("truncated");
        assert_eq!(e.code(), "EVENTLOG_TRUNCATED");
    }

    #[test]
    fn huge_event_size_does_not_allocate() {
        let mut b = vec![0u8; 8 + 20];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            EventLog::parse(&b).expect_err("truncated").code(),
            "EVENTLOG_TRUNCATED"
        );
    }
}
