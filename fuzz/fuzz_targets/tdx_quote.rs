//! TDX/SGX quotes (v4, v5) and their signature checks against the Intel root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::verify::{verify_bundle, TrustAnchors, VerifyOptions};

fuzz_target!(|data: &[u8]| {
    let _ = tl_evidence::tdx::Quote::parse(data);
    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: data.to_vec(),
        certificates: vec![],
    });
    let anchors = TrustAnchors::intel(tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec());
    let _ = verify_bundle(&bundle, &VerifyOptions::new(1_760_000_000, anchors));
});
