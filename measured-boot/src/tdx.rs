//! Intel TDX: MRTD from TDVF metadata, and RTMR1/RTMR2 for QEMU direct boot via OVMF.
//!
//! MRTD (TDX Module ABI: TDH.MEM.PAGE.ADD, TDH.MR.EXTEND) is one running SHA-384 over
//! 128-byte operation blocks and, for extends, the 256-byte chunk contents. Sections
//! enter in metadata order; within a section the page adds and extends are interleaved
//! page by page ([`PageAddOrder::SinglePass`], upstream KVM `KVM_TDX_INIT_MEM_REGION`)
//! or all adds come before all extends ([`PageAddOrder::TwoPass`], the QEMU 8.x TDX tree).
//!
//! RTMR1/RTMR2 (UEFI CC measurement mapping: PCR 2–6 → RTMR1, PCR 8–15 → RTMR2) follow
//! OVMF's events for a kernel loaded by QEMU with `-kernel`: the Authenticode SHA-384 of
//! the kernel *as QEMU patched its setup header*, four fixed boot events, the command line
//! (UTF-16LE + NUL) and the initrd.

use serde::Serialize;
use sha2::{Digest as _, Sha384};

use crate::digest::{le_u16, le_u32, ser_hex_u64, Digest32, Digest48};
use crate::ovmf::{OvmfError, OvmfImage, TdvfSection, PAGE_SIZE};
use crate::pe::{PeError, PeImage};

/// Upper bound on PAGE.ADD operations (1 GiB of added pages), against hostile metadata.
/// Real TDVF images add a few MiB; large memory is PAGE.AUGed.
pub const MAX_ADDED_PAGES: u64 = 1 << 18;

/// Page-add order of the VMM/KVM that builds the TD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageAddOrder {
    /// PAGE.ADD then the page's 16 MR.EXTENDs, page by page (upstream KVM, QEMU ≥ 9).
    SinglePass,
    /// All PAGE.ADDs of a section, then all its MR.EXTENDs (QEMU 8.x TDX tree).
    TwoPass,
}

/// Errors from the TDX computations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TdxError {
    /// Malformed firmware metadata.
    #[error(transparent)]
    Ovmf(#[from] OvmfError),
    /// The firmware has no TDVF metadata.
    #[error("the firmware has no TDVF metadata")]
    NoTdvfMetadata,
    /// The metadata adds more pages than [`MAX_ADDED_PAGES`].
    #[error("the TDVF metadata adds more than {MAX_ADDED_PAGES} pages")]
    TooManyPages,
    /// Malformed kernel PE.
    #[error(transparent)]
    Pe(#[from] PeError),
    /// The kernel has no Linux boot-protocol setup header.
    #[error("the kernel has no Linux setup header (HdrS) or is too short")]
    NoSetupHeader,
    /// The kernel's boot protocol is older than QEMU's high-kernel path (2.02).
    #[error("the kernel's boot protocol {0:#x} is older than 2.02")]
    OldBootProtocol(u16),
    /// QEMU refuses an initrd at or above its maximum address.
    #[error("initrd of {size:#x} bytes does not fit below {initrd_max:#x}")]
    InitrdTooLarge {
        /// initrd size.
        size: u64,
        /// the highest address QEMU allows.
        initrd_max: u64,
    },
    /// Guest RAM too small to place the command line and ACPI data.
    #[error("guest RAM size {0:#x} is too small")]
    RamTooSmall(u64),
}

impl TdxError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ovmf(e) => e.code(),
            Self::NoTdvfMetadata => "TDX_NO_TDVF_METADATA",
            Self::TooManyPages => "TDX_TOO_MANY_PAGES",
            Self::Pe(e) => e.code(),
            Self::NoSetupHeader => "TDX_NO_SETUP_HEADER",
            Self::OldBootProtocol(_) => "TDX_OLD_BOOT_PROTOCOL",
            Self::InitrdTooLarge { .. } => "TDX_INITRD_TOO_LARGE",
            Self::RamTooSmall(_) => "TDX_RAM_TOO_SMALL",
        }
    }
}

