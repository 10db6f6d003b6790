//! AMD SEV-SNP launch digest (the `MEASUREMENT` field of an attestation report), and the
//! SEV and SEV-ES launch digests, computed exactly as `sev-snp-measure` 0.0.13 does.
//!
//! The SNP digest is a chain over SNP_LAUNCH_UPDATE page records (SNP Firmware ABI
//! spec, PAGE_INFO): starting from 48 zero bytes (or a given OVMF-only digest), each page
//! replaces the digest with SHA-384 of a 0x70-byte record {digest, contents digest,
//! length, page type, IMI, VMPL permissions, GPA}. Pages, in order: every 4 KiB page of
//! the OVMF image (ending at 4 GiB); the SEV metadata sections in table order (CPUID last
//! on EC2); one VMSA page per vCPU.

use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha384};

use crate::digest::{ser_hex_u32, ser_hex_u64, Digest32, Digest48};
use crate::ovmf::{OvmfError, OvmfImage, SevSectionType, FOUR_GIB, PAGE_SIZE};

const PAGE: usize = 4096;
/// Upper bound on vCPUs (KVM's maximum), so a hostile count cannot stall the computation.
pub const MAX_VCPUS: u32 = 4096;
/// The BSP starts at the reset vector.
pub const BSP_EIP: u32 = 0xffff_fff0;
/// VMSA pages are recorded with this GPA (page-aligned `-1` truncated to 52 bits).
pub const VMSA_GPA: u64 = 0x0000_ffff_ffff_f000;

/// SNP page types in a PAGE_INFO record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum PageType {
    /// Contents measured.
    Normal = 1,
    /// A VMSA page.
    Vmsa = 2,
    /// Zero page.
    Zero = 3,
    /// Unmeasured page.
    Unmeasured = 4,
    /// Secrets page.
    Secrets = 5,
    /// CPUID page.
    Cpuid = 6,
}

/// Which value EC2 puts in the VMSA's RDX. The two reference implementations disagree
/// and only a report from real EC2 hardware can settle it, so the caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ec2Rdx {
    /// RDX = 0x600, as sev-snp-measure 0.0.13 sets it.
    SevSnpMeasure,
    /// RDX = 0, as the virtee/sev Rust crate (commit 9cf2adbf) sets it.
    VirteeSev,
}

/// The VMM that builds the guest; each sets a slightly different initial vCPU state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "ec2_rdx")]
pub enum VmmType {
    /// QEMU/KVM (the default of sev-snp-measure).
    Qemu,
    /// Amazon EC2, with the RDX choice made explicit.
    Ec2(Ec2Rdx),
    /// Google Compute Engine.
    Gce,
}

/// CPUID(1).EAX signature from family, model and stepping (AMD CPUID spec #25481).
pub const fn cpu_sig(family: u32, model: u32, stepping: u32) -> u32 {
    let (family_low, family_high) = if family > 0xf {
        (0xf, (family - 0xf) & 0xff)
    } else {
        (family, 0)
    };
    (family_high << 20)
        | (((model >> 4) & 0xf) << 16)
        | (family_low << 8)
        | ((model & 0xf) << 4)
        | (stepping & 0xf)
}

/// QEMU's named AMD vCPU models and their CPUID(1).EAX signature (the VMSA's RDX).
pub const VCPU_TYPES: &[(&str, u32)] = &[
    ("EPYC", cpu_sig(23, 1, 2)),
    ("EPYC-v1", cpu_sig(23, 1, 2)),
    ("EPYC-v2", cpu_sig(23, 1, 2)),
    ("EPYC-IBPB", cpu_sig(23, 1, 2)),
    ("EPYC-v3", cpu_sig(23, 1, 2)),
    ("EPYC-v4", cpu_sig(23, 1, 2)),
    ("EPYC-Rome", cpu_sig(23, 49, 0)),
    ("EPYC-Rome-v1", cpu_sig(23, 49, 0)),
    ("EPYC-Rome-v2", cpu_sig(23, 49, 0)),
    ("EPYC-Rome-v3", cpu_sig(23, 49, 0)),
    ("EPYC-Milan", cpu_sig(25, 1, 1)),
    ("EPYC-Milan-v1", cpu_sig(25, 1, 1)),
    ("EPYC-Milan-v2", cpu_sig(25, 1, 1)),
    ("EPYC-Genoa", cpu_sig(25, 17, 0)),
    ("EPYC-Genoa-v1", cpu_sig(25, 17, 0)),
    ("EPYC-Turin", cpu_sig(26, 0, 0)),
];

