//! GPU inventory and evidence collection against a temporary sysfs tree and
//! a fake NVML library (tests/fake-nvml/fake_nvml.c, same C ABI as
//! libnvidia-ml for the calls the loader makes), built here with the C
//! compiler. Each test compiles its own copy with its behaviour fixed by -D
//! flags, so tests running in parallel share no library state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use tl_evidence::binding::{gpu_nonce, nvswitch_nonce};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::nvidia::spdm::parse_report;
use tl_evidence::nvidia::GpuAnchors;
use tl_evidence::sim::{SimNvKind, SimTee};
use tl_evidence::verify::{verify_nvswitches, TrustAnchors, VerifyOptions};
use tl_loader::gpu::{collect, pci_inventory, GpuConfig, GpuError, PciAddress};
use tl_loader::halt::Halt;

const FAKE_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake-nvml/fake_nvml.c");
const FAKE_NSCQ_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake-nscq/fake_nscq.c");
const NONCE: &[u8] = b"an enrollment nonce from the CA.";

/// Build the fake NVML library with `defines` into `dir`.
fn fake_nvml(dir: &Path, defines: &[&str]) -> PathBuf {
    // A test binary run away from its source tree (scripts/gpu-device-check)
    // is told where the C file is.
    let src =
        std::env::var_os("TL_FAKE_NVML_SRC").map_or_else(|| PathBuf::from(FAKE_SRC), PathBuf::from);
    build_fake(&src, &dir.join("libnvidia-ml-fake.so"), defines)
}

/// Build the fake NSCQ library answering from `answers` with `defines`.
fn fake_nscq(dir: &Path, answers: &Path, defines: &[&str]) -> PathBuf {
    let src = std::env::var_os("TL_FAKE_NSCQ_SRC")
        .map_or_else(|| PathBuf::from(FAKE_NSCQ_SRC), PathBuf::from);
    let mut d: Vec<String> = defines.iter().map(|s| s.to_string()).collect();
    d.push(format!("FAKE_DIR={:?}", answers.display().to_string()));
    let d: Vec<&str> = d.iter().map(String::as_str).collect();
    build_fake(&src, &dir.join("libnvidia-nscq-fake.so"), &d)
}

/// Compile the C file `src` into the shared library `out`.
fn build_fake(src: &Path, out: &Path, defines: &[&str]) -> PathBuf {
    let out = out.to_path_buf();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(cc);
    cmd.args(["-shared", "-fPIC", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(src);
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let st = cmd.status().expect("running the C compiler");
    assert!(st.success(), "building {} failed", src.display());
    out
}

/// Add a PCI function to a sysfs-shaped tree.
fn pci(root: &Path, addr: &str, class: &str, vendor: &str, device: &str, driver: Option<&str>) {
    let d = root.join(addr);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("class"), format!("{class}\n")).unwrap();
    fs::write(d.join("vendor"), format!("{vendor}\n")).unwrap();
    fs::write(d.join("device"), format!("{device}\n")).unwrap();
    if let Some(drv) = driver {
        let target = root.join("../drivers").join(drv);
        fs::create_dir_all(&target).unwrap();
        symlink(&target, d.join("driver")).unwrap();
    }
}

/// A tree with H100s at bus 0x3b, 0x3c, ... (`n` of them), plus functions
/// that are not GPUs.
fn tree(tmp: &Path, n: usize) -> PathBuf {
    let root = tmp.join("sys/bus/pci/devices");
    fs::create_dir_all(&root).unwrap();
    for i in 0..n {
        pci(
            &root,
            &format!("0000:{:02x}:00.0", 0x3b + i),
            "0x030200",
            "0x10de",
            "0x2330",
            Some("nvidia"),
        );
    }
    // Not GPUs: a VGA device of another vendor and an NVIDIA HD audio
    // function (NVSwitches: see `an_nvswitch_halts_before_nvml`).
    pci(&root, "0000:00:02.0", "0x030000", "0x1234", "0x1111", None);
    pci(
        &root,
        "0000:3b:00.1",
        "0x040300",
        "0x10de",
        "0x22ba",
        Some("snd_hda_intel"),
    );
    pci(&root, "0000:00:1f.0", "0x060100", "0x8086", "0x2918", None);
    root
}

fn cfg(root: PathBuf, lib: Option<PathBuf>) -> GpuConfig {
    GpuConfig {
        pci_devices_root: root,
        nvml_library: lib,
        nscq_library: None,
        simulated: None,
    }
}

#[test]
fn inventory_counts_nvidia_display_functions_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 2);
    // A GPU with no driver bound still counts.
    pci(&root, "0001:81:00.0", "0x030200", "0x10DE", "0x2335", None);
    let inv = pci_inventory(&root).unwrap();
    let addrs: Vec<String> = inv.iter().map(|g| g.address.to_string()).collect();
    assert_eq!(addrs, ["0000:3b:00.0", "0000:3c:00.0", "0001:81:00.0"]);
    assert_eq!(inv[0].class, 0x030200);
    assert_eq!(inv[0].device, 0x2330);
    assert_eq!(inv[0].vendor, 0x10de);
    assert_eq!(inv[0].driver.as_deref(), Some("nvidia"));
    assert_eq!(inv[2].driver, None);
    assert_eq!(inv[2].device, 0x2335);
}

