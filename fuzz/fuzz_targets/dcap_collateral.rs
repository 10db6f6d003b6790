//! DCAP collateral: a `QuoteCollateralV3` document, and a TCB info or QE
//! identity JSON value read into dcap-qvl's model and checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_evidence::dcap::collateral::{parse_qe_identity, parse_tcb_info};
use tl_evidence::dcap::TdxCollateral;

fuzz_target!(|data: &[u8]| {
    let _ = parse_tcb_info(data);
    let _ = parse_qe_identity(data);
    if let Ok(c) = TdxCollateral::from_json(data) {
        let _ = c.validity_window();
    }
});
