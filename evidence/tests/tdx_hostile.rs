//! Hostile input: the quote parser and verifier are total.

use proptest::prelude::*;
use tl_evidence::sim::{SimMeasurements, SimTee};
use tl_evidence::tdx::verify::verify_quote_signatures;
use tl_evidence::tdx::Quote;
use tl_evidence::verify::TrustAnchors;

const NOW: u64 = 1_760_000_000;

fn sim_quote() -> (SimTee, Vec<u8>) {
    let sim = SimTee::from_seed([3; 32]);
    let q = sim.tdx_quote(&[0xab; 64], &SimMeasurements::default());
    (sim, q)
}

fn real_quote() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/tdx/dcap-qvl/tdx_quote"
    );
    std::fs::read(path).unwrap_or_else(|e| panic!("test data {path}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Quote::parse(&bytes);
        let _ = verify_quote_signatures(&bytes, &TrustAnchors::default(), NOW);
    }

    #[test]
    fn random_bytes_behind_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..1400)) {
        // Get past the header checks, so the length fields are random.
        let mut q = real_quote()[..48].to_vec();
        q.extend_from_slice(&tail);
        // Too short to hold a body, signature, key and certification header:
        // always an error, whatever the length fields say.
        if q.len() < 48 + 584 + 4 + 64 + 64 + 6 + 384 + 64 + 2 + 6 {
            prop_assert!(Quote::parse(&q).is_err());
        } else {
            let _ = Quote::parse(&q);
        }
    }

    #[test]
    fn mutated_sim_quotes_are_rejected(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)
    ) {
        let (sim, q) = sim_quote();
        let mut t = q.clone();
        for (i, x) in &edits {
            let at = i.index(t.len());
            t[at] ^= x;
        }
        let anchors = TrustAnchors::simulated(sim.root_certificate_der());
        if let Ok(v) = verify_quote_signatures(&t, &anchors, NOW) {
            // Nothing signs the PEM text of the PCK chain; only a change the
            // PEM decoder ignores (whitespace for a line break) can pass, and
            // then everything verified is the original.
            let orig = verify_quote_signatures(&q, &anchors, NOW).expect("original verifies");
            let pem_start = q.len() - orig.quote.pck_chain_pem.len();
            let first_diff = q.iter().zip(&t).position(|(a, b)| a != b);
            prop_assert!(first_diff.is_some_and(|i| i >= pem_start));
            prop_assert_eq!(v.pck_chain_der, orig.pck_chain_der);
        }
    }

    #[test]
    fn mutated_lengths_in_real_quote(pos in 0usize..5006, v in any::<u32>()) {
        // Overwrite any 4 bytes with an arbitrary value (hits every length field).
        let mut t = real_quote();
        let at = pos.min(t.len() - 4);
        t[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let _ = Quote::parse(&t);
        let _ = verify_quote_signatures(&t, &TrustAnchors::default(), NOW);
    }

    #[test]
    fn truncated_or_extended(cut in 0usize..5006, extra in proptest::collection::vec(any::<u8>(), 0..256)) {
        let q = real_quote();
        // 70 trailing zero bytes follow the signature data in this file.
        let sig_end = q.len() - 70;
        let cut = cut.min(q.len());
        let r = Quote::parse(&q[..cut]);
        prop_assert_eq!(r.is_ok(), cut >= sig_end);
        let mut ext = q.clone();
        ext.extend_from_slice(&extra);
        prop_assert!(Quote::parse(&ext).is_ok());
    }
}
