//! The parser and replay are total on hostile input.

use proptest::prelude::*;
use tl_measured_boot::eventlog::EventLog;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tpm-eventlog/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing test data {p}: {e}"))
}

fn exercise(b: &[u8]) {
    for log in [EventLog::parse(b), EventLog::parse_padded(b)]
        .into_iter()
        .flatten()
    {
        let _ = log.replay();
        let _ = log.replay_ccel();
        let _ = log.replay_assuming_exit_boot_services();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&b);
    }

    #[test]
    fn mutated_real_logs_never_panic(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let name = ["go-eventlog-tpm/rhel8-uefi.bin", "go-eventlog-tpm/debian-10.bin",
            "go-eventlog-ccel/cos-113-intel-tdx-dupe-separator-unpadded.bin"][which];
        let mut b = read(name);
        for (pos, x) in flips {
            let n = b.len();
            b[pos % n] ^= x | 1;
        }
        let n = b.len();
        b.truncate(cut % (n + 1));
        exercise(&b);
    }
}
