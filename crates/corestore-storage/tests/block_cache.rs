//! The persistent index's cache of run blocks (`DiskOptions::block_cache_bytes`): reads between
//! writes, merges, compactions and reopens match a model with the cache off, tiny (evicting all
//! the time) and at its default; its bytes stay within the bound; a damaged block is never
//! cached.
#![cfg(unix)] // DiskStorage is Unix-only.

use std::collections::BTreeMap;
use std::path::Path;

use corestore_storage::{BatchOp, DiskOptions, DiskStorage, StorageBackend, WriteBatch};
use proptest::prelude::*;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A schema-shaped key: a 10-byte section (as `03 ‖ core ‖ kind`) and an index, so run blocks
/// hold many keys and sections span several blocks.
fn key_of(section: u8, n: u16) -> Vec<u8> {
    let mut key = vec![3, 0, 0, 0, 0, 0, 0, 0, 1, section];
    key.extend_from_slice(&n.to_be_bytes());
    key
}

fn batch(ops: Vec<BatchOp>) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for op in ops {
        batch.push(op);
    }
    batch
}

#[derive(Debug, Clone)]
enum Step {
    Put(Vec<(u8, u16)>, u8),
    Delete(u8, u16),
    DeleteRange(u8, u16, u16),
    Get(u8, u16),
    Scan(u8, u16, usize),
    Compact,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    let k = || (0u8..3, 0u16..700);
    prop_oneof![
        6 => (proptest::collection::vec(k(), 1..40), any::<u8>()).prop_map(|(ks, v)| Step::Put(ks, v)),
        2 => k().prop_map(|(s, n)| Step::Delete(s, n)),
        1 => (0u8..3, 0u16..700, 0u16..60).prop_map(|(s, n, len)| Step::DeleteRange(s, n, len)),
        8 => k().prop_map(|(s, n)| Step::Get(s, n)),
        2 => (0u8..3, 0u16..700, 1usize..30).prop_map(|(s, n, limit)| Step::Scan(s, n, limit)),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

fn value(v: u8, key: &[u8]) -> Vec<u8> {
    let mut value = vec![v; 3];
    value.extend_from_slice(key);
    value
}

async fn check_everything(disk: &DiskStorage, model: &Model, when: &str) {
    for (key, want) in model {
        assert_eq!(disk.get(key).await.unwrap().as_ref(), Some(want), "{when}: {key:?}");
    }
    let all = disk.scan(&[], &[255], usize::MAX).await.unwrap();
    assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>(), "{when}: scan");
}

async fn run_steps(dir: &Path, options: DiskOptions, steps: Vec<Step>) {
    let mut disk = DiskStorage::open_with(dir, options).unwrap();
    let mut model = Model::new();
    for (at, step) in steps.into_iter().enumerate() {
        match step {
            Step::Put(keys, v) => {
                let mut ops = Vec::new();
                for (s, n) in keys {
                    let key = key_of(s, n);
                    let value = value(v, &key);
                    model.insert(key.clone(), value.clone());
                    ops.push(BatchOp::Put { key, value });
                }
                disk.write(batch(ops)).await.unwrap();
            }
            Step::Delete(s, n) => {
                model.remove(&key_of(s, n));
                disk.write(batch(vec![BatchOp::Delete { key: key_of(s, n) }])).await.unwrap();
            }
            Step::DeleteRange(s, n, len) => {
                let (start, end) = (key_of(s, n), key_of(s, n.saturating_add(len)));
                model.retain(|k, _| *k < start || *k >= end);
                disk.write(batch(vec![BatchOp::DeleteRange { start, end }])).await.unwrap();
            }
            Step::Get(s, n) => {
                let key = key_of(s, n);
                assert_eq!(disk.get(&key).await.unwrap(), model.get(&key).cloned(), "step {at}");
            }
            Step::Scan(s, n, limit) => {
                let start = key_of(s, n);
                let want: Vec<_> = model
                    .range(start.clone()..)
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(disk.scan(&start, &[255], limit).await.unwrap(), want, "step {at}");
            }
            Step::Compact => {
                disk.compact().await.unwrap();
                check_everything(&disk, &model, "after a compaction").await;
            }
            Step::Reopen => {
                drop(disk);
                disk = DiskStorage::open_with(dir, options).unwrap();
            }
        }
        let stats = disk.block_cache_stats();
        assert!(stats.bytes <= options.block_cache_bytes, "step {at}: {stats:?}");
    }
    check_everything(&disk, &model, "at the end").await;
}

proptest! {
    // Each case writes, merges and syncs a few dozen small runs.
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Gets and scans between writes (which spill and merge runs all the time), compactions
    /// and reopens see exactly the model: a cached block is never one of a run merged away.
    #[test]
    fn reads_between_merges_and_compactions_match_the_model(
        steps in proptest::collection::vec(step(), 1..60),
        memtable in 2usize..40,
        // Off, one block or so (evicting on nearly every read), the default.
        cache in prop_oneof![Just(0usize), Just(5 << 10), Just(DiskOptions::default().block_cache_bytes)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = DiskOptions::default()
            .memtable_entries(memtable)
            .block_cache_bytes(cache)
            .compact_min_len(u64::MAX);
        block_on(run_steps(dir.path(), options, steps));
    }
}

async fn fill(disk: &DiskStorage, keys: u16) {
    for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
        let ops = chunk
            .iter()
            .map(|&n| BatchOp::Put { key: key_of(1, n), value: value(1, &key_of(1, n)) })
            .collect();
        disk.write(batch(ops)).await.unwrap();
    }
}

#[tokio::test]
async fn the_cache_holds_at_most_its_bytes_and_serves_repeated_reads() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 40 << 10;
    let options = DiskOptions::default().memtable_entries(500).block_cache_bytes(capacity);
    let disk = DiskStorage::open_with(dir.path(), options).unwrap();
    fill(&disk, 20_000).await;
    // Spread over the whole index (many more blocks than fit), then one key over and over.
    for n in (0..20_000u16).step_by(37) {
        assert!(disk.get(&key_of(1, n)).await.unwrap().is_some());
        let stats = disk.block_cache_stats();
        assert!(stats.bytes <= capacity, "{stats:?}");
    }
    let before = disk.block_cache_stats();
    assert!(before.blocks > 4, "{before:?}");
    for _ in 0..100 {
        assert!(disk.get(&key_of(1, 19_999)).await.unwrap().is_some());
    }
    let after = disk.block_cache_stats();
    // One read of the file at most (the block may be cached already).
    assert!(after.misses - before.misses <= 1, "{after:?}");
    assert!(after.hits - before.hits >= 99, "{after:?}");
    assert_eq!(after.capacity, capacity);

