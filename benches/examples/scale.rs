//! Storage at scale: one writer core of 1 KiB blocks appended through `Hypercore::append`, then
//! reopened in a fresh process, for Rust and for JavaScript corestore 7 in one run.
//!
//! ```text
//! cargo run --release -p corestore-benches --example scale -- run [--ns 250000,1000000,4000000]
//!     [--batch 100] [--random 100000] [--no-js]
//! ```
//!
//! Rust runs twice: with the default `DiskStorage` (its persistent index) and with every key in
//! memory (`DiskOptions::persistent_index(false)`, `--index=memory` for the child processes).
//! For each N, each implementation: a `write` process appends N blocks (batches of `--batch`)
//! and reports the write rate and its peak RSS; a fresh `read` process opens the store and the
//! core (timed), does 1,000 random gets and reports its peak RSS so far, then times `--random`
//! random warm gets. The JavaScript side is `benches/scale/scale.js` on the pinned corestore
//! 7.12.5 in `tests/interop/node_modules` (run `npm ci` there first). Peak RSS is the kernel's
//! high-water mark (`VmHWM`, Node's `resourceUsage().maxRSS`). Stores live in the system temp
//! directory and are removed after each N.

// A benchmark binary: it prints its results and stops on the first failure with a message, and
// its counts (at most millions) convert to f64 exactly.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use corestore_hypercore::Hypercore;
use corestore_keys::KeyPair;
use corestore_storage::{DiskOptions, DiskStorage, Storage, StorageBackend};
use serde_json::{json, Value};

const SIZE: usize = 1024;
const OPEN_READS: u64 = 1000;

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A xorshift32 stream, the same as the JavaScript side's.
struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

async fn open(dir: &Path, persistent: bool) -> (Arc<Storage>, Hypercore) {
    let options = DiskOptions::default().persistent_index(persistent);
    let disk = DiskStorage::open_with(dir, options).expect("open the disk store");
    let backend: Arc<dyn StorageBackend> = Arc::new(disk);
    let storage = Storage::open(backend).await.expect("open the schema");
    let core = Hypercore::create(&storage, KeyPair::from_seed(&[1; 32]), None)
        .await
        .expect("open the core");
    (storage, core)
}

async fn write(dir: &Path, blocks: u64, batch: u64, persistent: bool) -> Value {
    let (storage, mut core) = open(dir, persistent).await;
    let template = vec![0xab_u8; SIZE];
    let start = Instant::now();
    let mut i = 0;
    while i < blocks {
        let end = (i + batch).min(blocks);
        let list: Vec<Vec<u8>> = (i..end)
            .map(|j| {
                let mut b = template.clone();
                b[..8].copy_from_slice(&j.to_le_bytes());
                b
            })
            .collect();
        core.append(&list).await.expect("append");
        i = end;
    }
    storage.flush().await.expect("flush");
    let seconds = start.elapsed().as_secs_f64();
    json!({ "seconds": seconds, "perSec": blocks as f64 / seconds, "peakRssKb": peak_rss_kb() })
}

async fn read(dir: &Path, blocks: u64, random: u64, persistent: bool) -> Value {
    let start = Instant::now();
    let (_storage, core) = open(dir, persistent).await;
    let open_seconds = start.elapsed().as_secs_f64();
    assert_eq!(core.length(), blocks, "reopened core length");
    let mut rng = XorShift(0x9e37_79b9);
    for _ in 0..OPEN_READS {
        let block = core.get(u64::from(rng.next()) % blocks).await.expect("get").expect("block");
        assert_eq!(block.len(), SIZE);
    }
    let peak = peak_rss_kb();
    let start = Instant::now();
    for _ in 0..random {
        let block = core.get(u64::from(rng.next()) % blocks).await.expect("get").expect("block");
        assert_eq!(block.len(), SIZE);
    }
    let random_seconds = start.elapsed().as_secs_f64();
    json!({
        "openSeconds": open_seconds,
        "peakRssAfterOpenKb": peak,
        "randomSeconds": random_seconds,
        "randomPerSec": random as f64 / random_seconds,
    })
}

