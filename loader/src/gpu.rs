//! NVIDIA GPUs: discovery on the PCI bus, and attestation evidence through
//! NVML (`libnvidia-ml`, loaded at run time).
//!
//! Rules, in the order [`collect`] applies them:
//!
//! 1. The PCI inventory ([`pci_inventory`]) lists every function with class
//!    `0x03xxxx` (display: VGA, 3D controller, ...) and vendor `0x10de`, from
//!    sysfs, whether or not a driver is bound: a GPU the driver did not take
//!    still shows, so it cannot hide from the count. NVIDIA HD audio
//!    functions (`0x0403`) are not GPUs and are not counted.
//!    NVSwitches (NVIDIA, class `0x0680`) carry GPU-to-GPU traffic in
//!    multi-GPU protected PCIe mode; they are inventoried the same way.
//! 2. NVSwitches in the inventory: their evidence comes through NVIDIA's
//!    NSCQ library ([`crate::nscq`], loaded at run time; cannot be loaded or
//!    opened: `GPU_NVSWITCH_UNATTESTED`, the switches are named). NSCQ must
//!    enumerate as many switches as the PCI bus shows
//!    (`GPU_NVSWITCH_COUNT_MISMATCH`); each must be an LS10 switch
//!    (`GPU_NVSWITCH_ARCH`) in trusted NVLink mode and locked
//!    (`/config/pcie_mode` bits 0 and 1, `GPU_NVSWITCH_TNVL_OFF`), and answers
//!    [`nvswitch_nonce`]`(cpu_nonce, index)` with an attestation report that
//!    must parse and echo that nonce (`GPU_NVSWITCH_REPORT`) and a PEM
//!    certificate chain (`GPU_NVSWITCH_CERTIFICATE`). This runs before NVML
//!    is loaded.
//! 3. No GPU in the inventory: no GPU evidence, NVML is not even loaded (a
//!    CPU-only CVM). Whether the order accepts that is the order's
//!    `[platform.gpu]` section's decision (absent section: no GPU allowed).
//! 4. GPUs in the inventory but NVML cannot be loaded or initialised:
//!    `GPU_NVML_UNAVAILABLE` ("N NVIDIA GPU(s) present but libnvidia-ml could
//!    not be loaded: ...").
//! 5. The system's confidential-computing state must be feature on,
//!    developer tools off, production environment
//!    (`nvmlSystemGetConfComputeState`); anything else, or a failed query, is
//!    `GPU_CC_MODE_OFF` / `GPU_NVML`. The SPDM report carries no CC-mode
//!    field, so this check is what backs `GpuClaims::cc_mode = true` at the
//!    verifier.
//! 6. NVML's device count must equal the inventory's, and every NVML device's
//!    PCI address must be a distinct inventory entry (`GPU_COUNT_MISMATCH`,
//!    `GPU_INVENTORY_MISMATCH`).
//! 7. Each device answers `gpu_nonce(cpu_nonce, index)` with an attestation
//!    report (`nvmlDeviceGetConfComputeGpuAttestationReport`) that must parse
//!    and echo that nonce, and gives its attestation certificate chain
//!    (`nvmlDeviceGetConfComputeGpuCertificate`, PEM, decoded to DER).
//!
//! Every error maps to `HaltCode::GpuUnattested`. The GPUs are set "ready"
//! (`nvmlSystemSetConfComputeGpusReadyState`, so the driver accepts work) only
//! by [`GpuSession::set_ready`], which the pipeline calls after the order's
//! platform appraisal passed.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use nvml_wrapper::Nvml;
use serde::Deserialize;
use tl_evidence::binding::{gpu_nonce, nvswitch_nonce};
use tl_evidence::bundle::{GpuEvidence, NvSwitchEvidence};
use tl_evidence::nvidia::certs::{pem_certificates, ChainKind};
use tl_evidence::nvidia::spdm::parse_report;

use crate::halt::{Halt, HaltCode};

