//! NVIDIA SPDM GET_MEASUREMENTS transcripts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = tl_evidence::nvidia::spdm::parse_report(data) {
        let _ = tl_evidence::nvidia::OpaqueInfo::from_report(&r);
    }
});
