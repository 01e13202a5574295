//! Storage throughput through the schema (`CoreBatch` / `CoreStorage::block`): 100,000 blocks of
//! 1 KiB appended in batches of 100 (never flushed, flushed once at the end, or flushed after
//! every batch), then 100,000 random point reads on a warm cache. Targets: >= 300k blocks/s written on disk,
//! >= 200k reads/s. Results are recorded in `benches/README.md`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use corestore_keys::{KeyPair, Manifest};
use corestore_storage::{
    CoreAuth, CoreStorage, DiskOptions, DiskStorage, MemoryStorage, Storage, StorageBackend,
    TreeHead,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

const BLOCKS: u64 = 100_000;
const BATCH: u64 = 100;
const BLOCK_LEN: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

fn auth() -> CoreAuth {
    let kp = KeyPair::from_seed(&[3; 32]);
    let manifest = Manifest::single_signer(kp.public_key());
    let key = manifest.hash();
    CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        frozen: false,
        manifest: Some(manifest),
        key_pair: None,
    }
}

/// Which backend a bench runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    /// `DiskStorage` with its defaults (the persistent index).
    Disk,
    /// `DiskStorage` with every key in memory (`DiskOptions::persistent_index(false)`).
    DiskMemoryIndex,
}

/// A fresh store with one empty core; the directory lives as long as the returned guard.
fn fresh(rt: &Runtime, backend: Backend) -> (Option<tempfile::TempDir>, CoreStorage) {
    let disk = |options: DiskOptions| {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend: Arc<dyn StorageBackend> =
            Arc::new(DiskStorage::open_with(dir.path(), options).expect("open disk store"));
        (Some(dir), backend)
    };
    let (dir, backend): (_, Arc<dyn StorageBackend>) = match backend {
        Backend::Disk => disk(DiskOptions::default()),
        Backend::DiskMemoryIndex => disk(DiskOptions::default().persistent_index(false)),
        Backend::Memory => (None, Arc::new(MemoryStorage::new())),
    };
    let core = rt.block_on(async {
        let storage = Storage::open(backend).await.expect("open storage");
        storage.create_core(&auth(), None).await.expect("create core")
    });
    (dir, core)
}

/// When to call `flush` (`fdatasync` on disk).
#[derive(Debug, Clone, Copy)]
enum Flush {
    /// Never: acknowledged batches are in the page cache (they survive `kill -9`, not power loss).
    Never,
    /// Once after the last batch: everything durable.
    AtEnd,
    /// After every batch.
    EachBatch,
}

async fn append_all(core: &CoreStorage, flush: Flush) {
    let block = vec![0xa5; BLOCK_LEN];
    for b in 0..BLOCKS / BATCH {
        let mut batch = core.batch();
        for i in b * BATCH..(b + 1) * BATCH {
            batch.put_block(i, &block);
        }
        let length = (b + 1) * BATCH;
        batch.put_head(&TreeHead { length, ..TreeHead::default() });
        core.write(batch).await.expect("write");
        if matches!(flush, Flush::EachBatch) {
            core.flush().await.expect("flush");
        }
    }
    if matches!(flush, Flush::AtEnd) {
        core.flush().await.expect("flush");
    }
}

fn writes(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("storage write 100k x 1 KiB, batches of 100");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BLOCKS));
    for (name, disk, flush) in [
        ("disk, no flush", Backend::Disk, Flush::Never),
        ("disk, flush at end", Backend::Disk, Flush::AtEnd),
        ("disk, flush per batch", Backend::Disk, Flush::EachBatch),
        ("disk in-memory index, no flush", Backend::DiskMemoryIndex, Flush::Never),
        ("disk in-memory index, flush at end", Backend::DiskMemoryIndex, Flush::AtEnd),
        ("memory", Backend::Memory, Flush::Never),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || fresh(&rt, disk),
                |(dir, core)| {
                    rt.block_on(append_all(&core, flush));
                    (dir, core)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("storage random block reads (warm)");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BLOCKS));
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let order: Vec<u64> = (0..BLOCKS).map(|_| rng.gen_range(0..BLOCKS)).collect();
    for (name, disk) in [
        ("disk", Backend::Disk),
        ("disk in-memory index", Backend::DiskMemoryIndex),
        ("memory", Backend::Memory),
    ] {
        let (_dir, core) = fresh(&rt, disk);
        rt.block_on(async {
            append_all(&core, Flush::AtEnd).await;
            // Warm the page cache and the index.
            for i in 0..BLOCKS {
                assert!(core.block(i).await.expect("read").is_some());
            }
        });
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    for &i in &order {
                        let block = core.block(i).await.expect("read");
                        assert_eq!(block.map(|b| b.len()), Some(BLOCK_LEN));
                    }
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, writes, reads);
criterion_main!(benches);