/// MRTD and the metadata it was computed from.
#[derive(Debug, Clone, Serialize)]
pub struct MrtdResult {
    /// The MRTD.
    pub mrtd: Digest48,
    /// The order used.
    pub order: PageAddOrder,
    /// SHA-256 of the firmware image.
    pub firmware_sha256: Digest32,
    /// TDVF sections in metadata order.
    pub sections: Vec<TdvfSection>,
}

fn op_block(name: &[u8], gpa: u64) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[..name.len()].copy_from_slice(name);
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

fn extend_page(h: &mut Sha384, fw: &[u8], s: &TdvfSection, page: u64) {
    for chunk in 0..16u64 {
        let off_in_section = page * PAGE_SIZE + chunk * 256;
        h.update(op_block(b"MR.EXTEND", s.memory_address + off_in_section));
        // QEMU copies the raw data into a zeroed region of MemoryDataSize bytes; the part
        // beyond RawDataSize therefore extends as zeros.
        let mut buf = [0u8; 256];
        if off_in_section < u64::from(s.raw_data_size) {
            let avail = (u64::from(s.raw_data_size) - off_in_section).min(256) as usize;
            let start = s.data_offset as usize + off_in_section as usize;
            // In bounds: the parser checked data_offset + raw_data_size <= image length.
            if let Some(src) = fw.get(start..start + avail) {
                buf[..avail].copy_from_slice(src);
            }
        }
        h.update(buf);
    }
}

/// MRTD of a TDVF firmware image under the given page-add order.
pub fn mrtd(firmware: &[u8], order: PageAddOrder) -> Result<MrtdResult, TdxError> {
    let img = OvmfImage::parse(firmware)?;
    let meta = img.tdvf_metadata()?.ok_or(TdxError::NoTdvfMetadata)?;
    let total: u64 = meta
        .sections
        .iter()
        .filter(|s| !s.page_aug())
        .map(|s| s.memory_data_size / PAGE_SIZE)
        .fold(0u64, u64::saturating_add);
    if total > MAX_ADDED_PAGES {
        return Err(TdxError::TooManyPages);
    }
    let mut h = Sha384::new();
    for s in &meta.sections {
        let pages = s.memory_data_size / PAGE_SIZE;
        let add = |h: &mut Sha384, p: u64| {
            if !s.page_aug() {
                h.update(op_block(b"MEM.PAGE.ADD", s.memory_address + p * PAGE_SIZE));
            }
        };
        // An extended section that is PAGE.AUGed would also be bounded by the raw size.
        let extend_pages = if s.mr_extend() { pages } else { 0 };
        match order {
            PageAddOrder::SinglePass => {
                for p in 0..pages {
                    add(&mut h, p);
                    if p < extend_pages {
                        extend_page(&mut h, firmware, s, p);
                    }
                }
            }
            PageAddOrder::TwoPass => {
                for p in 0..pages {
                    add(&mut h, p);
                }
                for p in 0..extend_pages {
                    extend_page(&mut h, firmware, s, p);
                }
            }
        }
    }
    Ok(MrtdResult {
        mrtd: Digest48(h.finalize().into()),
        order,
        firmware_sha256: Digest32::sha256(firmware),
        sections: meta.sections,
    })
}

/// ACPI data QEMU reserves at the top of below-4G RAM (`acpi_data_size`, q35/pc ≥ 2.x).
pub const ACPI_DATA_SIZE: u64 = 0x28000;

/// Below-4G RAM of a QEMU q35 machine with `ram_size` bytes of RAM: up to 2 GiB when
/// RAM ≥ 2.75 GiB (the rest goes above 4 GiB), else up to 2.75 GiB.
pub fn q35_below_4g_mem(ram_size: u64) -> u64 {
    let lowmem = if ram_size >= 0xb000_0000 {
        0x8000_0000
    } else {
        0xb000_0000
    };
    ram_size.min(lowmem)
}