#[test]
fn an_nvswitch_halts_before_nvml() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 2);
    // An NVSwitch (NVIDIA, bridge class 0x0680) carries GPU-to-GPU traffic;
    // without its attestation the loader does not run.
    pci(
        &root,
        "0000:05:00.0",
        "0x068000",
        "0x10de",
        "0x22a3",
        Some("nvidia-nvswitch"),
    );
    let scan = tl_loader::gpu::pci_scan(&root).unwrap();
    assert_eq!(scan.gpus.len(), 2);
    assert_eq!(
        scan.nvswitches
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["0000:05:00.0"]
    );
    // Without NSCQ the switch cannot be attested: refused before NVML is
    // even looked for (neither library path exists).
    let mut c = cfg(root, Some(tmp.path().join("no-libnvml.so")));
    c.nscq_library = Some(tmp.path().join("no-libnvidia-nscq.so.2"));
    let e = collect(&c, b"nonce").unwrap_err();
    assert_eq!(e.code(), "GPU_NVSWITCH_UNATTESTED");
    assert!(e.to_string().contains("0000:05:00.0"), "{e}");
    assert!(e.to_string().contains("no-libnvidia-nscq.so.2"), "{e}");
    let h = tl_loader::halt::Halt::from(e);
    assert_eq!(h.code(), "GPU_UNATTESTED");
    // A switch of another vendor is not an NVSwitch.
    let tmp2 = tempfile::tempdir().unwrap();
    let root2 = tree(tmp2.path(), 0);
    pci(&root2, "0000:06:00.0", "0x068000", "0x8086", "0x1234", None);
    assert!(tl_loader::gpu::pci_scan(&root2)
        .unwrap()
        .nvswitches
        .is_empty());
}

#[test]
fn inventory_is_complete_or_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 1);
    // An unreadable entry cannot be skipped: it could be a GPU.
    fs::create_dir_all(root.join("0000:99:00.0")).unwrap();
    let e = pci_inventory(&root).unwrap_err();
    assert_eq!(e.code(), "GPU_INVENTORY");
    assert!(e.to_string().contains("0000:99:00.0/vendor"), "{e}");

    let root2 = tree(&tmp.path().join("b"), 1);
    pci(&root2, "0000:9a:00.0", "garbage", "0x10de", "0x2330", None);
    assert_eq!(pci_inventory(&root2).unwrap_err().code(), "GPU_INVENTORY");

    let root3 = tree(&tmp.path().join("c"), 0);
    fs::create_dir_all(root3.join("not-an-address")).unwrap();
    assert_eq!(pci_inventory(&root3).unwrap_err().code(), "GPU_INVENTORY");

    let missing = tmp.path().join("nowhere");
    assert_eq!(pci_inventory(&missing).unwrap_err().code(), "GPU_INVENTORY");
}

