//! SEV-SNP attestation reports.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = tl_evidence::snp::SnpReport::parse(data) {
        let _ = format!("{r:?}");
    }
    let _ = tl_evidence::snp::certs::AmdCert::parse(data);
});