fn run_child(program: &Path, args: &[String], node_path: Option<&Path>) -> Value {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(p) = node_path {
        cmd.env("NODE_PATH", p);
    }
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("child JSON")
}

fn mb(kb: &Value) -> f64 {
    kb.as_f64().unwrap_or(0.0) / 1024.0
}

fn du(dir: &Path) -> f64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total as f64 / 1e9
}

fn run(ns: &[u64], batch: u64, random: u64, js: bool) {
    let rust =
        [("Rust, persistent index (default)", "persistent"), ("Rust, in-memory index", "memory")];
    let me = std::env::current_exe().expect("current exe");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scale/scale.js");
    let node_path = root.join("../tests/interop/node_modules");
    println!(
        "| N | impl | write blocks/s | peak RSS writing | open | peak RSS after open + 1,000 \
         reads | random warm reads/s | on disk |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in ns {
        let mut impls: Vec<(&str, PathBuf, Vec<String>, Option<PathBuf>)> = Vec::new();
        for (name, index) in rust {
            impls.push((name, me.clone(), vec![format!("--index={index}")], None));
        }
        if js {
            impls.push((
                "JS",
                PathBuf::from("node"),
                vec![script.display().to_string()],
                Some(node_path.clone()),
            ));
        }
        for (name, program, prefix, np) in impls {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = dir.path().join("store");
            let arg = |mode: &str, a: u64, b: u64| {
                let mut v = prefix.clone();
                v.extend([
                    mode.to_string(),
                    store.display().to_string(),
                    a.to_string(),
                    b.to_string(),
                ]);
                v
            };
            let w = run_child(&program, &arg("write", n, batch), np.as_deref());
            let r = run_child(&program, &arg("read", n, random), np.as_deref());
            println!(
                "| {n} | {name} | {:.0}k | {:.0} MB | {:.3} s | {:.0} MB | {:.0}k | {:.2} GB |",
                w["perSec"].as_f64().unwrap_or(0.0) / 1e3,
                mb(&w["peakRssKb"]),
                r["openSeconds"].as_f64().unwrap_or(0.0),
                mb(&r["peakRssAfterOpenKb"]),
                r["randomPerSec"].as_f64().unwrap_or(0.0) / 1e3,
                du(&store),
            );
        }
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // The default backend unless `--index=memory`.
    let persistent = !args.iter().any(|a| a == "--index=memory");
    args.retain(|a| !a.starts_with("--index="));
    let num = |i: usize| -> u64 { args.get(i).and_then(|v| v.parse().ok()).expect("a number") };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match args.first().map(String::as_str) {
        Some("write") => {
            let out = rt.block_on(write(Path::new(&args[1]), num(2), num(3), persistent));
            println!("{out}");
        }
        Some("read") => {
            let out = rt.block_on(read(Path::new(&args[1]), num(2), num(3), persistent));
            println!("{out}");
        }
        Some("run") => {
            let mut ns = vec![250_000, 1_000_000, 4_000_000];
            let (mut batch, mut random, mut js) = (100, 100_000, true);
            let mut it = args.iter().skip(1);
            while let Some(flag) = it.next() {
                let mut value = || it.next().expect("a value after the flag").clone();
                match flag.as_str() {
                    "--ns" => ns = value().split(',').map(|v| v.parse().expect("N")).collect(),
                    "--batch" => batch = value().parse().expect("batch"),
                    "--random" => random = value().parse().expect("random"),
                    "--no-js" => js = false,
                    other => panic!("unknown flag {other}"),
                }
            }
            run(&ns, batch, random, js);
        }
        _ => panic!("usage: scale run [--ns N,N,..] [--batch B] [--random R] [--no-js]"),
    }
}