    // Off: nothing held, the same answers.
    drop(disk);
    let disk = DiskStorage::open_with(dir.path(), options.block_cache_bytes(0)).unwrap();
    for n in (0..20_000u16).step_by(37) {
        assert!(disk.get(&key_of(1, n)).await.unwrap().is_some());
    }
    let off = disk.block_cache_stats();
    assert_eq!((off.bytes, off.blocks, off.hits), (0, 0, 0), "{off:?}");
}

#[tokio::test]
async fn a_damaged_run_block_is_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let options = DiskOptions::default().memtable_entries(100_000);
    {
        let disk = DiskStorage::open_with(dir.path(), options).unwrap();
        fill(&disk, 2_000).await;
    }
    let run = std::fs::read_dir(dir.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let mut bytes = std::fs::read(&run).unwrap();
    // Inside the first block.
    bytes[100] ^= 0x40;
    std::fs::write(&run, bytes).unwrap();
    let disk = DiskStorage::open_with(dir.path(), options).unwrap();
    let mut failed = Vec::new();
    for n in 0..2_000u16 {
        match disk.get(&key_of(1, n)).await {
            Ok(got) => assert_eq!(got, Some(value(1, &key_of(1, n))), "wrong data"),
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
                failed.push(n);
            }
        }
    }
    assert!(!failed.is_empty(), "the damage went unnoticed");
    // Every read of the damaged block reads and checks it again.
    for &n in &failed {
        let again = disk.get(&key_of(1, n)).await;
        assert!(again.is_err(), "key {n}: a damaged block was served from the cache: {again:?}");
    }
    assert!(disk.block_cache_stats().blocks > 0, "the intact blocks are cached");
}