/// Where sysfs lists PCI functions.
pub const DEFAULT_PCI_DEVICES_ROOT: &str = "/sys/bus/pci/devices";
/// The library NVML is loaded from when none is configured.
pub const DEFAULT_NVML_LIBRARY: &str = "libnvidia-ml.so.1";
/// NVIDIA's PCI vendor ID.
pub const NVIDIA_VENDOR_ID: u16 = 0x10de;
/// PCI base class of display controllers.
pub const PCI_CLASS_DISPLAY: u8 = 0x03;
/// The most GPUs the loader handles (the order's `gpu.count` limit too).
pub const MAX_GPUS: usize = 64;
/// Largest sysfs directory the inventory reads.
const MAX_PCI_FUNCTIONS: usize = 65_536;

fn default_pci_root() -> PathBuf {
    PathBuf::from(DEFAULT_PCI_DEVICES_ROOT)
}

/// `[gpu]` in the loader configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// sysfs PCI device directory (default `/sys/bus/pci/devices`).
    #[serde(default = "default_pci_root")]
    pub pci_devices_root: PathBuf,
    /// NVML library path; default `libnvidia-ml.so.1` through the loader's
    /// search path.
    #[serde(default)]
    pub nvml_library: Option<PathBuf>,
    /// NSCQ library path (NVSwitches); default `libnvidia-nscq.so.2`
    /// through the loader's search path. Loaded only when NVSwitches are on
    /// the PCI bus.
    #[serde(default)]
    pub nscq_library: Option<PathBuf>,
    /// `[gpu.simulated]`: simulated GPUs and NVSwitches instead of the PCI
    /// scan, NVML and NSCQ. Only with `allow_simulation = true`.
    #[serde(default)]
    pub simulated: Option<SimulatedGpus>,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            pci_devices_root: default_pci_root(),
            nvml_library: None,
            nscq_library: None,
            simulated: None,
        }
    }
}

/// `[gpu.simulated]`: devices of the simulated TEE
/// (`tl_evidence::sim::SimTee::nvidia_device`), whose chains end at the
/// simulated NVIDIA root that no verifier trusts unless told to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedGpus {
    /// The simulated TEE's 32-byte seed (absolute path).
    pub seed_file: PathBuf,
    /// Number of simulated GPUs (at most 64).
    #[serde(default)]
    pub gpus: u32,
    /// Number of simulated NVSwitches (at most 64).
    #[serde(default)]
    pub nvswitches: u32,
}

/// Why GPU evidence could not be produced. Every variant halts with
/// `GPU_UNATTESTED`; [`GpuError::code`] names the precise reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The PCI inventory could not be read completely.
    #[error("PCI inventory {path}: {detail}")]
    Inventory { path: String, detail: String },
    /// GPUs are present but NVML could not be loaded or initialised.
    #[error("{count} NVIDIA GPU(s) present but libnvidia-ml could not be loaded: {detail}")]
    NvmlUnavailable { count: usize, detail: String },
    /// An NVML call failed.
    #[error("NVML {call}: {detail}")]
    Nvml { call: &'static str, detail: String },
    /// Confidential-computing mode is not "on" (production, no devtools).
    #[error("confidential computing mode is not on ({state})")]
    CcModeOff { state: String },
    /// NVML sees another number of GPUs than the PCI bus shows.
    #[error("{inventory} NVIDIA GPU(s) on the PCI bus ({detail}) but NVML attests {nvml}")]
    CountMismatch {
        inventory: usize,
        nvml: usize,
        detail: String,
    },
    /// An NVML device is not (or twice) in the PCI inventory.
    #[error("NVML device {index} at {bus_id} is not a distinct GPU of the PCI inventory")]
    InventoryMismatch { index: u32, bus_id: String },
    /// The attestation report could not be obtained or is unusable.
    #[error("GPU {index} attestation report: {detail}")]
    Report { index: u32, detail: String },
    /// The certificate chain could not be obtained or decoded.
    #[error("GPU {index} certificate chain: {detail}")]
    Certificate { index: u32, detail: String },
    /// The GPUs could not be set ready after appraisal.
    #[error("setting GPUs ready: {detail}")]
    Ready { detail: String },
    /// NVSwitches are present but NSCQ could not be loaded or opened.
    #[error("{} NVIDIA NVSwitch(es) on the PCI bus ({}) but they cannot be attested: {detail}", .switches.len(), .switches.join(", "))]
    NvSwitchUnattested {
        switches: Vec<String>,
        detail: String,
    },
    /// An NSCQ call failed.
    #[error("NSCQ: {0}")]
    Nscq(String),
    /// NSCQ enumerates another number of switches than the PCI bus shows.
    #[error("{inventory} NVIDIA NVSwitch(es) on the PCI bus but NSCQ enumerates {nscq}")]
    NvSwitchCountMismatch { inventory: usize, nscq: usize },
    /// A switch of an architecture without attestation.
    #[error("NVSwitch {index} ({label}) has architecture {arch}, not LS10")]
    NvSwitchArch { index: u32, label: String, arch: i8 },
    /// A switch not in trusted NVLink mode, or not locked.
    #[error("NVSwitch {index} ({label}) is not in trusted NVLink mode, locked (pcie_mode {status:#04x})")]
    NvSwitchTnvlOff {
        index: u32,
        label: String,
        status: i8,
    },
    /// A switch's attestation report could not be obtained or is unusable.
    #[error("NVSwitch {index} attestation report: {detail}")]
    NvSwitchReport { index: u32, detail: String },
    /// A switch's certificate chain could not be obtained or decoded.
    #[error("NVSwitch {index} certificate chain: {detail}")]
    NvSwitchCertificate { index: u32, detail: String },
    /// The simulated devices' seed could not be read.
    #[error("simulated GPUs: {0}")]
    Simulated(String),
}

