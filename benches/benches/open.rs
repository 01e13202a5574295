//! Open 10,000 named cores in a new disk store and ready them all, close them, reopen the same
//! 10,000 from disk, close them again: wall time and RSS per open core, for Rust and for Node
//! corestore 7 (`tests/interop/scripts/bench-open.js`) in the same run, printed as a table with
//! ratios. Not criterion: each step is one timed run (the workload is the point, not a loop).
//! The workload is `corestore_benches::open` (the `open` row group of the `compare` harness).
//!
//! `cargo bench -p corestore-benches --bench open` (env: `CORESTORE_BENCH_CORES`, default
//! 10000; `CORESTORE_BENCH_NODE=0` skips Node). RSS comes from `/proc/self/statm` (Linux);
//! this binary also counts its heap allocations (a `stats_alloc` global allocator), so it
//! prints the heap bytes in use per core next to the RSS: RSS that stays up after closing
//! while the heap in use is back near the baseline is the allocator keeping freed pages.

// A benchmark binary: it prints its results.
#![allow(clippy::print_stdout)]

use std::alloc::System;

use anyhow::{Context, Result};
use corestore_benches::child;
use corestore_benches::open::{self, OpenReport, CORES};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes in use now: requested minus freed (`stats_alloc` folds reallocations into both).
fn heap_in_use() -> Option<u64> {
    let s = GLOBAL.stats();
    u64::try_from(s.bytes_allocated.checked_sub(s.bytes_deallocated)?).ok()
}

async fn node(cores: u64) -> Result<Option<OpenReport>> {
    if std::env::var("CORESTORE_BENCH_NODE").is_ok_and(|v| v == "0") {
        return Ok(None);
    }
    let Some(node) = corestore_benches::compare::node()? else { return Ok(None) };
    let mut cmd = node.command("bench-open.js");
    cmd.args(["--cores", &cores.to_string()]).env("NODE_OPTIONS", "--expose-gc");
    Ok(Some(child::report(cmd, "bench-open.js").await?))
}

fn main() -> Result<()> {
    let n: u64 =
        std::env::var("CORESTORE_BENCH_CORES").ok().and_then(|v| v.parse().ok()).unwrap_or(CORES);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let dir = tempfile::tempdir().context("temp dir")?;
    let rust = runtime.block_on(open::run_probed(dir.path(), n, heap_in_use))?;
    let node = runtime.block_on(node(n))?;
    let steps = |r: &OpenReport| {
        [r.open, r.close, r.reopen, r.close_again]
            .into_iter()
            .chain(r.store_closed)
            .collect::<Vec<_>>()
    };
    let names =
        ["open + ready", "close all", "reopen + ready", "close all again", "close the store"];
    println!("open {n} named cores (disk store, one thread)");
    println!(
        "| step | Rust | Rust RSS over baseline | Rust heap in use over baseline | Node | Node RSS over baseline | time ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        let Some(&r) = steps(&rust).get(i) else { continue };
        let (node_time, node_kb, ratio) =
            match node.as_ref().and_then(|js| Some((js, *steps(js).get(i)?))) {
                Some((js, s)) => (
                    format!("{:.3} s", s.seconds),
                    format!("{:.2} KiB/core", js.kib_per_core(&s)),
                    format!("{:.1}x", s.seconds / r.seconds),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
        let heap = rust.heap_per_core(&r).map_or("-".into(), |b| format!("{b:.0} B/core"));
        println!(
            "| {name} | {:.3} s | {:.2} KiB/core | {heap} | {node_time} | {node_kb} | {ratio} |",
            r.seconds,
            rust.kib_per_core(&r),
        );
    }
    // RSS figures stay far below 2^52: the f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1024.0 / 1024.0);
    println!(
        "baseline RSS: Rust {}, Node {}; baseline heap in use: Rust {}",
        mb(rust.baseline_rss_bytes),
        node.map_or("-".into(), |js| mb(js.baseline_rss_bytes)),
        rust.baseline_heap_bytes.map_or("-".into(), mb),
    );
    Ok(())
}
