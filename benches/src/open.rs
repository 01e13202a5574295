//! Open 10,000 named cores in a new disk store and ready them all, close them, reopen the
//! store and the same 10,000, close them again, close the store: wall time per step and RSS
//! over the empty store's. The JavaScript side is `tests/interop/scripts/bench-open.js` (run with
//! `--expose-gc`): same steps, same JSON report ([`OpenReport`]).

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use corestore::{Core, CoreRef, Corestore};
use serde::{Deserialize, Serialize};

/// 10,000 cores.
pub const CORES: u64 = 10_000;

/// One step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Wall time, seconds.
    pub seconds: f64,
    /// Process RSS after the step, bytes.
    pub rss_bytes: u64,
    /// Heap bytes in use after the step, when the binary counts its allocations (the `open`
    /// bench does; `compare` and Node do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_bytes: Option<u64>,
}

/// What one run measured (the JSON of `bench-open.js`, camelCase).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenReport {
    /// Cores opened.
    pub cores: u64,
    /// RSS of the freshly opened empty store, bytes.
    pub baseline_rss_bytes: u64,
    /// Heap bytes in use in the freshly opened empty store, when counted ([`Step::heap_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_heap_bytes: Option<u64>,
    /// `get` every core (`core-0` …) and ready it.
    pub open: Step,
    /// Close them all.
    pub close: Step,
    /// Store closed and reopened: `get` the same cores again.
    pub reopen: Step,
    /// Close them all again.
    pub close_again: Step,
    /// Then close the store itself: what the process holds once every core and the storage
    /// are gone (`None` in reports from before this step existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_closed: Option<Step>,
}

impl OpenReport {
    /// KiB of RSS per core after `step`, over the empty store's.
    // Byte and core counts stay far below 2^52: the f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    pub fn kib_per_core(&self, step: &Step) -> f64 {
        step.rss_bytes.saturating_sub(self.baseline_rss_bytes) as f64
            / self.cores.max(1) as f64
            / 1024.0
    }

    /// Heap bytes in use per core after `step`, over the empty store's (when counted).
    // Byte and core counts stay far below 2^52: the f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    pub fn heap_per_core(&self, step: &Step) -> Option<f64> {
        let over = step.heap_bytes?.saturating_sub(self.baseline_heap_bytes?);
        Some(over as f64 / self.cores.max(1) as f64)
    }
}

/// Heap bytes in use now, for a binary that counts its allocations; `None` otherwise.
pub type HeapProbe = fn() -> Option<u64>;

fn no_heap_probe() -> Option<u64> {
    None
}

/// This process's resident set size (`/proc/self/statm`, Linux), bytes.
pub fn rss_bytes() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .context("read /proc/self/statm (RSS is measured on Linux only)")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("/proc/self/statm reads {statm:?}"))?;
    Ok(pages * 4096)
}

async fn open_all(store: &Corestore, n: u64) -> Result<Vec<Core>> {
    let mut cores = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for i in 0..n {
        cores.push(store.get(CoreRef::name(format!("core-{i}"))).await?);
    }
    Ok(cores)
}

async fn close_all(cores: Vec<Core>) {
    for core in cores {
        core.close().await;
    }
}

impl Step {
    /// The step that started at `start` and just ended.
    fn since(start: Instant, heap: HeapProbe) -> Result<Self> {
        let seconds = start.elapsed().as_secs_f64();
        Ok(Self { seconds, rss_bytes: rss_bytes()?, heap_bytes: heap() })
    }
}

/// Runs the workload in a new store in `dir` (which should be empty), one awaited `get` after
/// another (call it on a current-thread runtime, as the bench does).
pub async fn run(dir: &Path, cores: u64) -> Result<OpenReport> {
    run_probed(dir, cores, no_heap_probe).await
}

/// [`run`], also reading the heap bytes in use after every step with `heap`.
pub async fn run_probed(dir: &Path, cores: u64, heap: HeapProbe) -> Result<OpenReport> {
    let store = Corestore::open(dir).await.context("open the store")?;
    let baseline_rss_bytes = rss_bytes()?;
    let baseline_heap_bytes = heap();
    let start = Instant::now();
    let opened = open_all(&store, cores).await?;
    let open = Step::since(start, heap)?;
    let start = Instant::now();
    close_all(opened).await;
    let close = Step::since(start, heap)?;
    ensure!(store.stats().open_cores == 0, "cores left open after closing them all");
    store.close().await.context("close the store")?;
    drop(store);

    let store = Corestore::open(dir).await.context("reopen the store")?;
    let start = Instant::now();
    let opened = open_all(&store, cores).await?;
    let reopen = Step::since(start, heap)?;
    let start = Instant::now();
    close_all(opened).await;
    let close_again = Step::since(start, heap)?;
    ensure!(store.stats().open_cores == 0, "cores left open after closing them all again");
    let start = Instant::now();
    store.close().await.context("close the store")?;
    drop(store);
    let store_closed = Some(Step::since(start, heap)?);
    Ok(OpenReport {
        cores,
        baseline_rss_bytes,
        baseline_heap_bytes,
        open,
        close,
        reopen,
        close_again,
        store_closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_small_run_reports_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), 20).await.unwrap();
        assert_eq!(report.cores, 20);
        assert!(report.baseline_rss_bytes > 0);
        assert!(report.reopen.rss_bytes > 0);
        let json = serde_json::to_value(report).unwrap();
        assert!(json["closeAgain"]["rssBytes"].is_number(), "the JavaScript field names");
        assert!(json["storeClosed"]["rssBytes"].is_number());
    }

    #[test]
    fn rss_per_core_is_over_the_baseline() {
        let step = Step { seconds: 1.0, rss_bytes: 3 * 1024 * 10 + 100, heap_bytes: None };
        let report = OpenReport {
            cores: 10,
            baseline_rss_bytes: 100,
            baseline_heap_bytes: None,
            open: step,
            close: step,
            reopen: step,
            close_again: step,
            store_closed: None,
        };
        assert!((report.kib_per_core(&step) - 3.0).abs() < 1e-9);
        assert_eq!(report.heap_per_core(&step), None, "no heap figures when not counted");
    }

    #[test]
    fn heap_per_core_is_over_the_baseline_and_optional_in_json() {
        let step = Step { seconds: 1.0, rss_bytes: 0, heap_bytes: Some(2_000 * 10 + 500) };
        let report = OpenReport {
            cores: 10,
            baseline_rss_bytes: 0,
            baseline_heap_bytes: Some(500),
            open: step,
            close: step,
            reopen: step,
            close_again: step,
            store_closed: None,
        };
        assert_eq!(report.heap_per_core(&step), Some(2_000.0));
        let mut json = serde_json::to_value(report).unwrap();
        assert!(json["open"]["heapBytes"].is_number());
        json["open"].as_object_mut().unwrap().remove("heapBytes");
        json.as_object_mut().unwrap().remove("baselineHeapBytes");
        let js: OpenReport = serde_json::from_value(json).unwrap();
        assert_eq!(js.open.heap_bytes, None, "bench-open.js reports no heap figures");
    }
}