impl GpuError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            GpuError::Inventory { .. } => "GPU_INVENTORY",
            GpuError::NvmlUnavailable { .. } => "GPU_NVML_UNAVAILABLE",
            GpuError::Nvml { .. } => "GPU_NVML",
            GpuError::CcModeOff { .. } => "GPU_CC_MODE_OFF",
            GpuError::CountMismatch { .. } => "GPU_COUNT_MISMATCH",
            GpuError::InventoryMismatch { .. } => "GPU_INVENTORY_MISMATCH",
            GpuError::Report { .. } => "GPU_REPORT_UNAVAILABLE",
            GpuError::Certificate { .. } => "GPU_CERTIFICATE_UNAVAILABLE",
            GpuError::Ready { .. } => "GPU_READY_FAILED",
            GpuError::NvSwitchUnattested { .. } => "GPU_NVSWITCH_UNATTESTED",
            GpuError::Nscq(_) => "GPU_NSCQ",
            GpuError::NvSwitchCountMismatch { .. } => "GPU_NVSWITCH_COUNT_MISMATCH",
            GpuError::NvSwitchArch { .. } => "GPU_NVSWITCH_ARCH",
            GpuError::NvSwitchTnvlOff { .. } => "GPU_NVSWITCH_TNVL_OFF",
            GpuError::NvSwitchReport { .. } => "GPU_NVSWITCH_REPORT",
            GpuError::NvSwitchCertificate { .. } => "GPU_NVSWITCH_CERTIFICATE",
            GpuError::Simulated(_) => "GPU_SIMULATED",
        }
    }
}

impl From<GpuError> for Halt {
    fn from(e: GpuError) -> Halt {
        Halt::new(HaltCode::GpuUnattested, format!("{}: {e}", e.code()))
    }
}

