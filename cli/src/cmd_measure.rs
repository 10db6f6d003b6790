//! `tl measure`: reproduce launch measurements from the artifacts a reviewer
//! holds (firmware, kernel, initrd, command line, UKI) and compare a quote's
//! registers with expected values. Reads files; every digest is computed by
//! `tl-measured-boot`, every quote is parsed by `tl-evidence`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde::Serialize;
use serde_json::{json, Value};
use tl_evidence::bundle::{CpuEvidenceKind, EvidenceBundle};
use tl_evidence::snp::SnpReport;
use tl_evidence::tdx::Quote;
use tl_evidence::tpm::{attest::hash_alg_name, TpmQuoteEvidence, TpmsAttest};
use tl_measured_boot::snp::{
    cpu_sig, snp_launch_digest, snp_ovmf_hash, vcpu_signature, Ec2Rdx, SnpInputs, VmmType,
    VCPU_TYPES,
};
use tl_measured_boot::tdx::{direct_boot_rtmrs, mrtd, DirectBootInputs, PageAddOrder};
use tl_measured_boot::uki::{predict_pcr11, predict_uki, Pcr11Prediction, CANONICAL_SECTIONS};
use tl_measured_boot::{Digest32, Digest48};
use tl_policy::order::{SnpRef, TdxRef, TpmRef};
use tl_policy::SignedOrder;

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    Snp(SnpArgs),
    Tdx(TdxArgs),
    Uki(UkiArgs),
    Diff(DiffArgs),
}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Snp(a) => snp(a),
        Cmd::Tdx(a) => tdx(a),
        Cmd::Uki(a) => uki(a),
        Cmd::Diff(a) => diff(a),
    }
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// An integer in decimal or with a 0x/0o/0b prefix (Python's `int(s, 0)`).
fn parse_int(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(o) = t.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = t.strip_prefix("0b") {
        (b, 2)
    } else {
        (t, 10)
    };
    u64::from_str_radix(&digits.replace('_', ""), radix).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let v = parse_int(s)?;
    u32::try_from(v).map_err(|_| format!("{s:?} does not fit in 32 bits"))
}

fn file_digest(p: &Path, bytes: &[u8]) -> Value {
    json!({
        "path": p.display().to_string(),
        "size": bytes.len(),
        "sha256": Digest32::sha256(bytes),
    })
}

// ---------------------------------------------------------------------------
// snp

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum VmmArg {
    Qemu,
    Ec2,
    Gce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Ec2RdxArg {
    /// RDX = 0 (virtee/sev Rust crate).
    Virtee,
    /// RDX = 0x600 (sev-snp-measure 0.0.13).
    SevSnpMeasure,
}

/// AMD SEV-SNP launch digest (the report's MEASUREMENT), as sev-snp-measure computes it.
///
/// The MEASUREMENT field of the guest's attestation report, byte for byte as
/// sev-snp-measure 0.0.13 (--mode snp) computes it. The flags are named like
/// sev-snp-measure's.
///
/// The digest chains every 4 KiB page of the OVMF image (mapped to end at
/// 4 GiB), the SEV metadata sections (zero, secrets, CPUID pages, and with a
/// kernel the page holding QEMU's SEV hashes table: SHA-256 of the kernel,
/// initrd and command line), then one VMSA page per vCPU.
///
/// Every value that changes the digest is an input; these are ambiguous,
/// because they depend on the host rather than on the guest image:
///
///   --vcpus           the number of vCPUs (-smp): one VMSA page each.
///   --vcpu-type/-sig  the vCPU model (-cpu): its CPUID(1).EAX signature is
///                     the VMSA's RDX on QEMU. Give exactly one of
///                     --vcpu-type, --vcpu-sig, or --vcpu-family with
///                     --vcpu-model and --vcpu-stepping.
///   --guest-features  the VMSA SEV_FEATURES (default 0x1, SNPActive). Linux
///                     >= 6.6 KVM hosts enable DebugSwap by default: 0x21.
///   --vmm-type        qemu (default), ec2 or gce: each starts vCPUs with a
///                     slightly different register state.
///   --ec2-rdx         required with --vmm-type ec2: sev-snp-measure sets
///                     RDX = 0x600 (sev-snp-measure), the virtee/sev crate
///                     RDX = 0 (virtee). Only a real EC2 report can tell.
///
/// A kernel enters the digest only if the firmware has an SNP_KERNEL_HASHES
/// section (an AmdSevX64 OVMF build). Debian's OVMF.fd (OvmfPkgX64) has none:
/// with --kernel it is refused, as sev-snp-measure refuses it.
///
/// Output: the 96-hex-digit digest and a newline, as sev-snp-measure prints
/// it. --json adds every input's SHA-256, the OVMF-only digest, the hashes
/// table, the digest after each section and each VMSA, and the value of every
/// ambiguous input (defaults included). --policy prints the [platform.snp]
/// fragment of an order that pins this digest.
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    group(clap::ArgGroup::new("vcpu").args(["vcpu_type", "vcpu_sig", "vcpu_family"])),
    after_help = concat!(
        "Examples:\n\n",
        "  tl measure snp --ovmf /usr/share/ovmf/OVMF.fd --vcpus 4 --vcpu-type EPYC-v4\n\n",
        "  tl measure snp --ovmf OVMF.amdsev.fd --kernel vmlinuz --initrd initrd.img \\\n",
        "      --append 'console=ttyS0' --vcpus 2 --vcpu-type EPYC-Milan --guest-features 0x21 --json\n\n",
        "  tl measure snp --ovmf OVMF.fd --ovmf-hash-only      # sev-snp-measure --mode snp:ovmf-hash\n\n",
        "  tl measure snp --ovmf OVMF.fd --snp-ovmf-hash HEX --vcpus 1 --vcpu-sig 0x800f12 --policy"
    )
)]
pub struct SnpArgs {
    /// The -bios firmware image (OVMF.fd).
    #[arg(long, value_name = "FILE")]
    ovmf: PathBuf,
    /// The -kernel file, measured through the SEV hashes table.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// The -initrd file (needs --kernel).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// The -append command line (needs --kernel).
    #[arg(long, value_name = "STR", requires = "kernel")]
    append: Option<String>,
    /// Number of vCPUs.
    #[arg(long, value_name = "N")]
    vcpus: Option<u32>,
    /// QEMU vCPU model name (EPYC, EPYC-v4, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin, ...).
    #[arg(long, value_name = "NAME")]
    vcpu_type: Option<String>,
    /// vCPU signature, CPUID(1).EAX (e.g. 0x800f12).
    #[arg(long, value_name = "HEX", value_parser = parse_u32)]
    vcpu_sig: Option<u32>,
    /// vCPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, value_name = "N", value_parser = parse_u32, requires_all = ["vcpu_model", "vcpu_stepping"])]
    vcpu_family: Option<u32>,
    /// vCPU model number.
    #[arg(long, value_name = "N", value_parser = parse_u32, requires = "vcpu_family")]
    vcpu_model: Option<u32>,
    /// vCPU stepping.
    #[arg(long, value_name = "N", value_parser = parse_u32, requires = "vcpu_family")]
    vcpu_stepping: Option<u32>,
    /// VMSA SEV_FEATURES: 0x1 (SNPActive), 0x21 with DebugSwap (Linux >= 6.6 hosts).
    #[arg(long, value_name = "HEX", default_value = "0x1", value_parser = parse_int)]
    guest_features: u64,
    /// The VMM that builds the guest.
    #[arg(
        long,
        value_name = "TYPE",
        value_enum,
        default_value = "qemu",
        ignore_case = true
    )]
    vmm_type: VmmArg,
    /// EC2 only: the VMSA RDX convention (the two reference tools disagree).
    #[arg(long, value_name = "WHICH", value_enum)]
    ec2_rdx: Option<Ec2RdxArg>,
    /// Resume from a precomputed OVMF-only digest (96 hex digits) instead of hashing the pages.
    #[arg(long, value_name = "HEX")]
    snp_ovmf_hash: Option<String>,
    /// Print only the OVMF-only digest (sev-snp-measure --mode snp:ovmf-hash).
    #[arg(long, conflicts_with_all = ["kernel", "snp_ovmf_hash", "vcpus", "policy"])]
    ovmf_hash_only: bool,
    /// Print every input digest, intermediate digest and parameter as JSON.
    #[arg(long)]
    json: bool,
    /// Print the [platform.snp] order fragment that pins this digest.
    #[arg(long, conflicts_with = "json")]
    policy: bool,
}