#[test]
fn no_gpu_no_driver_is_a_cpu_only_cvm() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 0);
    // NVML is not even loaded: the library path does not exist.
    let got = collect(&cfg(root, Some(tmp.path().join("absent.so"))), NONCE).unwrap();
    assert!(got.evidence.is_empty());
    assert!(got.inventory.is_empty());
    assert!(got.session.is_none());
}

#[test]
fn gpus_in_cc_mode_give_evidence_for_derived_nonces() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 2);
    let lib = fake_nvml(tmp.path(), &["FAKE_GPUS=2"]);
    let got = collect(&cfg(root, Some(lib)), NONCE).unwrap();
    assert_eq!(got.inventory.len(), 2);
    assert_eq!(got.evidence.len(), 2);
    for (i, ev) in got.evidence.iter().enumerate() {
        let i = u32::try_from(i).unwrap();
        assert_eq!(ev.index, i);
        assert_eq!(
            ev.report.len(),
            175,
            "the fake's report, trimmed to its size"
        );
        let parsed = parse_report(&ev.report).unwrap();
        assert_eq!(parsed.request.nonce, gpu_nonce(NONCE, i));
        assert_eq!(
            parsed.responder_nonce,
            [0xA0 + u8::try_from(i).unwrap(); 32]
        );
        assert_eq!(ev.certificates, vec![vec![1u8, 2, 3], vec![4u8, 5, 6]]);
    }
    assert_ne!(got.evidence[0].report, got.evidence[1].report);
    // Ready only when asked, and then read back.
    got.session.as_ref().unwrap().set_ready().unwrap();
}

#[test]
fn absent_driver_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 2);
    let missing = tmp.path().join("no/libnvidia-ml.so.1");
    let e = collect(&cfg(root, Some(missing)), NONCE).unwrap_err();
    assert_eq!(e.code(), "GPU_NVML_UNAVAILABLE");
    let text = e.to_string();
    assert!(
        text.starts_with("2 NVIDIA GPU(s) present but libnvidia-ml could not be loaded: "),
        "{text}"
    );
    assert!(text.contains("no/libnvidia-ml.so.1"), "{text}");
    let h: Halt = e.into();
    assert_eq!(h.code(), "GPU_UNATTESTED");
}

#[test]
fn nvml_init_failure_is_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 1);
    // NVML_ERROR_DRIVER_NOT_LOADED
    let lib = fake_nvml(tmp.path(), &["FAKE_INIT_RC=9"]);
    let e = collect(&cfg(root, Some(lib)), NONCE).unwrap_err();
    assert_eq!(e.code(), "GPU_NVML_UNAVAILABLE");
}

fn expect_unattested(defines: &[&str], gpus_on_bus: usize, code: &str) -> GpuError {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), gpus_on_bus);
    let lib = fake_nvml(tmp.path(), defines);
    let e = collect(&cfg(root, Some(lib)), NONCE).unwrap_err();
    assert_eq!(e.code(), code, "{e}");
    let h: Halt = e.clone().into();
    assert_eq!(h.code(), "GPU_UNATTESTED");
    assert!(h.detail.starts_with(code), "{}", h.detail);
    e
}

#[test]
fn cc_mode_off_devtools_or_simulation_is_unattested() {
    let e = expect_unattested(&["FAKE_CC_FEATURE=0"], 1, "GPU_CC_MODE_OFF");
    assert!(e.to_string().contains("feature disabled"), "{e}");
    let e = expect_unattested(&["FAKE_DEVTOOLS=1"], 1, "GPU_CC_MODE_OFF");
    assert!(e.to_string().contains("devtools on"), "{e}");
    let e = expect_unattested(&["FAKE_ENVIRONMENT=1"], 1, "GPU_CC_MODE_OFF");
    assert!(e.to_string().contains("environment simulation"), "{e}");
}