/// What QEMU wrote into the kernel's setup header.
#[derive(Debug, Clone, Serialize)]
pub struct KernelPatch {
    /// Boot protocol version (0x206).
    pub protocol: u16,
    /// xloadflags (0x236), for protocol ≥ 2.12.
    pub xloadflags: u16,
    /// Below-4G RAM used for the initrd limit.
    #[serde(serialize_with = "ser_hex_u64")]
    pub below_4g_mem: u64,
    /// The highest initrd address QEMU allows (after clamping to RAM).
    #[serde(serialize_with = "ser_hex_u64")]
    pub initrd_max: u64,
    /// `ramdisk_image` written at 0x218 (0 when no initrd).
    #[serde(serialize_with = "ser_hex_u64")]
    pub ramdisk_image: u64,
    /// `ramdisk_size` written at 0x21C.
    #[serde(serialize_with = "ser_hex_u64")]
    pub ramdisk_size: u64,
    /// `vid_mode` written at 0x1FA from a `vga=` argument, if any.
    pub vid_mode: Option<u16>,
}

/// Apply QEMU's `x86_load_linux` setup-header patch for a high kernel (protocol ≥ 2.02)
/// on a q35 machine, returning the patched image and what was written.
pub fn qemu_patch_kernel(
    kernel: &[u8],
    ram_size: u64,
    initrd_size: Option<u64>,
    cmdline: &str,
) -> Result<(Vec<u8>, KernelPatch), TdxError> {
    if kernel.len() < 0x238 || le_u32(kernel, 0x202) != Some(0x5372_6448) {
        return Err(TdxError::NoSetupHeader);
    }
    let protocol = le_u16(kernel, 0x206).ok_or(TdxError::NoSetupHeader)?;
    let loadflags = *kernel.get(0x211).ok_or(TdxError::NoSetupHeader)?;
    if protocol < 0x202 || loadflags & 0x01 == 0 {
        return Err(TdxError::OldBootProtocol(protocol));
    }
    let xloadflags = if protocol >= 0x20c {
        le_u16(kernel, 0x236).ok_or(TdxError::NoSetupHeader)?
    } else {
        0
    };
    const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
    let mut initrd_max: u64 = if protocol >= 0x20c && xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0 {
        u64::from(u32::MAX)
    } else if protocol >= 0x203 {
        u64::from(le_u32(kernel, 0x22c).ok_or(TdxError::NoSetupHeader)?)
    } else {
        0x37ff_ffff
    };
    let below_4g = q35_below_4g_mem(ram_size);
    let limit = below_4g
        .checked_sub(ACPI_DATA_SIZE)
        .ok_or(TdxError::RamTooSmall(ram_size))?;
    if initrd_max >= limit {
        initrd_max = limit
            .checked_sub(1)
            .ok_or(TdxError::RamTooSmall(ram_size))?;
    }
    // High, recent kernel: real-mode code at 0x10000, command line at 0x20000.
    let real_addr: u32 = 0x10000;
    let cmdline_addr: u32 = 0x20000;
    let mut k = kernel.to_vec();
    let mut put = |at: usize, v: &[u8]| {
        // In bounds: the kernel is at least 0x238 bytes long and all offsets are below.
        if let Some(dst) = k.get_mut(at..at + v.len()) {
            dst.copy_from_slice(v);
        }
    };
    put(0x228, &cmdline_addr.to_le_bytes());
    let vid_mode = vga_mode(cmdline);
    if let Some(m) = vid_mode {
        put(0x1fa, &m.to_le_bytes());
    }
    put(0x210, &[0xb0]);
    put(0x211, &[loadflags | 0x80]);
    put(
        0x224,
        &((cmdline_addr - real_addr - 0x200) as u16).to_le_bytes(),
    );
    let (ramdisk_image, ramdisk_size) = match initrd_size {
        Some(size) => {
            if size >= initrd_max {
                return Err(TdxError::InitrdTooLarge { size, initrd_max });
            }
            let addr = (initrd_max - size) & !0xfff;
            // Both fit in u32: addr < initrd_max ≤ u32::MAX and size < initrd_max.
            put(0x218, &(addr as u32).to_le_bytes());
            put(0x21c, &(size as u32).to_le_bytes());
            (addr, size)
        }
        None => (0, 0),
    };
    Ok((
        k,
        KernelPatch {
            protocol,
            xloadflags,
            below_4g_mem: below_4g,
            initrd_max,
            ramdisk_image,
            ramdisk_size,
            vid_mode,
        },
    ))
}

