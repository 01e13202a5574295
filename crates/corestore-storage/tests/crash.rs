//! A crash test that really crashes: a child process appends batches (blocks + tree head) to a
//! `DiskStorage` and prints `ack N` after each flushed batch; the parent `kill -9`s it at a random
//! moment, reopens, and checks that every acknowledged batch is there and no batch is torn.
//!
//! 20 trials by default; set `CORESTORE_CRASH_TRIALS=100` (or more) for a longer run and
//! `CORESTORE_CRASH_SEED` to replay one.
#![cfg(unix)] // DiskStorage is Unix-only.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use corestore_keys::{KeyPair, Manifest};
use corestore_storage::{
    CoreAuth, CoreStorage, DiskOptions, DiskStorage, Hints, Storage, TreeHead,
};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "CORESTORE_CRASH_TEST_CHILD_DIR";
/// Set for the child when the trial runs with the persistent index.
const PERSISTENT_ENV: &str = "CORESTORE_CRASH_TEST_PERSISTENT_INDEX";
const BLOCKS_PER_BATCH: u64 = 8;
/// Every batch rewrites this bitfield page, so the log gathers garbage and compacts often.
const PAGE_LEN: usize = 16 * 1024;
/// Small enough that trials crash during and around compactions too.
const COMPACT_MIN_LEN: u64 = 256 * 1024;
/// A child stops by itself after this many batches, should its parent be gone.
const CHILD_MAX_BATCHES: u64 = 50_000;

fn auth() -> CoreAuth {
    let kp = KeyPair::from_seed(&[42; 32]);
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

/// Deterministic contents of block `i`, of varying length.
fn block(i: u64) -> Vec<u8> {
    let len = 200 + (i * 37 % 1800) as usize;
    (0..len).map(|j| (i as usize).wrapping_mul(31).wrapping_add(j) as u8).collect()
}

fn page(length: u64) -> Vec<u8> {
    let mut page = vec![(length % 253) as u8; PAGE_LEN];
    page[..8].copy_from_slice(&length.to_le_bytes());
    page
}

fn head(length: u64) -> TreeHead {
    TreeHead { fork: 0, length, tree_hash: [(length % 251) as u8; 32], signature: vec![7; 64] }
}

async fn open_core(
    dir: &Path,
    persistent: bool,
) -> (DiskStorage, Arc<Storage>, Option<CoreStorage>) {
    let options = DiskOptions::default()
        .compact_min_len(COMPACT_MIN_LEN)
        .persistent_index(persistent)
        .memtable_entries(100);
    let disk = DiskStorage::open_with(dir, options).unwrap();
    let storage = Storage::open(Arc::new(disk.clone())).await.unwrap();
    let core = storage.open_core(&auth().discovery_key).await.unwrap();
    (disk, storage, core)
}

/// Child side: a no-op unless the parent set `CHILD_ENV`; then appends until killed.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let persistent = std::env::var_os(PERSISTENT_ENV).is_some();
        let (disk, storage, core) = open_core(Path::new(&dir), persistent).await;
        let core = if let Some(core) = core {
            core
        } else {
            let core = storage.create_core(&auth(), None).await.unwrap();
            core.flush().await.unwrap();
            core
        };
        let start = core.head().await.unwrap().map_or(0, |h| h.length / BLOCKS_PER_BATCH);
        for b in start..start + CHILD_MAX_BATCHES {
            let mut batch = core.batch();
            for i in b * BLOCKS_PER_BATCH..(b + 1) * BLOCKS_PER_BATCH {
                batch.put_block(i, &block(i));
            }
            let length = (b + 1) * BLOCKS_PER_BATCH;
            batch
                .put_head(&head(length))
                .put_hints(Hints { contiguous_length: length })
                .put_bitfield_page(0, &page(length));
            core.write(batch).await.unwrap();
            core.flush().await.unwrap();
            println!("ack {b} {}", disk.compactions());
        }
    });
}

