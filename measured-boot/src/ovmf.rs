//! OVMF firmware metadata: the GUIDed footer table, SEV metadata (`ASEV` v1) and TDVF
//! metadata (`TDVF` v1).
//!
//! The footer table ends 32 bytes before the end of the image. It is closed by an entry
//! with the footer GUID whose length covers the whole table; entries are laid out as
//! `[data][u16 length][GUID]` and read backwards from the footer. Every read is bounds
//! checked; malformed input yields an [`OvmfError`], never a panic.

use core::fmt;

use serde::Serialize;

use crate::digest::{le_u16, le_u32, le_u64, ser_hex_u32, ser_hex_u64};

/// A GUID in its on-disk (mixed-endian, `bytes_le`) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

const fn hex_nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        // Only reached while evaluating a constant: a compile-time error, not a runtime panic.
        _ => panic!("bad hex digit in GUID literal"),
    }
}

impl Guid {
    /// Parse the canonical text form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) at compile
    /// time. Meant for constants: a malformed literal fails the build.
    pub const fn from_str_const(s: &str) -> Guid {
        let b = s.as_bytes();
        assert!(b.len() == 36, "GUID literal must have 36 characters");
        // Positions of the 16 bytes in text order.
        const POS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
        let mut text = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            text[i] = (hex_nibble(b[POS[i]]) << 4) | hex_nibble(b[POS[i] + 1]);
            i += 1;
        }
        // First three groups are little-endian on disk.
        Guid([
            text[3], text[2], text[1], text[0], text[5], text[4], text[7], text[6], text[8],
            text[9], text[10], text[11], text[12], text[13], text[14], text[15],
        ])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// GUID of the entry that closes the footer table.
pub const FOOTER_TABLE_GUID: Guid = Guid::from_str_const("96b582de-1fb2-45f7-baea-a366c55a082d");
/// SEV hashes table GPA entry (u32 GPA, u32 size).
pub const SEV_HASH_TABLE_RV_GUID: Guid =
    Guid::from_str_const("7255371f-3a3b-4b04-927b-1da6efa8d454");
/// SEV-ES reset block entry (u32 AP reset EIP).
pub const SEV_ES_RESET_BLOCK_GUID: Guid =
    Guid::from_str_const("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
/// SEV metadata entry (u32 offset from the end of the image to the `ASEV` header).
pub const SEV_METADATA_GUID: Guid = Guid::from_str_const("dc886566-984a-4798-a75e-5585a7bf67cc");
/// TDVF metadata entry (u32 offset from the end of the image to the `TDVF` descriptor).
pub const TDVF_METADATA_GUID: Guid = Guid::from_str_const("e47a6535-984a-4798-865e-4685a7bf8ec2");

/// Size of the `[u16 length][GUID]` trailer of a footer-table entry.
const ENTRY_HEADER: usize = 18;
/// The footer table ends this many bytes before the end of the image.
const FOOTER_GAP: usize = 32;
/// Upper bound on the total size of SEV metadata sections (each page is one digest
/// update), against hostile metadata. Real firmware declares well under 1 MiB.
pub const MAX_SEV_METADATA_BYTES: u64 = 256 << 20;
/// 4 KiB.
pub const PAGE_SIZE: u64 = 4096;
/// 4 GiB: OVMF is mapped to end here.
pub const FOUR_GIB: u64 = 1 << 32;

/// Errors from parsing OVMF metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OvmfError {
    /// The image is too short to hold a footer table.
    #[error("image of {0} bytes is too short for an OVMF footer table")]
    Truncated(usize),
    /// No footer GUID 32 bytes before the end.
    #[error("no OVMF footer table GUID 32 bytes before the end of the image")]
    NoFooterTable,
    /// The footer's length is shorter than its own header or reaches before the image.
    #[error("footer table length {0} is invalid")]
    BadFooterLength(u16),
    /// An entry's length is shorter than its header or reaches outside the table.
    #[error("footer table entry {guid} has invalid length {len}")]
    BadEntryLength {
        /// The entry's GUID.
        guid: Guid,
        /// The length it claims.
        len: u16,
    },
    /// Bytes left over at the start of the table that do not form an entry.
    #[error("{0} stray bytes at the start of the footer table")]
    StrayBytes(usize),
    /// A GUID appears twice.
    #[error("footer table entry {0} appears twice")]
    DuplicateEntry(Guid),
    /// An entry's data is too short for the value read from it.
    #[error("footer table entry {0} is too short")]
    EntryTooShort(Guid),
    /// The SEV metadata offset or size points outside the image.
    #[error("SEV metadata lies outside the image")]
    SevMetadataOutOfBounds,
    /// The SEV metadata does not start with `ASEV`.
    #[error("SEV metadata signature is not ASEV")]
    SevBadSignature,
    /// SEV metadata version other than 1.
    #[error("SEV metadata version {0} is not supported")]
    SevBadVersion(u32),
    /// SEV metadata section type not known.
    #[error("unknown SEV metadata section type {0:#x}")]
    SevUnknownSectionType(u32),
    /// SEV section not page-aligned, empty, or above 4 GiB.
    #[error(
        "SEV metadata section at {gpa:#x} size {size:#x} is not a page-aligned range below 4 GiB"
    )]
    SevBadSection {
        /// Section GPA.
        gpa: u32,
        /// Section size.
        size: u32,
    },
    /// The SEV sections cover more than [`MAX_SEV_METADATA_BYTES`] in total.
    #[error("SEV metadata sections cover more than {MAX_SEV_METADATA_BYTES} bytes")]
    SevMetadataTooLarge,
    /// The TDVF descriptor offset or length points outside the image.
    #[error("TDVF metadata lies outside the image")]
    TdvfMetadataOutOfBounds,
    /// The TDVF descriptor does not start with `TDVF`.
    #[error("TDVF metadata signature is not TDVF")]
    TdvfBadSignature,
    /// TDVF metadata version other than 1.
    #[error("TDVF metadata version {0} is not supported")]
    TdvfBadVersion(u32),
    /// TDVF section type not known.
    #[error("unknown TDVF section type {0}")]
    TdvfUnknownSectionType(u32),
    /// TDVF attribute bits other than MR.EXTEND and PAGE.AUG.
    #[error("TDVF section {index} has unknown attribute bits {attributes:#x}")]
    TdvfUnknownAttributes {
        /// Section index.
        index: usize,
        /// The attributes.
        attributes: u32,
    },
    /// TDVF memory address or size not page-aligned, or the range overflows.
    #[error("TDVF section {0} is not a page-aligned memory range")]
    TdvfUnaligned(usize),
    /// TDVF memory size smaller than the raw data size.
    #[error("TDVF section {0} has a memory size smaller than its raw data size")]
    TdvfMemorySmallerThanRaw(usize),
    /// TDVF raw data outside the image.
    #[error("TDVF section {0} raw data lies outside the image")]
    TdvfSectionOutOfFile(usize),
    /// Two TDVF sections share memory.
    #[error("TDVF sections {0} and {1} overlap in guest memory")]
    TdvfOverlap(usize, usize),
}

