//! Real TPM event logs replay to the PCR values their sources assert.

use std::collections::BTreeMap;

use tl_measured_boot::eventlog::{
    CompareScope, EventDetail, EventLog, EventType, HashAlg, LogFormat, Registers, EBS_INVOCATION,
};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tpm-eventlog/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing test data {p}: {e}"))
}

/// `{"pcrs": {"sha1": {"0": "hex", ...}, ...}}` as registers.
fn expected(rel: &str) -> Registers {
    let v: serde_json::Value = serde_json::from_slice(&read(rel)).expect("json");
    let mut out = Registers::new();
    let pcrs = v["pcrs"].as_object().expect("pcrs object");
    for (alg, regs) in pcrs {
        let alg = HashAlg::from_name(alg).expect("known alg");
        let bank: BTreeMap<u32, Vec<u8>> = regs
            .as_object()
            .expect("bank object")
            .iter()
            .map(|(i, h)| {
                (
                    i.parse().expect("index"),
                    hex::decode(h.as_str().expect("hex")).expect("hex"),
                )
            })
            .collect();
        out.insert(alg, bank);
    }
    out
}

const GO_EVENTLOG: &[&str] = &[
    "arch-linux-workstation",
    "cos-101-amd-sev",
    "cos-85-amd-sev",
    "cos-93-amd-sev",
    "debian-10",
    "glinux-alex",
    "rhel8-uefi",
    "ubuntu-1804-amd-sev",
    "ubuntu-2104-no-dbx",
    "ubuntu-2104-no-secure-boot",
];

