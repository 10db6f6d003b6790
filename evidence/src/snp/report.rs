//! The SEV-SNP attestation report (AMD SEV-SNP ABI specification, table
//! "ATTESTATION_REPORT structure") and the extended-report certificate table.
//!
//! Both parsers are total: any byte string gives either a value or a typed
//! error, never a panic, and nothing is allocated from a length read out of
//! the input beyond the input's own size.

use crate::error::EvidenceError;

/// Size of an attestation report, in bytes.
pub const REPORT_LEN: usize = 0x4A0;
/// The report's signed region: bytes `0..SIGNED_LEN`.
pub const SIGNED_LEN: usize = 0x2A0;
/// `SIGNATURE_ALGO` value for ECDSA P-384 with SHA-384, the only one defined.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Report versions this crate parses.
pub const SUPPORTED_VERSIONS: [u32; 3] = [2, 3, 5];

/// Offsets of the fields this crate reads (ABI specification layout).
pub mod offset {
    pub const VERSION: usize = 0x00;
    pub const GUEST_SVN: usize = 0x04;
    pub const POLICY: usize = 0x08;
    pub const FAMILY_ID: usize = 0x10;
    pub const IMAGE_ID: usize = 0x20;
    pub const VMPL: usize = 0x30;
    pub const SIGNATURE_ALGO: usize = 0x34;
    pub const CURRENT_TCB: usize = 0x38;
    pub const PLATFORM_INFO: usize = 0x40;
    pub const KEY_INFO: usize = 0x48;
    pub const REPORT_DATA: usize = 0x50;
    pub const MEASUREMENT: usize = 0x90;
    pub const HOST_DATA: usize = 0xC0;
    pub const ID_KEY_DIGEST: usize = 0xE0;
    pub const AUTHOR_KEY_DIGEST: usize = 0x110;
    pub const REPORT_ID: usize = 0x140;
    pub const REPORT_ID_MA: usize = 0x160;
    pub const REPORTED_TCB: usize = 0x180;
    pub const CPUID_FAM_ID: usize = 0x188;
    pub const CPUID_MOD_ID: usize = 0x189;
    pub const CPUID_STEP: usize = 0x18A;
    pub const CHIP_ID: usize = 0x1A0;
    pub const COMMITTED_TCB: usize = 0x1E0;
    pub const CURRENT_BUILD: usize = 0x1E8;
    pub const COMMITTED_BUILD: usize = 0x1EC;
    pub const LAUNCH_TCB: usize = 0x1F0;
    pub const LAUNCH_MIT_VECTOR: usize = 0x1F8;
    pub const CURRENT_MIT_VECTOR: usize = 0x200;
    pub const SIGNATURE_R: usize = 0x2A0;
    pub const SIGNATURE_S: usize = 0x2E8;
}

/// Which key signed a report (`KEY_INFO.SIGNING_KEY`, bits 4:2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningKey {
    /// The chip's versioned chip endorsement key.
    Vcek,
    /// A versioned loaded endorsement key (cloud provider key, ASVK chain).
    Vlek,
    /// The report is not signed (value 7).
    None,
}

/// A TCB_VERSION value, kept raw (little-endian u64 as in the report). Its
/// byte layout depends on the processor: see [`TcbLayout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcbVersion(pub u64);

/// How a TCB_VERSION's bytes map to components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcbLayout {
    /// Milan and Genoa: byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode.
    MilanGenoa,
    /// Turin: byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 7 microcode.
    Turin,
}

/// The security patch levels of a TCB_VERSION.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcbParts {
    /// Turin only.
    pub fmc: Option<u8>,
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
}

impl TcbVersion {
    /// Split into components under `layout`.
    pub fn parts(self, layout: TcbLayout) -> TcbParts {
        let b = self.0.to_le_bytes();
        match layout {
            TcbLayout::MilanGenoa => TcbParts {
                fmc: None,
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
            },
            TcbLayout::Turin => TcbParts {
                fmc: Some(b[0]),
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
            },
        }
    }

    /// Assemble from components under `layout` (reserved bytes zero).
    pub fn from_parts(p: TcbParts, layout: TcbLayout) -> TcbVersion {
        let mut b = [0u8; 8];
        match layout {
            TcbLayout::MilanGenoa => {
                b[0] = p.bootloader;
                b[1] = p.tee;
                b[6] = p.snp;
                b[7] = p.microcode;
            }
            TcbLayout::Turin => {
                b[0] = p.fmc.unwrap_or(0);
                b[1] = p.bootloader;
                b[2] = p.tee;
                b[3] = p.snp;
                b[7] = p.microcode;
            }
        }
        TcbVersion(u64::from_le_bytes(b))
    }
}

