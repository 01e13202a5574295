//! The power-loss model, at the file level, over the disk backend: `DiskStorage` with its default
//! persistent index (whose index files may also be lost or damaged, and must then be rebuilt from
//! the log; a tiny in-memory table, so runs are written and merged all the time), and with every
//! key in memory (`DiskOptions::persistent_index` off).
//!
//! Random workloads of batches (puts of small and page-spanning values, values holding
//! record-shaped bytes, deletes, range deletes), flushes and compactions run on a `DiskStorage`.
//! At random moments the power goes out: the store is closed, and of the log's bytes written
//! since the last completed flush (or compaction, or reopen) every 4 KiB page is independently
//! kept or zero-filled, and the file may lose its tail back to any page boundary. What a
//! completed flush covered is never touched. A power loss can also land inside a write that
//! compacted, before the rename was durable: then the old log comes back.
//!
//! After every loss the store must open, hold every flushed batch, and equal the state after
//! some prefix of the batches written. The next workload steps go on from what survived.
//!
//! Short mode by default (seconds); `CORESTORE_POWERLOSS_LONG=1` runs many more workloads,
//! `CORESTORE_POWERLOSS_SEED` replays one run, and `CORESTORE_POWERLOSS_INDEX=persistent` (or
//! `memory`) runs the persistent index (or the in-memory one) only.
#![cfg(unix)] // DiskStorage is Unix-only.

use std::collections::BTreeMap;
use std::path::Path;

