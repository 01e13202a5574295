//! Key derivation throughput.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use corestore_keys::{CoreKey, NamedCore, Namespace, PrimaryKey};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn derive(c: &mut Criterion) {
    let primary = PrimaryKey::from_bytes([7; 32]);
    let ns = Namespace::ROOT.child("bench");
    c.bench_function("named core (seed, key pair, manifest, key, discovery key)", |b| {
        b.iter(|| NamedCore::derive(&primary, black_box(&ns), black_box(b"my-core")));
    });
    let key = CoreKey::from_bytes([9; 32]);
    c.bench_function("discovery key", |b| b.iter(|| black_box(&key).discovery_key()));
}

criterion_group!(benches, derive);
criterion_main!(benches);
