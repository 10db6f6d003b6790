//! TPMS_ATTEST, TPMT_SIGNATURE and AK public areas, and a quote verified with
//! the bytes split between them. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_evidence::tpm::{parse_ak, verify_quote, AkTrust, PcrValues, TpmSignature, TpmsAttest};

fuzz_target!(|data: &[u8]| {
    let _ = TpmsAttest::parse(data);
    let _ = TpmSignature::parse(data);
    let _ = parse_ak(data);
    let _ = tl_evidence::tpm::azure::HclReport::parse(data);
    // attest | signature | AK, split by the first two bytes.
    if data.len() > 2 {
        let a = usize::from(data[0]).min(data.len() - 2);
        let rest = &data[2 + a..];
        let s = usize::from(data[1]).min(rest.len());
        let (attest, rest) = (&data[2..2 + a], rest);
        let (sig, ak) = rest.split_at(s);
        if let Ok(k) = parse_ak(ak) {
            let _ = verify_quote(
                attest,
                sig,
                &PcrValues::new(),
                Some(&AkTrust::Pinned(k)),
                &[],
            );
        }
    }
    if let Ok(ev) = tl_evidence::tpm::TpmQuoteEvidence::from_json(data) {
        let _ = ev.pcr_values();
    }
});