impl OvmfError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Truncated(_) => "OVMF_TRUNCATED",
            Self::NoFooterTable => "OVMF_NO_FOOTER_TABLE",
            Self::BadFooterLength(_) => "OVMF_BAD_FOOTER_LENGTH",
            Self::BadEntryLength { .. } => "OVMF_BAD_ENTRY_LENGTH",
            Self::StrayBytes(_) => "OVMF_STRAY_BYTES",
            Self::DuplicateEntry(_) => "OVMF_DUPLICATE_ENTRY",
            Self::EntryTooShort(_) => "OVMF_ENTRY_TOO_SHORT",
            Self::SevMetadataOutOfBounds => "SEV_METADATA_OUT_OF_BOUNDS",
            Self::SevBadSignature => "SEV_METADATA_BAD_SIGNATURE",
            Self::SevBadVersion(_) => "SEV_METADATA_BAD_VERSION",
            Self::SevUnknownSectionType(_) => "SEV_METADATA_UNKNOWN_SECTION_TYPE",
            Self::SevBadSection { .. } => "SEV_METADATA_BAD_SECTION",
            Self::SevMetadataTooLarge => "SEV_METADATA_TOO_LARGE",
            Self::TdvfMetadataOutOfBounds => "TDVF_METADATA_OUT_OF_BOUNDS",
            Self::TdvfBadSignature => "TDVF_BAD_SIGNATURE",
            Self::TdvfBadVersion(_) => "TDVF_BAD_VERSION",
            Self::TdvfUnknownSectionType(_) => "TDVF_UNKNOWN_SECTION_TYPE",
            Self::TdvfUnknownAttributes { .. } => "TDVF_UNKNOWN_ATTRIBUTES",
            Self::TdvfUnaligned(_) => "TDVF_SECTION_UNALIGNED",
            Self::TdvfMemorySmallerThanRaw(_) => "TDVF_MEMORY_SMALLER_THAN_RAW",
            Self::TdvfSectionOutOfFile(_) => "TDVF_SECTION_OUT_OF_FILE",
            Self::TdvfOverlap(_, _) => "TDVF_SECTION_OVERLAP",
        }
    }
}

