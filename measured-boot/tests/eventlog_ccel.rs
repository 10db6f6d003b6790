//! Real TDX CCEL logs replay to the RTMR values their sources assert.

use tl_measured_boot::eventlog::ccel::{rtmr_registers, CcelTable};
use tl_measured_boot::eventlog::{CompareScope, EventLog, HashAlg, LogFormat};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tpm-eventlog/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing test data {p}: {e}"))
}

fn h48(s: &str) -> [u8; 48] {
    if s == "0" {
        return [0; 48];
    }
    hex::decode(s).expect("hex").try_into().expect("48 bytes")
}

/// (file, RTMR0..3) from the trustee test_rtmr_integrity assertions.
const TRUSTEE: &[(&str, [&str; 4])] = &[
    ("CCEL_data", [
        "2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4",
        "0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf",
        "0", "0"]),
    ("CCEL_data_gcp", [
        "3300980705adf09d28b707b79699d9874892164280832be2c386a715b6e204e0897fb564a064f810659207ba862b304f",
        "204d49f78d29918fe7b2f694e76653861a0c2a018987d2c3a54266eff737232524cf0af68c4d180e2f8c2c0937f21967",
        "0", "0"]),
    ("CCEL_data_grub", [
        "cec0a104f691f60da2387fea3c2de00c4ac035e2bb479ff02edcce69039d9e9907f0b3e55031da3dc7038f423adebd79",
        "6c289e0c62182d41ebe97bdbc9872d10998a08eaa86adcdc684001a363207ee72942c7522cdf00a4bbc3d784bed7b670",
        "08919d017ba0e52cd6d966351c7de16fe76c1d3d3d3da4554239e4c7d16cb8b82a94e7eaea3a0e6e18eb690b999fd31e",
        "0"]),
    ("CCEL_data_grub_gke", [
        "bc9945139042cf2cc75caf920aa57f14884ecfd7e893bccc51250c8ce90eb53ce72741e6adaa18183eb1331a87d4544a",
        "c17cb288a4dee302bb9ed8d27257a168f3264ad68cab53757f37eeaa7039657fa887cad65cf910e0fdc435ff110f8a7b",
        "334aeba2c985f8886cea97d1ecffbd512769d528b9a94009583db667ad7d2faa7d37fa145d75b192ceee2d2f10b2eb6d",
        "0"]),
    ("CCEL_data_ovmf", [
        "8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193",
        "775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6",
        "94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a",
        "0"]),
];

#[test]
fn trustee_ccel_logs_replay_to_expected_rtmrs() {
    for (name, rtmrs) in TRUSTEE {
        let log = EventLog::parse_ccel(&read(&format!("trustee-ccel/{name}")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(log.format, LogFormat::CryptoAgile);
        assert!(log.padding > 0, "{name}: region is padded");
        let want = rtmr_registers(&rtmrs.map(h48));
        let r = log.replay_ccel().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            r.registers.keys().copied().collect::<Vec<_>>(),
            vec![HashAlg::SHA384]
        );
        r.compare(&want, CompareScope::AllExpected)
            .unwrap_or_else(|e| panic!("{name}: {:?}", e.0));
    }
}

#[test]
fn changed_expected_rtmr_reports_the_log_value() {
    // trustee's negative cases: RTMR1 of CCEL_data with its first nibble
    // changed, RTMR0 of CCEL_data_gcp with its last nibble changed.
    for (name, reg, bad) in [
        ("CCEL_data", 1u32, "2fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf"),
        ("CCEL_data_gcp", 0, "3300980705adf09d28b707b79699d9874892164280832be2c386a715b6e204e0897fb564a064f810659207ba862b304d"),
    ] {
        let (_, rtmrs) = TRUSTEE.iter().find(|(n, _)| *n == name).expect("row");
        let mut want = rtmrs.map(h48);
        want[reg as usize] = h48(bad);
        let log = EventLog::parse_ccel(&read(&format!("trustee-ccel/{name}"))).expect("parse");
        let e = log
            .replay_ccel()
            .expect("replay")
            .compare(&rtmr_registers(&want), CompareScope::AllExpected)
            .expect_err("must mismatch");
        assert_eq!(e.code(), "EVENTLOG_REPLAY_MISMATCH");
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].register, reg);
        assert_eq!(e.0[0].replayed.as_deref(), Some(h48(rtmrs[reg as usize]).as_slice()));
        assert!(!e.0[0].events.is_empty());
    }
}

