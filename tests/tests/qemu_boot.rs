//! The loader as PID 1 of a QEMU guest (TCG, Debian's OVMF and cloud
//! kernel, swtpm): the demo's order runs end to end through the forwarded CA
//! and relay ports, and a tampered component halts with its reason code and
//! powers off without launching. See image/README.md.
//!
//! Needs qemu-system-x86_64, OVMF, swtpm and the unpacked kernel: the tests
//! FAIL (they do not skip) when any is missing; `scripts/image-deps` installs
//! them. The static loader and engine are built here (cargo, release,
//! `+crt-static`, stripped) into `$TL_STATIC_TARGET_DIR` (default `target/static`).
//! On failure the serial console log is kept under `target/qemu-artifacts/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use common::{bin, demo, files_below};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

fn kernel_dir() -> PathBuf {
    std::env::var_os("TL_KERNEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("image").join("kernel"))
}

fn require_host_tools() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |t: &str| std::env::split_paths(&path).any(|d| d.join(t).is_file());
    let mut missing = Vec::new();
    for t in ["qemu-system-x86_64", "swtpm"] {
        if !on_path(t) {
            missing.push(t.to_owned());
        }
    }
    for f in [
        PathBuf::from("/usr/share/ovmf/OVMF.fd"),
        kernel_dir().join("vmlinuz"),
        kernel_dir().join("modules"),
    ] {
        if !f.exists() {
            missing.push(f.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "the QEMU boot harness needs {}: run scripts/image-deps",
        missing.join(", ")
    );
}

/// Build the static loader and engine once per test process.
fn static_bins() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = std::env::var_os("TL_STATIC_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target").join("static"));
        let triple = "x86_64-unknown-linux-gnu";
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .current_dir(workspace())
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            // Small binaries: the initramfs is loaded through the firmware.
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
            .args([
                "build",
                "--release",
                "-p",
                "tl-loader",
                "-p",
                "tl-demo-engine",
            ])
            .args(["--target", triple, "--target-dir"])
            .arg(&target)
            .status()
            .expect("running cargo for the static loader");
        assert!(st.success(), "building the static loader and engine failed");
        let dir = target.join(triple).join("release");
        for b in ["trusted-loader", "tl-demo-engine"] {
            assert!(dir.join(b).is_file(), "{} missing", dir.join(b).display());
        }
        dir
    })
    .clone()
}

/// One guest at a time: two TCG guests on a small machine only slow each other.
static ONE_VM: Mutex<()> = Mutex::new(());

/// Boot once with `args`; returns the demo's JSON, its stderr and the serial log.
fn boot(name: &str, dir: &Path, args: &[&str]) -> (serde_json::Value, String, String) {
    require_host_tools();
    let bins = static_bins();
    let _one = ONE_VM.lock().unwrap_or_else(|p| p.into_inner());
    let _ = bin("tl");
    let kernel = kernel_dir();
    let mut all = vec![
        "--qemu",
        kernel.to_str().expect("utf-8 path"),
        "--static-bins",
        bins.to_str().expect("utf-8 path"),
    ];
    all.extend_from_slice(args);
    let (v, stderr, _out) = demo(dir, &all);
    let serial_path = dir.join("cvm").join("loader.log");
    let serial = std::fs::read_to_string(&serial_path).unwrap_or_default();
    // Keep the console for whoever reads a failure.
    let art = workspace().join("target").join("qemu-artifacts");
    let _ = std::fs::create_dir_all(&art);
    let kept = art.join(format!("{name}-serial.log"));
    let _ = std::fs::write(&kept, &serial);
    eprintln!("serial console log kept at {}", kept.display());
    (v, stderr, serial)
}