/// The signature of a named vCPU model (see [`VCPU_TYPES`]).
pub fn vcpu_signature(name: &str) -> Option<u32> {
    VCPU_TYPES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Errors from the SEV/SNP computations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnpError {
    /// Malformed firmware metadata.
    #[error(transparent)]
    Ovmf(#[from] OvmfError),
    /// The image is empty, not a multiple of 4 KiB, or larger than 4 GiB.
    #[error("OVMF image size {0} is not a non-zero multiple of 4 KiB up to 4 GiB")]
    OvmfSize(usize),
    /// No SEV-ES reset block in the footer table: the AP start address is unknown.
    #[error("the OVMF footer table has no SEV-ES reset block (AP reset EIP)")]
    NoResetBlock,
    /// The reset block gives EIP 0 and there is more than one vCPU.
    #[error("the SEV-ES reset block gives AP EIP 0, so APs cannot be described")]
    ZeroApEip,
    /// A kernel was given but the firmware cannot measure it.
    #[error(
        "a kernel was given but this firmware's SEV metadata has no SNP_KERNEL_HASHES section, \
         so QEMU cannot put -kernel/-initrd/-append into the launch digest (use an AmdSevX64 OVMF build)"
    )]
    KernelHashesUnsupported,
    /// A kernel was given (SEV/SEV-ES) but the firmware has no SEV hashes table.
    #[error("a kernel was given but the firmware has no SEV hashes table GPA (or it is 0)")]
    NoHashesTable,
    /// The hashes table would cross the end of its page.
    #[error("the SEV hashes table at offset {0:#x} does not fit in its page")]
    HashesTableCrossesPage(u32),
    /// The SNP_KERNEL_HASHES section is not exactly one page.
    #[error("the SNP_KERNEL_HASHES section is {0:#x} bytes, expected one page")]
    KernelHashesSectionSize(u32),
    /// An initrd or command line was given without a kernel; it would be silently ignored.
    #[error("an initrd or command line was given without a kernel")]
    InitrdOrAppendWithoutKernel,
    /// vCPU count out of range.
    #[error("vCPU count {0} is outside 1..={MAX_VCPUS}")]
    VcpuCount(u32),
}

impl SnpError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ovmf(e) => e.code(),
            Self::OvmfSize(_) => "SNP_OVMF_SIZE",
            Self::NoResetBlock => "SNP_NO_RESET_BLOCK",
            Self::ZeroApEip => "SNP_ZERO_AP_EIP",
            Self::KernelHashesUnsupported => "SNP_KERNEL_HASHES_UNSUPPORTED",
            Self::NoHashesTable => "SEV_NO_HASHES_TABLE",
            Self::HashesTableCrossesPage(_) => "SEV_HASHES_TABLE_CROSSES_PAGE",
            Self::KernelHashesSectionSize(_) => "SNP_KERNEL_HASHES_SECTION_SIZE",
            Self::InitrdOrAppendWithoutKernel => "SEV_INITRD_OR_APPEND_WITHOUT_KERNEL",
            Self::VcpuCount(_) => "SNP_VCPU_COUNT",
        }
    }
}

