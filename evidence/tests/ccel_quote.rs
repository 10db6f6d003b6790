//! The go-tdx-guest COS quote and its CCEL log: the log replays to exactly
//! the RTMRs of the quote (the quote parsed by this crate, the log by
//! tl-measured-boot).

use tl_measured_boot::eventlog::ccel::{rtmr_registers, CcelTable};
use tl_measured_boot::eventlog::{CompareScope, EventLog, HashAlg};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tpm-eventlog/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing test data {p}: {e}"))
}

#[test]
fn go_tdx_guest_ccel_matches_its_quote_end_to_end() {
    let quote = read("go-tdx-guest-ccel/cos-113-tdx-quote.dat");
    let q = tl_evidence::tdx::Quote::parse(&quote).expect("quote parses");
    let table = CcelTable::parse(&read("go-tdx-guest-ccel/ccel_table.dat")).expect("table");
    assert_eq!(table.cc_type, 2, "TDX");
    let data = read("go-tdx-guest-ccel/ccel_data.dat");
    assert_eq!(table.log_area_length, data.len() as u64);
    let log = EventLog::parse_ccel(&data).expect("parse");
    let r = log.replay_ccel().expect("replay");
    r.compare(&rtmr_registers(&q.body.rtmr), CompareScope::AllExpected)
        .expect("RTMRs of the quote");
    assert_eq!(
        hex::encode(r.value(HashAlg::SHA384, 0).expect("rtmr0")),
        "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6"
    );
    // Strict parsing refuses the padded region.
    assert_eq!(
        EventLog::parse(&data).expect_err("padding").code(),
        "EVENTLOG_TRAILING_DATA"
    );
    // A flipped digest byte in the log breaks the match.
    let mut bad = data.clone();
    let off = 18101 - 60;
    bad[off] ^= 1;
    let changed = EventLog::parse_ccel(&bad)
        .ok()
        .and_then(|l| l.replay_ccel().ok())
        .map(|r| r.compare(&rtmr_registers(&q.body.rtmr), CompareScope::AllExpected));
    assert!(!matches!(changed, Some(Ok(()))));
}