#[test]
fn no_action_in_grub_gke_is_not_extended() {
    let data = read("trustee-ccel/CCEL_data_grub_gke");
    let log = EventLog::parse_ccel(&data).expect("parse");
    let (_, rtmrs) = TRUSTEE
        .iter()
        .find(|(n, _)| *n == "CCEL_data_grub_gke")
        .expect("row");
    let want = rtmr_registers(&rtmrs.map(h48));
    // Event 1 is an EV_NO_ACTION ("SP800-155 Event3") in register index 0.
    let e1 = &log.events[1];
    assert!(e1.is_no_action());
    assert_eq!(e1.pcr, 0);
    let r = log.replay_ccel().expect("replay");
    r.compare(&want, CompareScope::AllExpected).expect("match");
    assert!(r.sources.values().all(|s| !s.contains(&1)));
    // The same event as an extended type in RTMR0 changes RTMR0.
    let off = 4 + 4 + 20 + 4 + log.events[0].data.len();
    let mut t = data.clone();
    t[off..off + 4].copy_from_slice(&1u32.to_le_bytes());
    t[off + 4..off + 8].copy_from_slice(&6u32.to_le_bytes());
    let e = EventLog::parse_ccel(&t)
        .expect("parse")
        .replay_ccel()
        .expect("replay")
        .compare(&want, CompareScope::AllExpected)
        .expect_err("RTMR0 changes");
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].register, 0);
    assert!(e.0[0].events.contains(&1));
    // Left in index 0 (MRTD, never extended by a log), it is refused.
    t[off..off + 4].copy_from_slice(&0u32.to_le_bytes());
    let err = EventLog::parse_ccel(&t)
        .expect("parse")
        .replay_ccel()
        .expect_err("MR index 0");
    assert_eq!(err.code(), "CCEL_MR_INDEX");
}

#[test]
fn dupe_separator_logs_replay_padded_and_unpadded() {
    let want = [
        "a4de2df23e9611299123ba4359c42a5e578b0f8488bf1bba8ef5606d9ea5d81c97c064b482a5eac537d166bd0f0f752d",
        "0ee9366c928a77092f55e9e114c7394181fd264699155f0df77d23577618d5f650568a17d379355a07bd846e552f4e20",
        "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
    ]
    .map(h48);
    let unpadded = read("go-eventlog-ccel/cos-113-intel-tdx-dupe-separator-unpadded.bin");
    let padded = read("go-eventlog-ccel/cos-113-intel-tdx-dupe-separator.bin");
    let a = EventLog::parse(&unpadded).expect("strict parse of the unpadded log");
    let b = EventLog::parse_ccel(&padded).expect("padded parse");
    assert_eq!(a.events, b.events);
    assert_eq!(a.events.len(), 1 + 43, "Spec ID header + 43 events");
    assert!(EventLog::parse(&padded).is_err());
    a.replay_ccel()
        .expect("replay")
        .compare(&rtmr_registers(&want), CompareScope::AllExpected)
        .expect("RTMR0..2");
}

#[test]
fn ccel_acpi_table() {
    let t = read("go-eventlog-ccel/CCEL.bin");
    let p = CcelTable::parse(&t).expect("table");
    assert_eq!((p.cc_type, p.log_area_length), (2, 65536));
    let mut bad = t.clone();
    bad[0] = b'X';
    assert_eq!(
        CcelTable::parse(&bad).expect_err("sig").code(),
        "CCEL_TABLE_MALFORMED"
    );
    assert!(CcelTable::parse(&t[..40]).is_err());
    let mut bad_len = t.clone();
    bad_len[4] = 57;
    assert!(CcelTable::parse(&bad_len).is_err());
}

#[test]
fn other_ccel_logs_parse() {
    for f in [
        "go-eventlog-ccel/CCEL_unpadded.data.bin",
        "go-eventlog-ccel/event_log.bin",
        "trustee-ccel/CCEL_AAEL_alibabacloud",
        "trustee-ccel/CCEL_data_csv",
    ] {
        let log = EventLog::parse_ccel(&read(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(log.events.len() > 5, "{f}");
    }
    let csv = EventLog::parse_ccel(&read("trustee-ccel/CCEL_data_csv")).expect("csv");
    // An SM3 bank is declared but cannot be replayed here: it is reported.
    let r = csv.replay_ccel().expect("replay");
    assert!(r.skipped_banks.contains(&HashAlg::SM3_256) || !r.registers.is_empty());
}