#[test]
fn qemu_guest_runs_the_order_and_powers_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, stderr, serial) = boot("happy", tmp.path(), &[]);
    let ctx = format!("stderr:\n{stderr}");
    assert_eq!(v["ok"], true, "{ctx}");
    // The owners' side verified the run report (signature, chain to the CA,
    // inclusion in the CA's log) and decrypted the model.
    assert_eq!(v["report_verified"], true, "{ctx}");
    assert!(v["log_index"].is_u64(), "{ctx}");
    let acc = v["model"]["accuracy_holdout"].as_f64().expect("accuracy");
    assert!(acc > 0.8, "holdout accuracy {acc}");
    assert_eq!(v["loader_exit"], 0);
    assert!(v["halt_code"].is_null());
    // The guest: PID 1 loaded its modules, configured eth0, served the
    // simulated TEE itself, read the firmware's TCG event log and replayed it
    // against the vTPM's PCRs,
    // launched the engine, reported, and powered off (QEMU exited).
    for needle in [
        "[trusted-loader] modules   virtio_ring virtio",
        "[trusted-loader] network   eth0 10.0.2.15/24",
        "SIMULATED TEE served by the loader itself",
        "[trusted-loader] firmware  TCG event log /sys/kernel/security/tpm0/binary_bios_measurements",
        "matches the TPM's SHA-256 PCRs 0-9 it covers",
        "[trusted-loader] launch ",
        "[trusted-loader] engine    exited 0",
        "[trusted-loader] wipe ",
        "[trusted-loader] done ",
        "reboot: Power down",
    ] {
        assert!(serial.contains(needle), "serial lacks {needle:?}:\n{serial}");
    }
    assert!(stderr.contains("the guest powered off"), "{ctx}");
    // The firmware log is real (non-empty) and its digest is shown.
    let fw = serial
        .lines()
        .find(|l| l.contains("TCG event log"))
        .expect("firmware line");
    assert!(!fw.contains("(0 bytes"), "{fw}");
    // The vTPM was quoted beside the TDX quote, and the CA replayed the same
    // firmware log against the quoted PCRs before certifying them.
    assert!(
        serial.contains(
            "[trusted-loader] tpm       quoted SHA-256 PCRs [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
        ),
        "{serial}"
    );
    let fw_sha = fw
        .split("sha256 ")
        .nth(1)
        .and_then(|r| r.get(..64))
        .expect("firmware log digest");
    let tpm = &v["certified_claims"]["platform"]["tpm"];
    assert_eq!(tpm["event_log_sha256"], fw_sha, "certified: {tpm}");
    assert_eq!(
        tpm["pcrs"]["sha256"].as_object().map(|m| m.len()),
        Some(10),
        "{tpm}"
    );
    // What left the guest: sealed outputs and the report, no plaintext model.
    let outputs = tmp.path().join("cvm").join("outputs");
    assert!(outputs.join("model.sealed").is_file());
    assert!(common::any_file_contains(&outputs, b"accuracy_holdout").is_none());
    assert!(tmp.path().join("cvm").join("report.json").is_file());
}

#[test]
fn qemu_guest_halts_on_a_tampered_component() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v, stderr, serial) = boot("tamper-dataset", tmp.path(), &["--tamper", "dataset"]);
    let ctx = format!("stderr:\n{stderr}\nserial:\n{serial}");
    assert_eq!(v["ok"], true, "{ctx}");
    assert_eq!(v["halt_code"], "COMPONENT_CORRUPT", "{ctx}");
    assert!(serial.contains("HALT COMPONENT_CORRUPT"), "{ctx}");
    assert!(serial.contains("reboot: Power down"), "{ctx}");
    // Never launched: no launch line, no engine line, no report, no output.
    assert!(!serial.contains("[trusted-loader] launch "), "{ctx}");
    assert!(!serial.contains("[trusted-loader] engine "), "{ctx}");
    assert!(!serial.contains("[trusted-loader] done "), "{ctx}");
    assert_eq!(v["engine_started"], false);
    assert!(!tmp.path().join("cvm").join("report.json").exists());
    assert!(files_below(&tmp.path().join("cvm").join("outputs")).is_empty());
    // The guest powered off by itself (the demo returned only after QEMU exited).
    assert!(stderr.contains("the guest powered off"), "{ctx}");
}
