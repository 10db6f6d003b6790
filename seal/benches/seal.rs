//! Criterion: open a 64 MiB sealed component into memory, flat vs tree digest.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tl_seal::*;

fn bench_open(c: &mut Criterion) {
    let n = 64usize << 20;
    let pt: Vec<u8> = (0..n)
        .map(|i| (i as u8).wrapping_mul(151) ^ (i >> 12) as u8)
        .collect();
    let key = ContentKey::from_bytes([3; 32]);
    let mut sealed = Vec::with_capacity(n + (1 << 20));
    seal_stream(
        &key,
        SegmentSize::DEFAULT,
        n as u64,
        &mut &pt[..],
        &mut sealed,
        [1; 32],
        DigestSet::SHA256,
        2,
    )
    .unwrap();
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1);
    let mut g = c.benchmark_group("open_64MiB");
    g.throughput(Throughput::Bytes(n as u64));
    g.sample_size(10);
    let mut out = Vec::with_capacity(n);
    for (name, set) in [
        ("flat_sha256", DigestSet::SHA256),
        ("tree_sha256", DigestSet::TREE),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                open_stream(
                    &key,
                    &mut &sealed[..],
                    &mut out,
                    OpenOptions {
                        digests: set,
                        hash_threads: threads,
                    },
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_open);
criterion_main!(benches);