/// Inputs to the SNP launch digest. Every value that changes the digest is explicit.
#[derive(Debug, Clone, Copy)]
pub struct SnpInputs<'a> {
    /// The whole `-bios` image (or, with `ovmf_hash`, at least the part carrying the
    /// footer table and metadata).
    pub ovmf: &'a [u8],
    /// `-kernel`, measured through the SEV hashes table.
    pub kernel: Option<&'a [u8]>,
    /// `-initrd` (absent hashes as the empty string).
    pub initrd: Option<&'a [u8]>,
    /// `-append` (absent or empty hashes as a single NUL).
    pub append: Option<&'a str>,
    /// Number of vCPUs (one VMSA each).
    pub vcpus: u32,
    /// CPUID(1).EAX signature of the vCPU model (the VMSA's RDX on QEMU); see [`VCPU_TYPES`].
    pub vcpu_sig: u32,
    /// The VMSA's SEV_FEATURES (0x1 SNPActive; 0x21 adds DebugSwap, Linux ≥ 6.6 hosts).
    pub guest_features: u64,
    /// The VMM.
    pub vmm: VmmType,
    /// A precomputed OVMF-only digest to resume from instead of hashing `ovmf`'s pages.
    pub ovmf_hash: Option<[u8; 48]>,
}

/// A digest of each input, for reviewers.
#[derive(Debug, Clone, Serialize)]
pub struct SnpInputSummary {
    /// SHA-256 of the OVMF bytes given.
    pub ovmf_sha256: Digest32,
    /// Size of the OVMF bytes given.
    pub ovmf_size: usize,
    /// SHA-256 of the kernel.
    pub kernel_sha256: Option<Digest32>,
    /// SHA-256 of the initrd.
    pub initrd_sha256: Option<Digest32>,
    /// The command line.
    pub append: Option<String>,
    /// vCPU count.
    pub vcpus: u32,
    /// vCPU signature.
    #[serde(serialize_with = "ser_hex_u32")]
    pub vcpu_sig: u32,
    /// Guest features.
    #[serde(serialize_with = "ser_hex_u64")]
    pub guest_features: u64,
    /// VMM type.
    pub vmm: VmmType,
    /// Whether the OVMF digest was given rather than computed.
    pub ovmf_hash_given: bool,
}

/// One metadata section as it entered the digest.
#[derive(Debug, Clone, Serialize)]
pub struct SnpSectionStep {
    /// Section type.
    pub kind: SevSectionType,
    /// GPA.
    #[serde(serialize_with = "ser_hex_u32")]
    pub gpa: u32,
    /// Size.
    #[serde(serialize_with = "ser_hex_u32")]
    pub size: u32,
    /// How its pages were recorded.
    pub page_type: PageType,
    /// The launch digest after this section.
    pub digest_after: Digest48,
}

/// The SEV hashes table (QEMU `sev.c` layout) and the page that carries it.
#[derive(Debug, Clone, Serialize)]
pub struct SevHashesTable {
    /// SHA-256 of the command line plus NUL.
    pub cmdline_sha256: Digest32,
    /// SHA-256 of the initrd (empty if none).
    pub initrd_sha256: Digest32,
    /// SHA-256 of the kernel.
    pub kernel_sha256: Digest32,
    /// GPA of the table (from the footer table).
    #[serde(serialize_with = "ser_hex_u32")]
    pub table_gpa: u32,
    /// SHA-256 of the padded table (176 bytes).
    pub table_sha256: Digest32,
    /// SHA-384 of the 4 KiB page holding it (its contents digest in the chain).
    pub page_sha384: Digest48,
}

/// One VMSA page as it entered the digest.
#[derive(Debug, Clone, Serialize)]
pub struct VmsaStep {
    /// vCPU index (0 = BSP).
    pub vcpu: u32,
    /// Start EIP.
    #[serde(serialize_with = "ser_hex_u32")]
    pub eip: u32,
    /// SHA-384 of the VMSA page.
    pub page_sha384: Digest48,
    /// The launch digest after this page.
    pub digest_after: Digest48,
}

