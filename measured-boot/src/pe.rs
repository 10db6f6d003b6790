//! Bounds-checked PE/COFF parsing and the Authenticode image hash.
//!
//! The Authenticode hash follows Microsoft's *Windows Authenticode Portable Executable
//! Signature Format*, "Calculating the PE Image Hash", as EDK2 implements it (no padding
//! of the image to 8 bytes): the headers up to `SizeOfHeaders` without the CheckSum field
//! and the Certificate Table directory entry, then each section's raw data in ascending
//! `PointerToRawData` order, then any data after the last section except the
//! certificate table.

use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha384};

use crate::digest::{le_u16, le_u32, Digest32, Digest48};

/// Upper bound on the number of sections read (the PE format allows at most 96).
const MAX_SECTIONS: usize = 96;

/// Errors from PE parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeError {
    /// No `MZ` signature.
    #[error("not a PE image: no MZ header")]
    NoMz,
    /// No `PE\0\0` signature at `e_lfanew`.
    #[error("not a PE image: no PE signature")]
    NoPeSignature,
    /// A header reaches past the end of the file.
    #[error("PE headers are truncated")]
    Truncated,
    /// Optional-header magic neither PE32 nor PE32+.
    #[error("unknown optional header magic {0:#x}")]
    BadMagic(u16),
    /// Too many sections.
    #[error("{0} sections exceed the limit of 96")]
    TooManySections(u16),
    /// `SizeOfHeaders` is smaller than the headers or larger than the file.
    #[error("SizeOfHeaders {0:#x} is inconsistent with the file")]
    BadSizeOfHeaders(u32),
    /// A section's raw data lies outside the file.
    #[error("section {0} raw data lies outside the file")]
    SectionOutOfFile(String),
    /// The certificate table lies outside the file or not at its end.
    #[error("the certificate table is inconsistent with the file")]
    BadCertificateTable,
}

impl PeError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoMz => "PE_NO_MZ",
            Self::NoPeSignature => "PE_NO_SIGNATURE",
            Self::Truncated => "PE_TRUNCATED",
            Self::BadMagic(_) => "PE_BAD_MAGIC",
            Self::TooManySections(_) => "PE_TOO_MANY_SECTIONS",
            Self::BadSizeOfHeaders(_) => "PE_BAD_SIZE_OF_HEADERS",
            Self::SectionOutOfFile(_) => "PE_SECTION_OUT_OF_FILE",
            Self::BadCertificateTable => "PE_BAD_CERTIFICATE_TABLE",
        }
    }
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Name, up to the first NUL of the 8-byte field (lossy UTF-8).
    pub name: String,
    /// VirtualSize.
    pub virtual_size: u32,
    /// VirtualAddress.
    pub virtual_address: u32,
    /// SizeOfRawData.
    pub size_of_raw_data: u32,
    /// PointerToRawData.
    pub pointer_to_raw_data: u32,
}

/// A parsed PE image (borrowing the file bytes).
#[derive(Debug, Clone)]
pub struct PeImage<'a> {
    data: &'a [u8],
    checksum_off: usize,
    /// Offset of the Certificate Table directory entry, when the directory has one.
    cert_dir_off: Option<usize>,
    cert_table: Option<(usize, usize)>,
    size_of_headers: usize,
    sections: Vec<Section>,
}