impl TcbParts {
    /// Whether every component is at least `min`'s (the partial order of
    /// security patch levels; a single u64 comparison is not it).
    pub fn at_least(&self, min: &TcbParts) -> bool {
        self.fmc.unwrap_or(0) >= min.fmc.unwrap_or(0)
            && self.bootloader >= min.bootloader
            && self.tee >= min.tee
            && self.snp >= min.snp
            && self.microcode >= min.microcode
    }
}

/// Firmware version triple (build, minor, major as in the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FirmwareVersion {
    pub major: u8,
    pub minor: u8,
    pub build: u8,
}

/// A parsed attestation report. Every field of the signed region is kept;
/// reserved bytes are not interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpReport {
    pub version: u32,
    pub guest_svn: u32,
    pub policy: u64,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub vmpl: u32,
    pub signature_algo: u32,
    pub current_tcb: TcbVersion,
    pub platform_info: u64,
    /// Raw KEY_INFO word (AUTHOR_KEY_EN bit 0, MASK_CHIP_KEY bit 1,
    /// SIGNING_KEY bits 4:2).
    pub key_info: u32,
    pub report_data: [u8; 64],
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub id_key_digest: [u8; 48],
    pub author_key_digest: [u8; 48],
    pub report_id: [u8; 32],
    pub report_id_ma: [u8; 32],
    pub reported_tcb: TcbVersion,
    /// CPUID family, model and stepping (version 3 and later; `None` before).
    pub cpuid: Option<Cpuid>,
    pub chip_id: [u8; 64],
    pub committed_tcb: TcbVersion,
    pub current_version: FirmwareVersion,
    pub committed_version: FirmwareVersion,
    pub launch_tcb: TcbVersion,
    /// Version 5 and later.
    pub launch_mit_vector: Option<u64>,
    /// Version 5 and later.
    pub current_mit_vector: Option<u64>,
    /// Signature R, big-endian.
    pub sig_r: [u8; 48],
    /// Signature S, big-endian.
    pub sig_s: [u8; 48],
    /// Bytes `0..SIGNED_LEN`: what the signature covers.
    pub signed: Vec<u8>,
}

/// CPUID identification carried by version 3+ reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cpuid {
    /// Extended family + base family (for example 0x19, 0x1A).
    pub family: u8,
    /// Extended model and base model (for example 0x01, 0x11, 0xA0).
    pub model: u8,
    pub stepping: u8,
}