/// One footer-table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FooterEntry<'a> {
    /// The entry's GUID.
    pub guid: Guid,
    /// The entry's data (without the length and GUID trailer).
    pub data: &'a [u8],
}

/// The parsed footer table of an OVMF image, entries in the order they were read
/// (backwards from the footer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterTable<'a> {
    entries: Vec<FooterEntry<'a>>,
}

impl<'a> FooterTable<'a> {
    /// Parse the footer table of `image`.
    pub fn parse(image: &'a [u8]) -> Result<Self, OvmfError> {
        let len = image.len();
        let footer_at = len
            .checked_sub(FOOTER_GAP + ENTRY_HEADER)
            .ok_or(OvmfError::Truncated(len))?;
        let footer_len = le_u16(image, footer_at).ok_or(OvmfError::Truncated(len))?;
        let footer_guid = read_guid(image, footer_at + 2).ok_or(OvmfError::Truncated(len))?;
        if footer_guid != FOOTER_TABLE_GUID {
            return Err(OvmfError::NoFooterTable);
        }
        let table_size = usize::from(footer_len)
            .checked_sub(ENTRY_HEADER)
            .ok_or(OvmfError::BadFooterLength(footer_len))?;
        let table_start = footer_at
            .checked_sub(table_size)
            .ok_or(OvmfError::BadFooterLength(footer_len))?;
        let mut rest = image
            .get(table_start..footer_at)
            .ok_or(OvmfError::BadFooterLength(footer_len))?;
        let mut entries: Vec<FooterEntry<'a>> = Vec::new();
        while rest.len() >= ENTRY_HEADER {
            let hdr = rest.len() - ENTRY_HEADER;
            let entry_len = le_u16(rest, hdr).ok_or(OvmfError::Truncated(len))?;
            let guid = read_guid(rest, hdr + 2).ok_or(OvmfError::Truncated(len))?;
            let bad = OvmfError::BadEntryLength {
                guid,
                len: entry_len,
            };
            let data_len = usize::from(entry_len)
                .checked_sub(ENTRY_HEADER)
                .ok_or(bad.clone())?;
            let data_start = hdr.checked_sub(data_len).ok_or(bad)?;
            let data = rest.get(data_start..hdr).ok_or(OvmfError::Truncated(len))?;
            if entries.iter().any(|e| e.guid == guid) {
                return Err(OvmfError::DuplicateEntry(guid));
            }
            entries.push(FooterEntry { guid, data });
            rest = rest.get(..data_start).ok_or(OvmfError::Truncated(len))?;
        }
        if !rest.is_empty() {
            return Err(OvmfError::StrayBytes(rest.len()));
        }
        Ok(Self { entries })
    }

    /// All entries, in the order read.
    pub fn entries(&self) -> &[FooterEntry<'a>] {
        &self.entries
    }

    /// The data of the entry with this GUID.
    pub fn get(&self, guid: &Guid) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|e| e.guid == *guid)
            .map(|e| e.data)
    }

    /// First u32 of the entry with this GUID: `Ok(None)` if absent.
    pub fn get_u32(&self, guid: &Guid) -> Result<Option<u32>, OvmfError> {
        match self.get(guid) {
            None => Ok(None),
            Some(d) => le_u32(d, 0)
                .map(Some)
                .ok_or(OvmfError::EntryTooShort(*guid)),
        }
    }
}

