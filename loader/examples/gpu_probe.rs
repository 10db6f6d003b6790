//! Probe the real GPUs of this machine: PCI inventory, NVML, the
//! confidential-computing state, the raw evidence calls, the project's
//! verifier on whatever the driver returned, and what the loader's evidence
//! collection makes of it all. Run by `scripts/gpu-device-check` on a
//! machine with an NVIDIA driver.
//!
//! Usage: `gpu_probe [--out DIR] [SYSFS_PCI_DEVICES [NVML_LIBRARY]]`
//!
//! With `--out DIR`, the raw answers are kept for the record: `probe.json`
//! (every result, machine-readable) and, for each GPU that answered,
//! `gpuN-report.bin` (SPDM report for the nonce in `probe.json`) and
//! `gpuN-chain.pem` (device certificate chain, as NVML returned it).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use nvml_wrapper::Nvml;
use serde_json::{json, Map, Value};
use tl_evidence::binding::gpu_nonce;
use tl_evidence::nvidia::{self, certs, GpuAnchors};
use tl_loader::gpu::{self, GpuConfig};

/// The enrollment nonce stand-in: the probe asks each GPU for the nonce the
/// loader would derive from it.
const PROBE_CPU_NONCE: &[u8] = b"gpu-probe nonce";

fn main() {
    let mut out: Option<PathBuf> = None;
    let mut positional = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        if a == "--out" {
            out = args.next().map(PathBuf::from);
            if out.is_none() {
                eprintln!("gpu_probe: --out needs a directory");
                std::process::exit(2);
            }
        } else {
            positional.push(a);
        }
    }
    let mut cfg = GpuConfig::default();
    let mut positional = positional.into_iter();
    if let Some(root) = positional.next() {
        cfg.pci_devices_root = PathBuf::from(root);
    }
    cfg.nvml_library = positional.next().map(PathBuf::from);
    let lib: OsString = cfg
        .nvml_library
        .as_ref()
        .map(|p| p.as_os_str().to_owned())
        .unwrap_or_else(|| gpu::DEFAULT_NVML_LIBRARY.into());
    if let Some(dir) = &out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("gpu_probe: {}: {e}", dir.display());
            std::process::exit(2);
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut record = Map::new();
    record.insert("cpu_nonce".into(), json!(hex::encode(PROBE_CPU_NONCE)));
    record.insert("unix_time".into(), json!(now));

    match gpu::pci_inventory(&cfg.pci_devices_root) {
        Ok(inv) => {
            println!("inventory: {} NVIDIA GPU(s)", inv.len());
            let mut list = Vec::new();
            for g in &inv {
                let driver = g.driver.as_deref().unwrap_or("none");
                println!(
                    "  {} class {:06x} device {:04x} driver {driver}",
                    g.address, g.class, g.device
                );
                list.push(json!({
                    "address": g.address.to_string(),
                    "class": format!("{:06x}", g.class),
                    "device": format!("{:04x}", g.device),
                    "driver": driver,
                }));
            }
            record.insert("inventory".into(), Value::Array(list));
        }
        Err(e) => {
            println!("inventory: error {}: {e}", e.code());
            record.insert("inventory".into(), json!({"error": e.code()}));
        }
    }

    // Raw NVML answers, for the record.
    match Nvml::builder().lib_path(&lib).init() {
        Err(e) => {
            println!("nvml init: error: {e}");
            record.insert("nvml_init".into(), json!({"error": e.to_string()}));
        }
        Ok(nvml) => {
            println!("nvml init: ok");
            record.insert("nvml_init".into(), json!("ok"));
            let driver = nvml.sys_driver_version();
            println!("driver version: {driver:?}");
            record.insert("driver_version".into(), json!(format!("{driver:?}")));
            let cc = match gpu::system_cc_state(&lib) {
                Ok(s) => format!("{s} (raw {s:?}), on = {}", s.is_on()),
                Err(e) => format!("error {}: {e}", e.code()),
            };
            println!("nvmlSystemGetConfComputeState: {cc}");
            record.insert("system_cc_state".into(), json!(cc));
            let count = nvml.device_count().unwrap_or(0);
            println!("device count: {count}");
            let mut devices = Vec::new();
            for index in 0..count {
                devices.push(probe_device(&nvml, index, now, out.as_deref()));
            }
            record.insert("devices".into(), Value::Array(devices));
        }
    }

    // What the loader does with it.
    let verdict = match gpu::collect(&cfg, PROBE_CPU_NONCE) {
        Ok(c) => {
            println!(
                "collect: ok, {} GPU(s), {} report(s)",
                c.inventory.len(),
                c.evidence.len()
            );
            for e in &c.evidence {
                println!(
                    "  gpu {}: report {} bytes, {} certificate(s)",
                    e.index,
                    e.report.len(),
                    e.certificates.len()
                );
            }
            json!({"ok": c.evidence.len()})
        }
        Err(e) => {
            let h: tl_loader::halt::Halt = e.into();
            println!("collect: {h}");
            json!({"halt": h.to_string()})
        }
    };
    record.insert("loader_collect".into(), verdict);

    if let Some(dir) = &out {
        let path = dir.join("probe.json");
        let text = serde_json::to_string_pretty(&Value::Object(record)).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("gpu_probe: {}: {e}", path.display());
            std::process::exit(2);
        }
        println!("record: {}", path.display());
    }
}