/// What a real NVIDIA H200 with confidential computing off answered
/// (driver 580.159.04, docs/formats/gpu.md "On a real GPU"): CC state
/// environment 0, feature 0, devtools 0, and NVML_ERROR_UNKNOWN (999) from
/// both evidence calls. The loader stops at the CC state, with the same
/// message as on that machine.
#[test]
fn real_h200_with_cc_off_is_unattested() {
    let e = expect_unattested(
        &[
            "FAKE_CC_FEATURE=0",
            "FAKE_ENVIRONMENT=0",
            "FAKE_DEVTOOLS=0",
            "FAKE_REPORT_RC=999",
            "FAKE_CERT_RC=999",
        ],
        1,
        "GPU_CC_MODE_OFF",
    );
    assert_eq!(
        e.to_string(),
        "confidential computing mode is not on (feature disabled, devtools off, environment unavailable)"
    );
}

/// The same driver answers NVML_ERROR_UNKNOWN to the evidence calls; if it
/// did so with CC on, each call's failure halts with its own code.
#[test]
fn evidence_calls_answering_unknown_are_unattested() {
    let e = expect_unattested(&["FAKE_REPORT_RC=999"], 1, "GPU_REPORT_UNAVAILABLE");
    assert!(e.to_string().contains("GPU 0"), "{e}");
    let e = expect_unattested(&["FAKE_CERT_RC=999"], 1, "GPU_CERTIFICATE_UNAVAILABLE");
    assert!(e.to_string().contains("GPU 0"), "{e}");
}

#[test]
fn cc_state_that_cannot_be_queried_is_unattested() {
    let e = expect_unattested(&["FAKE_NO_CC_STATE"], 1, "GPU_NVML");
    assert!(
        e.to_string().contains("nvmlSystemGetConfComputeState"),
        "{e}"
    );
}

#[test]
fn report_call_failure_is_unattested() {
    // NVML_ERROR_NOT_SUPPORTED
    let e = expect_unattested(&["FAKE_REPORT_RC=3"], 1, "GPU_REPORT_UNAVAILABLE");
    assert!(e.to_string().contains("GPU 0"), "{e}");
}

#[test]
fn report_for_another_nonce_is_unattested() {
    let e = expect_unattested(&["FAKE_WRONG_NONCE"], 1, "GPU_REPORT_UNAVAILABLE");
    assert!(e.to_string().contains("another nonce"), "{e}");
}

#[test]
fn inventory_and_nvml_must_agree() {
    // Two on the bus, NVML sees one (e.g. one bound to another driver).
    let e = expect_unattested(&["FAKE_GPUS=1"], 2, "GPU_COUNT_MISMATCH");
    let text = e.to_string();
    assert!(text.starts_with("2 NVIDIA GPU(s) on the PCI bus"), "{text}");
    assert!(text.contains("NVML attests 1"), "{text}");
    // NVML sees more than the bus shows.
    expect_unattested(&["FAKE_GPUS=2"], 1, "GPU_COUNT_MISMATCH");
    // Same count, other addresses.
    let e = expect_unattested(&["FAKE_BUS_BASE=0x70"], 1, "GPU_INVENTORY_MISMATCH");
    assert!(e.to_string().contains("00000000:70:00.0"), "{e}");
}

#[test]
fn pci_address_forms_agree() {
    assert_eq!(
        PciAddress::parse("00000000:3B:00.0"),
        PciAddress::parse("0000:3b:00.0")
    );
}

// ---------------------------------------------------------------------------
// NVSwitches through a fake NSCQ library whose answers are real: reports and
// chains of simulated NVSwitches (tl_evidence::sim), keyed by the nonce the
// loader sets, so what the loader collects is checked by the real verifier.

