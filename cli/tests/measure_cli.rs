//! `tl measure` run as a process against the reference tools run as processes on
//! the same inputs: `sev-snp-measure` 0.0.13 and `systemd-measure calculate`
//! (`scripts/measure-reference-tools` installs them; a missing tool fails), and
//! `tl measure diff` against real quotes from the shared test data.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use tl_evidence::snp::SnpReport;
use tl_evidence::tdx::Quote;

const TL: &str = env!("CARGO_BIN_EXE_tl");
const INSTALL_HINT: &str = "run scripts/measure-reference-tools to install the reference tools";
const DEBIAN_OVMF: &str = "/usr/share/ovmf/OVMF.fd";
const AMDSEV_SUFFIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../measured-boot/tests/data/virtee-sev/ovmf_AmdSev_suffix.bin"
);
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata");

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("measure-cli")
        .join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tl(args: &[&str]) -> Output {
    Command::new(TL).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn required(p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    assert!(p.exists(), "{} is missing; {INSTALL_HINT}", p.display());
    p
}

fn shared(rel: &str) -> PathBuf {
    let p = Path::new(SHARED).join(rel);
    assert!(
        p.exists(),
        "{} is missing: the shared test data (shared/testdata) must be present",
        p.display()
    );
    p
}

/// The `sev-snp-measure` console script, or `python3 -m sevsnpmeasure.cli`.
fn sev_snp_measure() -> Command {
    static WHICH: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let argv = WHICH.get_or_init(|| {
        let works = |argv: &[String]| {
            Command::new(&argv[0])
                .args(&argv[1..])
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let script = vec!["sev-snp-measure".to_owned()];
        if works(&script) {
            return script;
        }
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let module = vec![python, "-m".to_owned(), "sevsnpmeasure.cli".to_owned()];
        assert!(works(&module), "sev-snp-measure not found; {INSTALL_HINT}");
        module
    });
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

fn systemd_measure() -> &'static str {
    [
        "/lib/systemd/systemd-measure",
        "/usr/lib/systemd/systemd-measure",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or_else(|| panic!("systemd-measure not found; {INSTALL_HINT}"))
}

#[test]
fn snp_matches_sev_snp_measure_byte_for_byte() {
    let debian = required(DEBIAN_OVMF);
    let suffix = PathBuf::from(AMDSEV_SUFFIX);
    let dir = scratch("snp");
    let kernel = dir.join("kernel");
    let initrd = dir.join("initrd");
    std::fs::write(
        &kernel,
        (0..10_000u32)
            .map(|i| (i * 7 + 3) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(
        &initrd,
        (0..5_000u32)
            .map(|i| (i * 13 + 1) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let (k, i) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());

    let configs: Vec<Vec<&str>> = vec![
        vec!["--vcpus", "1", "--vcpu-type", "EPYC-v4"],
        vec!["--vcpus", "4", "--vcpu-type", "EPYC-v4"],
        vec![
            "--vcpus",
            "2",
            "--vcpu-type",
            "EPYC-Milan",
            "--guest-features",
            "0x21",
        ],
        vec!["--vcpus", "3", "--vcpu-type", "EPYC-Genoa"],
        vec!["--vcpus", "2", "--vcpu-sig", "0xa10f11"],
        vec![
            "--vcpus",
            "1",
            "--vcpu-family",
            "25",
            "--vcpu-model",
            "1",
            "--vcpu-stepping",
            "1",
        ],
    ];
    let mut compared = 0;
    for ovmf in [&debian, &suffix] {
        let o = ovmf.to_str().unwrap();
        let mut variants: Vec<Vec<&str>> = Vec::new();
        for c in &configs {
            variants.push(c.clone());
            if ovmf == &suffix {
                let mut with_kernel = c.clone();
                with_kernel.extend([
                    "--kernel",
                    k,
                    "--initrd",
                    i,
                    "--append",
                    "console=ttyS0 root=/dev/vda1",
                ]);
                variants.push(with_kernel);
                let mut kernel_only = c.clone();
                kernel_only.extend(["--kernel", k]);
                variants.push(kernel_only);
            }
        }
        for v in variants {
            let ours = tl(&[&["measure", "snp", "--ovmf", o][..], &v].concat());
            let theirs = sev_snp_measure()
                .args([&["--mode", "snp", "--ovmf", o][..], &v].concat())
                .output()
                .unwrap();
            assert!(
                theirs.status.success(),
                "sev-snp-measure {v:?}: {}",
                stderr(&theirs)
            );
            assert!(ours.status.success(), "tl {v:?}: {}", stderr(&ours));
            assert_eq!(ours.stdout, theirs.stdout, "{o} {v:?}");
            assert_eq!(stdout(&ours).len(), 97);
            compared += 1;
        }
    }
    // snp:ovmf-hash, and resuming from it.
    let o = debian.to_str().unwrap();
    let ours = tl(&["measure", "snp", "--ovmf", o, "--ovmf-hash-only"]);
    let theirs = sev_snp_measure()
        .args(["--mode", "snp:ovmf-hash", "--ovmf", o])
        .output()
        .unwrap();
    assert_eq!(ours.stdout, theirs.stdout);
    let h = stdout(&ours).trim().to_owned();
    let resumed = tl(&[
        "measure",
        "snp",
        "--ovmf",
        o,
        "--snp-ovmf-hash",
        &h,
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-v4",
    ]);
    let full = tl(&[
        "measure",
        "snp",
        "--ovmf",
        o,
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-v4",
    ]);
    assert_eq!(resumed.stdout, full.stdout);
    assert!(compared >= 24, "{compared}");
}

#[test]
fn snp_json_carries_every_input_and_intermediate() {
    let suffix = AMDSEV_SUFFIX;
    let dir = scratch("snp-json");
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, b"not really a kernel").unwrap();
    let k = kernel.to_str().unwrap();
    let args = [
        "measure",
        "snp",
        "--ovmf",
        suffix,
        "--kernel",
        k,
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-v4",
    ];
    let plain = tl(&args);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let j: Value = serde_json::from_slice(&tl(&[&args[..], &["--json"]].concat()).stdout).unwrap();
    assert_eq!(j["measurement"].as_str().unwrap(), stdout(&plain).trim());
    let p = &j["parameters"];
    assert_eq!(p["vcpus"], 2);
    assert_eq!(p["vcpu_sig"], "0x800f12");
    assert_eq!(p["guest_features"], "0x1");
    assert_eq!(p["vmm_type"], "qemu");
    assert_eq!(p["defaults_used"], json!(["guest_features", "vmm_type"]));
    assert_eq!(j["files"]["kernel"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(j["files"]["ovmf"]["sha256"].as_str().unwrap().len(), 64);
    let c = &j["computation"];
    assert_eq!(c["ovmf_hash"], j["ovmf_hash"]);
    assert!(c["hashes_table"]["kernel_sha256"].is_string());
    assert!(c["hashes_table"]["table_sha256"].is_string());
    let vmsas = c["vmsas"].as_array().unwrap();
    assert_eq!(vmsas.len(), 2);
    assert_eq!(vmsas[1]["digest_after"], j["measurement"]);
    assert!(!c["sections"].as_array().unwrap().is_empty());
    // Another guest-features value changes the digest and is reported as given.
    let j2: Value = serde_json::from_slice(
        &tl(&[&args[..], &["--guest-features", "0x21", "--json"]].concat()).stdout,
    )
    .unwrap();
    assert_ne!(j2["measurement"], j["measurement"]);
    assert_eq!(j2["parameters"]["defaults_used"], json!(["vmm_type"]));
    // --policy: the order fragment.
    let pol = stdout(&tl(&[&args[..], &["--policy"]].concat()));
    assert_eq!(
        pol,
        format!(
            "[platform.snp]\nmeasurement = [\"{}\"]\n",
            j["measurement"].as_str().unwrap()
        )
    );
}

#[test]
fn snp_refusals_are_one_line_and_non_zero() {
    let debian = required(DEBIAN_OVMF);
    let dir = scratch("snp-refuse");
    let kernel = dir.join("kernel");
    std::fs::write(&kernel, b"kernel").unwrap();
    let (o, k) = (debian.to_str().unwrap(), kernel.to_str().unwrap());
    let out = tl(&[
        "measure",
        "snp",
        "--ovmf",
        o,
        "--kernel",
        k,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("SNP_KERNEL_HASHES_UNSUPPORTED"), "{err}");
    assert!(err.contains("AmdSevX64"), "{err}");
    // The reference tool refuses the same input.
    let theirs = sev_snp_measure()
        .args([
            "--mode",
            "snp",
            "--ovmf",
            o,
            "--kernel",
            k,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
        ])
        .output()
        .unwrap();
    assert!(!theirs.status.success());
    assert!(stderr(&theirs).contains("SNP_KERNEL_HASHES"));

    let cases: [(&[&str], &str); 5] = [
        (&["--vcpus", "1"], "--vcpu-type"),
        (
            &["--vcpus", "1", "--vcpu-type", "EPYC-v9"],
            "unknown --vcpu-type",
        ),
        (&["--vcpus", "0", "--vcpu-type", "EPYC"], "SNP_VCPU_COUNT"),
        (&["--vcpus", "1", "--vmm-type", "ec2"], "--ec2-rdx"),
        (
            &[
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--snp-ovmf-hash",
                "abcd",
            ],
            "96 hex digits",
        ),
    ];
    for (extra, want) in cases {
        let out = tl(&[&["measure", "snp", "--ovmf", o][..], extra].concat());
        assert!(!out.status.success(), "{extra:?}");
        let err = stderr(&out);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{extra:?}: {err}");
    }
    // A file that is not a firmware image.
    let junk = dir.join("junk");
    std::fs::write(&junk, [0u8; 4096]).unwrap();
    let out = tl(&[
        "measure",
        "snp",
        "--ovmf",
        junk.to_str().unwrap(),
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("OVMF_"), "{}", stderr(&out));
    // EC2 with an explicit RDX choice: the two choices differ.
    let ec2 = |rdx: &str| {
        stdout(&tl(&[
            "measure",
            "snp",
            "--ovmf",
            o,
            "--vcpus",
            "1",
            "--vmm-type",
            "ec2",
            "--ec2-rdx",
            rdx,
        ]))
    };
    assert_ne!(ec2("virtee"), ec2("sev-snp-measure"));
    let theirs = sev_snp_measure()
        .args([
            "--mode",
            "snp",
            "--ovmf",
            o,
            "--vcpus",
            "1",
            "--vmm-type",
            "ec2",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&theirs), ec2("sev-snp-measure"));
}

#[test]
fn uki_matches_systemd_measure_calculate() {
    let tool = systemd_measure();
    let dir = scratch("uki");
    let files = [
        (
            "linux",
            (0..70_001u32)
                .map(|i| (i * 31 + 7) as u8)
                .collect::<Vec<_>>(),
        ),
        ("osrel", b"ID=debian\nVERSION_ID=12\n".to_vec()),
        ("cmdline", b"console=ttyS0 root=/dev/vda1 ro".to_vec()),
        ("initrd", (0..12_345u32).map(|i| (i * 5) as u8).collect()),
        ("splash", vec![0x42; 300]),
    ];
    let mut args = Vec::new();
    for (name, data) in &files {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        args.push(format!("--{name}={}", p.display()));
    }
    for banks in [&["sha256", "sha384"][..], &["sha256"], &["sha384"]] {
        let bank_args: Vec<String> = banks.iter().map(|b| format!("--bank={b}")).collect();
        let theirs = Command::new(tool)
            .arg("calculate")
            .args(&args)
            .args(&bank_args)
            .output()
            .unwrap();
        assert!(theirs.status.success(), "{}", stderr(&theirs));
        // Section files given in another order: the prediction sorts them.
        let mut ours_args: Vec<String> = vec!["measure".into(), "uki".into()];
        ours_args.extend(args.iter().rev().cloned());
        ours_args.extend(bank_args.iter().cloned());
        let ours = Command::new(TL).args(&ours_args).output().unwrap();
        assert!(ours.status.success(), "{}", stderr(&ours));
        assert_eq!(stdout(&ours), stdout(&theirs), "{banks:?}");
        assert_eq!(stdout(&ours).lines().count(), 4 * banks.len());
    }
    // Default banks: sha256 and sha384, as with both --bank flags.
    let mut a: Vec<String> = vec!["measure".into(), "uki".into()];
    a.extend(args.iter().cloned());
    let default = Command::new(TL).args(&a).output().unwrap();
    a.push("--json".into());
    let j: Value =
        serde_json::from_slice(&Command::new(TL).args(&a).output().unwrap().stdout).unwrap();
    let theirs = Command::new(tool)
        .arg("calculate")
        .args(&args)
        .args(["--bank=sha256", "--bank=sha384", "--json=short"])
        .output()
        .unwrap();
    let tj: Value = serde_json::from_slice(&theirs.stdout).unwrap();
    assert_eq!(j["pcr11"]["sha256"], tj["sha256"]);
    assert_eq!(j["pcr11"]["sha384"], tj["sha384"]);
    assert_eq!(j["sections"].as_array().unwrap().len(), files.len());
    assert_eq!(stdout(&default).lines().count(), 8);
    // Unknown-section refusal: a file that is not a PE.
    let out = tl(&[
        "measure",
        "uki",
        "--uki",
        dir.join("osrel").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn tdx_json_has_both_mrtd_orders_and_no_rtmr0() {
    let debian = required(DEBIAN_OVMF);
    let o = debian.to_str().unwrap();
    let out = tl(&["measure", "tdx", "--ovmf", o, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let single = j["mrtd"]["single-pass"].as_str().unwrap();
    let two = j["mrtd"]["two-pass"].as_str().unwrap();
    assert_eq!(single.len(), 96);
    assert_eq!(two.len(), 96);
    assert_ne!(single, two);
    assert_eq!(j["rtmr0"]["predicted"], false);
    assert!(j["rtmr0"]["note"].as_str().unwrap().contains("event log"));
    assert!(j["rtmr1"].is_null());
    assert!(!j["tdvf_sections"].as_array().unwrap().is_empty());
    // Debian bookworm 2022.11-6+deb12u2 values (docs/measurements.md), when that build is installed.
    if j["files"]["ovmf"]["sha256"]
        == "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"
    {
        assert_eq!(single, "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47");
        assert_eq!(two, "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b33db3b32e6924cba830a724eed443f7e1");
    }
    // One order chosen: only that one.
    let j1: Value = serde_json::from_slice(
        &tl(&[
            "measure",
            "tdx",
            "--ovmf",
            o,
            "--page-add-order",
            "two-pass",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(j1["mrtd"].as_object().unwrap().len(), 1);
    assert_eq!(j1["mrtd"]["two-pass"].as_str().unwrap(), two);
    // Text output and help say RTMR0 is not predicted.
    let text = stdout(&tl(&["measure", "tdx", "--ovmf", o]));
    assert!(text.contains(single) && text.contains(two));
    assert!(text.contains("RTMR0 not predicted"));
    let help = stdout(&tl(&["measure", "tdx", "--help"]));
    assert!(help.contains("RTMR0 is NOT predicted"));
    assert!(help.contains("2G"));
    // A 4 KiB suffix of an AmdSev image: its TDVF metadata points outside the file.
    let out = tl(&["measure", "tdx", "--ovmf", AMDSEV_SUFFIX]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(
        stderr(&out).contains("(TDVF_SECTION_OUT_OF_FILE)"),
        "{}",
        stderr(&out)
    );
}

fn flip(h: &[u8; 48]) -> String {
    let mut v = *h;
    v[0] ^= 0xff;
    hex::encode(v)
}

#[test]
fn diff_lists_every_tdx_mismatch_in_register_order() {
    let quote_path = shared("tdx/dcap-qvl/tdx_quote");
    let q = Quote::parse(&std::fs::read(&quote_path).unwrap()).unwrap();
    let b = &q.body;
    let dir = scratch("diff");
    let values = json!({
        "tdx": {
            "mrtd": flip(&b.mrtd),
            "rtmr0": hex::encode(b.rtmr[0]),
            "rtmr1": flip(&b.rtmr[1]),
            "rtmr2": flip(&b.rtmr[2]),
            "rtmr3": hex::encode(b.rtmr[3]),
        }
    });
    let vpath = dir.join("values.json");
    std::fs::write(&vpath, values.to_string()).unwrap();
    let (v, qp) = (vpath.to_str().unwrap(), quote_path.to_str().unwrap());

    let out = tl(&["measure", "diff", "--expected", v, "--quote", qp, "--json"]);
    assert!(!out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["tee"], "tdx");
    assert_eq!(j["ok"], false);
    assert_eq!(j["mismatches"], json!(["MRTD", "RTMR1", "RTMR2"]));
    let regs = j["registers"].as_array().unwrap();
    let status: Vec<(&str, &str)> = regs
        .iter()
        .map(|r| {
            (
                r["register"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &status[..5],
        &[
            ("MRTD", "mismatch"),
            ("RTMR0", "match"),
            ("RTMR1", "mismatch"),
            ("RTMR2", "mismatch"),
            ("RTMR3", "match")
        ]
    );
    assert_eq!(regs[0]["actual"], hex::encode(b.mrtd));
    assert_eq!(regs[0]["expected"], json!([flip(&b.mrtd)]));
    assert!(stderr(&out).contains("3 register(s) differ: MRTD, RTMR1, RTMR2"));

    // Text output: the same three, in order.
    let text = stdout(&tl(&["measure", "diff", "--expected", v, "--quote", qp]));
    let mism: Vec<&str> = text.lines().filter(|l| l.starts_with("MISMATCH")).collect();
    assert_eq!(mism, ["MISMATCH MRTD", "MISMATCH RTMR1", "MISMATCH RTMR2"]);

    // The same expectation as an order fragment (TOML), and the quote as hex text.
    let toml = format!(
        "[platform.tdx]\nmrtd = \"{}\"\nrtmr1 = \"{}\"\nrtmr2 = \"{}\"\n",
        flip(&b.mrtd),
        flip(&b.rtmr[1]),
        hex::encode(b.rtmr[2])
    );
    let tpath = dir.join("expected.toml");
    std::fs::write(&tpath, toml).unwrap();
    let hexq = dir.join("quote.hex");
    std::fs::write(&hexq, hex::encode(std::fs::read(&quote_path).unwrap())).unwrap();
    let out = tl(&[
        "measure",
        "diff",
        "--expected",
        tpath.to_str().unwrap(),
        "--quote",
        hexq.to_str().unwrap(),
        "--json",
    ]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["mismatches"], json!(["MRTD", "RTMR1"]));
    assert!(!out.status.success());

    // All equal: exit 0.
    let good = json!({"tdx": {"mrtd": hex::encode(b.mrtd), "rtmr2": hex::encode(b.rtmr[2])}});
    std::fs::write(&vpath, good.to_string()).unwrap();
    let out = tl(&["measure", "diff", "--expected", v, "--quote", qp]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A truncated quote is refused with the parser's reason.
    let short = dir.join("short.bin");
    std::fs::write(&short, &std::fs::read(&quote_path).unwrap()[..600]).unwrap();
    let out = tl(&[
        "measure",
        "diff",
        "--expected",
        v,
        "--quote",
        short.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    // An event log that is not this quote's does not explain its RTMRs:
    // reported as such, exit non-zero.
    let other_log = shared("tpm-eventlog/go-tdx-guest-ccel/ccel_data.dat");
    let out = tl(&[
        "measure",
        "diff",
        "--expected",
        v,
        "--quote",
        qp,
        "--event-log",
        other_log.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("EVENTLOG_REPLAY_MISMATCH"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn diff_explains_rtmrs_with_the_event_log() {
    // GCE COS 113: a quote and its CCEL event log.
    let quote = shared("tpm-eventlog/go-tdx-guest-ccel/cos-113-tdx-quote.dat");
    let log = shared("tpm-eventlog/go-tdx-guest-ccel/ccel_data.dat");
    let q = Quote::parse(&std::fs::read(&quote).unwrap()).unwrap();
    let b = &q.body;
    let dir = scratch("diff-ccel");
    // Expect another RTMR1 (the kernel and boot loader register).
    let mut other = b.rtmr[1];
    other[0] ^= 0xff;
    let vpath = dir.join("expected.json");
    std::fs::write(
        &vpath,
        json!({"tdx": {"mrtd": hex::encode(b.mrtd), "rtmr0": hex::encode(b.rtmr[0]), "rtmr1": hex::encode(other)}}).to_string(),
    )
    .unwrap();
    let out = tl(&[
        "measure",
        "diff",
        "--expected",
        vpath.to_str().unwrap(),
        "--quote",
        quote.to_str().unwrap(),
        "--event-log",
        log.to_str().unwrap(),
        "--json",
    ]);
    assert!(!out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The log replays to the quote's RTMRs, so it explains them ...
    assert_eq!(j["log_does_not_explain"], json!([]));
    assert_eq!(j["mismatches"], json!(["RTMR1"]));
    // ... and the mismatching register lists the events that produced it.
    let rtmr1 = j["registers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["register"] == "RTMR1")
        .unwrap();
    let events = rtmr1["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events
        .iter()
        .all(|e| e["digest"].as_str().unwrap().len() == 96));
    // Text output names them under the mismatch.
    let text = stdout(&tl(&[
        "measure",
        "diff",
        "--expected",
        vpath.to_str().unwrap(),
        "--quote",
        quote.to_str().unwrap(),
        "--event-log",
        log.to_str().unwrap(),
    ]));
    assert!(text.contains("MISMATCH RTMR1"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("event ")),
        "{text}"
    );
}

#[test]
fn diff_snp_report_measurement() {
    let report_path = shared("sev-snp/trustee/test-report.bin");
    let r = SnpReport::parse(&std::fs::read(&report_path).unwrap()).unwrap();
    let dir = scratch("diff-snp");
    let p = dir.join("expected.toml");
    let rp = report_path.to_str().unwrap();
    // One of several allowed values matches.
    std::fs::write(
        &p,
        format!(
            "[platform.snp]\nmeasurement = [\"{}\", \"{}\"]\n",
            flip(&r.measurement),
            hex::encode(r.measurement)
        ),
    )
    .unwrap();
    let out = tl(&[
        "measure",
        "diff",
        "--expected",
        p.to_str().unwrap(),
        "--quote",
        rp,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // None matches, and HOST_DATA differs too: both are listed.
    let mut hd = r.host_data;
    hd[31] ^= 1;
    std::fs::write(
        &p,
        format!(
            "[platform.snp]\nmeasurement = [\"{}\"]\nhost_data = \"{}\"\n",
            flip(&r.measurement),
            hex::encode(hd)
        ),
    )
    .unwrap();
    let out = tl(&[
        "measure",
        "diff",
        "--expected",
        p.to_str().unwrap(),
        "--quote",
        rp,
        "--json",
    ]);
    assert!(!out.status.success());
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["tee"], "sev-snp");
    assert_eq!(j["mismatches"], json!(["MEASUREMENT", "HOST_DATA"]));
    // A TDX-only expectation against an SNP report is refused.
    std::fs::write(
        &p,
        format!(
            "[platform.tdx]\nmrtd = \"{}\"\n",
            hex::encode(r.measurement)
        ),
    )
    .unwrap();
    let out = tl(&[
        "measure",
        "diff",
        "--expected",
        p.to_str().unwrap(),
        "--quote",
        rp,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no [platform.snp]"),
        "{}",
        stderr(&out)
    );
}