/// Everything NVML says about one GPU's confidential-computing state and
/// evidence, and what the project's verifier makes of the evidence.
fn probe_device(nvml: &Nvml, index: u32, now: u64, out: Option<&std::path::Path>) -> Value {
    let mut rec = Map::new();
    rec.insert("index".into(), json!(index));
    let dev = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            println!("device {index}: handle error: {e}");
            rec.insert("error".into(), json!(e.to_string()));
            return Value::Object(rec);
        }
    };
    let mut note = |key: &str, text: String| {
        println!("device {index} {key}: {text}");
        rec.insert(key.into(), json!(text));
    };
    note("name", format!("{:?}", dev.name()));
    note("pci", format!("{:?}", dev.pci_info().map(|p| p.bus_id)));
    note("vbios", format!("{:?}", dev.vbios_version()));
    note("architecture", format!("{:?}", dev.architecture()));
    // nvml-wrapper's settings-based queries (zeroed struct version).
    note(
        "nvml_wrapper_is_cc_enabled",
        format!("{:?}", dev.is_cc_enabled()),
    );
    note(
        "nvml_wrapper_is_cc_dev_mode_enabled",
        format!("{:?}", dev.is_cc_dev_mode_enabled()),
    );
    note(
        "cc_capabilities",
        format!("{:?}", dev.get_confidential_compute_capabilities()),
    );
    note(
        "cc_ready_state",
        format!("{:?}", dev.get_confidential_compute_state()),
    );

    let nonce = gpu_nonce(PROBE_CPU_NONCE, index);
    note("nonce", hex::encode(nonce));
    let report = dev
        .confidential_compute_gpu_attestation_report(nonce)
        .map_err(|e| format!("error: {e}"))
        .and_then(|r| answer(r.attestation_report_size, &r.attestation_report));
    let report = kept(&mut note, "report", report);
    let chain_pem = dev
        .confidential_compute_gpu_certificate()
        .map_err(|e| format!("error: {e}"))
        .and_then(|c| answer(c.attestation_cert_chain_size, &c.attestation_cert_chain));
    let chain_pem = kept(&mut note, "certificate_chain", chain_pem);
    if let Some(dir) = out {
        for (bytes, name) in [
            (&report, format!("gpu{index}-report.bin")),
            (&chain_pem, format!("gpu{index}-chain.pem")),
        ] {
            if let Some(b) = bytes {
                if let Err(e) = std::fs::write(dir.join(&name), b) {
                    eprintln!("gpu_probe: {name}: {e}");
                }
            }
        }
    }

    // The project's verifier on what the driver returned.
    let anchors = GpuAnchors::nvidia();
    let chain_der = chain_pem.as_deref().map(|pem| {
        certs::pem_certificates(pem, certs::ChainKind::Device).map_err(|e| e.code().to_string())
    });
    match &chain_der {
        None => {}
        Some(Err(code)) => note("verify_chain", format!("error {code}")),
        Some(Ok(der)) => match nvidia::verify_device_chain(der, &anchors, now) {
            Ok(chain) => note(
                "verify_chain",
                format!(
                    "ok: {} certificate(s) to NVIDIA's device root, nvidia root = {}",
                    der.len(),
                    GpuAnchors::is_nvidia_root(&chain)
                ),
            ),
            Err(e) => note("verify_chain", format!("error {}: {e}", e.code())),
        },
    }
    if let (Some(rep), Some(Ok(der))) = (&report, &chain_der) {
        match nvidia::verify_report(rep, der, &nonce, &anchors, now) {
            Ok(v) => {
                let claims = v.claims(index, false, false);
                let device = v.device(index);
                note(
                    "verify_report",
                    format!(
                        "ok: driver {:?} vbios {:?} fwid {} {} measurement(s)",
                        claims.driver_version,
                        claims.vbios_version,
                        device.fwid,
                        claims.measurements.len()
                    ),
                );
            }
            Err(e) => note("verify_report", format!("error {}: {e}", e.code())),
        }
    }
    Value::Object(rec)
}

/// The first `size` bytes of an NVML answer buffer, or why there are none.
fn answer(size: u32, buf: &[u8]) -> Result<Vec<u8>, String> {
    let n = usize::try_from(size).unwrap_or(usize::MAX);
    match buf.get(..n) {
        Some(bytes) if n > 0 => Ok(bytes.to_vec()),
        _ => Err(format!("size {n} out of range")),
    }
}

/// Record an answer's size, or its error, under `key`; the bytes if any.
fn kept(
    note: &mut impl FnMut(&str, String),
    key: &str,
    answer: Result<Vec<u8>, String>,
) -> Option<Vec<u8>> {
    match answer {
        Ok(bytes) => {
            note(key, format!("{} bytes", bytes.len()));
            Some(bytes)
        }
        Err(e) => {
            note(key, e);
            None
        }
    }
}