/// A PCI address: domain, bus, device, function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciAddress {
    /// Parse `DDDD:BB:DD.F` as sysfs writes it, or NVML's `DDDDDDDD:BB:DD.F`
    /// (any case; domain of 4 to 8 hex digits).
    pub fn parse(s: &str) -> Option<PciAddress> {
        let (domain, rest) = s.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (device, function) = rest.split_once('.')?;
        let hex = |t: &str, min: usize, max: usize| {
            (t.len() >= min && t.len() <= max && t.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(t, 16).ok())
                .flatten()
        };
        let domain = hex(domain, 4, 8)?;
        let bus = u8::try_from(hex(bus, 2, 2)?).ok()?;
        let device = u8::try_from(hex(device, 2, 2)?).ok().filter(|d| *d < 32)?;
        let function = u8::try_from(hex(function, 1, 1)?).ok().filter(|f| *f < 8)?;
        Some(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// An NVIDIA display-class PCI function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciGpu {
    pub address: PciAddress,
    /// 24-bit class code (`0x030200` for a 3D controller).
    pub class: u32,
    pub vendor: u16,
    pub device: u16,
    /// Bound driver (`nvidia`, `vfio-pci`, ...), if any.
    pub driver: Option<String>,
}

fn read_small(path: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    fs::File::open(path)?.take(64).read_to_string(&mut s)?;
    Ok(s)
}

fn parse_hex_attr(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"))?;
    if t.is_empty() || t.len() > 8 {
        return None;
    }
    u32::from_str_radix(t, 16).ok()
}

/// PCI base class and subclass of "other bridge" devices, which NVSwitches are.
pub const PCI_CLASS_BRIDGE_OTHER: u32 = 0x0680;

/// Every NVIDIA display-class PCI function under `sysfs_pci_devices`
/// (`/sys/bus/pci/devices`), sorted by address. An entry that cannot be read
/// or parsed is an error, not a skip: the inventory must be complete.
pub fn pci_inventory(sysfs_pci_devices: &Path) -> Result<Vec<PciGpu>, GpuError> {
    pci_scan(sysfs_pci_devices).map(|s| s.gpus)
}

/// What the PCI scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciScan {
    /// NVIDIA display-class functions, sorted by address.
    pub gpus: Vec<PciGpu>,
    /// NVIDIA NVSwitches (class `0x0680xx`), sorted by address.
    pub nvswitches: Vec<PciAddress>,
}

/// Scan `sysfs_pci_devices` for NVIDIA GPUs and NVSwitches (see
/// [`pci_inventory`]).
pub fn pci_scan(sysfs_pci_devices: &Path) -> Result<PciScan, GpuError> {
    let err = |detail: String| GpuError::Inventory {
        path: sysfs_pci_devices.display().to_string(),
        detail,
    };
    let dir = fs::read_dir(sysfs_pci_devices).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    let mut switches = Vec::new();
    for (n, entry) in dir.enumerate() {
        if n >= MAX_PCI_FUNCTIONS {
            return Err(err("too many PCI functions".into()));
        }
        let entry = entry.map_err(|e| err(e.to_string()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let address = PciAddress::parse(&name)
            .ok_or_else(|| err(format!("entry {name:?} is not a PCI address")))?;
        let dev = entry.path();
        let attr = |a: &str| -> Result<u32, GpuError> {
            let p = dev.join(a);
            let t = read_small(&p).map_err(|e| err(format!("{name}/{a}: {e}")))?;
            parse_hex_attr(&t)
                .ok_or_else(|| err(format!("{name}/{a}: not a hex value: {:?}", t.trim())))
        };
        let vendor = attr("vendor")?;
        let class = attr("class")?;
        if vendor == u32::from(NVIDIA_VENDOR_ID) && class >> 8 == PCI_CLASS_BRIDGE_OTHER {
            switches.push(address);
            continue;
        }
        if vendor != u32::from(NVIDIA_VENDOR_ID) || class >> 16 != u32::from(PCI_CLASS_DISPLAY) {
            continue;
        }
        let device = u16::try_from(attr("device")?)
            .map_err(|_| err(format!("{name}/device: above 0xffff")))?;
        let driver = match fs::read_link(dev.join("driver")) {
            Ok(p) => p.file_name().map(|f| f.to_string_lossy().into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(format!("{name}/driver: {e}"))),
        };
        out.push(PciGpu {
            address,
            class,
            vendor: NVIDIA_VENDOR_ID,
            device,
            driver,
        });
    }
    out.sort_by_key(|g| g.address);
    switches.sort();
    Ok(PciScan {
        gpus: out,
        nvswitches: switches,
    })
}

/// The system's confidential-computing state as NVML reports it
/// (`nvmlConfComputeSystemState_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcState {
    /// 0 unavailable, 1 simulation, 2 production.
    pub environment: u32,
    /// 0 disabled, 1 enabled.
    pub cc_feature: u32,
    /// 0 off, 1 on.
    pub devtools_mode: u32,
}

impl CcState {
    /// CC mode "on": feature enabled, developer tools off, production.
    pub fn is_on(&self) -> bool {
        self.cc_feature == 1 && self.devtools_mode == 0 && self.environment == 2
    }
}

impl fmt::Display for CcState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let feature = match self.cc_feature {
            0 => "disabled".to_owned(),
            1 => "enabled".to_owned(),
            n => format!("unknown {n}"),
        };
        let devtools = match self.devtools_mode {
            0 => "off".to_owned(),
            1 => "on".to_owned(),
            n => format!("unknown {n}"),
        };
        let env = match self.environment {
            0 => "unavailable".to_owned(),
            1 => "simulation".to_owned(),
            2 => "production".to_owned(),
            n => format!("unknown {n}"),
        };
        write!(
            f,
            "feature {feature}, devtools {devtools}, environment {env}"
        )
    }
}