/// Add `n` NVSwitches (bus 0x05, 0x06, ...) to a sysfs tree.
fn switches(root: &Path, n: usize) {
    for i in 0..n {
        pci(
            root,
            &format!("0000:{:02x}:00.0", 0x05 + i),
            "0x068000",
            "0x10de",
            "0x22a3",
            Some("nvidia-nvswitch"),
        );
    }
}

/// Answers for the fake NSCQ: switch `i` answers `nvswitch_nonce(NONCE, i)`
/// for `i < n` with the simulated switch `i`'s report and chain.
fn answers(dir: &Path, sim: &SimTee, n: u32) -> PathBuf {
    write_answers(&dir.join("nscq-answers"), sim, SimNvKind::NvSwitch, n)
}

/// Write into `a` what simulated devices `0..n` of `kind` answer: the report
/// for the nonce the loader derives for each (`report-<hex nonce>.bin`) and
/// the chain (`chain-<i>.pem`), as both fakes read them with `FAKE_DIR`.
fn write_answers(a: &Path, sim: &SimTee, kind: SimNvKind, n: u32) -> PathBuf {
    fs::create_dir_all(a).unwrap();
    for i in 0..n {
        let d = sim.nvidia_device(kind, i);
        let nonce = match kind {
            SimNvKind::Gpu => gpu_nonce(NONCE, i),
            _ => nvswitch_nonce(NONCE, i),
        };
        fs::write(
            a.join(format!("report-{}.bin", hex::encode(nonce))),
            d.report(&nonce),
        )
        .unwrap();
        fs::write(a.join(format!("chain-{i}.pem")), d.chain_pem()).unwrap();
    }
    a.to_path_buf()
}

/// The real verifier's claims for what the loader collected from `sim`'s
/// devices (GPUs, NVSwitches).
fn verify_collected(
    sim: &SimTee,
    gpus: Vec<tl_evidence::bundle::GpuEvidence>,
    nvswitches: Vec<tl_evidence::bundle::NvSwitchEvidence>,
) -> (
    Vec<tl_evidence::GpuClaims>,
    Vec<tl_evidence::NvSwitchClaims>,
) {
    let bundle = EvidenceBundle {
        gpus,
        nvswitches,
        ..EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::TdxQuote,
            quote: vec![],
            certificates: vec![],
        })
    };
    let mut o = VerifyOptions::new(
        1_760_000_000,
        TrustAnchors::simulated(sim.root_certificate_der()),
    );
    o.expected_nonce = Some(NONCE.to_vec());
    o.gpu_anchors = GpuAnchors::from_der(&[sim.nvidia_root_der().as_slice()]).unwrap();
    let gpus = tl_evidence::verify::verify_gpus(&bundle, &o).unwrap().0;
    let switches = verify_nvswitches(&bundle, &o).unwrap().0;
    (gpus, switches)
}

struct SwitchSetup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    nvml: PathBuf,
    answers: PathBuf,
    sim: SimTee,
}

/// Two GPUs (fake NVML) and `n` NVSwitches on the bus, answers for them.
fn switch_setup(n: usize) -> SwitchSetup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 2);
    switches(&root, n);
    let nvml = fake_nvml(tmp.path(), &["FAKE_GPUS=2"]);
    let sim = SimTee::from_seed([3; 32]);
    let answers = answers(tmp.path(), &sim, u32::try_from(n).unwrap());
    SwitchSetup {
        root,
        nvml,
        answers,
        sim,
        _tmp: tmp,
    }
}

impl SwitchSetup {
    fn collect(&self, defines: &[&str]) -> Result<tl_loader::gpu::GpuCollection, GpuError> {
        let dir = tempfile::tempdir_in(self._tmp.path()).unwrap();
        let nscq = fake_nscq(dir.path(), &self.answers, defines);
        let mut c = cfg(self.root.clone(), Some(self.nvml.clone()));
        c.nscq_library = Some(nscq);
        collect(&c, NONCE)
    }