/// QEMU's `vga=` handling: normal → 0xffff, ext → 0xfffe, ask → 0xfffd, else a number
/// (C `strtol` with base 0; unparsable text gives 0).
fn vga_mode(cmdline: &str) -> Option<u16> {
    let at = cmdline.find("vga=")?;
    let v = cmdline.get(at + 4..).unwrap_or("");
    Some(if v.starts_with("normal") {
        0xffff
    } else if v.starts_with("ext") {
        0xfffe
    } else if v.starts_with("ask") {
        0xfffd
    } else {
        strtol0(v) as u16
    })
}

/// C `strtol(s, NULL, 0)` on a prefix: optional sign, 0x hex, leading-0 octal, decimal.
fn strtol0(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..).unwrap_or("")),
        Some(b'+') => (false, s.get(1..).unwrap_or("")),
        _ => (false, s),
    };
    let (radix, digits) = if (s.starts_with("0x") || s.starts_with("0X"))
        && s.as_bytes().get(2).is_some_and(|c| c.is_ascii_hexdigit())
    {
        (16, s.get(2..).unwrap_or(""))
    } else if s.starts_with('0') {
        (8, s)
    } else {
        (10, s)
    };
    let mut v: i64 = 0;
    for c in digits.chars() {
        match c.to_digit(radix) {
            Some(d) => {
                v = v
                    .saturating_mul(i64::from(radix))
                    .saturating_add(i64::from(d))
            }
            None => break,
        }
    }
    if neg {
        -v
    } else {
        v
    }
}

/// Inputs for RTMR1/RTMR2 of a QEMU direct boot through OVMF on q35.
#[derive(Debug, Clone, Copy)]
pub struct DirectBootInputs<'a> {
    /// The `-kernel` file (a bzImage with a PE/COFF EFI stub).
    pub kernel: &'a [u8],
    /// The `-initrd` file.
    pub initrd: Option<&'a [u8]>,
    /// The `-append` command line ("" when none).
    pub cmdline: &'a str,
    /// Guest RAM size in bytes (`-m`): it sets the initrd address QEMU patches in.
    pub ram_size: u64,
    /// Whether QEMU patched the setup header before OVMF measured the kernel (`true` for
    /// the QEMU `x86_load_linux` path described in docs/measurements.md). Exposed because
    /// QEMU versions differ for confidential guests; `false` measures the file as given.
    pub qemu_patches_header: bool,
}

/// One event extended into an RTMR.
#[derive(Debug, Clone, Serialize)]
pub struct RtmrEvent {
    /// What the event is.
    pub description: String,
    /// The extended digest.
    pub digest: Digest48,
    /// The register value after the extend.
    pub rtmr_after: Digest48,
}

/// RTMR1 and RTMR2 with their event lists.
#[derive(Debug, Clone, Serialize)]
pub struct DirectBootRtmrs {
    /// RTMR1.
    pub rtmr1: Digest48,
    /// RTMR2.
    pub rtmr2: Digest48,
    /// RTMR1 events.
    pub rtmr1_events: Vec<RtmrEvent>,
    /// RTMR2 events.
    pub rtmr2_events: Vec<RtmrEvent>,
    /// SHA-256 of the kernel file as given.
    pub kernel_sha256: Digest32,
    /// SHA-256 of the initrd.
    pub initrd_sha256: Option<Digest32>,
    /// Guest RAM size.
    #[serde(serialize_with = "ser_hex_u64")]
    pub ram_size: u64,
    /// Whether the measured kernel carries QEMU's header patch.
    pub qemu_patches_header: bool,
    /// QEMU's header patch (computed in both cases: it also checks the initrd fits).
    pub kernel_patch: KernelPatch,
    /// Authenticode SHA-384 of the unpatched kernel (for comparison only).
    pub kernel_authenticode_sha384_unpatched: Digest48,
    /// The command line as OVMF passes it (with ` initrd=initrd` when an initrd is given).
    pub load_options: String,
}

/// `RTMR = SHA-384(RTMR || digest)`.
pub fn rtmr_extend(rtmr: &Digest48, digest: &Digest48) -> Digest48 {
    let mut h = Sha384::new();
    h.update(rtmr.0);
    h.update(digest.0);
    Digest48(h.finalize().into())
}

