//! Log throughput through the `Corestore` facade on the default disk backend (the workloads of
//! `corestore_benches::log`, which `compare` runs against `tests/interop/scripts/
//! bench-hypercore.js` in the same run), and proof create + verify on a 1M-block tree.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use corestore::{CoreRef, Corestore};
use corestore_benches::log;
use corestore_hypercore::{Data, Hypercore, NodeRequest, Request, UpgradeRequest};
use corestore_keys::KeyPair;
use corestore_storage::{MemoryStorage, Storage, StorageBackend};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

const BLOCKS: u64 = 100_000;
const SINGLE: u64 = 20_000;
const SIZE: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

async fn append_all(core: &mut Hypercore, template: &[u8], count: u64, batch: u64) {
    let mut i = 0;
    while i < count {
        let end = (i + batch).min(count);
        let blocks: Vec<Vec<u8>> = (i..end).map(|j| log::block(template, j)).collect();
        core.append(&blocks).await.expect("append");
        i = end;
    }
}

/// The `append` rows of the `compare` harness (`corestore_benches::log`), as a criterion loop.
fn append(c: &mut Criterion) {
    let rt = runtime();
    let template = log::template(SIZE);
    let mut group = c.benchmark_group("corestore append 1 KiB (disk)");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    for (count, batch) in [(BLOCKS, 100u64), (SINGLE, 1)] {
        group.throughput(Throughput::Elements(count));
        group.bench_function(BenchmarkId::new("blocks per append", batch), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    total += rt.block_on(async {
                        let store = Corestore::open(dir.path()).await.expect("store");
                        let core =
                            store.get(CoreRef::KeyPair(log::key_pair(1))).await.expect("core");
                        let rate =
                            log::append_rate(&core, &template, count, batch).await.expect("append");
                        store.close().await.expect("close");
                        Duration::from_secs_f64(rate.seconds)
                    });
                }
                total
            });
        });
    }
    group.finish();
}

/// The `read` rows of the `compare` harness, as criterion loops, on a reopened store.
fn get(c: &mut Criterion) {
    let rt = runtime();
    let template = log::template(SIZE);
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let store = Corestore::open(dir.path()).await.expect("store");
        let core = store.get(CoreRef::KeyPair(log::key_pair(2))).await.expect("core");
        log::append_rate(&core, &template, BLOCKS, 100).await.expect("append");
        store.close().await.expect("close");
    });
    // Reopened (cold), as the JavaScript baseline does.
    let (_store, core) = rt.block_on(async {
        let store = Corestore::open(dir.path()).await.expect("reopen");
        let core = store.get(CoreRef::KeyPair(log::key_pair(2))).await.expect("core");
        (store, core)
    });
    let mut group = c.benchmark_group("corestore get 1 KiB (disk)");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(BLOCKS));
    group.bench_function("sequential 100k", |b| {
        b.iter(|| rt.block_on(log::sequential_rate(&core, SIZE)).expect("read"));
    });
    group.bench_function("random 100k", |b| {
        b.iter(|| rt.block_on(log::random_rate(&core, BLOCKS, SIZE)).expect("read"));
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

criterion_group!(benches, append, get, proofs);
criterion_main!(benches);
