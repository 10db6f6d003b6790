//! TCG PC Client event logs (crypto-agile and SHA-1) and CCEL logs: parse,
//! replay, compare. Must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_measured_boot::eventlog::{CompareScope, EventLog, HashAlg, Registers};

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = EventLog::parse(data) {
        let r = log.replay();
        let mut expected = Registers::new();
        expected
            .entry(HashAlg::SHA256)
            .or_default()
            .insert(0, vec![0u8; 32]);
        let _ = r.compare(&expected, CompareScope::AllExpected);
        let _ = r.compare(&expected, CompareScope::LoggedRegisters);
        let _ = log.replay_assuming_exit_boot_services();
    }
    if let Ok(log) = EventLog::parse_ccel(data) {
        let _ = log.replay_ccel();
    }
    let _ = EventLog::parse_padded(data);
});
