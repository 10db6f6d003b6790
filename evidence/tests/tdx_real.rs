//! Real TDX quotes from the shared test data: parsing against the manifest
//! and cross-check values, and signature/chain verification at the
//! manifest's times. The files are read at run time from `shared/testdata`
//! beside the repository; a missing file fails the test.

use tl_evidence::tdx::verify::verify_quote_signatures;
use tl_evidence::tdx::{BodyKind, Quote};
use tl_evidence::verify::{verify_bundle, AnchorKind, TrustAnchors, VerifyOptions};

fn data(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("test data {path}: {e}"));
    if rel.ends_with(".hex") || rel.ends_with(".txt") {
        let s = String::from_utf8(raw).expect("hex text");
        let s = s.trim().trim_start_matches("0x");
        hex::decode(s).expect("hex")
    } else {
        raw
    }
}

fn intel() -> TrustAnchors {
    TrustAnchors::intel(data("tdx/dcap-qvl/TrustedRootCA.der"))
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

struct Expect {
    file: &'static str,
    version: u16,
    kind: BodyKind,
    mrtd: &'static str,
    tee_tcb_svn: &'static str,
    fmspc: &'static str,
    /// A time at which the chain is valid (from the manifest where it gives one).
    now: u64,
}

const CASES: &[Expect] = &[
    Expect {
        file: "tdx/dcap-qvl/tdx_quote",
        version: 4,
        kind: BodyKind::Td10,
        mrtd: "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
        tee_tcb_svn: "06010300000000000000000000000000",
        fmspc: "b0c06f000000",
        now: 1_752_919_234,
    },
    Expect {
        file: "tdx/go-tdx-guest/quote_v5_sample.dat",
        version: 5,
        kind: BodyKind::Td15,
        mrtd: "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876",
        tee_tcb_svn: "0b010400000000000000000000000000",
        fmspc: "90c06f000000",
        now: 1_770_080_400, // 2026-02-03T01:00:00Z
    },
];

#[test]
fn real_quotes_parse_to_crosscheck_values() {
    for c in CASES {
        let q = Quote::parse(&data(c.file)).unwrap_or_else(|e| panic!("{}: {e}", c.file));
        assert_eq!(q.header.version, c.version, "{}", c.file);
        assert_eq!(q.body.kind, c.kind, "{}", c.file);
        assert_eq!(h(&q.body.mrtd), c.mrtd, "{}", c.file);
        assert_eq!(h(&q.body.tee_tcb_svn), c.tee_tcb_svn, "{}", c.file);
        assert_eq!(
            h(&q.header.qe_vendor_id),
            "939a7233f79c4ca9940a0db3957f0607"
        );
    }
}

#[test]
fn real_quotes_verify_signatures_and_chain() {
    for c in CASES {
        let v = verify_quote_signatures(&data(c.file), &intel(), c.now)
            .unwrap_or_else(|e| panic!("{}: {} {e}", c.file, e.code()));
        assert_eq!(v.anchor, AnchorKind::Intel);
        let pck = v.pck.as_ref().expect("PCK SGX extension");
        assert_eq!(h(&pck.fmspc), c.fmspc, "{}", c.file);
    }
}

#[test]
fn real_quote_without_collateral_is_refused() {
    let b = tl_evidence::bundle::EvidenceBundle {
        version: tl_evidence::bundle::BUNDLE_VERSION,
        cpu: tl_evidence::bundle::CpuEvidence {
            kind: tl_evidence::bundle::CpuEvidenceKind::TdxQuote,
            quote: data("tdx/dcap-qvl/tdx_quote"),
            certificates: vec![],
        },
        gpus: vec![],
    };
    let e = verify_bundle(&b, &VerifyOptions::new(1_752_919_234, intel()))
        .expect_err("must be rejected");
    assert_eq!(e.code(), "EVIDENCE_COLLATERAL_MISSING");
}
