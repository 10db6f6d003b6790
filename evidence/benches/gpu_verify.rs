//! Verifications per second of one H100 SPDM report with a cached
//! (pre-verified) device chain, and with the chain checked each time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tl_evidence::nvidia::certs::{pem_certificates, ChainKind};
use tl_evidence::nvidia::spdm::decode_hex_report;
use tl_evidence::nvidia::{
    verify_device_chain, verify_report, verify_report_with_chain, GpuAnchors,
};

const NOW: u64 = 1_735_689_600;

fn data(rel: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../shared/testdata/nvidia-gpu/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
}

fn bench(c: &mut Criterion) {
    let report = decode_hex_report(&data("nvtrust/hopperAttestationReport.txt")).expect("hex");
    let chain =
        pem_certificates(&data("nvtrust/hopperCertChain.txt"), ChainKind::Device).expect("pem");
    let nonce: [u8; 32] =
        hex::decode("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
            .expect("hex")
            .try_into()
            .expect("32");
    let anchors = GpuAnchors::nvidia();
    let cached = verify_device_chain(&chain, &anchors, NOW).expect("chain");
    let mut g = c.benchmark_group("gpu_verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("h100_report_cached_chain", |b| {
        b.iter(|| verify_report_with_chain(&report, &cached, &nonce, NOW).expect("verifies"))
    });
    g.bench_function("h100_report_full_chain", |b| {
        b.iter(|| verify_report(&report, &chain, &nonce, &anchors, NOW).expect("verifies"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
