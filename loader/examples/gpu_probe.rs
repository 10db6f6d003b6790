//! Probe the real GPUs of this machine: PCI inventory, NVML, the
//! confidential-computing state, and what evidence collection makes of them.
//! Run by `scripts/gpu-device-check` on a machine with an NVIDIA driver.
//!
//! Usage: `gpu_probe [SYSFS_PCI_DEVICES [NVML_LIBRARY]]`

use std::ffi::OsString;
use std::path::PathBuf;

use nvml_wrapper::Nvml;
use tl_loader::gpu::{self, GpuConfig};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mut cfg = GpuConfig::default();
    if let Some(root) = args.next() {
        cfg.pci_devices_root = PathBuf::from(root);
    }
    cfg.nvml_library = args.next().map(PathBuf::from);
    let lib: OsString = cfg
        .nvml_library
        .as_ref()
        .map(|p| p.as_os_str().to_owned())
        .unwrap_or_else(|| gpu::DEFAULT_NVML_LIBRARY.into());

    match gpu::pci_inventory(&cfg.pci_devices_root) {
        Ok(inv) => {
            println!("inventory: {} NVIDIA GPU(s)", inv.len());
            for g in &inv {
                println!(
                    "  {} class {:06x} device {:04x} driver {}",
                    g.address,
                    g.class,
                    g.device,
                    g.driver.as_deref().unwrap_or("none")
                );
            }
        }
        Err(e) => println!("inventory: error {}: {e}", e.code()),
    }

    // Raw NVML answers, for the record.
    match Nvml::builder().lib_path(&lib).init() {
        Err(e) => println!("nvml init: error: {e}"),
        Ok(nvml) => {
            println!("nvml init: ok");
            println!("driver version: {:?}", nvml.sys_driver_version());
            println!("device count: {:?}", nvml.device_count());
            println!(
                "nvmlSystemGetConfComputeState: {}",
                match gpu::system_cc_state(&lib) {
                    Ok(s) => format!("{s} (raw {s:?}), on = {}", s.is_on()),
                    Err(e) => format!("error {}: {e}", e.code()),
                }
            );
            if let Ok(dev) = nvml.device_by_index(0) {
                println!("device 0 pci: {:?}", dev.pci_info().map(|p| p.bus_id));
                // nvml-wrapper's settings-based queries (zeroed struct version).
                println!("nvml-wrapper is_cc_enabled: {:?}", dev.is_cc_enabled());
                println!(
                    "nvml-wrapper is_cc_dev_mode_enabled: {:?}",
                    dev.is_cc_dev_mode_enabled()
                );
                println!(
                    "nvml-wrapper capabilities: {:?}",
                    dev.get_confidential_compute_capabilities()
                );
                println!(
                    "ready state (accepting work): {:?}",
                    dev.get_confidential_compute_state()
                );
                println!(
                    "attestation report call: {:?}",
                    dev.confidential_compute_gpu_attestation_report([0u8; 32])
                        .map(|r| r.attestation_report_size)
                );
                println!(
                    "certificate call: {:?}",
                    dev.confidential_compute_gpu_certificate()
                        .map(|c| c.attestation_cert_chain_size)
                );
            }
        }
    }

    // What the loader does with it.
    match gpu::collect(&cfg, b"gpu-probe nonce") {
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
        }
        Err(e) => {
            let h: tl_loader::halt::Halt = e.into();
            println!("collect: {h}");
        }
    }
}