/// The SNP launch digest and every intermediate value.
#[derive(Debug, Clone, Serialize)]
pub struct SnpMeasurement {
    /// The final launch digest (report `MEASUREMENT`).
    pub launch_digest: Digest48,
    /// Input digests and parameters.
    pub inputs: SnpInputSummary,
    /// GPA where the OVMF image starts (4 GiB − size), when hashed here.
    pub ovmf_gpa: Option<u64>,
    /// The digest after the OVMF pages (`snp:ovmf-hash`), computed or given.
    pub ovmf_hash: Digest48,
    /// Metadata sections in the order they entered the digest.
    pub sections: Vec<SnpSectionStep>,
    /// The SEV hashes table when a kernel was given.
    pub hashes_table: Option<SevHashesTable>,
    /// VMSA pages.
    pub vmsas: Vec<VmsaStep>,
}

/// The running SNP launch digest.
#[derive(Debug, Clone)]
struct Gctx {
    ld: [u8; 48],
}

impl Gctx {
    fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; 48]) {
        let mut info = [0u8; 0x70];
        info[..48].copy_from_slice(&self.ld);
        info[48..96].copy_from_slice(contents);
        info[96..98].copy_from_slice(&0x70u16.to_le_bytes());
        info[98] = page_type as u8;
        // 99: IMI flag, 100..103: VMPL3/2/1 permissions, 103: reserved: all zero.
        info[104..112].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    fn normal_pages(&mut self, gpa: u64, data: &[u8]) {
        for (i, page) in data.chunks(PAGE).enumerate() {
            let h: [u8; 48] = Sha384::digest(page).into();
            self.update(PageType::Normal, gpa + (i * PAGE) as u64, &h);
        }
    }

    fn empty_pages(&mut self, page_type: PageType, gpa: u32, size: u32) {
        let mut off = 0u64;
        while off < u64::from(size) {
            self.update(page_type, u64::from(gpa) + off, &[0u8; 48]);
            off += PAGE_SIZE;
        }
    }
}

fn check_ovmf_size(ovmf: &[u8]) -> Result<u64, SnpError> {
    let len = ovmf.len();
    if len == 0 || !len.is_multiple_of(PAGE) || len as u64 > FOUR_GIB {
        return Err(SnpError::OvmfSize(len));
    }
    Ok(FOUR_GIB - len as u64)
}

/// The OVMF-only SNP digest (`sev-snp-measure --mode snp:ovmf-hash`): the chain over
/// the image's pages, mapped to end at 4 GiB.
pub fn snp_ovmf_hash(ovmf: &[u8]) -> Result<Digest48, SnpError> {
    let gpa = check_ovmf_size(ovmf)?;
    let mut g = Gctx { ld: [0u8; 48] };
    g.normal_pages(gpa, ovmf);
    Ok(Digest48(g.ld))
}

const SEV_HASH_TABLE_HEADER_GUID: crate::ovmf::Guid =
    crate::ovmf::Guid::from_str_const("9438d606-4f22-4cc9-b479-a793d411fd21");
const SEV_KERNEL_ENTRY_GUID: crate::ovmf::Guid =
    crate::ovmf::Guid::from_str_const("4de79437-abd2-427f-b835-d5b172d2045b");
const SEV_INITRD_ENTRY_GUID: crate::ovmf::Guid =
    crate::ovmf::Guid::from_str_const("44baf731-3a2f-4bd7-9af1-41e29169781d");
const SEV_CMDLINE_ENTRY_GUID: crate::ovmf::Guid =
    crate::ovmf::Guid::from_str_const("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");

/// Length of the unpadded table: header {GUID, u16} + 3 × {GUID, u16, SHA-256}.
const HASHES_TABLE_LEN: usize = 18 + 3 * 50;
/// Padded to a multiple of 16.
const HASHES_TABLE_PADDED: usize = (HASHES_TABLE_LEN + 15) & !15;