/// `nvmlSystemGetConfComputeState` through the library at `lib_path`. Call
/// it while an [`Nvml`] initialised from the same path is alive (otherwise
/// NVML answers "uninitialized").
///
/// nvml-wrapper reads the CC feature and devtools mode only through
/// `nvmlSystemGetConfComputeSettings` with a zeroed (version 0) structure,
/// which NVML answers with `ARGUMENT_VERSION_MISMATCH`, and reads this
/// unversioned state only together with the ready state (false until
/// [`GpuSession::set_ready`]); hence this direct call.
#[allow(unsafe_code)]
pub fn system_cc_state(lib_path: &OsStr) -> Result<CcState, GpuError> {
    use nvml_wrapper_sys::bindings::{nvmlConfComputeSystemState_t, NvmlLib};
    let nvml_err = |detail: String| GpuError::Nvml {
        call: "nvmlSystemGetConfComputeState",
        detail,
    };
    // SAFETY: `NvmlLib::new` dlopens `lib_path` exactly as `Nvml` does; with
    // `Nvml` alive the dynamic loader returns the handle it already holds
    // (initialisers ran already) and dropping `lib` only drops that extra
    // reference. The symbol has the C signature
    // `nvmlReturn_t (nvmlConfComputeSystemState_t *)` of nvml.h, and
    // `state` is a caller-owned `#[repr(C)]` structure of three `c_uint`
    // (nvml.h's layout) that outlives the call.
    unsafe {
        let lib = NvmlLib::new(lib_path).map_err(|e| nvml_err(e.to_string()))?;
        let f = lib
            .nvmlSystemGetConfComputeState
            .as_ref()
            .map_err(|e| nvml_err(format!("symbol: {e}")))?;
        let mut state = nvmlConfComputeSystemState_t {
            environment: 0,
            ccFeature: 0,
            devToolsMode: 0,
        };
        let rc = f(&mut state);
        nvml_wrapper::error::nvml_try(rc).map_err(|e| nvml_err(e.to_string()))?;
        Ok(CcState {
            environment: state.environment,
            cc_feature: state.ccFeature,
            devtools_mode: state.devToolsMode,
        })
    }
}

/// NVML kept open between evidence collection and [`GpuSession::set_ready`].
pub struct GpuSession {
    nvml: Nvml,
}

impl fmt::Debug for GpuSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuSession").finish_non_exhaustive()
    }
}

impl GpuSession {
    /// Let the driver accept work on the GPUs
    /// (`nvmlSystemSetConfComputeGpusReadyState(1)`, system-wide), then read
    /// the state back. Call only after the order's appraisal passed.
    pub fn set_ready(&self) -> Result<(), GpuError> {
        let ready = |e: nvml_wrapper::error::NvmlError| GpuError::Ready {
            detail: e.to_string(),
        };
        // The ready state is system-wide; nvml-wrapper exposes it on a device.
        let dev = self.nvml.device_by_index(0).map_err(ready)?;
        dev.set_confidential_compute_state(true).map_err(ready)?;
        if !dev.get_confidential_compute_state().map_err(ready)? {
            return Err(GpuError::Ready {
                detail: "the GPUs still do not accept work".into(),
            });
        }
        Ok(())
    }
}

