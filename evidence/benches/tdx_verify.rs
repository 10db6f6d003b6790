//! Full verification of the real dcap-qvl `tdx_quote` (signatures, PCK
//! chain, CRLs, TCB info, QE identity, TCB levels) with collateral parsed
//! once and shared, as a CA caching collateral per FMSPC does.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};
use tl_evidence::{TcbStatus, TdxCollateral, INTEL_SGX_ROOT_CA_DER};

fn data(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("test data {path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: data("tdx/dcap-qvl/tdx_quote"),
        certificates: vec![],
    });
    let raw_col = data("tdx/dcap-qvl/tdx_quote_collateral.json");
    let col = Collateral::tdx(TdxCollateral::from_json(&raw_col).expect("collateral"));
    let opts = VerifyOptions {
        now_unix: 1_752_919_234,
        anchors: TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec()),
        collateral: Some(col),
        expected_nonce: None,
        gpu_anchors: tl_evidence::nvidia::GpuAnchors::nvidia(),
    };
    let v = verify_bundle(&bundle, &opts).expect("verifies");
    assert_eq!(v.claims.tcb_status, TcbStatus::UpToDate);

    let mut g = c.benchmark_group("tdx_verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("full_cached_collateral", |b| {
        b.iter(|| verify_bundle(&bundle, &opts).expect("verifies"))
    });
    let quote = bundle.cpu.quote.clone();
    g.bench_function("quote_signatures_only", |b| {
        b.iter(|| {
            tl_evidence::tdx::verify::verify_quote_signatures(&quote, &opts.anchors, opts.now_unix)
                .expect("verifies")
        })
    });
    g.bench_function("bundle_digest", |b| b.iter(|| bundle.digest()));
    g.bench_function("parse_collateral", |b| {
        b.iter(|| TdxCollateral::from_json(&raw_col).expect("collateral"))
    });
    g.bench_function("full_fresh_collateral", |b| {
        b.iter(|| {
            let o = VerifyOptions {
                collateral: Some(Collateral::tdx(
                    TdxCollateral::from_json(&raw_col).expect("collateral"),
                )),
                ..opts.clone()
            };
            verify_bundle(&bundle, &o).expect("verifies")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