struct HashesInput {
    cmdline: [u8; 32],
    initrd: [u8; 32],
    kernel: [u8; 32],
}

impl HashesInput {
    fn new(kernel: &[u8], initrd: Option<&[u8]>, append: Option<&str>) -> Self {
        let mut c = Sha256::new();
        if let Some(a) = append {
            c.update(a.as_bytes());
        }
        c.update([0u8]);
        Self {
            cmdline: c.finalize().into(),
            initrd: Sha256::digest(initrd.unwrap_or(&[])).into(),
            kernel: Sha256::digest(kernel).into(),
        }
    }

    /// The table exactly as QEMU lays it out, zero-padded to 16 bytes.
    fn table(&self) -> [u8; HASHES_TABLE_PADDED] {
        let mut t = [0u8; HASHES_TABLE_PADDED];
        t[..16].copy_from_slice(&SEV_HASH_TABLE_HEADER_GUID.0);
        t[16..18].copy_from_slice(&(HASHES_TABLE_LEN as u16).to_le_bytes());
        let entries = [
            (SEV_CMDLINE_ENTRY_GUID, &self.cmdline),
            (SEV_INITRD_ENTRY_GUID, &self.initrd),
            (SEV_KERNEL_ENTRY_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.iter().enumerate() {
            let at = 18 + i * 50;
            t[at..at + 16].copy_from_slice(&guid.0);
            t[at + 16..at + 18].copy_from_slice(&50u16.to_le_bytes());
            t[at + 18..at + 50].copy_from_slice(*hash);
        }
        t
    }
}

/// VMSA save-area offsets (AMD APM Vol. 2, Table B-4).
mod vmsa_off {
    pub const ES: usize = 0x00;
    pub const CS: usize = 0x10;
    pub const SS: usize = 0x20;
    pub const DS: usize = 0x30;
    pub const FS: usize = 0x40;
    pub const GS: usize = 0x50;
    pub const GDTR: usize = 0x60;
    pub const LDTR: usize = 0x70;
    pub const IDTR: usize = 0x80;
    pub const TR: usize = 0x90;
    pub const EFER: usize = 0xd0;
    pub const CR4: usize = 0x148;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const SEV_FEATURES: usize = 0x3b0;
    pub const XCR0: usize = 0x3e8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

fn put_seg(p: &mut [u8; PAGE], at: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
    p[at..at + 2].copy_from_slice(&selector.to_le_bytes());
    p[at + 2..at + 4].copy_from_slice(&attrib.to_le_bytes());
    p[at + 4..at + 8].copy_from_slice(&limit.to_le_bytes());
    p[at + 8..at + 16].copy_from_slice(&base.to_le_bytes());
}

fn put_u64(p: &mut [u8; PAGE], at: usize, v: u64) {
    p[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The initial VMSA page of a vCPU starting at `eip`.
pub fn vmsa_page(eip: u32, sev_features: u64, vcpu_sig: u32, vmm: VmmType) -> Box<[u8; PAGE]> {
    use vmsa_off::*;
    let mut g_pat: u64 = 0x0007_0406_0007_0406;
    let (cs_flags, ss_flags, tr_flags, rdx, mxcsr, fcw): (u16, u16, u16, u64, u32, u16) = match vmm
    {
        VmmType::Qemu => (0x9b, 0x93, 0x8b, u64::from(vcpu_sig), 0x1f80, 0x37f),
        VmmType::Ec2(which) => {
            let cs = if eip == BSP_EIP { 0x9a } else { 0x9b };
            let rdx = match which {
                Ec2Rdx::SevSnpMeasure => 0x600,
                Ec2Rdx::VirteeSev => 0,
            };
            (cs, 0x92, 0x83, rdx, 0, 0)
        }
        VmmType::Gce => {
            g_pat = 0x0007_0106;
            (0x9b, 0x93, 0x8b, 0x600, 0, 0)
        }
    };
    let mut p = Box::new([0u8; PAGE]);
    put_seg(&mut p, ES, 0, 0x93, 0xffff, 0);
    put_seg(
        &mut p,
        CS,
        0xf000,
        cs_flags,
        0xffff,
        u64::from(eip & 0xffff_0000),
    );
    put_seg(&mut p, SS, 0, ss_flags, 0xffff, 0);
    put_seg(&mut p, DS, 0, 0x93, 0xffff, 0);
    put_seg(&mut p, FS, 0, 0x93, 0xffff, 0);
    put_seg(&mut p, GS, 0, 0x93, 0xffff, 0);
    put_seg(&mut p, GDTR, 0, 0, 0xffff, 0);
    put_seg(&mut p, IDTR, 0, 0, 0xffff, 0);
    put_seg(&mut p, LDTR, 0, 0x82, 0xffff, 0);
    put_seg(&mut p, TR, 0, tr_flags, 0xffff, 0);
    put_u64(&mut p, EFER, 0x1000);
    put_u64(&mut p, CR4, 0x40);
    put_u64(&mut p, CR0, 0x10);
    put_u64(&mut p, DR7, 0x400);
    put_u64(&mut p, DR6, 0xffff_0ff0);
    put_u64(&mut p, RFLAGS, 0x2);
    put_u64(&mut p, RIP, u64::from(eip & 0xffff));
    put_u64(&mut p, G_PAT, g_pat);
    put_u64(&mut p, RDX, rdx);
    put_u64(&mut p, SEV_FEATURES, sev_features);
    put_u64(&mut p, XCR0, 0x1);
    p[MXCSR..MXCSR + 4].copy_from_slice(&mxcsr.to_le_bytes());
    p[X87_FCW..X87_FCW + 2].copy_from_slice(&fcw.to_le_bytes());
    p
}

fn ap_eip(img: &OvmfImage<'_>, vcpus: u32) -> Result<u32, SnpError> {
    let eip = img.sev_es_reset_eip()?.ok_or(SnpError::NoResetBlock)?;
    if eip == 0 && vcpus > 1 {
        return Err(SnpError::ZeroApEip);
    }
    Ok(eip)
}

fn check_vcpus(vcpus: u32) -> Result<(), SnpError> {
    if vcpus == 0 || vcpus > MAX_VCPUS {
        return Err(SnpError::VcpuCount(vcpus));
    }
    Ok(())
}

/// The SEV-SNP launch digest, with every intermediate digest.
pub fn snp_launch_digest(inp: &SnpInputs<'_>) -> Result<SnpMeasurement, SnpError> {
    check_vcpus(inp.vcpus)?;
    if inp.kernel.is_none() && (inp.initrd.is_some() || inp.append.is_some()) {
        return Err(SnpError::InitrdOrAppendWithoutKernel);
    }
    let img = OvmfImage::parse(inp.ovmf)?;
    let meta = img.sev_metadata()?.unwrap_or(crate::ovmf::SevMetadata {
        sections: Vec::new(),
    });
    if inp.kernel.is_some() && !meta.has(SevSectionType::SnpKernelHashes) {
        return Err(SnpError::KernelHashesUnsupported);
    }
    let eip = ap_eip(&img, inp.vcpus)?;

    let mut g = Gctx { ld: [0u8; 48] };
    let ovmf_gpa = match inp.ovmf_hash {
        Some(seed) => {
            g.ld = seed;
            None
        }
        None => {
            let gpa = check_ovmf_size(inp.ovmf)?;
            g.normal_pages(gpa, inp.ovmf);
            Some(gpa)
        }
    };
    let ovmf_hash = Digest48(g.ld);

    let hashes = inp
        .kernel
        .map(|k| HashesInput::new(k, inp.initrd, inp.append));
    let mut hashes_table = None;
    let mut sections = Vec::new();
    let is_ec2 = matches!(inp.vmm, VmmType::Ec2(_));
    for s in &meta.sections {
        let page_type = match s.kind {
            SevSectionType::SnpSecMem if inp.vmm == VmmType::Gce => {
                g.empty_pages(PageType::Unmeasured, s.gpa, s.size);
                PageType::Unmeasured
            }
            SevSectionType::SnpSecMem | SevSectionType::SvsmCaa => {
                g.empty_pages(PageType::Zero, s.gpa, s.size);
                PageType::Zero
            }
            SevSectionType::SnpSecrets => {
                g.update(PageType::Secrets, u64::from(s.gpa), &[0u8; 48]);
                PageType::Secrets
            }
            SevSectionType::Cpuid => {
                if is_ec2 {
                    // EC2 measures the CPUID page after all other sections.
                    continue;
                }
                g.update(PageType::Cpuid, u64::from(s.gpa), &[0u8; 48]);
                PageType::Cpuid
            }
            SevSectionType::SnpKernelHashes => match &hashes {
                Some(h) => {
                    if s.size as usize != PAGE {
                        return Err(SnpError::KernelHashesSectionSize(s.size));
                    }
                    let table_gpa = img.sev_hashes_table_gpa()?.ok_or(SnpError::NoHashesTable)?;
                    let off = table_gpa & 0xfff;
                    let start = off as usize;
                    if start + HASHES_TABLE_PADDED > PAGE {
                        return Err(SnpError::HashesTableCrossesPage(off));
                    }
                    let table = h.table();
                    let mut page = vec![0u8; PAGE];
                    page[start..start + HASHES_TABLE_PADDED].copy_from_slice(&table);
                    g.normal_pages(u64::from(s.gpa), &page);
                    hashes_table = Some(SevHashesTable {
                        cmdline_sha256: Digest32(h.cmdline),
                        initrd_sha256: Digest32(h.initrd),
                        kernel_sha256: Digest32(h.kernel),
                        table_gpa,
                        table_sha256: Digest32::sha256(&table),
                        page_sha384: Digest48::sha384(&page),
                    });
                    PageType::Normal
                }
                None => {
                    g.empty_pages(PageType::Zero, s.gpa, s.size);
                    PageType::Zero
                }
            },
        };
        sections.push(SnpSectionStep {
            kind: s.kind,
            gpa: s.gpa,
            size: s.size,
            page_type,
            digest_after: Digest48(g.ld),
        });
    }
    if is_ec2 {
        for s in meta
            .sections
            .iter()
            .filter(|s| s.kind == SevSectionType::Cpuid)
        {
            g.update(PageType::Cpuid, u64::from(s.gpa), &[0u8; 48]);
            sections.push(SnpSectionStep {
                kind: s.kind,
                gpa: s.gpa,
                size: s.size,
                page_type: PageType::Cpuid,
                digest_after: Digest48(g.ld),
            });
        }
    }

    let bsp = vmsa_page(BSP_EIP, inp.guest_features, inp.vcpu_sig, inp.vmm);
    let ap = vmsa_page(eip, inp.guest_features, inp.vcpu_sig, inp.vmm);
    let bsp_h: [u8; 48] = Sha384::digest(bsp.as_slice()).into();
    let ap_h: [u8; 48] = Sha384::digest(ap.as_slice()).into();
    let mut vmsas = Vec::new();
    for i in 0..inp.vcpus {
        let (e, h) = if i == 0 {
            (BSP_EIP, &bsp_h)
        } else {
            (eip, &ap_h)
        };
        g.update(PageType::Vmsa, VMSA_GPA, h);
        vmsas.push(VmsaStep {
            vcpu: i,
            eip: e,
            page_sha384: Digest48(*h),
            digest_after: Digest48(g.ld),
        });
    }

    Ok(SnpMeasurement {
        launch_digest: Digest48(g.ld),
        inputs: SnpInputSummary {
            ovmf_sha256: Digest32::sha256(inp.ovmf),
            ovmf_size: inp.ovmf.len(),
            kernel_sha256: inp.kernel.map(Digest32::sha256),
            initrd_sha256: inp.initrd.map(Digest32::sha256),
            append: inp.append.map(str::to_owned),
            vcpus: inp.vcpus,
            vcpu_sig: inp.vcpu_sig,
            guest_features: inp.guest_features,
            vmm: inp.vmm,
            ovmf_hash_given: inp.ovmf_hash.is_some(),
        },
        ovmf_gpa,
        ovmf_hash,
        sections,
        hashes_table,
        vmsas,
    })
}

fn sev_hashes_table(
    img: &OvmfImage<'_>,
    kernel: Option<&[u8]>,
    initrd: Option<&[u8]>,
    append: Option<&str>,
) -> Result<Option<[u8; HASHES_TABLE_PADDED]>, SnpError> {
    match kernel {
        None if initrd.is_some() || append.is_some() => Err(SnpError::InitrdOrAppendWithoutKernel),
        None => Ok(None),
        Some(k) => match img.sev_hashes_table_gpa()? {
            Some(gpa) if gpa != 0 => Ok(Some(HashesInput::new(k, initrd, append).table())),
            _ => Err(SnpError::NoHashesTable),
        },
    }
}

/// The SEV (non-ES) launch digest: SHA-256 over the OVMF image and, with a kernel, the
/// SEV hashes table.
pub fn sev_launch_digest(
    ovmf: &[u8],
    kernel: Option<&[u8]>,
    initrd: Option<&[u8]>,
    append: Option<&str>,
) -> Result<Digest32, SnpError> {
    let img = OvmfImage::parse(ovmf)?;
    let table = sev_hashes_table(&img, kernel, initrd, append)?;
    let mut h = Sha256::new();
    h.update(ovmf);
    if let Some(t) = table {
        h.update(t);
    }
    Ok(Digest32(h.finalize().into()))
}

/// The SEV-ES launch digest: as SEV, then one VMSA page per vCPU (SEV_FEATURES 0).
pub fn seves_launch_digest(
    ovmf: &[u8],
    kernel: Option<&[u8]>,
    initrd: Option<&[u8]>,
    append: Option<&str>,
    vcpus: u32,
    vcpu_sig: u32,
    vmm: VmmType,
) -> Result<Digest32, SnpError> {
    check_vcpus(vcpus)?;
    let img = OvmfImage::parse(ovmf)?;
    let table = sev_hashes_table(&img, kernel, initrd, append)?;
    let eip = ap_eip(&img, vcpus)?;
    let mut h = Sha256::new();
    h.update(ovmf);
    if let Some(t) = table {
        h.update(t);
    }
    let bsp = vmsa_page(BSP_EIP, 0, vcpu_sig, vmm);
    let ap = vmsa_page(eip, 0, vcpu_sig, vmm);
    for i in 0..vcpus {
        h.update(if i == 0 {
            bsp.as_slice()
        } else {
            ap.as_slice()
        });
    }
    Ok(Digest32(h.finalize().into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn epyc_v4_signature() {
        assert_eq!(vcpu_signature("EPYC-v4"), Some(0x0080_0f12));
        assert_eq!(vcpu_signature("EPYC-Milan"), Some(0x00a0_0f11));
        assert_eq!(vcpu_signature("EPYC-Genoa"), Some(0x00a1_0f10));
        assert_eq!(vcpu_signature("nope"), None);
    }

    #[test]
    fn hashes_table_layout() {
        assert_eq!(HASHES_TABLE_LEN, 168);
        assert_eq!(HASHES_TABLE_PADDED, 176);
    }
}
