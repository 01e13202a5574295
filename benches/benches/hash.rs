//! Hash throughput.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use corestore_keys::hash::blake2b_256;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn hash(c: &mut Criterion) {
    let data = vec![7u8; 1024];
    let mut g = c.benchmark_group("blake2b-256");
    g.throughput(Throughput::Bytes(1024 + 9));
    g.bench_function("leaf hash of 1 KiB", |b| {
        b.iter(|| blake2b_256(&[&[0u8], &1024u64.to_le_bytes(), black_box(&data)]));
    });
    g.throughput(Throughput::Bytes(73));
    g.bench_function("parent hash", |b| {
        b.iter(|| {
            blake2b_256(&[&[1u8], &2048u64.to_le_bytes(), black_box(&[3u8; 32]), &[4u8; 32]])
        });
    });
    g.finish();
}

criterion_group!(benches, hash);
criterion_main!(benches);
