//! The SPDM parser and the GPU verifier on hostile input: no panics, and
//! mutated real reports never verify.

use proptest::prelude::*;
use tl_evidence::nvidia::certs::{pem_certificates, ChainKind};
use tl_evidence::nvidia::spdm::{decode_hex_report, parse_report};
use tl_evidence::nvidia::{
    verify_device_chain, verify_report, verify_report_with_chain, GpuAnchors,
};

const NOW: u64 = 1_735_689_600;
const NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

fn data(rel: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../shared/testdata/nvidia-gpu/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
}

fn sample() -> Vec<u8> {
    decode_hex_report(&data("nvtrust/hopperAttestationReport.txt")).expect("hex")
}

fn nonce() -> [u8; 32] {
    hex::decode(NONCE).expect("hex").try_into().expect("32")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_report(&bytes);
        let _ = decode_hex_report(&bytes);
        let _ = pem_certificates(&bytes, ChainKind::Device);
        let _ = verify_report(&bytes, &[bytes.clone(), bytes.clone()], &[0; 32], &GpuAnchors::nvidia(), NOW);
    }

    #[test]
    fn random_prefix_of_a_real_header_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..400),
        cut in 0usize..200,
    ) {
        let mut r = sample();
        r.truncate(37 + cut);
        r.extend_from_slice(&tail);
        let _ = parse_report(&r);
    }

    #[test]
    fn mutated_real_reports_never_verify(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mut r = sample();
        for (i, x) in &edits {
            let i = i.index(r.len());
            r[i] ^= x;
        }
        let chain = pem_certificates(&data("nvtrust/hopperCertChain.txt"), ChainKind::Device).expect("pem");
        let c = verify_device_chain(&chain, &GpuAnchors::nvidia(), NOW).expect("chain");
        prop_assert!(verify_report_with_chain(&r, &c, &nonce(), NOW).is_err());
    }

    #[test]
    fn mutated_chains_never_verify(i in any::<prop::sample::Index>(), x in 1u8..=255, which in 0usize..4) {
        let mut chain = pem_certificates(&data("nvtrust/hopperCertChain.txt"), ChainKind::Device).expect("pem");
        let c = &mut chain[which];
        let i = i.index(c.len());
        c[i] ^= x;
        prop_assert!(verify_report(&sample(), &chain, &nonce(), &GpuAnchors::nvidia(), NOW).is_err());
    }
}