fn replay(events: &[(String, Digest48)]) -> (Digest48, Vec<RtmrEvent>) {
    let mut r = Digest48::ZERO;
    let mut out = Vec::with_capacity(events.len());
    for (d, digest) in events {
        r = rtmr_extend(&r, digest);
        out.push(RtmrEvent {
            description: d.clone(),
            digest: *digest,
            rtmr_after: r,
        });
    }
    (r, out)
}

/// The OVMF load options for a command line: UTF-16LE of the command line (plus
/// ` initrd=initrd` when an initrd is given) and a UTF-16 NUL.
pub fn load_options_utf16(cmdline: &str, has_initrd: bool) -> (String, Vec<u8>) {
    let mut s = cmdline.to_owned();
    if has_initrd {
        s.push_str(" initrd=initrd");
    }
    let mut b: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    b.extend_from_slice(&[0, 0]);
    (s, b)
}

/// RTMR1 and RTMR2 for a QEMU q35 direct boot through OVMF.
pub fn direct_boot_rtmrs(inp: &DirectBootInputs<'_>) -> Result<DirectBootRtmrs, TdxError> {
    let initrd_size = inp.initrd.map(|i| i.len() as u64);
    let (patched, patch) = qemu_patch_kernel(inp.kernel, inp.ram_size, initrd_size, inp.cmdline)?;
    let patched_hash = PeImage::parse(&patched)?.authenticode_sha384()?;
    let unpatched = PeImage::parse(inp.kernel)?.authenticode_sha384()?;
    let kernel_hash = if inp.qemu_patches_header {
        patched_hash
    } else {
        unpatched
    };
    let rtmr1_events = vec![
        (
            if inp.qemu_patches_header {
                "kernel Authenticode SHA-384 (setup header patched by QEMU)".to_owned()
            } else {
                "kernel Authenticode SHA-384 (file as given)".to_owned()
            },
            kernel_hash,
        ),
        (
            "Calling EFI Application from Boot Option".to_owned(),
            Digest48::sha384(b"Calling EFI Application from Boot Option"),
        ),
        ("separator".to_owned(), Digest48::sha384(&[0u8; 4])),
        (
            "Exit Boot Services Invocation".to_owned(),
            Digest48::sha384(b"Exit Boot Services Invocation"),
        ),
        (
            "Exit Boot Services Returned with Success".to_owned(),
            Digest48::sha384(b"Exit Boot Services Returned with Success"),
        ),
    ];
    let (load_options, lo_bytes) = load_options_utf16(inp.cmdline, inp.initrd.is_some());
    let mut rtmr2_events = vec![(
        "command line (UTF-16LE + NUL)".to_owned(),
        Digest48::sha384(&lo_bytes),
    )];
    if let Some(i) = inp.initrd {
        rtmr2_events.push(("initrd".to_owned(), Digest48::sha384(i)));
    }
    let (rtmr1, e1) = replay(&rtmr1_events);
    let (rtmr2, e2) = replay(&rtmr2_events);
    Ok(DirectBootRtmrs {
        rtmr1,
        rtmr2,
        rtmr1_events: e1,
        rtmr2_events: e2,
        kernel_sha256: Digest32::sha256(inp.kernel),
        initrd_sha256: inp.initrd.map(Digest32::sha256),
        ram_size: inp.ram_size,
        qemu_patches_header: inp.qemu_patches_header,
        kernel_patch: patch,
        kernel_authenticode_sha384_unpatched: unpatched,
        load_options,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strtol_forms() {
        assert_eq!(strtol0("0x317 quiet"), 0x317);
        assert_eq!(strtol0("791"), 791);
        assert_eq!(strtol0("010"), 8);
        assert_eq!(strtol0("zz"), 0);
        assert_eq!(vga_mode("a vga=ask"), Some(0xfffd));
        assert_eq!(vga_mode("quiet"), None);
    }

    #[test]
    fn q35_split() {
        assert_eq!(q35_below_4g_mem(1 << 30), 1 << 30);
        assert_eq!(q35_below_4g_mem(0xa000_0000), 0xa000_0000);
        assert_eq!(q35_below_4g_mem(0xb000_0000), 0x8000_0000);
        assert_eq!(q35_below_4g_mem(8 << 30), 0x8000_0000);
    }
}