fn snp_policy_fragment(m: &Digest48) -> String {
    format!("[platform.snp]\nmeasurement = [\"{m}\"]\n")
}

fn snp(a: SnpArgs) -> anyhow::Result<()> {
    let ovmf = read(&a.ovmf)?;
    if a.ovmf_hash_only {
        let h = snp_ovmf_hash(&ovmf).map_err(|e| anyhow!("{e} ({})", e.code()))?;
        if a.json {
            let out = json!({
                "mode": "snp:ovmf-hash",
                "ovmf": file_digest(&a.ovmf, &ovmf),
                "ovmf_hash": h,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("{h}");
        }
        return Ok(());
    }
    let vcpus = a.vcpus.ok_or_else(|| {
        anyhow!("--vcpus N is required (the number of vCPUs: one VMSA page each)")
    })?;
    let (vmm, vmm_name) = match (a.vmm_type, a.ec2_rdx) {
        (VmmArg::Qemu, None) => (VmmType::Qemu, "qemu"),
        (VmmArg::Gce, None) => (VmmType::Gce, "gce"),
        (VmmArg::Ec2, Some(Ec2RdxArg::SevSnpMeasure)) => {
            (VmmType::Ec2(Ec2Rdx::SevSnpMeasure), "ec2")
        }
        (VmmArg::Ec2, Some(Ec2RdxArg::Virtee)) => (VmmType::Ec2(Ec2Rdx::VirteeSev), "ec2"),
        (VmmArg::Ec2, None) => bail!(
            "--vmm-type ec2 needs --ec2-rdx sev-snp-measure (RDX 0x600) or virtee (RDX 0): \
             the reference implementations disagree"
        ),
        (_, Some(_)) => bail!("--ec2-rdx applies only to --vmm-type ec2"),
    };
    // The vCPU signature: required on QEMU (it is the VMSA's RDX); EC2 and GCE
    // put a fixed value there.
    let (vcpu_sig, vcpu_source) = if let Some(name) = &a.vcpu_type {
        let sig = vcpu_signature(name).ok_or_else(|| {
            let names: Vec<&str> = VCPU_TYPES.iter().map(|(n, _)| *n).collect();
            anyhow!("unknown --vcpu-type {name:?}; known: {}", names.join(", "))
        })?;
        (sig, format!("--vcpu-type {name}"))
    } else if let Some(sig) = a.vcpu_sig {
        (sig, "--vcpu-sig".to_owned())
    } else if let (Some(f), Some(m), Some(s)) = (a.vcpu_family, a.vcpu_model, a.vcpu_stepping) {
        (
            cpu_sig(f, m, s),
            format!("--vcpu-family {f} --vcpu-model {m} --vcpu-stepping {s}"),
        )
    } else if vmm == VmmType::Qemu {
        bail!("missing --vcpu-type, --vcpu-sig or --vcpu-family: on QEMU the vCPU signature is part of each VMSA");
    } else {
        (0, format!("not used on {vmm_name}"))
    };
    let kernel = a.kernel.as_deref().map(read).transpose()?;
    let initrd = a.initrd.as_deref().map(read).transpose()?;
    let ovmf_hash = match &a.snp_ovmf_hash {
        Some(h) => Some(
            Digest48::from_hex(h.trim())
                .ok_or_else(|| anyhow!("--snp-ovmf-hash: expected 96 hex digits"))?
                .0,
        ),
        None => None,
    };
    let inputs = SnpInputs {
        ovmf: &ovmf,
        kernel: kernel.as_deref(),
        initrd: initrd.as_deref(),
        append: a.append.as_deref(),
        vcpus,
        vcpu_sig,
        guest_features: a.guest_features,
        vmm,
        ovmf_hash,
    };
    let m = snp_launch_digest(&inputs).map_err(|e| anyhow!("{e} ({})", e.code()))?;
    if a.policy {
        print!("{}", snp_policy_fragment(&m.launch_digest));
        return Ok(());
    }
    if !a.json {
        println!("{}", m.launch_digest);
        return Ok(());
    }
    let mut defaults = Vec::new();
    if a.guest_features == 0x1 {
        defaults.push("guest_features");
    }
    if a.vmm_type == VmmArg::Qemu {
        defaults.push("vmm_type");
    }
    let out = json!({
        "mode": "snp",
        "measurement": m.launch_digest,
        "parameters": {
            "vcpus": vcpus,
            "vcpu_sig": format!("{vcpu_sig:#x}"),
            "vcpu_sig_from": vcpu_source,
            "guest_features": format!("{:#x}", a.guest_features),
            "vmm_type": vmm_name,
            "ec2_rdx": match vmm {
                VmmType::Ec2(Ec2Rdx::SevSnpMeasure) => Some("sev-snp-measure (0x600)"),
                VmmType::Ec2(Ec2Rdx::VirteeSev) => Some("virtee (0)"),
                _ => None,
            },
            "append": a.append,
            "ovmf_hash_given": ovmf_hash.is_some(),
            "defaults_used": defaults,
        },
        "files": {
            "ovmf": file_digest(&a.ovmf, &ovmf),
            "kernel": a.kernel.as_deref().zip(kernel.as_deref()).map(|(p, b)| file_digest(p, b)),
            "initrd": a.initrd.as_deref().zip(initrd.as_deref()).map(|(p, b)| file_digest(p, b)),
        },
        "ovmf_hash": m.ovmf_hash,
        "computation": m,
        "policy_fragment": snp_policy_fragment(&m.launch_digest),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

// ---------------------------------------------------------------------------
// tdx

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OrderArg {
    SinglePass,
    TwoPass,
    Both,
}

const RTMR0_NOTE: &str = "RTMR0 is not predicted: it measures the TD HOB, the CFV (Secure Boot \
variables) and QEMU's ACPI tables, which depend on the QEMU version and VM configuration. Pin it \
from a known-good boot: its quote (tl measure diff shows every register) or a replay of its CCEL \
event log (tl measure diff --event-log).";

/// Intel TDX MRTD (both page-add orders) and RTMR1/RTMR2 for QEMU direct boot.
///
/// MRTD: the TDX module's SHA-384 over the TDVF sections of the firmware
/// (TDH.MEM.PAGE.ADD of each page, TDH.MR.EXTEND of each 256-byte chunk of
/// the sections marked MR.EXTEND). The order of these operations depends on
/// the VMM stack and changes the value:
///   single-pass  add then extend, page by page (upstream KVM
///                KVM_TDX_INIT_MEM_REGION, QEMU >= 9)
///   two-pass     all adds of a section, then its extends (QEMU 8.x TDX tree)
/// By default both are printed: pick the one your QEMU/KVM uses.
///
/// RTMR1 and RTMR2 (with --kernel): the events OVMF extends for a kernel that
/// QEMU loads with -kernel/-initrd/-append on q35. RTMR1 holds the
/// Authenticode SHA-384 of the kernel as QEMU patched its setup header, and
/// that patch carries the initrd address, which depends on the guest RAM
/// size (--mem, default 2G, QEMU's -m) and the initrd size. --no-header-patch
/// measures the kernel file as given (QEMU versions differ here). RTMR2
/// holds the command line (UTF-16LE, with " initrd=initrd" when an initrd is
/// given) and the initrd.
///
/// RTMR0 is NOT predicted: it measures the TD HOB, the CFV (Secure Boot
/// variables) and QEMU's ACPI tables, which depend on the QEMU version and
/// configuration. Pin it from a known-good boot: the RTMR0 of its quote
/// (tl measure diff prints every register) or a replay of its CCEL event
/// log (tl measure diff --event-log).
/// RTMR3 is extended at run time.
///
/// --json prints the firmware's TDVF sections, every event with its digest
/// and the register after it, QEMU's header patch, and every input's SHA-256.
/// --policy prints the [platform.tdx] fragment of an order.
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = concat!(
        "Examples:\n\n",
        "  tl measure tdx --ovmf /usr/share/ovmf/OVMF.fd\n\n",
        "  tl measure tdx --ovmf OVMF.fd --kernel vmlinuz --initrd initrd.img \\\n",
        "      --append 'console=ttyS0 root=/dev/vda1' --mem 4G --page-add-order single-pass --json\n\n",
        "  tl measure tdx --ovmf OVMF.fd --kernel vmlinuz --policy"
    )
)]
pub struct TdxArgs {
    /// The -bios firmware image with TDVF metadata (OVMF.fd).
    #[arg(long, value_name = "FILE")]
    ovmf: PathBuf,
    /// The -kernel file (bzImage with an EFI stub): predicts RTMR1 and RTMR2.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// The -initrd file (needs --kernel).
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// The -append command line (needs --kernel; default empty).
    #[arg(long, value_name = "STR", requires = "kernel")]
    append: Option<String>,
    /// Guest RAM (QEMU -m): a number with K, M, G or T (binary units); a bare number is MiB.
    #[arg(long, value_name = "SIZE", default_value = "2G")]
    mem: String,
    /// MRTD page-add order; `both` prints both, since the QEMU/KVM version decides.
    #[arg(long, value_name = "ORDER", value_enum, default_value = "both")]
    page_add_order: OrderArg,
    /// Measure the kernel file as given, without QEMU's setup-header patch.
    #[arg(long)]
    no_header_patch: bool,
    /// Print every input digest, section and event as JSON.
    #[arg(long)]
    json: bool,
    /// Print the [platform.tdx] order fragment.
    #[arg(long, conflicts_with = "json")]
    policy: bool,
}

/// QEMU `-m` size: bare numbers are MiB; suffixes K, M, G, T are binary.
fn parse_mem(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'B' => 0,
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => bail!("--mem {s:?}: unknown unit {c:?} (use K, M, G or T)"),
            };
            (&t[..i], shift)
        }
        _ => (t, 20),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("--mem {s:?}: expected a number with an optional K/M/G/T unit"))?;
    n.checked_mul(1u64 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| anyhow!("--mem {s:?}: out of range"))
}

