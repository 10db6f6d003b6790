//! tl-evidence's DCAP verification held against dcap-qvl, the reference
//! implementation, on every real quote in the test data whose collateral
//! dcap-qvl reads (its `QuoteCollateralV3` JSON), at the times the sources
//! verified them, then on every single-bit flip of each quote.
//!
//! Fails (exit 1) when tl-evidence accepts what dcap-qvl rejects, or when
//! both accept with another TCB status or other advisories. Flips that only
//! dcap-qvl accepts are listed (tl-evidence is stricter there) but do not
//! fail. Prints a JSON summary.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::dcap::TdxCollateral;
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/tdx/");

fn data(rel: &str) -> Vec<u8> {
    let raw = std::fs::read(format!("{DATA}{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"));
    if rel.ends_with(".txt") || rel.ends_with(".hex") {
        let s = String::from_utf8(raw).expect("hex text");
        hex::decode(s.trim().trim_start_matches("0x")).expect("hex")
    } else {
        raw
    }
}

/// A verdict: accepted with (TCB status, advisory IDs), or rejected with why.
type Verdict = Result<(String, Vec<String>), String>;

struct Case {
    name: &'static str,
    quote: &'static str,
    collateral: &'static str,
    now: u64,
    sgx: bool,
    /// What the sources say (MANIFEST.md): `Some(status)` or `None` = rejected.
    expected: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "dcap-qvl tdx_quote",
        quote: "dcap-qvl/tdx_quote",
        collateral: "dcap-qvl/tdx_quote_collateral.json",
        now: 1_752_919_234,
        sgx: false,
        expected: Some("UpToDate"),
    },
    Case {
        name: "dcap-qvl tdx_quote_outdated",
        quote: "dcap-qvl/tdx_quote_outdated",
        collateral: "dcap-qvl/tdx_quote_outdated_collateral.json",
        now: 1_774_003_274,
        sgx: false,
        expected: None,
    },
    Case {
        name: "dcap-qvl near_quote",
        quote: "dcap-qvl/near_quote_hex.txt",
        collateral: "dcap-qvl/near_quote_collateral.json",
        now: 1_759_276_800,
        sgx: false,
        expected: Some("UpToDate"),
    },
    Case {
        name: "go-tdx-guest quote_v5_sample",
        quote: "go-tdx-guest/quote_v5_sample.dat",
        collateral: "dcap-qvl/tdx_quote_outdated_collateral.json",
        now: 1_774_003_274,
        sgx: false,
        expected: Some("UpToDate"),
    },
    Case {
        name: "dcap-qvl sgx_quote",
        quote: "dcap-qvl/sgx_quote",
        collateral: "dcap-qvl/sgx_quote_collateral.json",
        now: 1_752_919_277,
        sgx: true,
        expected: Some("ConfigurationAndSWHardeningNeeded"),
    },
    Case {
        name: "tdx_quote with another FMSPC's collateral",
        quote: "dcap-qvl/tdx_quote",
        collateral: "dcap-qvl/near_quote_collateral.json",
        now: 1_759_276_800,
        sgx: false,
        expected: None,
    },
    Case {
        name: "tdx_quote a year after its collateral",
        quote: "dcap-qvl/tdx_quote",
        collateral: "dcap-qvl/tdx_quote_collateral.json",
        now: 1_752_919_234 + 365 * 86_400,
        sgx: false,
        expected: None,
    },
];

fn ours(quote: &[u8], col: &TdxCollateral, now: u64, sgx: bool) -> Verdict {
    let anchors = TrustAnchors::intel(tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec());
    if sgx {
        return tl_evidence::dcap::sgx::verify_sgx_quote(quote, &anchors, col, now)
            .map(|v| (format!("{:?}", v.tcb.status), v.tcb.advisory_ids))
            .map_err(|e| e.code().to_string());
    }
    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: quote.to_vec(),
        certificates: vec![],
    });
    let mut opts = VerifyOptions::new(now, anchors);
    opts.collateral = Some(Collateral::tdx(col.clone()));
    verify_bundle(&bundle, &opts)
        .map(|v| (format!("{:?}", v.claims.tcb_status), v.claims.advisory_ids))
        .map_err(|e| e.code().to_string())
}

fn reference(quote: &[u8], col: &dcap_qvl::QuoteCollateralV3, now: u64) -> Verdict {
    match catch_unwind(AssertUnwindSafe(|| {
        dcap_qvl::verify::verify(quote, col, now)
    })) {
        Ok(Ok(r)) => {
            let mut adv = r.advisory_ids;
            adv.sort();
            Ok((r.status, adv))
        }
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("dcap-qvl panicked".into()),
    }
}

fn sorted(v: Verdict) -> Verdict {
    v.map(|(s, mut a)| {
        a.sort();
        (s, a)
    })
}

fn main() {
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for c in CASES {
        let quote = data(c.quote);
        let col_json = data(c.collateral);
        let col = TdxCollateral::from_json(&col_json).expect("tl-evidence reads the collateral");
        let qcol: dcap_qvl::QuoteCollateralV3 =
            serde_json::from_slice(&col_json).expect("dcap-qvl reads the collateral");

        let a = sorted(ours(&quote, &col, c.now, c.sgx));
        let b = reference(&quote, &qcol, c.now);
        let status = |v: &Verdict| v.as_ref().ok().map(|(s, _)| s.clone());
        if status(&a).as_deref() != c.expected {
            failures.push(format!(
                "{}: tl-evidence {a:?}, sources say {:?}",
                c.name, c.expected
            ));
        }
        match (&a, &b) {
            (Ok(x), Ok(y)) if x != y => {
                failures.push(format!("{}: tl-evidence {x:?}, dcap-qvl {y:?}", c.name))
            }
            (Ok(x), Err(e)) => failures.push(format!(
                "{}: tl-evidence accepts {x:?}, dcap-qvl rejects: {e}",
                c.name
            )),
            _ => {}
        }

        // Every single-bit flip of an accepted quote (one bit per byte,
        // rotating, so every byte is touched).
        let (mut both, mut neither, mut only_reference) = (0usize, 0usize, Vec::new());
        if a.is_ok() {
            for i in 0..quote.len() {
                let mut q = quote.clone();
                q[i] ^= 1 << (i % 8);
                let a = sorted(ours(&q, &col, c.now, c.sgx));
                let b = reference(&q, &qcol, c.now);
                match (&a, &b) {
                    (Ok(x), Ok(y)) if x == y => both += 1,
                    (Ok(x), Ok(y)) => failures.push(format!(
                        "{} byte {i}: tl-evidence {x:?}, dcap-qvl {y:?}",
                        c.name
                    )),
                    (Ok(x), Err(e)) => failures.push(format!(
                        "{} byte {i}: tl-evidence accepts {x:?}, dcap-qvl rejects: {e}",
                        c.name
                    )),
                    (Err(e), Ok(_)) => only_reference.push(format!("byte {i}: tl-evidence {e}")),
                    (Err(_), Err(_)) => neither += 1,
                }
            }
        }
        summary.push(serde_json::json!({
            "case": c.name,
            "tl_evidence": format!("{a:?}"),
            "dcap_qvl": format!("{b:?}"),
            "flips": {
                "bytes": if a.is_ok() { quote.len() } else { 0 },
                "both_accept_same_verdict": both,
                "both_reject": neither,
                "only_dcap_qvl_accepts": only_reference,
            },
        }));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(
            &serde_json::json!({ "cases": summary, "failures": failures })
        )
        .expect("json")
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