    fn err(&self, defines: &[&str]) -> GpuError {
        let e = self.collect(defines).unwrap_err();
        assert_eq!(Halt::from(e.clone()).code(), "GPU_UNATTESTED");
        e
    }
}

#[test]
fn nvswitches_in_tnvl_mode_give_evidence_the_verifier_accepts() {
    let s = switch_setup(2);
    let got = s.collect(&["FAKE_SWITCHES=2"]).unwrap();
    assert_eq!(got.evidence.len(), 2, "GPUs still collected");
    assert_eq!(got.nvswitches.len(), 2);
    for (i, ev) in (0u32..).zip(&got.nvswitches) {
        assert_eq!(ev.index, i);
        let d = s.sim.nvidia_device(SimNvKind::NvSwitch, i);
        assert_eq!(ev.report, d.report(&nvswitch_nonce(NONCE, i)));
        assert_eq!(ev.certificates, d.chain_der());
    }
    // What the loader collected verifies with the real verifier.
    let (_, claims) = verify_collected(&s.sim, vec![], got.nvswitches);
    assert_eq!(claims.len(), 2);
    assert!(claims.iter().all(|c| c.tnvl_mode && c.locked));
}

#[test]
fn nvswitch_count_must_match_the_bus() {
    let s = switch_setup(2);
    let e = s.err(&["FAKE_SWITCHES=1"]);
    assert_eq!(e.code(), "GPU_NVSWITCH_COUNT_MISMATCH", "{e}");
    assert!(e
        .to_string()
        .contains("2 NVIDIA NVSwitch(es) on the PCI bus but NSCQ enumerates 1"));
}

#[test]
fn nvswitch_not_in_tnvl_mode_or_unlocked_is_unattested() {
    let s = switch_setup(1);
    for mode in ["0", "1", "2"] {
        let e = s.err(&[&format!("FAKE_PCIE_MODE={mode}")]);
        assert_eq!(e.code(), "GPU_NVSWITCH_TNVL_OFF", "{mode}: {e}");
        assert!(e.to_string().contains("ls10-0"), "{e}");
    }
}

#[test]
fn nvswitch_of_another_architecture_is_unattested() {
    let s = switch_setup(1);
    let e = s.err(&["FAKE_ARCH=1"]);
    assert_eq!(e.code(), "GPU_NVSWITCH_ARCH", "{e}");
}

#[test]
fn nvswitch_report_failures_are_unattested() {
    let s = switch_setup(1);
    // The switch's report call fails.
    let e = s.err(&["FAKE_REPORT_RC=-8"]);
    assert_eq!(e.code(), "GPU_NVSWITCH_REPORT", "{e}");
    assert!(e.to_string().contains("NSCQ_RC_ERROR_TIMEOUT"), "{e}");
    // A size beyond the structure.
    let e = s.err(&["FAKE_REPORT_SIZE=0x2001"]);
    assert_eq!(e.code(), "GPU_NVSWITCH_REPORT", "{e}");
    // A truncated report.
    let e = s.err(&["FAKE_REPORT_SIZE=40"]);
    assert_eq!(e.code(), "GPU_NVSWITCH_REPORT", "{e}");
    assert!(e.to_string().contains("GPU_REPORT_MALFORMED"), "{e}");
    // The switch answers another nonce than the one the loader set.
    let other = s.sim.nvidia_device(SimNvKind::NvSwitch, 0);
    let want = nvswitch_nonce(NONCE, 0);
    fs::write(
        s.answers.join(format!("report-{}.bin", hex::encode(want))),
        other.report(&nvswitch_nonce(NONCE, 7)),
    )
    .unwrap();
    let e = s.err(&[]);
    assert_eq!(e.code(), "GPU_NVSWITCH_REPORT", "{e}");
    assert!(e.to_string().contains("another nonce"), "{e}");
}