fn tdx_orders(o: OrderArg) -> Vec<PageAddOrder> {
    match o {
        OrderArg::SinglePass => vec![PageAddOrder::SinglePass],
        OrderArg::TwoPass => vec![PageAddOrder::TwoPass],
        OrderArg::Both => vec![PageAddOrder::SinglePass, PageAddOrder::TwoPass],
    }
}

fn order_name(o: PageAddOrder) -> &'static str {
    match o {
        PageAddOrder::SinglePass => "single-pass",
        PageAddOrder::TwoPass => "two-pass",
    }
}

fn order_note(o: PageAddOrder) -> &'static str {
    match o {
        PageAddOrder::SinglePass => "upstream KVM, QEMU >= 9",
        PageAddOrder::TwoPass => "QEMU 8.x TDX tree",
    }
}

fn tdx_policy_fragment(
    mrtds: &[(PageAddOrder, Digest48)],
    rtmrs: Option<(Digest48, Digest48)>,
) -> String {
    let mut s = String::new();
    if mrtds.len() > 1 {
        s.push_str("# MRTD depends on the page-add order: keep the line of your QEMU/KVM stack.\n");
    }
    s.push_str("[platform.tdx]\n");
    for (i, (o, d)) in mrtds.iter().enumerate() {
        let c = if i == 0 { "" } else { "# " };
        s.push_str(&format!(
            "{c}mrtd = \"{d}\"  # {} ({})\n",
            order_name(*o),
            order_note(*o)
        ));
    }
    s.push_str("# rtmr0: not predicted; pin it from a known-good boot (quote or CCEL event log)\n");
    match rtmrs {
        Some((r1, r2)) => {
            s.push_str(&format!("rtmr1 = \"{r1}\"\nrtmr2 = \"{r2}\"\n"));
        }
        None => s.push_str("# rtmr1, rtmr2: not predicted without --kernel\n"),
    }
    s
}