fn malformed(what: &'static str) -> EvidenceError {
    EvidenceError::SnpReportMalformed(what)
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], EvidenceError> {
    b.get(at..at.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| malformed("field past the end"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, EvidenceError> {
    Ok(u32::from_le_bytes(arr(b, at)?))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, EvidenceError> {
    Ok(u64::from_le_bytes(arr(b, at)?))
}

fn u8_at(b: &[u8], at: usize) -> Result<u8, EvidenceError> {
    b.get(at)
        .copied()
        .ok_or_else(|| malformed("field past the end"))
}

/// A 72-byte little-endian zero-padded signature component, as big-endian
/// 48 bytes. The upper 24 bytes must be zero.
fn sig_component(b: &[u8], at: usize) -> Result<[u8; 48], EvidenceError> {
    let raw: [u8; 72] = arr(b, at)?;
    let (low, high) = raw.split_at(48);
    if high.iter().any(|&x| x != 0) {
        return Err(malformed("signature component wider than 384 bits"));
    }
    let mut be = [0u8; 48];
    for (dst, src) in be.iter_mut().zip(low.iter().rev()) {
        *dst = *src;
    }
    Ok(be)
}

fn fw(b: &[u8], at: usize) -> Result<FirmwareVersion, EvidenceError> {
    Ok(FirmwareVersion {
        build: u8_at(b, at)?,
        minor: u8_at(b, at + 1)?,
        major: u8_at(b, at + 2)?,
    })
}

impl SnpReport {
    /// Parse exactly [`REPORT_LEN`] bytes.
    pub fn parse(b: &[u8]) -> Result<SnpReport, EvidenceError> {
        use offset as o;
        if b.len() != REPORT_LEN {
            return Err(malformed("report is not 1184 bytes"));
        }
        let version = u32_at(b, o::VERSION)?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(EvidenceError::Unsupported("SEV-SNP report version"));
        }
        let signature_algo = u32_at(b, o::SIGNATURE_ALGO)?;
        let key_info = u32_at(b, o::KEY_INFO)?;
        let r = SnpReport {
            version,
            guest_svn: u32_at(b, o::GUEST_SVN)?,
            policy: u64_at(b, o::POLICY)?,
            family_id: arr(b, o::FAMILY_ID)?,
            image_id: arr(b, o::IMAGE_ID)?,
            vmpl: u32_at(b, o::VMPL)?,
            signature_algo,
            current_tcb: TcbVersion(u64_at(b, o::CURRENT_TCB)?),
            platform_info: u64_at(b, o::PLATFORM_INFO)?,
            key_info,
            report_data: arr(b, o::REPORT_DATA)?,
            measurement: arr(b, o::MEASUREMENT)?,
            host_data: arr(b, o::HOST_DATA)?,
            id_key_digest: arr(b, o::ID_KEY_DIGEST)?,
            author_key_digest: arr(b, o::AUTHOR_KEY_DIGEST)?,
            report_id: arr(b, o::REPORT_ID)?,
            report_id_ma: arr(b, o::REPORT_ID_MA)?,
            reported_tcb: TcbVersion(u64_at(b, o::REPORTED_TCB)?),
            cpuid: if version >= 3 {
                Some(Cpuid {
                    family: u8_at(b, o::CPUID_FAM_ID)?,
                    model: u8_at(b, o::CPUID_MOD_ID)?,
                    stepping: u8_at(b, o::CPUID_STEP)?,
                })
            } else {
                None
            },
            chip_id: arr(b, o::CHIP_ID)?,
            committed_tcb: TcbVersion(u64_at(b, o::COMMITTED_TCB)?),
            current_version: fw(b, o::CURRENT_BUILD)?,
            committed_version: fw(b, o::COMMITTED_BUILD)?,
            launch_tcb: TcbVersion(u64_at(b, o::LAUNCH_TCB)?),
            launch_mit_vector: if version >= 5 {
                Some(u64_at(b, o::LAUNCH_MIT_VECTOR)?)
            } else {
                None
            },
            current_mit_vector: if version >= 5 {
                Some(u64_at(b, o::CURRENT_MIT_VECTOR)?)
            } else {
                None
            },
            sig_r: sig_component(b, o::SIGNATURE_R)?,
            sig_s: sig_component(b, o::SIGNATURE_S)?,
            signed: b
                .get(..SIGNED_LEN)
                .ok_or_else(|| malformed("report too short"))?
                .to_vec(),
        };
        // Validate the key selector now so later code can rely on it.
        r.signing_key()?;
        Ok(r)
    }

    /// `KEY_INFO.SIGNING_KEY`: 0 VCEK, 1 VLEK, 7 none; others are reserved.
    pub fn signing_key(&self) -> Result<SigningKey, EvidenceError> {
        match (self.key_info >> 2) & 0x7 {
            0 => Ok(SigningKey::Vcek),
            1 => Ok(SigningKey::Vlek),
            7 => Ok(SigningKey::None),
            _ => Err(malformed("reserved SIGNING_KEY value")),
        }
    }

    /// `KEY_INFO.MASK_CHIP_KEY`.
    pub fn mask_chip_key(&self) -> bool {
        self.key_info & 0b10 != 0
    }

    /// `KEY_INFO.AUTHOR_KEY_EN`.
    pub fn author_key_en(&self) -> bool {
        self.key_info & 0b1 != 0
    }

    /// The 96-byte big-endian `r || s` signature.
    pub fn signature_fixed(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        let (r, s) = out.split_at_mut(48);
        r.copy_from_slice(&self.sig_r);
        s.copy_from_slice(&self.sig_s);
        out
    }
}

/// Split CPU evidence into the report and, when present, the extended
/// report's certificate table that follows it (configfs-tsm `auxblob`).
pub fn split_extended(b: &[u8]) -> Result<(&[u8], Option<&[u8]>), EvidenceError> {
    if b.len() < REPORT_LEN {
        return Err(malformed("report is not 1184 bytes"));
    }
    let (report, rest) = b.split_at(REPORT_LEN);
    Ok((report, if rest.is_empty() { None } else { Some(rest) }))
}

/// GUIDs of the extended-report certificate table (RFC 4122 byte order).
pub mod guid {
    pub const VCEK: [u8; 16] = hex16("63da758de6644564adc5f4b93be8accd");
    pub const VLEK: [u8; 16] = hex16("a8074bc2a25a483eaae639c045a0b8a1");
    pub const ASK: [u8; 16] = hex16("4ab7b379bbac4fe4a02f05aef327c782");
    pub const ARK: [u8; 16] = hex16("c0b406a4a803495297433fb6014cd0ae");

    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("GUID constant is not hex"),
        }
    }

    /// Compile-time decoding of a 32-digit hex constant (spaces skipped).
    const fn hex16(s: &str) -> [u8; 16] {
        let b = s.as_bytes();
        let mut out = [0u8; 16];
        let (mut i, mut n) = (0, 0);
        while i < b.len() {
            if b[i] == b' ' {
                i += 1;
                continue;
            }
            out[n / 2] |= nibble(b[i]) << if n % 2 == 0 { 4 } else { 0 };
            n += 1;
            i += 1;
        }
        out
    }
}

/// What a certificate-table entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CertKind {
    Vcek,
    Vlek,
    Ask,
    Ark,
    /// A GUID this crate does not know; kept, not used.
    Other([u8; 16]),
}