#[test]
fn nvswitch_without_a_chain_is_unattested() {
    let s = switch_setup(1);
    fs::remove_file(s.answers.join("chain-0.pem")).unwrap();
    let e = s.err(&[]);
    assert_eq!(e.code(), "GPU_NVSWITCH_CERTIFICATE", "{e}");
    fs::write(s.answers.join("chain-0.pem"), "not PEM").unwrap();
    assert_eq!(s.err(&[]).code(), "GPU_NVSWITCH_CERTIFICATE");
}

#[test]
fn nscq_session_and_answer_failures_are_unattested() {
    let s = switch_setup(1);
    let e = s.err(&["FAKE_CREATE_RC=-7"]);
    assert_eq!(e.code(), "GPU_NVSWITCH_UNATTESTED", "{e}");
    assert!(e.to_string().contains("NSCQ_RC_ERROR_DRV"), "{e}");
    let e = s.err(&["FAKE_BAD_LABEL"]);
    assert_eq!(e.code(), "GPU_NSCQ", "{e}");
    let e = s.err(&["FAKE_TWICE"]);
    assert_eq!(e.code(), "GPU_NSCQ", "{e}");
    assert!(e.to_string().contains("2 answers for one device"), "{e}");
}

#[test]
fn simulated_devices_answer_the_derived_nonces() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    fs::write(&seed, [3u8; 32]).unwrap();
    // Real devices on the bus are not looked at: the library paths do not exist.
    let root = tree(tmp.path(), 2);
    switches(&root, 1);
    let mut c = cfg(root, Some(tmp.path().join("absent.so")));
    c.simulated = Some(tl_loader::gpu::SimulatedGpus {
        seed_file: seed.clone(),
        gpus: 1,
        nvswitches: 2,
    });
    let got = collect(&c, NONCE).unwrap();
    assert!(got.session.is_none() && got.inventory.is_empty());
    assert_eq!((got.evidence.len(), got.nvswitches.len()), (1, 2));
    let sim = SimTee::from_seed([3; 32]);
    let (gpus, switches) = verify_collected(&sim, got.evidence, got.nvswitches);
    assert_eq!((gpus.len(), switches.len()), (1, 2));
    // A seed file of the wrong size is an error, not a default.
    fs::write(&seed, [3u8; 31]).unwrap();
    let e = collect(&c, NONCE).unwrap_err();
    assert_eq!(e.code(), "GPU_SIMULATED", "{e}");
}

#[test]
fn gpus_and_nvswitches_collected_together_verify() {
    // The fake NVML and the fake NSCQ both answer with simulated devices'
    // real reports for the nonces the loader sets: what the loader collects
    // for 2 GPUs and 2 switches passes the real verifier.
    let tmp = tempfile::tempdir().unwrap();
    let root = tree(tmp.path(), 2);
    switches(&root, 2);
    let sim = SimTee::from_seed([8; 32]);
    let answers = answers(tmp.path(), &sim, 2);
    let nvml_answers = write_answers(&tmp.path().join("nvml-answers"), &sim, SimNvKind::Gpu, 2);
    let dir = format!("FAKE_DIR={:?}", nvml_answers.display().to_string());
    let nvml = fake_nvml(tmp.path(), &["FAKE_GPUS=2", &dir]);
    let nscq = fake_nscq(tmp.path(), &answers, &["FAKE_SWITCHES=2"]);
    let mut c = cfg(root, Some(nvml));
    c.nscq_library = Some(nscq);
    let got = collect(&c, NONCE).unwrap();
    let session = got.session;
    let (gpus, switches) = verify_collected(&sim, got.evidence, got.nvswitches);
    assert_eq!((gpus.len(), switches.len()), (2, 2));
    session.unwrap().set_ready().unwrap();
}