#[test]
fn go_eventlog_logs_replay_to_expected_pcrs() {
    for name in GO_EVENTLOG {
        let log = EventLog::parse(&read(&format!("go-eventlog-tpm/{name}.bin")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = expected(&format!("go-eventlog-tpm/{name}.expected.json"));
        let n: usize = want.values().map(|b| b.len()).sum();
        assert!(n >= 8, "{name}: expected set too small");
        let r = log.replay();
        r.compare(&want, CompareScope::AllExpected)
            .unwrap_or_else(|e| panic!("{name}: {:?}", e.0));
        if *name == "debian-10" {
            assert_eq!(log.format, LogFormat::Sha1Legacy);
        } else {
            assert_eq!(log.format, LogFormat::CryptoAgile, "{name}");
        }
    }
}

#[test]
fn changed_expected_value_reports_every_mismatch_with_log_value() {
    let log = EventLog::parse(&read("go-eventlog-tpm/rhel8-uefi.bin")).expect("parse");
    let mut want = expected("go-eventlog-tpm/rhel8-uefi.expected.json");
    let bank = want.get_mut(&HashAlg::SHA256).expect("sha256 bank");
    let orig4 = bank.get(&4).expect("pcr4").clone();
    bank.get_mut(&4).expect("pcr4")[0] ^= 1;
    bank.get_mut(&7).expect("pcr7")[31] ^= 0x80;
    let e = log
        .replay()
        .compare(&want, CompareScope::AllExpected)
        .expect_err("must mismatch");
    assert_eq!(e.code(), "EVENTLOG_REPLAY_MISMATCH");
    assert_eq!(e.0.len(), 2);
    let m4 = e.0.iter().find(|m| m.register == 4).expect("pcr4 reported");
    assert_eq!(m4.alg, HashAlg::SHA256);
    assert_eq!(m4.replayed.as_deref(), Some(orig4.as_slice()));
    assert!(!m4.events.is_empty());
    for i in &m4.events {
        assert_eq!(log.events[*i].pcr, 4);
    }
    assert!(e.0.iter().any(|m| m.register == 7));
}

#[test]
fn sb_cert_log_matches_except_ima_pcr() {
    let log = EventLog::parse(&read("go-attestation/sb_cert_eventlog")).expect("parse");
    let want = expected("go-attestation/sb_cert_eventlog.expected.json");
    let r = log.replay();
    r.compare(&want, CompareScope::LoggedRegisters)
        .expect("logged registers match");
    // PCR10 (IMA) is not in the firmware log: only it differs, in both banks,
    // and no event explains it.
    let e = r
        .compare(&want, CompareScope::AllExpected)
        .expect_err("PCR10 is not covered");
    assert!(!e.0.is_empty());
    for m in &e.0 {
        assert_eq!(m.register, 10);
        assert!(m.events.is_empty());
    }
    assert_eq!(log.algorithms.len(), 3, "SHA1/256/384 declared");
    assert!(r.registers.contains_key(&HashAlg::SHA384));
}

#[test]
fn a_log_that_covers_none_of_the_expected_registers_is_not_a_match() {
    let log = EventLog::parse(&read("go-attestation/sb_cert_eventlog")).expect("parse");
    let want = expected("go-attestation/sb_cert_eventlog.expected.json");
    let r = log.replay();
    // Only PCR10 (IMA), which the firmware log never extends.
    let only_ima: Registers = want
        .iter()
        .map(|(alg, regs)| {
            (
                *alg,
                regs.iter()
                    .filter(|(i, _)| **i == 10)
                    .map(|(i, v)| (*i, v.clone()))
                    .collect(),
            )
        })
        .collect();
    let e = r
        .compare(&only_ima, CompareScope::LoggedRegisters)
        .expect_err("nothing covered, nothing matched");
    assert!(e.0.is_empty());
    assert_eq!(e.code(), "EVENTLOG_COVERS_NOTHING");
    assert_eq!(
        e.describe("PCR"),
        "the event log extends none of the expected registers"
    );
    // Nothing expected at all is not a match either.
    assert!(r
        .compare(&Registers::new(), CompareScope::LoggedRegisters)
        .is_err());
    // A real mismatch names algorithm, register and events.
    let mut bad = want.clone();
    for regs in bad.values_mut() {
        if let Some(v) = regs.get_mut(&7) {
            v[0] ^= 1;
        }
    }
    let e = r
        .compare(&bad, CompareScope::LoggedRegisters)
        .expect_err("PCR7");
    assert_eq!(e.code(), "EVENTLOG_REPLAY_MISMATCH");
    assert!(
        e.describe("PCR").contains("PCR7 (events "),
        "{}",
        e.describe("PCR")
    );
}

#[test]
fn option_rom_log_matches_all_eight_pcrs() {
    let log = EventLog::parse(&read("go-attestation/option_rom_eventlog")).expect("parse");
    let want = expected("go-attestation/option_rom_eventlog.expected.json");
    assert_eq!(want[&HashAlg::SHA1].len(), 8);
    log.replay()
        .compare(&want, CompareScope::AllExpected)
        .expect("8/8");
}

#[test]
fn ebs_missing_log_needs_the_explicit_workaround() {
    let log = EventLog::parse(&read("go-attestation/ebs_event_missing_eventlog")).expect("parse");
    let mut want = expected("go-attestation/ebs_event_missing_eventlog.expected.json");
    // The log is SHA-1 only; its source asserts the SHA-1 PCR5.
    assert_eq!(log.format, LogFormat::Sha1Legacy);
    want.retain(|a, _| *a == HashAlg::SHA1);
    let naive = log.replay();
    let e = naive
        .compare(&want, CompareScope::AllExpected)
        .expect_err("naive replay must not match");
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].register, 5);
    assert_eq!(
        hex::encode(e.0[0].replayed.as_deref().expect("value")).get(..8),
        Some("e5781a2f")
    );
    let fixed = log
        .replay_assuming_exit_boot_services()
        .expect("no EBS in log");
    assert!(fixed.exit_boot_services_assumed);
    fixed
        .compare(&want, CompareScope::AllExpected)
        .expect("matches with the workaround");
    // A log that records ExitBootServices refuses the workaround.
    let full = EventLog::parse(&read("go-eventlog-tpm/rhel8-uefi.bin")).expect("parse");
    assert!(full
        .events
        .iter()
        .any(|e| e.event_type == EventType::EV_EFI_ACTION
            && matches!(&e.parsed, EventDetail::Action(s) if s == EBS_INVOCATION)));
    assert_eq!(
        full.replay_assuming_exit_boot_services()
            .expect_err("present")
            .code(),
        "EVENTLOG_EBS_PRESENT"
    );
}