impl<'a> PeImage<'a> {
    /// Parse the headers and the section table.
    pub fn parse(data: &'a [u8]) -> Result<Self, PeError> {
        if data.get(..2) != Some(b"MZ".as_slice()) {
            return Err(PeError::NoMz);
        }
        let pe = le_u32(data, 0x3c).ok_or(PeError::Truncated)? as usize;
        if data.get(pe..pe.checked_add(4).ok_or(PeError::Truncated)?) != Some(b"PE\0\0".as_slice())
        {
            return Err(PeError::NoPeSignature);
        }
        let coff = pe + 4;
        let nsections = le_u16(data, coff + 2).ok_or(PeError::Truncated)?;
        let opt_size = usize::from(le_u16(data, coff + 16).ok_or(PeError::Truncated)?);
        let opt = coff + 20;
        let magic = le_u16(data, opt).ok_or(PeError::Truncated)?;
        let (nrva_off, dir_off) = match magic {
            0x10b => (92, 96),
            0x20b => (108, 112),
            m => return Err(PeError::BadMagic(m)),
        };
        let size_of_headers = le_u32(data, opt + 60).ok_or(PeError::Truncated)?;
        let checksum_off = opt + 64;
        let nrva = le_u32(data, opt + nrva_off).ok_or(PeError::Truncated)?;
        let opt_end = opt.checked_add(opt_size).ok_or(PeError::Truncated)?;
        // The Certificate Table is data directory 4 (8 bytes each).
        let cert_dir_off = if nrva > 4 && opt + dir_off + 5 * 8 <= opt_end {
            Some(opt + dir_off + 4 * 8)
        } else {
            None
        };
        let cert_table = match cert_dir_off {
            Some(at) => {
                let off = le_u32(data, at).ok_or(PeError::Truncated)? as usize;
                let size = le_u32(data, at + 4).ok_or(PeError::Truncated)? as usize;
                if size == 0 {
                    None
                } else {
                    let end = off.checked_add(size).ok_or(PeError::BadCertificateTable)?;
                    if end != data.len() {
                        return Err(PeError::BadCertificateTable);
                    }
                    Some((off, size))
                }
            }
            None => None,
        };
        if usize::from(nsections) > MAX_SECTIONS {
            return Err(PeError::TooManySections(nsections));
        }
        let table = opt_end;
        let table_end = table + usize::from(nsections) * 40;
        if table_end > data.len() {
            return Err(PeError::Truncated);
        }
        let soh = size_of_headers as usize;
        if soh < checksum_off + 4 || soh > data.len() {
            return Err(PeError::BadSizeOfHeaders(size_of_headers));
        }
        if let Some(at) = cert_dir_off {
            if soh < at + 8 {
                return Err(PeError::BadSizeOfHeaders(size_of_headers));
            }
        }
        let mut sections = Vec::with_capacity(usize::from(nsections));
        for i in 0..usize::from(nsections) {
            let at = table + i * 40;
            let raw_name = data.get(at..at + 8).ok_or(PeError::Truncated)?;
            let name_len = raw_name.iter().position(|&b| b == 0).unwrap_or(8);
            let name =
                String::from_utf8_lossy(raw_name.get(..name_len).unwrap_or(raw_name)).into_owned();
            let s = Section {
                name,
                virtual_size: le_u32(data, at + 8).ok_or(PeError::Truncated)?,
                virtual_address: le_u32(data, at + 12).ok_or(PeError::Truncated)?,
                size_of_raw_data: le_u32(data, at + 16).ok_or(PeError::Truncated)?,
                pointer_to_raw_data: le_u32(data, at + 20).ok_or(PeError::Truncated)?,
            };
            if s.size_of_raw_data != 0
                && u64::from(s.pointer_to_raw_data) + u64::from(s.size_of_raw_data)
                    > data.len() as u64
            {
                return Err(PeError::SectionOutOfFile(s.name));
            }
            sections.push(s);
        }
        Ok(Self {
            data,
            checksum_off,
            cert_dir_off,
            cert_table,
            size_of_headers: soh,
            sections,
        })
    }

    /// The section headers in table order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// A section's raw data, `min(VirtualSize, SizeOfRawData)` bytes (what systemd-stub
    /// measures for UKI sections).
    pub fn section_data(&self, s: &Section) -> Option<&'a [u8]> {
        let len = s.virtual_size.min(s.size_of_raw_data) as usize;
        let start = s.pointer_to_raw_data as usize;
        self.data.get(start..start.checked_add(len)?)
    }

    /// The file bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Feed the Authenticode byte ranges, in order, to `f`.
    fn authenticode_ranges(&self, mut f: impl FnMut(&[u8])) -> Result<(), PeError> {
        let d = self.data;
        let t = PeError::Truncated;
        f(d.get(..self.checksum_off).ok_or(t.clone())?);
        match self.cert_dir_off {
            Some(cd) => {
                f(d.get(self.checksum_off + 4..cd).ok_or(t.clone())?);
                f(d.get(cd + 8..self.size_of_headers).ok_or(t.clone())?);
            }
            None => f(d
                .get(self.checksum_off + 4..self.size_of_headers)
                .ok_or(t.clone())?),
        }
        let mut order: Vec<&Section> = self
            .sections
            .iter()
            .filter(|s| s.size_of_raw_data != 0)
            .collect();
        order.sort_by_key(|s| s.pointer_to_raw_data);
        let mut hashed = self.size_of_headers as u64;
        for s in order {
            let start = s.pointer_to_raw_data as usize;
            let end = start + s.size_of_raw_data as usize;
            f(d.get(start..end)
                .ok_or_else(|| PeError::SectionOutOfFile(s.name.clone()))?);
            hashed += u64::from(s.size_of_raw_data);
        }
        let cert_size = self.cert_table.map_or(0, |(_, size)| size as u64);
        let len = d.len() as u64;
        if len > hashed + cert_size {
            let start = usize::try_from(hashed).map_err(|_| t.clone())?;
            let end = usize::try_from(len - cert_size).map_err(|_| t.clone())?;
            f(d.get(start..end).ok_or(t)?);
        }
        Ok(())
    }

    /// Authenticode SHA-256.
    pub fn authenticode_sha256(&self) -> Result<Digest32, PeError> {
        let mut h = Sha256::new();
        self.authenticode_ranges(|b| h.update(b))?;
        Ok(Digest32(h.finalize().into()))
    }

    /// Authenticode SHA-384.
    pub fn authenticode_sha384(&self) -> Result<Digest48, PeError> {
        let mut h = Sha384::new();
        self.authenticode_ranges(|b| h.update(b))?;
        Ok(Digest48(h.finalize().into()))
    }
}