fn tdx(a: TdxArgs) -> anyhow::Result<()> {
    let ovmf = read(&a.ovmf)?;
    let ram = parse_mem(&a.mem)?;
    let mut mrtds = Vec::new();
    for o in tdx_orders(a.page_add_order) {
        let r = mrtd(&ovmf, o).map_err(|e| anyhow!("{}: {e} ({})", a.ovmf.display(), e.code()))?;
        mrtds.push(r);
    }
    let kernel = a.kernel.as_deref().map(read).transpose()?;
    let initrd = a.initrd.as_deref().map(read).transpose()?;
    let cmdline = a.append.clone().unwrap_or_default();
    let rtmrs = match &kernel {
        Some(k) => Some(
            direct_boot_rtmrs(&DirectBootInputs {
                kernel: k,
                initrd: initrd.as_deref(),
                cmdline: &cmdline,
                ram_size: ram,
                qemu_patches_header: !a.no_header_patch,
            })
            .map_err(|e| anyhow!("{e} ({})", e.code()))?,
        ),
        None => None,
    };
    let pairs: Vec<(PageAddOrder, Digest48)> = mrtds.iter().map(|r| (r.order, r.mrtd)).collect();
    let frag = tdx_policy_fragment(&pairs, rtmrs.as_ref().map(|r| (r.rtmr1, r.rtmr2)));
    if a.policy {
        print!("{frag}");
        return Ok(());
    }
    if a.json {
        let mut mrtd_obj = serde_json::Map::new();
        for r in &mrtds {
            mrtd_obj.insert(order_name(r.order).to_owned(), json!(r.mrtd));
        }
        let out = json!({
            "mode": "tdx",
            "mrtd": mrtd_obj,
            "rtmr0": { "predicted": false, "note": RTMR0_NOTE },
            "rtmr1": rtmrs.as_ref().map(|r| r.rtmr1),
            "rtmr2": rtmrs.as_ref().map(|r| r.rtmr2),
            "parameters": {
                "page_add_orders": pairs.iter().map(|(o, _)| order_name(*o)).collect::<Vec<_>>(),
                "mem": a.mem,
                "ram_size": ram,
                "qemu_patches_header": !a.no_header_patch,
                "append": a.append,
            },
            "files": {
                "ovmf": file_digest(&a.ovmf, &ovmf),
                "kernel": a.kernel.as_deref().zip(kernel.as_deref()).map(|(p, b)| file_digest(p, b)),
                "initrd": a.initrd.as_deref().zip(initrd.as_deref()).map(|(p, b)| file_digest(p, b)),
            },
            "tdvf_sections": mrtds.first().map(|r| &r.sections),
            "direct_boot": rtmrs,
            "policy_fragment": frag,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for (o, d) in &pairs {
        println!("MRTD  {d}  ({}: {})", order_name(*o), order_note(*o));
    }
    println!(
        "RTMR0 not predicted (see --help): pin it from a known-good boot's quote or CCEL event log"
    );
    match &rtmrs {
        Some(r) => {
            println!("RTMR1 {}", r.rtmr1);
            println!("RTMR2 {}", r.rtmr2);
        }
        None => println!("RTMR1, RTMR2 not predicted: give --kernel (QEMU direct boot)"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// uki

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum BankArg {
    Sha256,
    Sha384,
}

/// TPM PCR 11 of a unified kernel image per boot phase, and its PCR 4 event digest.
///
/// PCR 11 as systemd-stub and systemd-pcrphase extend it and `systemd-measure
/// calculate` prints it.
///
/// systemd-stub measures each UKI section present, in canonical order
/// (.linux .osrel .cmdline .initrd .ucode .splash .dtb .uname .sbat .pcrpkey):
/// the section name with its NUL, then the section data. Then
/// systemd-pcrphase extends the phases enter-initrd, leave-initrd, sysinit
/// and ready. The value depends on the boot phase at which PCR 11 is read,
/// so one value per phase is printed, for each bank (--bank, default both
/// sha256 and sha384).
///
/// Give either a UKI (--uki, sections read as min(VirtualSize, SizeOfRawData)
/// bytes) or the section files, as systemd-measure takes them. With --uki
/// the PCR 4 event digest (EV_EFI_BOOT_SERVICES_APPLICATION: the UKI's
/// Authenticode SHA-256) and its Authenticode SHA-384 (the RTMR1 event on
/// TDX) are printed too; the PCR 4 value itself also depends on the events
/// before it (shim, boot loader) and is not predicted.
///
/// Output: `11:BANK=HEX` lines per phase as systemd-measure prints them (the
/// phase names on stderr). --json adds each section's size and digests.
/// --policy prints the [platform.tpm.pcrs.*] fragment for the last phase
/// (`ready`, boot complete).
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    group(clap::ArgGroup::new("source").required(true).multiple(true)
        .args(["uki", "linux", "osrel", "cmdline", "initrd", "ucode", "splash", "dtb", "uname", "sbat", "pcrpkey"])),
    after_help = concat!(
        "Examples:\n\n",
        "  tl measure uki --uki /boot/efi/EFI/Linux/debian.efi\n\n",
        "  tl measure uki --linux vmlinuz --osrel os-release --cmdline cmdline.txt \\\n",
        "      --initrd initrd.img --bank sha256 --json"
    )
)]
pub struct UkiArgs {
    /// A UKI PE file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["linux", "osrel", "cmdline", "initrd", "ucode", "splash", "dtb", "uname", "sbat", "pcrpkey"])]
    uki: Option<PathBuf>,
    /// .linux section file.
    #[arg(long, value_name = "FILE")]
    linux: Option<PathBuf>,
    /// .osrel section file.
    #[arg(long, value_name = "FILE")]
    osrel: Option<PathBuf>,
    /// .cmdline section file.
    #[arg(long, value_name = "FILE")]
    cmdline: Option<PathBuf>,
    /// .initrd section file.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// .ucode section file.
    #[arg(long, value_name = "FILE")]
    ucode: Option<PathBuf>,
    /// .splash section file.
    #[arg(long, value_name = "FILE")]
    splash: Option<PathBuf>,
    /// .dtb section file.
    #[arg(long, value_name = "FILE")]
    dtb: Option<PathBuf>,
    /// .uname section file.
    #[arg(long, value_name = "FILE")]
    uname: Option<PathBuf>,
    /// .sbat section file.
    #[arg(long, value_name = "FILE")]
    sbat: Option<PathBuf>,
    /// .pcrpkey section file.
    #[arg(long, value_name = "FILE")]
    pcrpkey: Option<PathBuf>,
    /// PCR bank (repeatable; default sha256 and sha384).
    #[arg(long = "bank", value_name = "BANK", value_enum, ignore_case = true)]
    banks: Vec<BankArg>,
    /// Print sections, phases and digests as JSON.
    #[arg(long)]
    json: bool,
    /// Print the order fragment pinning PCR 11 after the last phase.
    #[arg(long, conflicts_with = "json")]
    policy: bool,
}

fn uki_policy_fragment(p: &Pcr11Prediction, banks: &[BankArg]) -> String {
    let Some(last) = p.phases.last() else {
        return String::new();
    };
    let mut s = format!("# PCR 11 after phase {} (boot complete)\n", last.phase);
    for b in banks {
        match b {
            BankArg::Sha256 => s.push_str(&format!(
                "[platform.tpm.pcrs.sha256]\n\"11\" = \"{}\"\n",
                last.sha256
            )),
            BankArg::Sha384 => s.push_str(&format!(
                "[platform.tpm.pcrs.sha384]\n\"11\" = \"{}\"\n",
                last.sha384
            )),
        }
    }
    s
}

fn uki(a: UkiArgs) -> anyhow::Result<()> {
    let mut banks = a.banks.clone();
    if banks.is_empty() {
        banks = vec![BankArg::Sha256, BankArg::Sha384];
    }
    banks.sort();
    banks.dedup();
    let (pred, extra, files) = if let Some(p) = &a.uki {
        let bytes = read(p)?;
        let u = predict_uki(&bytes).map_err(|e| anyhow!("{}: {e} ({})", p.display(), e.code()))?;
        let files = json!({ "uki": file_digest(p, &bytes) });
        let extra = json!({
            "pcr4_event_sha256": u.pcr4_event_sha256,
            "authenticode_sha384": u.authenticode_sha384,
        });
        (
            u.pcr11,
            Some((u.pcr4_event_sha256, u.authenticode_sha384, extra)),
            files,
        )
    } else {
        let given = [
            (".linux", &a.linux),
            (".osrel", &a.osrel),
            (".cmdline", &a.cmdline),
            (".initrd", &a.initrd),
            (".ucode", &a.ucode),
            (".splash", &a.splash),
            (".dtb", &a.dtb),
            (".uname", &a.uname),
            (".sbat", &a.sbat),
            (".pcrpkey", &a.pcrpkey),
        ];
        debug_assert!(given.iter().all(|(n, _)| CANONICAL_SECTIONS.contains(n)));
        let mut data = Vec::new();
        let mut files = serde_json::Map::new();
        for (name, path) in given {
            if let Some(p) = path {
                let b = read(p)?;
                files.insert(name.to_owned(), file_digest(p, &b));
                data.push((name, b));
            }
        }
        let refs: Vec<(&str, &[u8])> = data.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let pred = predict_pcr11(&refs).map_err(|e| anyhow!("{e} ({})", e.code()))?;
        (pred, None, Value::Object(files))
    };
    if a.policy {
        print!("{}", uki_policy_fragment(&pred, &banks));
        return Ok(());
    }
    if a.json {
        let mut pcr11 = serde_json::Map::new();
        for b in &banks {
            let (name, vals): (&str, Vec<Value>) = match b {
                BankArg::Sha256 => (
                    "sha256",
                    pred.phases
                        .iter()
                        .map(|p| json!({"phase": p.phase, "pcr": 11, "hash": p.sha256}))
                        .collect(),
                ),
                BankArg::Sha384 => (
                    "sha384",
                    pred.phases
                        .iter()
                        .map(|p| json!({"phase": p.phase, "pcr": 11, "hash": p.sha384}))
                        .collect(),
                ),
            };
            pcr11.insert(name.to_owned(), Value::Array(vals));
        }
        let out = json!({
            "mode": "uki",
            "pcr11": pcr11,
            "pcr4": extra.as_ref().map(|e| &e.2),
            "files": files,
            "sections": pred.sections,
            "after_sections_sha256": pred.after_sections_sha256,
            "after_sections_sha384": pred.after_sections_sha384,
            "policy_fragment": uki_policy_fragment(&pred, &banks),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for p in &pred.phases {
        eprintln!("# PCR[11] Phase <{}>", p.phase);
        for b in &banks {
            match b {
                BankArg::Sha256 => println!("11:sha256={}", p.sha256),
                BankArg::Sha384 => println!("11:sha384={}", p.sha384),
            }
        }
    }
    if let Some((pcr4, ac384, _)) = extra {
        eprintln!("# PCR[4] EV_EFI_BOOT_SERVICES_APPLICATION event digest (Authenticode)");
        println!("4-event:sha256={pcr4}");
        eprintln!("# Authenticode SHA-384 (the RTMR1 event on TDX)");
        println!("authenticode:sha384={ac384}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// diff

/// Compare a quote's registers with expected values; print every mismatch.
///
/// Every difference is printed, in register order (not only the first).
///
/// Expected values (--expected) come from:
///   an order TOML (its [platform.tdx] / [platform.snp] / [platform.tpm.pcrs.BANK]
///     tables; a fragment printed by `tl measure ... --policy` works too),
///   a signed order envelope (DSSE JSON; signatures are not checked here),
///   a JSON file {"tdx": {"mrtd": HEX, "rtmr0": HEX, ...}, "snp":
///     {"measurement": [HEX, ...]}, "tpm": {"pcrs": {"sha256": {"7": HEX}}}}
///     with the same field names as the order.
///
/// The quote (--quote) is a raw TDX quote (v4/v5), an SEV-SNP attestation
/// report (1184 bytes), either as hex text, or an evidence bundle JSON (kind
/// tdx-quote, snp-report or tpm-quote). It is only parsed: signatures and
/// collateral (for a TPM quote: the AK signature and the PCR digest over the
/// PCR values) are checked by `tl evidence verify`, not here.
///
/// TDX registers compared: MRTD, RTMR0..RTMR3, MRCONFIGID, MROWNER,
/// MROWNERCONFIG, TD attributes, XFAM (each when the expectation names it).
/// SEV-SNP: MEASUREMENT (one of the allowed values), HOST_DATA, VMPL.
/// TPM: every pinned PCR, as PCR<n>/<bank>, in (bank, index) order, against
/// the values of the PCRs the quote selects.
///
/// --event-log LOG: for TDX, the CCEL event log (the ACPI CCEL data) is
/// replayed into RTMR0..3; for a TPM quote, a TCG PC Client log
/// (binary_bios_measurements, crypto-agile or SHA-1; trailing zero padding is
/// accepted) is replayed into the PCRs. Every row lists the events that
/// produce its register, so a mismatch names the firmware, boot loader,
/// kernel or command-line event that differs; a log that does not replay to
/// the quote's own registers is reported as such (EVENTLOG_REPLAY_MISMATCH):
/// it cannot explain the quote. For a TPM quote every quoted PCR the log
/// covers is checked, pinned or not; PCRs the log does not cover (such as
/// IMA's PCR10) are listed as not explained by it.
///
/// Exit status 0 when every expected register matches, 1 otherwise.
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = concat!(
        "Examples:\n\n",
        "  tl measure diff --expected order.toml --quote quote.bin\n\n",
        "  tl measure tdx --ovmf OVMF.fd --kernel vmlinuz --policy > expected.toml\n",
        "  tl measure diff --expected expected.toml --quote bundle.json --json"
    )
)]
pub struct DiffArgs {
    /// ORDER.toml, ENVELOPE.json or VALUES.json.
    #[arg(long, value_name = "FILE")]
    expected: PathBuf,
    /// Raw quote/report, hex text, or evidence bundle JSON.
    #[arg(long, value_name = "FILE")]
    quote: PathBuf,
    /// Event log to replay, explaining each register: TDX CCEL data (RTMR0..3)
    /// or, for a TPM quote, a TCG PC Client log (PCRs).
    #[arg(long, value_name = "FILE")]
    event_log: Option<PathBuf>,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default)]
struct Expected {
    tdx: Option<TdxRef>,
    snp: Option<SnpRef>,
    tpm: Option<TpmRef>,
}

fn expected_from_platform_json(platform: &Value) -> anyhow::Result<Expected> {
    let tdx = match platform.get("tdx") {
        Some(v) => {
            Some(serde_json::from_value::<TdxRef>(v.clone()).context("expected tdx values")?)
        }
        None => None,
    };
    let snp = match platform.get("snp") {
        Some(v) => {
            Some(serde_json::from_value::<SnpRef>(v.clone()).context("expected snp values")?)
        }
        None => None,
    };
    let tpm = match platform.get("tpm") {
        Some(v) => {
            Some(serde_json::from_value::<TpmRef>(v.clone()).context("expected tpm values")?)
        }
        None => None,
    };
    Ok(Expected { tdx, snp, tpm })
}

fn load_expected(p: &Path) -> anyhow::Result<Expected> {
    let bytes = read(p)?;
    let ctx = || format!("--expected {}", p.display());
    let trimmed = bytes.trim_ascii();
    let e = if trimmed.first() == Some(&b'{') {
        let v: Value = serde_json::from_slice(trimmed).with_context(ctx)?;
        if v.get("payloadType").is_some() {
            let signed = SignedOrder::from_json(trimmed)
                .map_err(|e| anyhow!("{e} ({})", e.code()))
                .with_context(ctx)?;
            let pl = signed.order().platform();
            Expected {
                tdx: pl.tdx.clone(),
                snp: pl.snp.clone(),
                tpm: pl.tpm.clone(),
            }
        } else if let Some(pl) = v.get("platform") {
            expected_from_platform_json(pl).with_context(ctx)?
        } else {
            expected_from_platform_json(&v).with_context(ctx)?
        }
    } else {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow!("not UTF-8"))
            .with_context(ctx)?;
        let v: toml::Value = toml::from_str(text).with_context(ctx)?;
        let pl = v
            .get("platform")
            .cloned()
            .unwrap_or(toml::Value::Table(Default::default()));
        fn section<T: serde::de::DeserializeOwned>(
            pl: &toml::Value,
            name: &str,
        ) -> anyhow::Result<Option<T>> {
            pl.get(name)
                .map(|t| t.clone().try_into::<T>())
                .transpose()
                .with_context(|| format!("[platform.{name}]"))
        }
        let tdx = section::<TdxRef>(&pl, "tdx").with_context(ctx)?;
        let snp = section::<SnpRef>(&pl, "snp").with_context(ctx)?;
        let tpm = section::<TpmRef>(&pl, "tpm").with_context(ctx)?;
        Expected { tdx, snp, tpm }
    };
    if e.tdx.is_none() && e.snp.is_none() && e.tpm.is_none() {
        bail!(
            "{}: no [platform.tdx], [platform.snp] or [platform.tpm] reference values",
            p.display()
        );
    }
    Ok(e)
}

enum Evidence {
    Tdx(Box<Quote>),
    Snp(Box<SnpReport>),
    Tpm(TpmQuote),
}

/// A TPM quote's PCR values, parsed (not verified).
struct TpmQuote {
    /// The values of the PCRs the quote selects, by bank name and index,
    /// lowercase hex. Values the evidence carries for PCRs the quote does
    /// not select are left out: the quote does not cover them.
    pcrs: BTreeMap<String, BTreeMap<u32, String>>,
}

impl TpmQuote {
    fn parse(ev: &TpmQuoteEvidence) -> anyhow::Result<TpmQuote> {
        let attest = TpmsAttest::parse(&ev.attest).map_err(|e| anyhow!("{e} ({})", e.code()))?;
        // Checks the bank names and the hex of every value.
        let values = ev.pcr_values().map_err(|e| anyhow!("{e} ({})", e.code()))?;
        let mut pcrs: BTreeMap<String, BTreeMap<u32, String>> = BTreeMap::new();
        for sel in &attest.pcr_select {
            let Some(name) = hash_alg_name(sel.hash_alg) else {
                continue;
            };
            let Some(bank) = values.get(&sel.hash_alg) else {
                continue;
            };
            for i in &sel.pcrs {
                if let Some(v) = bank.get(i) {
                    pcrs.entry(name.to_string())
                        .or_default()
                        .insert(*i, hex::encode(v));
                }
            }
        }
        Ok(TpmQuote { pcrs })
    }
}

fn load_quote(p: &Path) -> anyhow::Result<Evidence> {
    let raw = read(p)?;
    let ctx = || format!("--quote {}", p.display());
    let trimmed = raw.trim_ascii();
    let (bytes, kind) = if trimmed.first() == Some(&b'{') {
        let b: EvidenceBundle = match serde_json::from_slice(trimmed) {
            Ok(b) => b,
            Err(e) => {
                // The TPM evidence alone (the JSON a tpm-quote bundle carries).
                if let Ok(t) = TpmQuoteEvidence::from_json(trimmed) {
                    return Ok(Evidence::Tpm(TpmQuote::parse(&t).with_context(ctx)?));
                }
                return Err(anyhow!(e))
                    .context("evidence bundle JSON does not decode")
                    .with_context(ctx);
            }
        };
        if b.cpu.kind == CpuEvidenceKind::TpmQuote {
            let t = TpmQuoteEvidence::from_json(&b.cpu.quote)
                .map_err(|e| anyhow!("{e} ({})", e.code()))
                .with_context(ctx)?;
            return Ok(Evidence::Tpm(TpmQuote::parse(&t).with_context(ctx)?));
        }
        (b.cpu.quote, Some(b.cpu.kind))
    } else if !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|c| c.is_ascii_hexdigit() || c.is_ascii_whitespace() || *c == b'x')
    {
        let s: String = String::from_utf8_lossy(trimmed)
            .split_whitespace()
            .collect();
        let s = s.strip_prefix("0x").unwrap_or(&s);
        (
            hex::decode(s)
                .context("hex does not decode")
                .with_context(ctx)?,
            None,
        )
    } else {
        (raw, None)
    };
    let tee_type = bytes
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes);
    let is_tdx = match kind {
        Some(CpuEvidenceKind::TdxQuote) => true,
        Some(CpuEvidenceKind::SnpReport) => false,
        Some(k) => bail!("{}: cannot compare {k:?} evidence", p.display()),
        None => tee_type == Some(0x81),
    };
    if is_tdx {
        let q = Quote::parse(&bytes)
            .map_err(|e| anyhow!("{e} ({})", e.code()))
            .with_context(ctx)?;
        Ok(Evidence::Tdx(Box::new(q)))
    } else {
        let r = SnpReport::parse(&bytes)
            .map_err(|e| anyhow!("{e} ({})", e.code()))
            .with_context(|| {
                format!(
                    "--quote {}: not a TDX quote, tried as an SEV-SNP report",
                    p.display()
                )
            })?;
        Ok(Evidence::Snp(Box::new(r)))
    }
}

#[derive(Debug, Serialize)]
struct RegisterDiff {
    register: String,
    /// TPM rows: the bank name and PCR index.
    #[serde(skip)]
    pcr: Option<(String, u32)>,
    /// `match`, `mismatch` or `not-pinned`.
    status: &'static str,
    /// Expected value(s); several for SNP measurements.
    expected: Vec<String>,
    actual: String,
    /// With --event-log: the events replayed into this register, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events: Vec<LoggedEvent>,
    /// With --event-log: the register as replayed from the log, when it
    /// differs from the quote's (the log does not explain the quote).
    #[serde(skip_serializing_if = "Option::is_none")]
    log_replay: Option<String>,
}

/// One event of the log, as a reviewer reads it.
#[derive(Debug, Clone, Serialize)]
struct LoggedEvent {
    index: usize,
    event_type: String,
    digest: String,
    detail: String,
}

fn compare(register: &str, expected: Option<Vec<String>>, actual: String) -> RegisterDiff {
    let register = register.to_string();
    match expected {
        None => RegisterDiff {
            register,
            pcr: None,
            status: "not-pinned",
            expected: vec![],
            actual,
            events: Vec::new(),
            log_replay: None,
        },
        Some(exp) => {
            let ok = exp.iter().any(|e| e.eq_ignore_ascii_case(&actual));
            RegisterDiff {
                register,
                pcr: None,
                status: if ok { "match" } else { "mismatch" },
                expected: exp,
                actual,
                events: Vec::new(),
                log_replay: None,
            }
        }
    }
}

fn diff_tdx(t: &TdxRef, q: &Quote) -> Vec<RegisterDiff> {
    let b = &q.body;
    let one = |h: &Option<tl_policy::order::Hex<48>>| h.as_ref().map(|v| vec![v.to_string()]);
    let mut out = vec![compare("MRTD", one(&t.mrtd), hex::encode(b.mrtd))];
    let names = ["RTMR0", "RTMR1", "RTMR2", "RTMR3"];
    for ((i, exp), name) in t.rtmrs().into_iter().zip(names) {
        let actual = b.rtmr.get(i).map(hex::encode).unwrap_or_default();
        out.push(compare(name, exp.map(|v| vec![v.to_string()]), actual));
    }
    out.push(compare(
        "MRCONFIGID",
        one(&t.mrconfigid),
        hex::encode(b.mrconfigid),
    ));
    out.push(compare("MROWNER", one(&t.mrowner), hex::encode(b.mrowner)));
    out.push(compare(
        "MROWNERCONFIG",
        one(&t.mrownerconfig),
        hex::encode(b.mrownerconfig),
    ));
    out.push(compare(
        "TDATTRIBUTES",
        t.td_attributes.as_ref().map(|v| vec![v.to_string()]),
        format!("{:016x}", b.td_attributes_u64()),
    ));
    out.push(compare(
        "XFAM",
        t.xfam.as_ref().map(|v| vec![v.to_string()]),
        format!("{:016x}", b.xfam_u64()),
    ));
    out
}

fn diff_snp(s: &SnpRef, r: &SnpReport) -> Vec<RegisterDiff> {
    vec![
        compare(
            "MEASUREMENT",
            s.measurement
                .as_ref()
                .map(|v| v.iter().map(|h| h.to_string()).collect()),
            hex::encode(r.measurement),
        ),
        compare(
            "HOST_DATA",
            s.host_data.as_ref().map(|h| vec![h.to_string()]),
            hex::encode(r.host_data),
        ),
        compare(
            "VMPL",
            s.vmpl.map(|v| vec![v.to_string()]),
            r.vmpl.to_string(),
        ),
    ]
}

/// Replay a CCEL log into RTMR0..3 and attach, to each RTMR row, the events
/// that produce it and (when they differ) the replayed value.
fn explain_rtmrs(rows: &mut [RegisterDiff], log_path: &std::path::Path) -> anyhow::Result<()> {
    use tl_measured_boot::eventlog::{EventLog, HashAlg};
    let bytes = std::fs::read(log_path).with_context(|| log_path.display().to_string())?;
    let log = EventLog::parse_ccel(&bytes).map_err(|e| anyhow!("{}: {e}", e.code()))?;
    let replay = log
        .replay_ccel()
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    let bank = replay.registers.get(&HashAlg::SHA384);
    for (i, name) in ["RTMR0", "RTMR1", "RTMR2", "RTMR3"].iter().enumerate() {
        let Some(row) = rows.iter_mut().find(|r| r.register == *name) else {
            continue;
        };
        let idx = u32::try_from(i).unwrap_or_default();
        let replayed = bank
            .and_then(|b| b.get(&idx))
            .map(hex::encode)
            .unwrap_or_else(|| hex::encode([0u8; 48]));
        if replayed != row.actual {
            row.log_replay = Some(replayed);
        }
        for &ev in replay
            .sources
            .get(&idx)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(e) = log.events.get(ev) {
                row.events.push(LoggedEvent {
                    index: e.index,
                    event_type: e.event_type.to_string(),
                    digest: e
                        .digest(HashAlg::SHA384)
                        .map(hex::encode)
                        .unwrap_or_default(),
                    detail: short_detail(&e.parsed),
                });
            }
        }
    }
    Ok(())
}

/// One row per pinned PCR, `PCR<n>/<bank>`, in (bank, index) order.
fn diff_tpm(t: &TpmRef, q: &TpmQuote) -> Vec<RegisterDiff> {
    let mut out = Vec::new();
    for (bank, pinned) in &t.pcrs {
        for (i, want) in pinned {
            let actual = q
                .pcrs
                .get(bank)
                .and_then(|b| b.get(i))
                .cloned()
                .unwrap_or_default();
            let mut row = compare(
                &format!("PCR{i}/{bank}"),
                Some(vec![want.to_string()]),
                actual,
            );
            row.pcr = Some((bank.clone(), *i));
            out.push(row);
        }
    }
    out
}

/// Replay a TCG PC Client log into the PCRs. Every quoted PCR that the log
/// covers (an event extends it, or PCR0's startup locality is logged) is
/// checked against the quote, pinned or not: a PCR the log does not replay
/// to gets `log_replay` (and a not-pinned row when it had none). Rows get the
/// events replayed into their PCR, with that bank's digests. Returns the
/// pinned rows that the log does not explain because it does not cover them
/// (no event for that PCR, or no such bank in the log).
fn explain_pcrs(
    rows: &mut Vec<RegisterDiff>,
    q: &TpmQuote,
    log_path: &Path,
) -> anyhow::Result<Vec<String>> {
    use tl_measured_boot::eventlog::{EventLog, HashAlg};
    let bytes = read(log_path)?;
    let log = EventLog::parse_padded(&bytes)
        .map_err(|e| anyhow!("{}: {e}", e.code()))
        .with_context(|| format!("--event-log {}", log_path.display()))?;
    let replay = log.replay();
    let mut explained: Vec<(String, u32)> = Vec::new();
    for (bank, quoted) in &q.pcrs {
        let Some(alg) = HashAlg::from_name(bank).filter(|a| replay.registers.contains_key(a))
        else {
            continue;
        };
        for (i, actual) in quoted {
            let covered =
                replay.sources.contains_key(i) || (*i == 0 && replay.startup_locality.is_some());
            if !covered {
                continue;
            }
            let replayed = replay.value(alg, *i).map(hex::encode).unwrap_or_default();
            let differs = !replayed.eq_ignore_ascii_case(actual);
            let key = (bank.clone(), *i);
            let pos = match rows.iter().position(|r| r.pcr.as_ref() == Some(&key)) {
                Some(p) => p,
                None if differs => {
                    let mut row = compare(&format!("PCR{i}/{bank}"), None, actual.clone());
                    row.pcr = Some(key.clone());
                    rows.push(row);
                    rows.len() - 1
                }
                None => continue,
            };
            let Some(row) = rows.get_mut(pos) else {
                continue;
            };
            explained.push(key);
            if differs {
                row.log_replay = Some(replayed);
            }
            for &ev in replay.sources.get(i).map(Vec::as_slice).unwrap_or_default() {
                if let Some(e) = log.events.get(ev) {
                    row.events.push(LoggedEvent {
                        index: e.index,
                        event_type: e.event_type.to_string(),
                        digest: e.digest(alg).map(hex::encode).unwrap_or_default(),
                        detail: short_detail(&e.parsed),
                    });
                }
            }
        }
    }
    rows.sort_by(|a, b| a.pcr.cmp(&b.pcr));
    Ok(rows
        .iter()
        .filter(|r| r.pcr.as_ref().is_some_and(|k| !explained.contains(k)))
        .map(|r| r.register.clone())
        .collect())
}

fn short_detail(d: &tl_measured_boot::eventlog::EventDetail) -> String {
    let mut s = format!("{d:?}");
    if s.len() > 100 {
        let mut cut = 100;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

const TPM_PARSE_ONLY: &str = "the TPM quote is parsed, not verified: `tl evidence verify` checks its signature and that its PCR digest covers these PCR values";

fn diff(a: DiffArgs) -> anyhow::Result<()> {
    let exp = load_expected(&a.expected)?;
    let ev = load_quote(&a.quote)?;
    let mut not_in_log: Option<Vec<String>> = None;
    let (tee, rows) = match &ev {
        Evidence::Tdx(q) => {
            let t = exp.tdx.as_ref().ok_or_else(|| {
                anyhow!(
                    "the quote is TDX but {} has no [platform.tdx] values",
                    a.expected.display()
                )
            })?;
            let mut rows = diff_tdx(t, q);
            if let Some(log) = &a.event_log {
                explain_rtmrs(&mut rows, log)?;
            }
            ("tdx", rows)
        }
        Evidence::Snp(r) => {
            let s = exp.snp.as_ref().ok_or_else(|| {
                anyhow!(
                    "the report is SEV-SNP but {} has no [platform.snp] values",
                    a.expected.display()
                )
            })?;
            if a.event_log.is_some() {
                bail!("--event-log applies to TDX (CCEL) and TPM quotes (TCG log); SEV-SNP has no runtime registers");
            }
            ("sev-snp", diff_snp(s, r))
        }
        Evidence::Tpm(q) => {
            let t = exp.tpm.as_ref().ok_or_else(|| {
                anyhow!(
                    "the quote is a TPM quote but {} has no [platform.tpm] values",
                    a.expected.display()
                )
            })?;
            let mut rows = diff_tpm(t, q);
            if let Some(log) = &a.event_log {
                not_in_log = Some(explain_pcrs(&mut rows, q, log)?);
            }
            ("tpm", rows)
        }
    };
    let log_mismatch: Vec<&str> = rows
        .iter()
        .filter(|r| r.log_replay.is_some())
        .map(|r| r.register.as_str())
        .collect();
    let mismatches: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == "mismatch")
        .map(|r| r.register.as_str())
        .collect();
    if a.json {
        let mut out = json!({
            "tee": tee,
            "ok": mismatches.is_empty() && log_mismatch.is_empty(),
            "mismatches": mismatches,
            "log_does_not_explain": log_mismatch,
            "registers": rows,
        });
        if tee == "tpm" {
            out["note"] = json!(TPM_PARSE_ONLY);
            if let Some(n) = &not_in_log {
                out["not_in_log"] = json!(n);
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if tee == "tpm" {
            println!("note: {TPM_PARSE_ONLY}");
        }
        for r in &rows {
            match r.status {
                "mismatch" => {
                    println!("MISMATCH {}", r.register);
                    for e in &r.expected {
                        println!("  expected {e}");
                    }
                    if r.actual.is_empty() {
                        println!("  actual   (not in the quote)");
                    } else {
                        println!("  actual   {}", r.actual);
                    }
                    for e in &r.events {
                        println!(
                            "    event {:>3} {:<36} {} {}",
                            e.index,
                            e.event_type,
                            &e.digest[..e.digest.len().min(16)],
                            e.detail
                        );
                    }
                }
                "match" => println!("match    {:<13} {}", r.register, r.actual),
                _ => println!("-        {:<13} {} (not pinned)", r.register, r.actual),
            }
        }
        for r in rows.iter().filter(|r| r.log_replay.is_some()) {
            println!(
                "LOG DOES NOT EXPLAIN {}: the event log replays to {}",
                r.register,
                r.log_replay.as_deref().unwrap_or_default()
            );
        }
        if tee == "tdx"
            && rows
                .iter()
                .any(|r| r.register == "RTMR0" && r.status == "mismatch")
        {
            println!("note: RTMR0 is not predicted from artifacts; it depends on QEMU's ACPI tables and the firmware's configuration");
        }
        if let Some(n) = not_in_log.as_ref().filter(|n| !n.is_empty()) {
            println!(
                "note: the event log has no events for {} (not explained by it)",
                n.join(", ")
            );
        }
    }
    if !log_mismatch.is_empty() {
        bail!(
            "EVENTLOG_REPLAY_MISMATCH: the event log does not replay to the quote's {}",
            log_mismatch.join(", ")
        );
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} register(s) differ: {}",
            mismatches.len(),
            mismatches.join(", ")
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_sizes() {
        assert_eq!(parse_int("0x21"), Ok(0x21));
        assert_eq!(parse_int("33"), Ok(33));
        assert!(parse_int("0xzz").is_err());
        assert!(parse_u32("0x100000000").is_err());
        assert_eq!(parse_mem("2G").unwrap(), 2 << 30);
        assert_eq!(parse_mem("2048").unwrap(), 2 << 30);
        assert_eq!(parse_mem("512m").unwrap(), 512 << 20);
        assert!(parse_mem("0").is_err());
        assert!(parse_mem("2X").is_err());
        assert!(parse_mem("99999999999T").is_err());
    }

    const ORDER: &str = r#"[order]
family = "vector/one"
version = 1
expires = "2030-01-01T00:00:00Z"
signers = ["owner"]

[parties.owner]
signing_key = "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
encryption_key = "x25519:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

[[components]]
name = "engine"
role = "engine"
owner = "owner"
size = 3
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

[launch]
argv = ["{components}/engine"]
memory_mb = 64
cpu_seconds = 10
timeout_seconds = 10

[[outputs]]
name = "out"
path = "out.bin"
recipients = ["owner"]
max_bytes = 1024

[platform]
"#;

    #[test]
    fn policy_fragments_parse_as_orders() {
        let d = Digest48([7u8; 48]);
        let e = Digest48([9u8; 48]);
        let snp = format!("{ORDER}{}", snp_policy_fragment(&d));
        let o = tl_policy::Order::from_toml(&snp).unwrap_or_else(|e| panic!("{e}\n{snp}"));
        let m = o
            .platform()
            .snp
            .as_ref()
            .and_then(|s| s.measurement.clone());
        assert_eq!(m.map(|v| v[0].to_string()), Some(d.to_hex()));

        let frag = tdx_policy_fragment(
            &[(PageAddOrder::SinglePass, d), (PageAddOrder::TwoPass, e)],
            Some((e, d)),
        );
        let o = tl_policy::Order::from_toml(&format!("{ORDER}{frag}"))
            .unwrap_or_else(|e| panic!("{e}\n{frag}"));
        let t = o.platform().tdx.clone().unwrap_or_default();
        assert_eq!(t.mrtd.map(|v| v.to_string()), Some(d.to_hex()));
        assert_eq!(t.rtmr1.map(|v| v.to_string()), Some(e.to_hex()));
        assert_eq!(t.rtmr2.map(|v| v.to_string()), Some(d.to_hex()));
        assert!(t.rtmr0.is_none());

        let p = predict_pcr11(&[(".linux", b"k".as_slice())]).unwrap_or_else(|e| panic!("{e}"));
        let frag = uki_policy_fragment(&p, &[BankArg::Sha256, BankArg::Sha384]);
        let o = tl_policy::Order::from_toml(&format!("{ORDER}{frag}"))
            .unwrap_or_else(|e| panic!("{e}\n{frag}"));
        assert!(o.platform().tpm.is_some());
    }
}