/// Parent side check: the store holds whole batches `0..n` with `n > max_acked`, nothing else.
async fn verify(dir: &Path, max_acked: Option<u64>, persistent: bool) {
    let (_disk, _storage, core) = open_core(dir, persistent).await;
    let Some(core) = core else {
        assert_eq!(max_acked, None, "an acknowledged core is missing");
        return;
    };
    let length = core.head().await.unwrap().map_or(0, |h| h.length);
    assert_eq!(length % BLOCKS_PER_BATCH, 0, "torn head length {length}");
    if let Some(m) = max_acked {
        assert!(
            length >= (m + 1) * BLOCKS_PER_BATCH,
            "acknowledged batch {m} lost (length {length})"
        );
    }
    if length > 0 {
        assert_eq!(core.head().await.unwrap(), Some(head(length)));
        assert_eq!(core.hints().await.unwrap().contiguous_length, length);
        assert_eq!(core.bitfield_page(0).await.unwrap(), Some(page(length)));
    }
    let blocks = core.blocks(0, u64::MAX, usize::MAX).await.unwrap();
    assert_eq!(blocks.len() as u64, length, "blocks beyond the head: a torn batch");
    for (n, (i, data)) in blocks.into_iter().enumerate() {
        assert_eq!(i, n as u64);
        assert_eq!(data, block(i), "block {i} damaged");
    }
}

#[test]
fn kill_9_never_loses_or_tears_an_acknowledged_batch() {
    let trials: u32 =
        std::env::var("CORESTORE_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("CORESTORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("crash test: {trials} trials, CORESTORE_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let main_dir = dir.path().join("main");
    let mut max_acked: Option<u64> = None;
    let mut compactions = 0;
    for trial in 0..trials {
        // One trial in five starts a fresh store, so crashes also land while a store is created;
        // the others go on with the main store, which also crash-tests recovery of recovery.
        let fresh = rng.gen_bool(0.2);
        let trial_dir =
            if fresh { dir.path().join(format!("fresh-{trial}")) } else { main_dir.clone() };
        let mut fresh_acked = None;
        let acked = if fresh { &mut fresh_acked } else { &mut max_acked };
        // Every other trial runs with the persistent index, the default (the main store switches
        // between the two, which also checks that either opens what the other wrote).
        let persistent = trial % 2 == 1;
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "crash_child_writer", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &trial_dir)
            .stdout(Stdio::piped());
        if persistent {
            command.env(PERSISTENT_ENV, "1");
        }
        let mut child = command.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // "ack <batch> <compactions by this child so far>"
        let record = |line: &str, max: &mut Option<u64>, compactions: &mut u64| {
            let mut words = line.trim().strip_prefix("ack ").unwrap_or("").split(' ');
            let (Some(Ok(n)), Some(Ok(c))) =
                (words.next().map(str::parse::<u64>), words.next().map(str::parse::<u64>))
            else {
                return false;
            };
            *max = Some(max.map_or(n, |m| m.max(n)));
            *compactions = (*compactions).max(c);
            true
        };
        let mut child_compactions = 0;
        // The kill lands after a random number of acknowledgements (0 = maybe still opening or
        // recovering) plus a random sub-batch delay: the delay is the test's input, not a check.
        let wait_acks = rng.gen_range(0..12);
        let mut acks_seen = 0;
        let mut line = String::new();
        while acks_seen < wait_acks {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if record(&line, acked, &mut child_compactions) {
                acks_seen += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("trial {trial}: the writer exited by itself: {status}");
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        for line in rest.lines() {
            record(line, acked, &mut child_compactions);
        }
        compactions += child_compactions;
        rt.block_on(verify(&trial_dir, *acked, persistent));
    }
    println!("crash test: last acknowledged batch {max_acked:?}, {compactions} compactions");
    if max_acked.is_some_and(|m| m >= 40) {
        assert!(compactions > 0, "the trials never exercised compaction");
    }
}