/// What [`collect`] produced.
#[derive(Debug, Default)]
pub struct GpuCollection {
    /// One entry per GPU, in NVML index order; empty on a CPU-only CVM.
    pub evidence: Vec<GpuEvidence>,
    /// The PCI inventory the evidence was matched against.
    pub inventory: Vec<PciGpu>,
    /// Present when there are GPUs; used to set them ready after appraisal.
    pub session: Option<GpuSession>,
    /// One entry per NVSwitch, in NSCQ enumeration order; empty without
    /// switches.
    pub nvswitches: Vec<NvSwitchEvidence>,
}

/// Inventory the GPUs and collect one attestation report per GPU for the
/// CA's nonce `cpu_nonce` (see the module documentation for the rules).
pub fn collect(cfg: &GpuConfig, cpu_nonce: &[u8]) -> Result<GpuCollection, GpuError> {
    if let Some(sim) = &cfg.simulated {
        return collect_simulated(sim, cpu_nonce);
    }
    let scan = pci_scan(&cfg.pci_devices_root)?;
    let nvswitches = if scan.nvswitches.is_empty() {
        Vec::new()
    } else {
        collect_nvswitches(cfg, &scan.nvswitches, cpu_nonce)?
    };
    let inventory = scan.gpus;
    if inventory.is_empty() {
        return Ok(GpuCollection {
            nvswitches,
            ..GpuCollection::default()
        });
    }
    if inventory.len() > MAX_GPUS {
        return Err(GpuError::Inventory {
            path: cfg.pci_devices_root.display().to_string(),
            detail: format!("{} GPUs, at most {MAX_GPUS} supported", inventory.len()),
        });
    }
    let lib_path: OsString = cfg
        .nvml_library
        .as_ref()
        .map(|p| p.as_os_str().to_owned())
        .unwrap_or_else(|| DEFAULT_NVML_LIBRARY.into());
    let nvml =
        Nvml::builder()
            .lib_path(&lib_path)
            .init()
            .map_err(|e| GpuError::NvmlUnavailable {
                count: inventory.len(),
                detail: format!("{}: {e}", Path::new(&lib_path).display()),
            })?;
    let cc = system_cc_state(&lib_path)?;
    if !cc.is_on() {
        return Err(GpuError::CcModeOff {
            state: cc.to_string(),
        });
    }
    let nvml_call = |call: &'static str| {
        move |e: nvml_wrapper::error::NvmlError| GpuError::Nvml {
            call,
            detail: e.to_string(),
        }
    };
    let count = nvml
        .device_count()
        .map_err(nvml_call("nvmlDeviceGetCount_v2"))?;
    if usize::try_from(count).ok() != Some(inventory.len()) {
        let detail = inventory
            .iter()
            .map(|g| {
                format!(
                    "{} driver {}",
                    g.address,
                    g.driver.as_deref().unwrap_or("none")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(GpuError::CountMismatch {
            inventory: inventory.len(),
            nvml: usize::try_from(count).unwrap_or(usize::MAX),
            detail,
        });
    }
    let mut seen = BTreeSet::new();
    let mut evidence = Vec::with_capacity(inventory.len());
    for index in 0..count {
        let dev = nvml
            .device_by_index(index)
            .map_err(nvml_call("nvmlDeviceGetHandleByIndex_v2"))?;
        let pci = dev
            .pci_info()
            .map_err(nvml_call("nvmlDeviceGetPciInfo_v3"))?;
        let address = PciAddress::parse(&pci.bus_id)
            .filter(|a| inventory.iter().any(|g| g.address == *a))
            .filter(|a| seen.insert(*a))
            .ok_or_else(|| GpuError::InventoryMismatch {
                index,
                bus_id: pci.bus_id.clone(),
            })?;
        let nonce = gpu_nonce(cpu_nonce, index);
        let rep = dev
            .confidential_compute_gpu_attestation_report(nonce)
            .map_err(|e| GpuError::Report {
                index,
                detail: format!("{address}: {e}"),
            })?;
        let report_err = |detail: String| GpuError::Report { index, detail };
        let report = usize::try_from(rep.attestation_report_size)
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| rep.attestation_report.get(..n))
            .ok_or_else(|| {
                report_err(format!(
                    "size {} outside 1..={}",
                    rep.attestation_report_size,
                    rep.attestation_report.len()
                ))
            })?
            .to_vec();
        let parsed = parse_report(&report).map_err(|e| report_err(format!("{}: {e}", e.code())))?;
        if parsed.request.nonce != nonce {
            return Err(report_err("the report answers another nonce".into()));
        }
        let cert =
            dev.confidential_compute_gpu_certificate()
                .map_err(|e| GpuError::Certificate {
                    index,
                    detail: e.to_string(),
                })?;
        let cert_err = |detail: String| GpuError::Certificate { index, detail };
        let pem = usize::try_from(cert.attestation_cert_chain_size)
            .ok()
            .and_then(|n| cert.attestation_cert_chain.get(..n))
            .ok_or_else(|| {
                cert_err(format!(
                    "size {} above {}",
                    cert.attestation_cert_chain_size,
                    cert.attestation_cert_chain.len()
                ))
            })?;
        let certificates = pem_certificates(pem, ChainKind::Device)
            .map_err(|e| cert_err(format!("{}: {e}", e.code())))?;
        if certificates.is_empty() {
            return Err(cert_err("empty".into()));
        }
        evidence.push(GpuEvidence {
            index,
            report,
            certificates,
        });
    }
    Ok(GpuCollection {
        evidence,
        inventory,
        session: Some(GpuSession { nvml }),
        nvswitches,
    })
}

/// Evidence of simulated GPUs and NVSwitches (`[gpu.simulated]`, accepted
/// by the configuration only with `allow_simulation = true`): what real
/// devices would answer for the derived nonces, from the simulated TEE's
/// seed. No PCI scan, NVML or NSCQ; no ready state to set.
fn collect_simulated(sim: &SimulatedGpus, cpu_nonce: &[u8]) -> Result<GpuCollection, GpuError> {
    use tl_evidence::sim::{SimNvKind, SimTee};
    let bad = |d: String| GpuError::Simulated(format!("{}: {d}", sim.seed_file.display()));
    let seed = fs::read(&sim.seed_file).map_err(|e| bad(e.to_string()))?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| bad("must hold 32 bytes".into()))?;
    let tee = SimTee::from_seed(seed);
    let evidence = (0..sim.gpus)
        .map(|index| {
            let d = tee.nvidia_device(SimNvKind::Gpu, index);
            GpuEvidence {
                index,
                report: d.report(&gpu_nonce(cpu_nonce, index)),
                certificates: d.chain_der().to_vec(),
            }
        })
        .collect();
    let nvswitches = (0..sim.nvswitches)
        .map(|index| {
            let d = tee.nvidia_device(SimNvKind::NvSwitch, index);
            NvSwitchEvidence {
                index,
                report: d.report(&nvswitch_nonce(cpu_nonce, index)),
                certificates: d.chain_der().to_vec(),
            }
        })
        .collect();
    Ok(GpuCollection {
        evidence,
        inventory: Vec::new(),
        session: None,
        nvswitches,
    })
}

