//! Log throughput on disk through the `Corestore` facade: appends of 1 KiB blocks in batches
//! and one at a time, then (store closed and reopened) sequential and random reads. The
//! JavaScript side is `tests/interop/scripts/bench-hypercore.js`: same workload, same command
//! line, same JSON report ([`LogReport`]).

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use corestore::{Core, CoreRef, Corestore};
use corestore_keys::KeyPair;
use serde::{Deserialize, Serialize};

use crate::XorShift;

/// The sizes of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// Blocks appended in batches, then read back.
    pub blocks: u64,
    /// Bytes per block (at least 8: the index is written into the first 8).
    pub size: usize,
    /// Blocks per batched append.
    pub batch: u64,
    /// Single appends, on a second core.
    pub single: u64,
    /// Random reads.
    pub random: u64,
}

impl LogOptions {
    /// 100,000 × 1 KiB in appends of 100; 20,000 single appends; 100,000 random reads.
    pub const FULL: Self =
        Self { blocks: 100_000, size: 1024, batch: 100, single: 20_000, random: 100_000 };

    /// The command line of a run (`bench-hypercore.js` and the Rust worker take the same).
    pub fn args(&self) -> Vec<String> {
        [
            ("--blocks", self.blocks.to_string()),
            ("--size", self.size.to_string()),
            ("--batch", self.batch.to_string()),
            ("--single", self.single.to_string()),
            ("--random", self.random.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }
}

/// Blocks over time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Blocks appended or read.
    pub blocks: u64,
    /// Wall time of the loop, seconds.
    pub seconds: f64,
}

impl Rate {
    /// Blocks per second (0 for an empty or instant loop).
    // Block counts stay far below 2^52: the f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    pub fn per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.blocks as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn since(blocks: u64, start: Instant) -> Self {
        Self { blocks, seconds: start.elapsed().as_secs_f64() }
    }
}

/// What one run measured (the JSON of `bench-hypercore.js`, camelCase).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogReport {
    /// `append([batch blocks])` until `blocks`.
    pub append_batched: Rate,
    /// `append(block)` `single` times.
    pub append_single: Rate,
    /// After a reopen: `get(i)` for every block in order.
    pub sequential_get: Rate,
    /// Then `get` at `random` indexes of [`XorShift`].
    pub storage_random_get: Rate,
}

/// Block `i`: `template` with the index in its first 8 bytes (little-endian).
pub fn block(template: &[u8], i: u64) -> Vec<u8> {
    let mut b = template.to_vec();
    if let Some(head) = b.get_mut(..8) {
        head.copy_from_slice(&i.to_le_bytes());
    }
    b
}

/// The template of every block: bytes that do not compress.
pub fn template(size: usize) -> Vec<u8> {
    let mut x = XorShift::new();
    (0..size.max(8)).map(|_| x.next_u32().to_le_bytes()[0]).collect()
}

/// Appends blocks `from..to` of `template` to `core`, `batch` per append.
pub async fn append_range(
    core: &Core,
    template: &[u8],
    from: u64,
    to: u64,
    batch: u64,
) -> Result<()> {
    let mut i = from;
    while i < to {
        let end = to.min(i.saturating_add(batch.max(1)));
        let blocks: Vec<Vec<u8>> = (i..end).map(|j| block(template, j)).collect();
        core.append_batch(&blocks).await.with_context(|| format!("append blocks {i}..{end}"))?;
        i = end;
    }
    Ok(())
}

/// The time to append `count` blocks of `template` to `core`, `batch` per append.
pub async fn append_rate(core: &Core, template: &[u8], count: u64, batch: u64) -> Result<Rate> {
    let from = core.length();
    let start = Instant::now();
    append_range(core, template, from, from.saturating_add(count), batch).await?;
    Ok(Rate::since(count, start))
}

/// The time to read every block of `core` in order; each must be `size` bytes.
pub async fn sequential_rate(core: &Core, size: usize) -> Result<Rate> {
    let blocks = core.length();
    let start = Instant::now();
    for i in 0..blocks {
        let b = core.get(i).await?.with_context(|| format!("block {i} is missing"))?;
        ensure!(b.len() == size, "block {i} has {} bytes, not {size}", b.len());
    }
    Ok(Rate::since(blocks, start))
}

/// The time to read `count` blocks of `core` at [`XorShift`] indexes.
pub async fn random_rate(core: &Core, count: u64, size: usize) -> Result<Rate> {
    let blocks = core.length();
    ensure!(blocks > 0 || count == 0, "random reads of an empty core");
    let mut x = XorShift::new();
    let start = Instant::now();
    for _ in 0..count {
        let i = x.index(blocks);
        let b = core.get(i).await?.with_context(|| format!("block {i} is missing"))?;
        ensure!(b.len() == size, "block {i} has {} bytes, not {size}", b.len());
    }
    Ok(Rate::since(count, start))
}

/// The key pair of the batched core (`[1; 32]`) or the single-append core (`[2; 32]`), as
/// the JavaScript side derives them (`crypto.keyPair(b4a.alloc(32, seed))`).
pub fn key_pair(seed: u8) -> KeyPair {
    KeyPair::from_seed(&[seed; 32])
}

/// Runs the workload in a new store in `dir` (which should be empty).
pub async fn run(dir: &Path, options: LogOptions) -> Result<LogReport> {
    ensure!(options.size >= 8, "blocks carry their index: --size must be at least 8");
    let template = template(options.size);
    let store = Corestore::open(dir).await.context("open the store")?;
    let core = store.get(CoreRef::KeyPair(key_pair(1))).await?;
    let append_batched = append_rate(&core, &template, options.blocks, options.batch).await?;
    let single = store.get(CoreRef::KeyPair(key_pair(2))).await?;
    let append_single = append_rate(&single, &template, options.single, 1).await?;
    ensure!(
        core.length() == options.blocks && single.length() == options.single,
        "lengths do not add up: {} and {}",
        core.length(),
        single.length()
    );
    store.close().await.context("close the store")?;
    drop((core, single, store));

    // Reopened: everything is read back from disk.
    let store = Corestore::open(dir).await.context("reopen the store")?;
    let reader = store.get(CoreRef::KeyPair(key_pair(1))).await?;
    ensure!(reader.length() == options.blocks, "reopened core has length {}", reader.length());
    let sequential_get = sequential_rate(&reader, options.size).await?;
    let storage_random_get = random_rate(&reader, options.random, options.size).await?;
    store.close().await.context("close the store")?;
    Ok(LogReport { append_batched, append_single, sequential_get, storage_random_get })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_small_run_reports_every_loop() {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions { blocks: 250, size: 64, batch: 100, single: 7, random: 30 };
        let report = run(dir.path(), options).await.unwrap();
        assert_eq!(report.append_batched.blocks, 250);
        assert_eq!(report.append_single.blocks, 7);
        assert_eq!(report.sequential_get.blocks, 250);
        assert_eq!(report.storage_random_get.blocks, 30);
        let json = serde_json::to_value(report).unwrap();
        assert!(json["appendBatched"]["seconds"].is_number(), "the JavaScript field names");
    }

    #[test]
    fn the_command_line_matches_the_javascript_script() {
        let args = LogOptions::FULL.args().join(" ");
        assert_eq!(args, "--blocks 100000 --size 1024 --batch 100 --single 20000 --random 100000");
    }

    #[test]
    fn blocks_carry_their_index() {
        let t = template(16);
        assert_eq!(block(&t, 5)[..8], 5u64.to_le_bytes());
        assert_eq!(block(&t, 5)[8..], t[8..]);
    }
}
