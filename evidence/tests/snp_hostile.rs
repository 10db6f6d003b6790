//! Hostile input: the SNP parsers and verifier are total.

use proptest::prelude::*;
use tl_evidence::snp::certs::{AmdCert, LeafExtensions};
use tl_evidence::snp::report::{parse_cert_table, SnpReport, REPORT_LEN};
use tl_evidence::snp::verify_snp_evidence;
use tl_evidence::verify::TrustAnchors;
use tl_evidence::{SimSnpMeasurements, SimTee};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn report_parser_is_total(b in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let _ = SnpReport::parse(&b);
    }

    #[test]
    fn cert_table_parser_is_total(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_cert_table(&b);
    }

    #[test]
    fn cert_parser_is_total(b in proptest::collection::vec(any::<u8>(), 0..1500)) {
        if let Ok(c) = AmdCert::parse(&b) {
            let _ = LeafExtensions::parse(&c);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mutated_sim_report_never_panics(i in 0usize..REPORT_LEN, x in 1u8..=255) {
        let t = SimTee::from_seed([1; 32]);
        let (mut r, chain) = t.snp_report(&[0; 64], &SimSnpMeasurements::default());
        r[i] ^= x;
        let res = verify_snp_evidence(
            &r, &chain, &[], &TrustAnchors::simulated(t.root_certificate_der()), 1_750_000_000);
        // Bytes past the signature components are unsigned reserved space.
        if i < 0x330 {
            prop_assert!(res.is_err());
        }
    }

    #[test]
    fn mutated_vcek_never_panics_and_never_verifies(i in 0usize..1200, x in 1u8..=255) {
        let t = SimTee::from_seed([1; 32]);
        let (r, mut chain) = t.snp_report(&[0; 64], &SimSnpMeasurements::default());
        if i < chain[0].len() {
            chain[0][i] ^= x;
            let res = verify_snp_evidence(
                &r, &chain, &[], &TrustAnchors::simulated(t.root_certificate_der()), 1_750_000_000);
            prop_assert!(res.is_err());
        }
    }
}

#[test]
fn truncated_tables_are_malformed() {
    use tl_evidence::snp::report::{build_cert_table, CertKind};
    let t = build_cert_table(&[(CertKind::Vcek, &[1, 2, 3]), (CertKind::Ark, &[4])]);
    assert_eq!(parse_cert_table(&t).expect("whole").len(), 2);
    for n in 0..t.len() {
        if let Err(e) = parse_cert_table(&t[..n]) {
            assert_eq!(e.code(), "SNP_REPORT_MALFORMED");
        } else {
            panic!("truncated table of {n} bytes parsed");
        }
    }
    // A repeated GUID.
    let t = build_cert_table(&[(CertKind::Vcek, &[1]), (CertKind::Vcek, &[2])]);
    assert_eq!(
        parse_cert_table(&t).expect_err("dup").code(),
        "SNP_REPORT_MALFORMED"
    );
}

/// Edit a DER certificate's bytes in place (same length), for extension tests.
fn patch(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let i = der
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    let mut d = der.to_vec();
    d[i..i + to.len()].copy_from_slice(to);
    d
}

#[test]
fn bad_vcek_extensions_give_extension_errors() {
    let vcek = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/sev-snp/trustee/test-vcek.der"
    ))
    .expect("test data trustee/test-vcek.der");
    let bl_oid = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 0x03, 0x01];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // blSPL as a UTF8String instead of an INTEGER.
        (
            patch(
                &vcek,
                &[bl_oid.as_slice(), &[0x04, 0x03, 0x02, 0x01, 0x03]].concat(),
                &[bl_oid.as_slice(), &[0x04, 0x03, 0x0c, 0x01, 0x03]].concat(),
            ),
            "SPL",
        ),
        // blSPL renamed to an unknown OID: missing.
        (
            patch(
                &vcek,
                &[bl_oid.as_slice(), &[0x04, 0x03]].concat(),
                &[&bl_oid[..9], &[0x7f, 0x04, 0x03]].concat(),
            ),
            "blSPL missing",
        ),
        // Product name not an IA5String.
        (
            patch(&vcek, b"\x16\x08Milan-B0", b"\x02\x08Milan-B0"),
            "product",
        ),
    ];
    for (der, what) in cases {
        let e = tl_evidence::snp::verify_leaf_chain(
            std::slice::from_ref(&der),
            &[],
            &TrustAnchors::default(),
            1_750_000_000,
        )
        .expect_err(what);
        assert_eq!(e.code(), "SNP_CERT_EXTENSION", "{what}: {e}");
    }
}