#[test]
fn short_no_action_parses_and_sets_locality() {
    let log = EventLog::parse(&read("go-attestation/short_no_action_eventlog")).expect("parse");
    assert_eq!(log.events.len(), 1);
    assert_eq!(log.events[0].parsed, EventDetail::StartupLocality(3));
    let r = log.replay();
    assert_eq!(r.startup_locality, Some(3));
    let mut pcr0 = vec![0u8; 20];
    pcr0[19] = 3;
    assert_eq!(r.value(HashAlg::SHA1, 0), Some(pcr0));
}

#[test]
fn other_go_attestation_logs_parse() {
    for name in [
        "crypto_agile_eventlog",
        "coreos_36_shielded_vm_no_secure_boot_eventlog",
    ] {
        let log = EventLog::parse(&read(&format!("go-attestation/{name}")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(log.format, LogFormat::CryptoAgile);
        assert!(log.events.len() > 10);
        assert!(!log
            .events
            .iter()
            .any(|e| matches!(e.parsed, EventDetail::Unparsed(_))));
    }
}

#[test]
fn windows_gcp_log_matches_quoted_sha1_pcrs() {
    let log = EventLog::parse(&read("go-attestation/windows_gcp_eventlog.bin")).expect("parse");
    let v: serde_json::Value =
        serde_json::from_slice(&read("go-attestation/windows_gcp_pcrs.json")).expect("json");
    let bank: BTreeMap<u32, Vec<u8>> = v["pcrs"]
        .as_object()
        .expect("pcrs")
        .iter()
        .map(|(i, h)| {
            (
                i.parse().expect("idx"),
                hex::decode(h.as_str().expect("hex")).expect("hex"),
            )
        })
        .collect();
    let want: Registers = [(HashAlg::SHA1, bank)].into_iter().collect();
    let r = log.replay();
    r.compare(&want, CompareScope::LoggedRegisters)
        .expect("logged PCRs match the quote");
    for pcr in [0u32, 4, 5, 7, 11, 12, 13, 14] {
        assert!(r.sources.contains_key(&pcr), "PCR{pcr} is logged");
    }
}

#[test]
fn typed_events_decode() {
    let log = EventLog::parse(&read("go-eventlog-tpm/rhel8-uefi.bin")).expect("parse");
    let sb = log
        .events
        .iter()
        .find_map(|e| match &e.parsed {
            EventDetail::EfiVariable(v)
                if e.event_type == EventType::EV_EFI_VARIABLE_DRIVER_CONFIG =>
            {
                Some(v.clone())
            }
            _ => None,
        })
        .expect("a driver-config variable");
    assert_eq!(sb.name, "SecureBoot");
    assert_eq!(sb.guid, "8be4df61-93ca-11d2-aa0d-00e098032b8c");
    assert!(log.events.iter().any(|e| matches!(
        &e.parsed,
        EventDetail::EfiImageLoad(i) if i.device_path_len > 0
    )));
    let seps = log
        .events
        .iter()
        .filter(|e| e.parsed == EventDetail::Separator(0))
        .count();
    assert!(seps >= 8, "one separator per PCR 0..7");
    match &log.events[0].parsed {
        EventDetail::SpecId(s) => {
            assert_eq!(s.algorithms, log.algorithms);
            assert!(s.algorithms.contains(&(HashAlg::SHA256, 32)));
        }
        other => panic!("first event is {other:?}"),
    }
}

#[test]
fn trailing_garbage_and_padding_rules() {
    let mut b = read("go-eventlog-tpm/cos-85-amd-sev.bin");
    EventLog::parse(&b).expect("exact");
    b.extend_from_slice(&[0xff; 64]);
    assert_eq!(
        EventLog::parse(&b).expect_err("padding").code(),
        "EVENTLOG_TRAILING_DATA"
    );
    assert_eq!(EventLog::parse_padded(&b).expect("padded").padding, 64);
    let orig = read("go-eventlog-tpm/cos-85-amd-sev.bin");
    let t = &orig[..orig.len() - 3];
    assert_eq!(
        EventLog::parse(t).expect_err("truncated").code(),
        "EVENTLOG_TRUNCATED"
    );
}