use corestore_storage::{BatchOp, DiskOptions, DiskStorage, StorageBackend, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const PAGE: usize = 4096;
const LOG: &str = "data.log";

fn apply(model: &mut Model, op: &BatchOp) {
    match op {
        BatchOp::Put { key, value } => {
            model.insert(key.clone(), value.clone());
        }
        BatchOp::Delete { key } => {
            model.remove(key);
        }
        BatchOp::DeleteRange { start, end } => {
            if start < end {
                let doomed: Vec<Vec<u8>> =
                    model.range(start.clone()..end.clone()).map(|(k, _)| k.clone()).collect();
                for k in doomed {
                    model.remove(&k);
                }
            }
        }
    }
}

fn key(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(1..4);
    (0..len).map(|_| rng.gen_range(0u8..4)).collect()
}

/// A record framed as today's v1 log would frame it (`len crc32 payload`), putting `key`.
fn planted_record(key: &[u8]) -> Vec<u8> {
    let mut payload = vec![1];
    payload.extend_from_slice(&(key.len() as u32).to_le_bytes());
    payload.extend_from_slice(key);
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.push(b'!');
    let mut record = (payload.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

fn value(rng: &mut StdRng, n: u64) -> Vec<u8> {
    let fill = (n % 251) as u8;
    match rng.gen_range(0..10) {
        0..=4 => vec![fill; rng.gen_range(0..64)],
        5..=6 => vec![fill; rng.gen_range(100..3000)],
        7 => vec![fill; rng.gen_range(4000..12_000)],
        _ => {
            // Zeros (as a lost page reads) and then record-shaped bytes, as a core's author
            // could plant them inside a block.
            let mut v = vec![0; rng.gen_range(0..6000)];
            for _ in 0..rng.gen_range(1..4) {
                v.extend_from_slice(&planted_record(b"\x03planted"));
                v.extend(std::iter::repeat_n(0, rng.gen_range(0..16)));
            }
            v
        }
    }
}

fn batch(rng: &mut StdRng, n: u64) -> Vec<BatchOp> {
    (0..rng.gen_range(1..6))
        .map(|_| match rng.gen_range(0..10) {
            0..=6 => BatchOp::Put { key: key(rng), value: value(rng, n) },
            7..=8 => BatchOp::Delete { key: key(rng) },
            _ => BatchOp::DeleteRange { start: key(rng), end: key(rng) },
        })
        .collect()
}

/// What the disk may hold after a power loss: bytes below `durable` as they are; every page
/// (or part of a page) above it kept or zero-filled; and perhaps a shorter file.
fn lose(image: &[u8], durable: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut out = image.to_vec();
    let mut at = durable;
    while at < out.len() {
        let end = ((at / PAGE + 1) * PAGE).min(out.len());
        if rng.gen_bool(0.5) {
            out[at..end].fill(0);
        }
        at = end;
    }
    if out.len() > durable && rng.gen_bool(0.3) {
        let pages = (out.len() - durable).div_ceil(PAGE);
        let cut = (durable / PAGE + rng.gen_range(0..=pages)) * PAGE;
        out.truncate(cut.clamp(durable, out.len()));
    }
    out
}

/// Closes the store as a power loss would: dropping it writes the persistent index's table out
/// (syncing the log), which a power loss never lets happen, so the index directory is put back
/// as it was before the drop.
fn cut_power(disk: DiskStorage, dir: &Path) {
    let index = dir.join("index");
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&index)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| {
                    let bytes = std::fs::read(&p).unwrap();
                    (p, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    drop(disk);
    if index.exists() {
        std::fs::remove_dir_all(&index).unwrap();
        std::fs::create_dir(&index).unwrap();
        for (path, bytes) in files {
            std::fs::write(path, bytes).unwrap();
        }
    }
}

async fn everything(disk: &DiskStorage) -> Model {
    disk.scan(&[], &[255; 8], usize::MAX).await.unwrap().into_iter().collect()
}

/// The durable state and the batches written since, as the test knows them.
struct Expected {
    durable: Model,
    pending: Vec<Vec<BatchOp>>,
    /// Log bytes covered by the last completed flush (or compaction, or reopen).
    durable_len: usize,
    /// Whether the store runs with the persistent index.
    persistent: bool,
}

impl Expected {
    fn current(&self) -> Model {
        let mut m = self.durable.clone();
        for op in self.pending.iter().flatten() {
            apply(&mut m, op);
        }
        m
    }

    /// Panics unless `state` is the durable state plus a prefix of the pending batches.
    fn check(&self, state: &Model, context: &str) {
        let mut m = self.durable.clone();
        if m == *state {
            return;
        }
        for batch in &self.pending {
            for op in batch {
                apply(&mut m, op);
            }
            if m == *state {
                return;
            }
        }
        panic!(
            "{context}: the reopened state is not the flushed state plus a prefix of the {} \
             later batches ({} keys flushed, {} keys found)",
            self.pending.len(),
            self.durable.len(),
            state.len()
        );
    }
}

struct Run {
    workloads: u64,
    losses: u64,
    batches: u64,
    flushes: u64,
    compactions: u64,
}

fn options(rng: &mut StdRng, persistent: bool) -> DiskOptions {
    let options = DiskOptions::default().compact_min_len(rng.gen_range(16u64..128) << 10);
    if persistent {
        // The run block cache off, a block or two (evicting all the time), or the default.
        let cache = [0, 6 << 10, DiskOptions::default().block_cache_bytes][rng.gen_range(0..3)];
        options
            .persistent_index(true)
            .memtable_entries(rng.gen_range(2..40))
            .block_cache_bytes(cache)
    } else {
        options.persistent_index(false)
    }
}

/// With the persistent index, its files are only ever replaced whole (written aside, synced,
/// renamed), so a power loss leaves them as they were; what may be damaged besides is treated as
/// a cache miss. Sometimes the whole index or one run is lost too: it must be rebuilt from the
/// log.
fn damage_index(dir: &Path, rng: &mut StdRng) {
    let index = dir.join("index");
    if !index.exists() || !rng.gen_bool(0.1) {
        return;
    }
    if rng.gen_bool(0.5) {
        std::fs::remove_dir_all(&index).unwrap();
        return;
    }
    let runs: Vec<_> = std::fs::read_dir(&index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".idx"))
        .collect();
    if let Some(run) = runs.first() {
        let len = std::fs::metadata(run).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(run).unwrap().set_len(len / 2).unwrap();
    }
}

/// Closes nothing (the caller dropped the store), rewrites the log as a power loss would leave
/// it, reopens, checks and returns the store with the new expectation.
async fn power_loss(
    dir: &Path,
    image: &[u8],
    expected: &mut Expected,
    rng: &mut StdRng,
    context: &str,
) -> DiskStorage {
    let persistent = expected.persistent;
    let lost = lose(image, expected.durable_len, rng);
    std::fs::write(dir.join(LOG), &lost).unwrap();
    if persistent {
        damage_index(dir, rng);
    }
    if rng.gen_bool(0.1) {
        // A compaction was under way: its scratch file is left behind.
        std::fs::write(dir.join("data.log.compact"), &lost[..lost.len() / 2]).unwrap();
    }
    let disk = match DiskStorage::open_with(dir, options(rng, persistent)) {
        Ok(disk) => disk,
        Err(e) => panic!("{context}: the store does not open after a power loss: {e}"),
    };
    let state = everything(&disk).await;
    expected.check(&state, context);
    expected.durable = state;
    expected.pending.clear();
    expected.durable_len = std::fs::metadata(dir.join(LOG)).unwrap().len() as usize;
    disk
}

async fn workload(rng: &mut StdRng, steps: u64, run: &mut Run, persistent: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = DiskStorage::open_with(dir.path(), options(rng, persistent)).unwrap();
    let log = dir.path().join(LOG);
    let mut expected = Expected {
        durable: Model::new(),
        pending: Vec::new(),
        durable_len: std::fs::metadata(&log).unwrap().len() as usize,
        persistent,
    };
    for step in 0..steps {
        let context = format!("step {step}");
        match rng.gen_range(0..20) {
            0..=13 => {
                let ops = batch(rng, step);
                let before = std::fs::read(&log).unwrap();
                let (before_durable, before_len) = (expected.durable.clone(), expected.durable_len);
                let compactions = disk.compactions();
                let mut b = WriteBatch::new();
                for op in &ops {
                    b.push(op.clone());
                }
                disk.write(b).await.unwrap();
                run.batches += 1;
                let pending_before = expected.pending.clone();
                expected.pending.push(ops);
                if disk.compactions() > compactions {
                    run.compactions += 1;
                    if rng.gen_bool(0.3) {
                        // The power went out inside this write, before the rename of the
                        // compacted log was durable: the old log is what the disk holds.
                        drop(disk);
                        expected.durable = before_durable;
                        expected.durable_len = before_len;
                        expected.pending = pending_before;
                        let ctx = format!("{context} (inside a compaction)");
                        disk = power_loss(dir.path(), &before, &mut expected, rng, &ctx).await;
                        run.losses += 1;
                        continue;
                    }
                    // The compacted log was synced and renamed durably before the write returned.
                    expected.durable = expected.current();
                    expected.pending.clear();
                    expected.durable_len = std::fs::metadata(&log).unwrap().len() as usize;
                }
            }
            14..=16 => {
                let len = disk.log_len() as usize;
                disk.flush().await.unwrap();
                run.flushes += 1;
                expected.durable = expected.current();
                expected.pending.clear();
                expected.durable_len = len;
            }
            _ => {
                cut_power(disk, dir.path());
                let image = std::fs::read(&log).unwrap();
                disk = power_loss(dir.path(), &image, &mut expected, rng, &context).await;
                run.losses += 1;
            }
        }
    }
    cut_power(disk, dir.path());
    let image = std::fs::read(&log).unwrap();
    drop(power_loss(dir.path(), &image, &mut expected, rng, "final loss").await);
    run.losses += 1;
    run.workloads += 1;
}

#[test]
fn power_loss_keeps_every_flushed_batch_and_a_prefix_of_the_rest() {
    let long = std::env::var_os("CORESTORE_POWERLOSS_LONG").is_some();
    let (workloads, steps) = if long { (1_000, 200) } else { (40, 80) };
    let seed: u64 = std::env::var("CORESTORE_POWERLOSS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!(
        "power-loss model: {workloads} workloads of {steps} steps, CORESTORE_POWERLOSS_SEED={seed}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // `CORESTORE_POWERLOSS_INDEX=persistent` or `=memory` runs one index kind only.
    let only = std::env::var("CORESTORE_POWERLOSS_INDEX").ok();
    for persistent in [true, false] {
        if only.as_deref().is_some_and(|o| o != if persistent { "persistent" } else { "memory" }) {
            continue;
        }
        let mut run = Run { workloads: 0, losses: 0, batches: 0, flushes: 0, compactions: 0 };
        // The persistent index syncs at every checkpoint of its tiny table: fewer workloads
        // keep the short mode short.
        let workloads = if persistent { workloads / 2 } else { workloads };
        for _ in 0..workloads {
            rt.block_on(workload(&mut rng, steps, &mut run, persistent));
        }
        let index = if persistent { "persistent index (default)" } else { "in-memory index" };
        println!(
            "power-loss model, {index}: {} workloads, {} batches, {} flushes, {} compactions, \
             {} simulated power losses: all passed",
            run.workloads, run.batches, run.flushes, run.compactions, run.losses
        );
        assert!(run.losses >= workloads, "every workload ends with a loss");
    }
}