fn read_guid(b: &[u8], off: usize) -> Option<Guid> {
    let s = b.get(off..off.checked_add(16)?)?;
    Some(Guid(s.try_into().ok()?))
}

/// SEV metadata section types (edk2 `OvmfSevMetadata.asm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SevSectionType {
    /// 1: pre-validated memory (ZERO pages; UNMEASURED on GCE).
    SnpSecMem,
    /// 2: the secrets page.
    SnpSecrets,
    /// 3: the CPUID page.
    Cpuid,
    /// 4: the SVSM calling-area page (ZERO pages).
    SvsmCaa,
    /// 0x10: the page holding the SEV hashes table.
    SnpKernelHashes,
}

impl SevSectionType {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::SnpSecMem,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            _ => return None,
        })
    }
}

/// One SEV metadata section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SevSection {
    /// Guest physical address.
    #[serde(serialize_with = "ser_hex_u32")]
    pub gpa: u32,
    /// Size in bytes (a non-zero multiple of 4 KiB).
    #[serde(serialize_with = "ser_hex_u32")]
    pub size: u32,
    /// Section type.
    pub kind: SevSectionType,
}

/// SEV metadata (`ASEV` version 1), sections in table order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SevMetadata {
    /// Sections in table order.
    pub sections: Vec<SevSection>,
}

impl SevMetadata {
    /// Whether a section of this type is present.
    pub fn has(&self, kind: SevSectionType) -> bool {
        self.sections.iter().any(|s| s.kind == kind)
    }
}

/// TDVF section types (TDVF Design Guide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TdvfSectionType {
    /// 0: boot firmware volume.
    Bfv,
    /// 1: configuration firmware volume (variable store).
    Cfv,
    /// 2: TD HOB.
    TdHob,
    /// 3: temporary memory.
    TempMem,
    /// 4: permanent memory.
    PermMem,
    /// 5: payload.
    Payload,
    /// 6: payload parameters.
    PayloadParam,
    /// 7: TD info.
    TdInfo,
    /// 8: TD params.
    TdParams,
}

impl TdvfSectionType {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            7 => Self::TdInfo,
            8 => Self::TdParams,
            _ => return None,
        })
    }
}

/// TDVF attribute bit 0: extend the section's contents into MRTD.
pub const TDVF_ATTR_MR_EXTEND: u32 = 1;
/// TDVF attribute bit 1: the pages are added with PAGE.AUG (not measured).
pub const TDVF_ATTR_PAGE_AUG: u32 = 2;

/// One TDVF section (32 bytes on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TdvfSection {
    /// Offset of the raw data in the image.
    #[serde(serialize_with = "ser_hex_u32")]
    pub data_offset: u32,
    /// Raw data size in the image.
    #[serde(serialize_with = "ser_hex_u32")]
    pub raw_data_size: u32,
    /// Guest physical address (page-aligned).
    #[serde(serialize_with = "ser_hex_u64")]
    pub memory_address: u64,
    /// Size in guest memory (page-aligned, ≥ raw data size).
    #[serde(serialize_with = "ser_hex_u64")]
    pub memory_data_size: u64,
    /// Section type.
    pub kind: TdvfSectionType,
    /// Attribute bits ([`TDVF_ATTR_MR_EXTEND`], [`TDVF_ATTR_PAGE_AUG`]).
    pub attributes: u32,
}

impl TdvfSection {
    /// Whether the section's contents are extended into MRTD.
    pub fn mr_extend(&self) -> bool {
        self.attributes & TDVF_ATTR_MR_EXTEND != 0
    }
    /// Whether the section's pages are added with PAGE.AUG (not measured).
    pub fn page_aug(&self) -> bool {
        self.attributes & TDVF_ATTR_PAGE_AUG != 0
    }
}

/// TDVF metadata (`TDVF` version 1), sections in metadata order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TdvfMetadata {
    /// Sections in metadata order.
    pub sections: Vec<TdvfSection>,
}

