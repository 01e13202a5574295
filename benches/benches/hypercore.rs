//! Hypercore log throughput on the default disk backend, and proof create + verify on a
//! 1M-block tree. Compare with `node tests/interop/scripts/bench-hypercore.js` (same workloads
//! on JavaScript corestore 7 / RocksDB, same machine).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use corestore_hypercore::{Data, Hypercore, NodeRequest, Request, UpgradeRequest};
use corestore_keys::KeyPair;
use corestore_storage::{DiskStorage, MemoryStorage, Storage, StorageBackend};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

const BLOCKS: u64 = 100_000;
const SINGLE: u64 = 20_000;
const SIZE: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime")
}

/// Distinct blocks: the index in the first 8 bytes, as the JavaScript baseline writes them.
fn make_block(template: &[u8], i: u64) -> Vec<u8> {
    let mut b = template.to_vec();
    b[..8].copy_from_slice(&i.to_le_bytes());
    b
}

async fn disk_core(dir: &std::path::Path, seed: u8) -> (Arc<Storage>, Hypercore) {
    let backend: Arc<dyn StorageBackend> = Arc::new(DiskStorage::open(dir).expect("disk store"));
    let storage = Storage::open(backend).await.expect("storage");
    let core =
        Hypercore::create(&storage, KeyPair::from_seed(&[seed; 32]), None).await.expect("core");
    (storage, core)
}

async fn append_all(core: &mut Hypercore, template: &[u8], count: u64, batch: u64) {
    let mut i = 0;
    while i < count {
        let end = (i + batch).min(count);
        let blocks: Vec<Vec<u8>> = (i..end).map(|j| make_block(template, j)).collect();
        core.append(&blocks).await.expect("append");
        i = end;
    }
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let template = vec![0xab; SIZE];
    let mut group = c.benchmark_group("hypercore append 1 KiB (disk)");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    for (count, batch) in [(BLOCKS, 100u64), (SINGLE, 1)] {
        group.throughput(Throughput::Elements(count));
        group.bench_function(BenchmarkId::new("blocks per append", batch), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    total += rt.block_on(async {
                        let (_storage, mut core) = disk_core(dir.path(), 1).await;
                        let start = Instant::now();
                        append_all(&mut core, &template, count, batch).await;
                        start.elapsed()
                    });
                }
                total
            });
        });
    }
    group.finish();
}

fn sequential_get(c: &mut Criterion) {
    let rt = runtime();
    let template = vec![0xcd; SIZE];
    let dir = tempfile::tempdir().expect("tempdir");
    let discovery_key = rt.block_on(async {
        let (_storage, mut core) = disk_core(dir.path(), 2).await;
        append_all(&mut core, &template, BLOCKS, 100).await;
        core.flush().await.expect("flush");
        *core.discovery_key()
    });
    // Reopened (cold), as the JavaScript baseline does.
    let core = rt.block_on(async {
        let backend: Arc<dyn StorageBackend> =
            Arc::new(DiskStorage::open(dir.path()).expect("disk store"));
        let storage = Storage::open(backend).await.expect("storage");
        Hypercore::open_existing(&storage, &discovery_key).await.expect("open").expect("stored")
    });
    let mut group = c.benchmark_group("hypercore get 1 KiB (disk)");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(BLOCKS));
    group.bench_function("sequential 100k", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..BLOCKS {
                    let block = core.get(i).await.expect("get").expect("present");
                    assert_eq!(block.len(), SIZE);
                }
            });
        });
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    const LENGTH: u64 = 1 << 20;
    let rt = runtime();
    let (source, replica) = rt.block_on(async {
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let storage = Storage::open(backend).await.expect("storage");
        let mut source =
            Hypercore::create(&storage, KeyPair::from_seed(&[3; 32]), None).await.expect("core");
        append_all(&mut source, &[0x11; 64], LENGTH, 4096).await;
        let mut replica =
            Hypercore::open(&storage_mem().await, *source.key(), None).await.expect("replica");
        let upgrade = Request {
            id: 1,
            upgrade: Some(UpgradeRequest { start: 0, length: LENGTH }),
            manifest: true,
            ..Request::default()
        };
        let data = source.create_proof(&upgrade).await.expect("upgrade proof");
        replica.receive(data).await.expect("upgrade");
        (source, replica)
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let roots = replica.roots().to_vec();
    // The sparse replica holds only the roots: it asks for the full path of a random block.
    let mut random_request = move || {
        let index = rng.gen_range(0..LENGTH);
        let mut ite = corestore_hypercore::flat::Iter::new(2 * index);
        let mut nodes = 0;
        while !roots.iter().any(|r| r.index == ite.index) {
            ite.parent();
            nodes += 1;
        }
        Request { id: 1, block: Some(NodeRequest { index, nodes }), ..Request::default() }
    };
    let mut group = c.benchmark_group("hypercore proof (1M-block tree)");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.bench_function("create, random block", |b| {
        b.iter_batched(
            &mut random_request,
            |request| rt.block_on(source.create_proof(&request)).expect("proof"),
            criterion::BatchSize::SmallInput,
        );
    });
    group.bench_function("verify, random block", |b| {
        b.iter_batched(
            || rt.block_on(source.create_proof(&random_request())).expect("proof"),
            |data| rt.block_on(replica.verify(data)).expect("verify"),
            criterion::BatchSize::SmallInput,
        );
    });
    group.bench_function("create + encode + decode + verify, random block", |b| {
        b.iter_batched(
            &mut random_request,
            |request| {
                rt.block_on(async {
                    let data = source.create_proof(&request).await.expect("proof");
                    let data = Data::decode(&data.encode()).expect("decode");
                    replica.verify(data).await.expect("verify")
                })
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

async fn storage_mem() -> Arc<Storage> {
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    Storage::open(backend).await.expect("storage")
}

criterion_group!(benches, append, sequential_get, proofs);
criterion_main!(benches);