/// Evidence of the NVSwitches at `on_bus` through NSCQ (rule 2 of the
/// module documentation).
fn collect_nvswitches(
    cfg: &GpuConfig,
    on_bus: &[PciAddress],
    cpu_nonce: &[u8],
) -> Result<Vec<NvSwitchEvidence>, GpuError> {
    use crate::nscq::{Nscq, NSCQ_ARCH_LS10, TNVL_ENABLED_BIT, TNVL_LOCKED_BIT};
    let lib: OsString = cfg
        .nscq_library
        .as_ref()
        .map(|p| p.as_os_str().to_owned())
        .unwrap_or_else(|| crate::nscq::DEFAULT_NSCQ_LIBRARY.into());
    let nscq = Nscq::open(&lib).map_err(|e| GpuError::NvSwitchUnattested {
        switches: on_bus.iter().map(|a| a.to_string()).collect(),
        detail: format!("NSCQ: {e}"),
    })?;
    let nscq_err = |e: crate::nscq::NscqError| GpuError::Nscq(e.to_string());
    let labels = nscq.switch_labels().map_err(nscq_err)?;
    if labels.len() != on_bus.len() {
        return Err(GpuError::NvSwitchCountMismatch {
            inventory: on_bus.len(),
            nscq: labels.len(),
        });
    }
    let mut out = Vec::with_capacity(labels.len());
    for (index, label) in (0u32..).zip(labels) {
        let arch = nscq.arch(&label).map_err(nscq_err)?;
        if arch != NSCQ_ARCH_LS10 {
            return Err(GpuError::NvSwitchArch { index, label, arch });
        }
        let status = nscq.tnvl_status(&label).map_err(nscq_err)?;
        let want = TNVL_ENABLED_BIT | TNVL_LOCKED_BIT;
        if status & want != want {
            return Err(GpuError::NvSwitchTnvlOff {
                index,
                label,
                status,
            });
        }
        let nonce = nvswitch_nonce(cpu_nonce, index);
        let report_err = |detail: String| GpuError::NvSwitchReport { index, detail };
        let report = nscq
            .attestation_report(&label, &nonce)
            .map_err(|e| report_err(format!("{label}: {e}")))?;
        let parsed = parse_report(&report).map_err(|e| report_err(format!("{}: {e}", e.code())))?;
        if parsed.request.nonce != nonce {
            return Err(report_err("the report answers another nonce".into()));
        }
        let cert_err = |detail: String| GpuError::NvSwitchCertificate { index, detail };
        let pem = nscq
            .certificate_chain(&label)
            .map_err(|e| cert_err(format!("{label}: {e}")))?;
        let certificates = pem_certificates(&pem, ChainKind::Device)
            .map_err(|e| cert_err(format!("{}: {e}", e.code())))?;
        if certificates.is_empty() {
            return Err(cert_err("empty".into()));
        }
        out.push(NvSwitchEvidence {
            index,
            report,
            certificates,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        let a = PciAddress::parse("0000:3b:00.0");
        assert_eq!(a, PciAddress::parse("00000000:3B:00.0"));
        assert_eq!(a.map(|a| a.to_string()).as_deref(), Some("0000:3b:00.0"));
        for bad in [
            "",
            "0000:3b:00",
            "000:3b:00.0",
            "0000:3b:20.0",
            "0000:3b:00.8",
            "0000:3b:0.0",
            "0000:3b:00.0x",
            "+000:3b:00.0",
            "000000000:3b:00.0",
        ] {
            assert_eq!(PciAddress::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_attributes() {
        assert_eq!(parse_hex_attr("0x030200\n"), Some(0x030200));
        assert_eq!(parse_hex_attr("0x10de"), Some(0x10de));
        assert_eq!(parse_hex_attr("10de"), None);
        assert_eq!(parse_hex_attr("0x"), None);
        assert_eq!(parse_hex_attr("0x123456789"), None);
    }

    #[test]
    fn cc_state_on_only_in_production_without_devtools() {
        let on = CcState {
            environment: 2,
            cc_feature: 1,
            devtools_mode: 0,
        };
        assert!(on.is_on());
        assert!(!CcState {
            devtools_mode: 1,
            ..on
        }
        .is_on());
        assert!(!CcState {
            cc_feature: 0,
            ..on
        }
        .is_on());
        assert!(!CcState {
            environment: 1,
            ..on
        }
        .is_on());
        assert_eq!(
            CcState {
                devtools_mode: 1,
                ..on
            }
            .to_string(),
            "feature enabled, devtools on, environment production"
        );
    }

    #[test]
    fn errors_halt_as_gpu_unattested() {
        let h: Halt = GpuError::CcModeOff { state: "x".into() }.into();
        assert_eq!(h.code(), "GPU_UNATTESTED");
        assert!(h.detail.starts_with("GPU_CC_MODE_OFF: "));
    }
}
