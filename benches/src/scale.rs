//! Storage at scale: one writer core of N blocks of 1 KiB appended through the `Corestore`
//! facade in batches (one flush at the end), then a fresh process opens the store and the core
//! (timed), does 1,000 random gets (peak RSS is read here), then times random warm gets. The
//! JavaScript side is `tests/interop/scripts/bench-scale.js`: same steps, same command line
//! (`write <dir> <blocks> <batch>`, `read <dir> <blocks> <random>`), same JSON
//! ([`ScaleWrite`], [`ScaleRead`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use corestore::{CoreRef, Corestore};
use corestore_storage::{DiskOptions, DiskStorage, StorageBackend};
use serde::{Deserialize, Serialize};

use crate::log::{append_range, key_pair, random_rate, template};
use crate::replication::peak_rss_kib;
use crate::XorShift;

/// Bytes per block.
pub const SIZE: usize = 1024;
/// Random gets after the open, before the peak RSS is read.
pub const OPEN_READS: u64 = 1000;

/// Which disk store the Rust side opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Whatever `Corestore::open(path)` opens.
    #[default]
    Default,
    /// `DiskStorage::open_with` these options.
    Disk(DiskOptions),
}

/// The sizes of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleOptions {
    /// Blocks written.
    pub blocks: u64,
    /// Blocks per append.
    pub batch: u64,
    /// Random warm gets after the open.
    pub random: u64,
}

impl ScaleOptions {
    /// 4,000,000 blocks in appends of 100; 100,000 warm random gets.
    pub const FULL: Self = Self { blocks: 4_000_000, batch: 100, random: 100_000 };
}

/// The write process's report (camelCase JSON, as `bench-scale.js` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleWrite {
    /// Appends plus the final flush, seconds.
    pub seconds: f64,
    /// Blocks per second.
    pub per_sec: f64,
    /// Peak RSS of the process, KiB (`VmHWM`; Node's `resourceUsage().maxRSS`).
    pub peak_rss_kb: u64,
}

/// The read process's report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRead {
    /// Opening the store and the core, seconds.
    pub open_seconds: f64,
    /// Peak RSS after the open and [`OPEN_READS`] random gets, KiB.
    pub peak_rss_after_open_kb: u64,
    /// The warm random gets, seconds.
    pub random_seconds: f64,
    /// Warm random gets per second.
    pub random_per_sec: f64,
}

/// Both processes of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleReport {
    /// The sizes.
    pub options: ScaleOptions,
    /// The write process.
    pub write: ScaleWrite,
    /// The read process.
    pub read: ScaleRead,
    /// Bytes of the store on disk after the run.
    pub disk_bytes: u64,
}

async fn open(dir: &Path, backend: Backend) -> Result<Corestore> {
    let store = match backend {
        Backend::Default => Corestore::open(dir).await,
        Backend::Disk(options) => {
            let disk = DiskStorage::open_with(dir, options)
                .with_context(|| format!("open the disk store in {}", dir.display()))?;
            let disk: Arc<dyn StorageBackend> = Arc::new(disk);
            Corestore::builder().storage(disk).open().await
        }
    };
    store.with_context(|| format!("open the store in {}", dir.display()))
}

fn peak_rss() -> Result<u64> {
    peak_rss_kib().context("read VmHWM from /proc/self/status (Linux only)")
}

/// The write process: appends `blocks` blocks to a new store in `dir`, `batch` per append,
/// and closes it (the close flushes; both are timed).
pub async fn write(dir: &Path, blocks: u64, batch: u64, backend: Backend) -> Result<ScaleWrite> {
    let template = template(SIZE);
    let store = open(dir, backend).await?;
    let core = store.get(CoreRef::KeyPair(key_pair(1))).await?;
    let start = Instant::now();
    append_range(&core, &template, 0, blocks, batch).await?;
    drop(core);
    store.close().await.context("close (flush) the store")?;
    let seconds = start.elapsed().as_secs_f64();
    // Block counts stay far below 2^52: the f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    let per_sec = blocks as f64 / seconds;
    Ok(ScaleWrite { seconds, per_sec, peak_rss_kb: peak_rss()? })
}

/// The read process: opens the store in `dir` and its core of `blocks` blocks (timed), reads
/// [`OPEN_READS`] random blocks, reads the peak RSS, then times `random` random gets.
pub async fn read(dir: &Path, blocks: u64, random: u64, backend: Backend) -> Result<ScaleRead> {
    let start = Instant::now();
    let store = open(dir, backend).await?;
    let core = store.get(CoreRef::KeyPair(key_pair(1))).await?;
    let open_seconds = start.elapsed().as_secs_f64();
    ensure!(core.length() == blocks, "reopened core has length {}, not {blocks}", core.length());
    let mut x = XorShift::new();
    for _ in 0..OPEN_READS {
        let i = x.index(blocks);
        let b = core.get(i).await?.with_context(|| format!("block {i} is missing"))?;
        ensure!(b.len() == SIZE, "block {i} has {} bytes", b.len());
    }
    let peak_rss_after_open_kb = peak_rss()?;
    let warm = random_rate(&core, random, SIZE).await?;
    drop(core);
    store.close().await.context("close the store")?;
    Ok(ScaleRead {
        open_seconds,
        peak_rss_after_open_kb,
        random_seconds: warm.seconds,
        random_per_sec: warm.per_sec(),
    })
}

/// Bytes of the files under `dir`.
pub fn disk_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("list {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Runs both processes of one implementation in a new temp directory (removed afterwards):
/// `program()` followed by `write <dir> <blocks> <batch>`, then by `read <dir> <blocks>
/// <random>`. `what` names the implementation in errors.
pub async fn run(
    program: impl Fn() -> Command,
    options: ScaleOptions,
    what: &str,
) -> Result<ScaleReport> {
    ensure!(options.blocks > 0, "a store of 0 blocks");
    let tmp = tempfile::tempdir().context("temp dir")?;
    let store: PathBuf = tmp.path().join("store");
    let arg = |mode: &str, n: u64| {
        let mut cmd = program();
        cmd.arg(mode).arg(&store).arg(options.blocks.to_string()).arg(n.to_string());
        cmd
    };
    let what_write = format!("{what} scale write");
    let write: ScaleWrite = crate::child::report(arg("write", options.batch), &what_write).await?;
    let what_read = format!("{what} scale read");
    let read: ScaleRead = crate::child::report(arg("read", options.random), &what_read).await?;
    Ok(ScaleReport { options, write, read, disk_bytes: disk_bytes(&store)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_then_read_in_one_process_for_the_test() {
        let dir = tempfile::tempdir().unwrap();
        let w = write(dir.path(), 1500, 100, Backend::Default).await.unwrap();
        assert!(w.per_sec > 0.0 && w.peak_rss_kb > 0);
        let r = read(dir.path(), 1500, 200, Backend::Default).await.unwrap();
        assert!(r.peak_rss_after_open_kb > 0 && r.random_per_sec > 0.0);
        assert!(disk_bytes(dir.path()).unwrap() > 1500 * SIZE as u64);
        let json = serde_json::to_value(r).unwrap();
        assert!(json["peakRssAfterOpenKb"].is_number(), "the JavaScript field names");
    }

    #[tokio::test]
    async fn a_short_store_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, 4, Backend::Disk(DiskOptions::default())).await.unwrap();
        let err = read(dir.path(), 11, 1, Backend::Default).await.unwrap_err();
        assert!(err.to_string().contains("length 10"), "{err}");
    }
}
