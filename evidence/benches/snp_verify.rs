//! SEV-SNP report verifications per second, with the VCEK chain verified
//! once and cached (the CA's hot path for a known chip and TCB).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tl_evidence::snp::report::SnpReport;
use tl_evidence::snp::{verify_leaf_chain, verify_report_with_leaf, verify_snp_evidence};
use tl_evidence::verify::TrustAnchors;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/sev-snp/"
);
const NOW: u64 = 1_748_736_000;

fn bench(c: &mut Criterion) {
    let read = |f: &str| std::fs::read(format!("{DATA}{f}")).expect("test data present");
    let report = read("trustee/test-report.bin");
    let vcek = vec![read("trustee/test-vcek.der")];
    let anchors = TrustAnchors::default();
    let leaf = verify_leaf_chain(&vcek, &[], &anchors, NOW).expect("chain");

    let mut g = c.benchmark_group("snp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("report_with_cached_chain", |b| {
        b.iter(|| {
            let r = SnpReport::parse(&report).expect("parses");
            verify_report_with_leaf(&r, &leaf).expect("verifies");
        })
    });
    g.bench_function("report_and_vcek_chain", |b| {
        b.iter(|| verify_snp_evidence(&report, &vcek, &[], &anchors, NOW).expect("verifies"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
