//! Open 10,000 named cores in a new disk store and ready them all, close them, reopen the same
//! 10,000 from disk, close them again: wall time and RSS per open core, for Rust and for Node
//! corestore 7 (`tests/interop/scripts/bench-open.js`) in the same run, printed as a table with
//! ratios. Not criterion: each step is one timed run (the workload is the point, not a loop).
//!
//! `cargo bench -p corestore-benches --bench open` (env: `CORESTORE_BENCH_CORES`, default
//! 10000; `CORESTORE_BENCH_NODE=0` skips Node). RSS comes from `/proc/self/statm` (Linux).

use std::time::Instant;

use corestore::{Core, CoreRef, Corestore};

#[derive(Debug, Clone, Copy)]
struct Step {
    seconds: f64,
    rss: u64,
}

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

async fn open_all(store: &Corestore, n: usize) -> Vec<Core> {
    let mut cores = Vec::with_capacity(n);
    for i in 0..n {
        cores.push(store.get(CoreRef::name(format!("core-{i}"))).await.expect("open core"));
    }
    cores
}

async fn close_all(cores: Vec<Core>) {
    for core in cores {
        core.close().await;
    }
}

async fn rust(n: usize) -> (u64, [Step; 4]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Corestore::open(dir.path()).await.expect("open store");
    let baseline = rss();
    let mut steps = Vec::new();

    let start = Instant::now();
    let cores = open_all(&store, n).await;
    steps.push(Step { seconds: start.elapsed().as_secs_f64(), rss: rss() });
    let start = Instant::now();
    close_all(cores).await;
    steps.push(Step { seconds: start.elapsed().as_secs_f64(), rss: rss() });
    assert_eq!(store.stats().open_cores, 0, "every core closed");
    store.close().await.expect("close store");
    drop(store);

    let store = Corestore::open(dir.path()).await.expect("reopen store");
    let start = Instant::now();
    let cores = open_all(&store, n).await;
    steps.push(Step { seconds: start.elapsed().as_secs_f64(), rss: rss() });
    let start = Instant::now();
    close_all(cores).await;
    steps.push(Step { seconds: start.elapsed().as_secs_f64(), rss: rss() });
    assert_eq!(store.stats().open_cores, 0, "every core closed");
    store.close().await.expect("close store");
    (baseline, [steps[0], steps[1], steps[2], steps[3]])
}

fn node(n: usize) -> Option<(u64, [Step; 4])> {
    if std::env::var("CORESTORE_BENCH_NODE").is_ok_and(|v| v == "0") {
        return None;
    }
    let node = corestore_interop::Node::get("bench open")?;
    let cores = n.to_string();
    let out = node
        .command("bench-open.js")
        .arg("--cores")
        .arg(&cores)
        .env("NODE_OPTIONS", "--expose-gc")
        .output()
        .expect("run node");
    assert!(out.status.success(), "node failed: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("node JSON");
    let step = |name: &str| Step {
        seconds: json[name]["seconds"].as_f64().unwrap_or(f64::NAN),
        rss: json[name]["rssBytes"].as_u64().unwrap_or(0),
    };
    let baseline = json["baselineRssBytes"].as_u64().unwrap_or(0);
    Some((baseline, [step("open"), step("close"), step("reopen"), step("closeAgain")]))
}

#[allow(clippy::cast_precision_loss)] // Byte and core counts far below 2^52.
/// KiB per core of `rss` over `baseline`.
fn per_core(rss: u64, baseline: u64, n: usize) -> f64 {
    rss.saturating_sub(baseline) as f64 / n as f64 / 1024.0
}

fn main() {
    let n: usize =
        std::env::var("CORESTORE_BENCH_CORES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (rust_base, rust_steps) = runtime.block_on(rust(n));
    let node = node(n);
    let names = ["open + ready", "close all", "reopen + ready", "close all again"];
    println!("open {n} named cores (disk store, one thread)");
    println!(
        "| step | Rust | Rust RSS over baseline | Node | Node RSS over baseline | time ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        let r = rust_steps[i];
        let rust_kb = per_core(r.rss, rust_base, n);
        let (node_time, node_kb, ratio) = match &node {
            Some((base, steps)) => (
                format!("{:.3} s", steps[i].seconds),
                format!("{:.2} KB/core", per_core(steps[i].rss, *base, n)),
                format!("{:.1}x", steps[i].seconds / r.seconds),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {name} | {:.3} s | {rust_kb:.2} KB/core | {node_time} | {node_kb} | {ratio} |",
            r.seconds
        );
    }
    println!(
        "baseline RSS: Rust {:.1} MB, Node {}",
        per_core(rust_base, 0, 1) / 1024.0,
        node.map_or("-".into(), |(b, _)| format!("{:.1} MB", per_core(b, 0, 1) / 1024.0))
    );
}