/// An OVMF image with its parsed footer table.
#[derive(Debug, Clone)]
pub struct OvmfImage<'a> {
    data: &'a [u8],
    table: FooterTable<'a>,
}

impl<'a> OvmfImage<'a> {
    /// Parse the footer table of a whole `-bios` image (or of an image suffix).
    pub fn parse(data: &'a [u8]) -> Result<Self, OvmfError> {
        let table = FooterTable::parse(data)?;
        Ok(Self { data, table })
    }

    /// The image bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The footer table.
    pub fn footer(&self) -> &FooterTable<'a> {
        &self.table
    }

    /// The AP reset EIP from the SEV-ES reset block, if present.
    pub fn sev_es_reset_eip(&self) -> Result<Option<u32>, OvmfError> {
        self.table.get_u32(&SEV_ES_RESET_BLOCK_GUID)
    }

    /// The SEV hashes table GPA, if present.
    pub fn sev_hashes_table_gpa(&self) -> Result<Option<u32>, OvmfError> {
        self.table.get_u32(&SEV_HASH_TABLE_RV_GUID)
    }

    /// Offset of a metadata block given as a u32 "offset from the end" entry.
    fn offset_from_end(&self, guid: &Guid, oob: OvmfError) -> Result<Option<usize>, OvmfError> {
        let Some(off) = self.table.get_u32(guid)? else {
            return Ok(None);
        };
        let off = usize::try_from(off).map_err(|_| oob.clone())?;
        self.data.len().checked_sub(off).map(Some).ok_or(oob)
    }

    /// The SEV metadata, `Ok(None)` if the image has none.
    pub fn sev_metadata(&self) -> Result<Option<SevMetadata>, OvmfError> {
        let oob = OvmfError::SevMetadataOutOfBounds;
        let Some(start) = self.offset_from_end(&SEV_METADATA_GUID, oob.clone())? else {
            return Ok(None);
        };
        let d = self.data;
        if d.get(start..start.checked_add(4).ok_or(oob.clone())?) != Some(b"ASEV".as_slice()) {
            return Err(if d.len().saturating_sub(start) < 16 {
                oob
            } else {
                OvmfError::SevBadSignature
            });
        }
        let size = le_u32(d, start + 4).ok_or(oob.clone())?;
        let version = le_u32(d, start + 8).ok_or(oob.clone())?;
        let count = le_u32(d, start + 12).ok_or(oob.clone())?;
        if version != 1 {
            return Err(OvmfError::SevBadVersion(version));
        }
        let size = usize::try_from(size).map_err(|_| oob.clone())?;
        let body = d
            .get(start..start.checked_add(size).ok_or(oob.clone())?)
            .ok_or(oob.clone())?;
        let count = usize::try_from(count).map_err(|_| oob.clone())?;
        let needed = count
            .checked_mul(12)
            .and_then(|n| n.checked_add(16))
            .ok_or(oob.clone())?;
        if needed > body.len() {
            return Err(oob);
        }
        // `count` is now bounded by the image size.
        let mut sections = Vec::with_capacity(count);
        let mut total = 0u64;
        for i in 0..count {
            let at = 16 + i * 12;
            let gpa = le_u32(body, at).ok_or(oob.clone())?;
            let size = le_u32(body, at + 4).ok_or(oob.clone())?;
            let ty = le_u32(body, at + 8).ok_or(oob.clone())?;
            let kind = SevSectionType::from_u32(ty).ok_or(OvmfError::SevUnknownSectionType(ty))?;
            let end = u64::from(gpa) + u64::from(size);
            if size == 0
                || u64::from(gpa) % PAGE_SIZE != 0
                || u64::from(size) % PAGE_SIZE != 0
                || end > FOUR_GIB
            {
                return Err(OvmfError::SevBadSection { gpa, size });
            }
            total += u64::from(size);
            if total > MAX_SEV_METADATA_BYTES {
                return Err(OvmfError::SevMetadataTooLarge);
            }
            sections.push(SevSection { gpa, size, kind });
        }
        Ok(Some(SevMetadata { sections }))
    }

    /// The TDVF metadata, `Ok(None)` if the image has none.
    pub fn tdvf_metadata(&self) -> Result<Option<TdvfMetadata>, OvmfError> {
        let oob = OvmfError::TdvfMetadataOutOfBounds;
        let Some(start) = self.offset_from_end(&TDVF_METADATA_GUID, oob.clone())? else {
            return Ok(None);
        };
        let d = self.data;
        let sig = d
            .get(start..start.checked_add(16).ok_or(oob.clone())?)
            .ok_or(oob.clone())?;
        if sig.get(..4) != Some(b"TDVF".as_slice()) {
            return Err(OvmfError::TdvfBadSignature);
        }
        let length = le_u32(d, start + 4).ok_or(oob.clone())?;
        let version = le_u32(d, start + 8).ok_or(oob.clone())?;
        let count = le_u32(d, start + 12).ok_or(oob.clone())?;
        if version != 1 {
            return Err(OvmfError::TdvfBadVersion(version));
        }
        let length = usize::try_from(length).map_err(|_| oob.clone())?;
        let body = d
            .get(start..start.checked_add(length).ok_or(oob.clone())?)
            .ok_or(oob.clone())?;
        let count = usize::try_from(count).map_err(|_| oob.clone())?;
        let needed = count
            .checked_mul(32)
            .and_then(|n| n.checked_add(16))
            .ok_or(oob.clone())?;
        if needed > body.len() {
            return Err(oob);
        }
        let mut sections: Vec<TdvfSection> = Vec::with_capacity(count);
        for i in 0..count {
            let at = 16 + i * 32;
            let data_offset = le_u32(body, at).ok_or(oob.clone())?;
            let raw_data_size = le_u32(body, at + 4).ok_or(oob.clone())?;
            let memory_address = le_u64(body, at + 8).ok_or(oob.clone())?;
            let memory_data_size = le_u64(body, at + 16).ok_or(oob.clone())?;
            let ty = le_u32(body, at + 24).ok_or(oob.clone())?;
            let attributes = le_u32(body, at + 28).ok_or(oob.clone())?;
            let kind =
                TdvfSectionType::from_u32(ty).ok_or(OvmfError::TdvfUnknownSectionType(ty))?;
            if attributes & !(TDVF_ATTR_MR_EXTEND | TDVF_ATTR_PAGE_AUG) != 0 {
                return Err(OvmfError::TdvfUnknownAttributes {
                    index: i,
                    attributes,
                });
            }
            if memory_address % PAGE_SIZE != 0
                || memory_data_size % PAGE_SIZE != 0
                || memory_address.checked_add(memory_data_size).is_none()
            {
                return Err(OvmfError::TdvfUnaligned(i));
            }
            if memory_data_size < u64::from(raw_data_size) {
                return Err(OvmfError::TdvfMemorySmallerThanRaw(i));
            }
            let raw_end = u64::from(data_offset) + u64::from(raw_data_size);
            if raw_end > d.len() as u64 {
                return Err(OvmfError::TdvfSectionOutOfFile(i));
            }
            let s = TdvfSection {
                data_offset,
                raw_data_size,
                memory_address,
                memory_data_size,
                kind,
                attributes,
            };
            for (j, o) in sections.iter().enumerate() {
                if ranges_overlap(
                    o.memory_address,
                    o.memory_data_size,
                    s.memory_address,
                    s.memory_data_size,
                ) {
                    return Err(OvmfError::TdvfOverlap(j, i));
                }
            }
            sections.push(s);
        }
        Ok(Some(TdvfMetadata { sections }))
    }
}

/// Whether `[a, a+alen)` and `[b, b+blen)` intersect (empty ranges never do).
/// Callers guarantee the additions do not overflow.
fn ranges_overlap(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    alen != 0 && blen != 0 && a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trip() {
        assert_eq!(
            FOOTER_TABLE_GUID.to_string(),
            "96b582de-1fb2-45f7-baea-a366c55a082d"
        );
        assert_eq!(
            FOOTER_TABLE_GUID.0,
            [
                0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a,
                0x08, 0x2d
            ]
        );
    }
}