/// One entry of the certificate table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertEntry {
    pub kind: CertKind,
    pub der: Vec<u8>,
}

/// The most entries a certificate table may hold.
pub const MAX_CERT_ENTRIES: usize = 16;
const ENTRY_LEN: usize = 24;

/// Parse an extended-report certificate table: entries `{GUID (16),
/// offset u32, length u32}` (offsets from the table's start), ended by an
/// all-zero entry. Every blob must lie inside `table`; a GUID may appear once.
pub fn parse_cert_table(table: &[u8]) -> Result<Vec<CertEntry>, EvidenceError> {
    let bad = || malformed("certificate table");
    let mut out: Vec<CertEntry> = Vec::new();
    let mut at = 0usize;
    loop {
        let entry = table.get(at..at + ENTRY_LEN).ok_or_else(bad)?;
        if entry.iter().all(|&x| x == 0) {
            return Ok(out);
        }
        if out.len() == MAX_CERT_ENTRIES {
            return Err(bad());
        }
        let g: [u8; 16] = arr(entry, 0).map_err(|_| bad())?;
        let off = usize::try_from(u32_at(entry, 16).map_err(|_| bad())?).map_err(|_| bad())?;
        let len = usize::try_from(u32_at(entry, 20).map_err(|_| bad())?).map_err(|_| bad())?;
        let end = off.checked_add(len).ok_or_else(bad)?;
        let der = table.get(off..end).ok_or_else(bad)?;
        let kind = match g {
            guid::VCEK => CertKind::Vcek,
            guid::VLEK => CertKind::Vlek,
            guid::ASK => CertKind::Ask,
            guid::ARK => CertKind::Ark,
            other => CertKind::Other(other),
        };
        if out.iter().any(|e| e.kind == kind) {
            return Err(malformed("certificate table repeats a GUID"));
        }
        out.push(CertEntry {
            kind,
            der: der.to_vec(),
        });
        at += ENTRY_LEN;
    }
}

/// Build a certificate table from entries (for tests and the simulated TEE).
pub fn build_cert_table(entries: &[(CertKind, &[u8])]) -> Vec<u8> {
    let head = (entries.len() + 1) * ENTRY_LEN;
    let mut table = vec![0u8; head];
    let mut off = head;
    for (i, (kind, der)) in entries.iter().enumerate() {
        let g = match kind {
            CertKind::Vcek => guid::VCEK,
            CertKind::Vlek => guid::VLEK,
            CertKind::Ask => guid::ASK,
            CertKind::Ark => guid::ARK,
            CertKind::Other(g) => *g,
        };
        let e = i * ENTRY_LEN;
        table[e..e + 16].copy_from_slice(&g);
        table[e + 16..e + 20].copy_from_slice(&(off as u32).to_le_bytes());
        table[e + 20..e + 24].copy_from_slice(&(der.len() as u32).to_le_bytes());
        off += der.len();
    }
    for (_, der) in entries {
        table.extend_from_slice(der);
    }
    table
}
