//! Storage at scale: one writer core of 1 KiB blocks appended through the `Corestore` facade,
//! then reopened in a fresh process, for Rust and for JavaScript corestore 7 in one run.
//!
//! ```text
//! cargo run --release -p corestore-benches --example scale -- run [--ns 250000,1000000,4000000]
//!     [--batch 100] [--random 100000] [--no-js]
//! ```
//!
//! Rust runs twice: with the default `DiskStorage` (its persistent index) and with every key in
//! memory (`DiskOptions::persistent_index(false)`). For
//! each N, each implementation: a `write` process appends N blocks (batches of `--batch`) and
//! reports the write rate and its peak RSS; a fresh `read` process opens the store and the
//! core (timed), does 1,000 random gets and reports its peak RSS so far, then times `--random`
//! random warm gets. The workload is `corestore_benches::scale` (the `scale` row group of the
//! `compare` harness, which runs the default backend only); the JavaScript side is
//! `tests/interop/scripts/bench-scale.js` on the pinned corestore 7.12.5 (installed with
//! `npm ci` when missing). Peak RSS is the kernel's high-water mark (`VmHWM`, Node's
//! `resourceUsage().maxRSS`). Stores live in the system temp directory and are removed after
//! each N.

// A benchmark binary: it prints its results.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use corestore_benches::scale::{self, Backend, ScaleOptions};
use corestore_storage::DiskOptions;

fn backend(index: &str) -> Result<Backend> {
    match index {
        "memory" => Ok(Backend::Disk(DiskOptions::default().persistent_index(false))),
        "persistent" => Ok(Backend::Disk(DiskOptions::default().persistent_index(true))),
        other => bail!("--index={other}: expected memory or persistent"),
    }
}

async fn run(ns: &[u64], batch: u64, random: u64, js: bool) -> Result<()> {
    let me = std::env::current_exe().context("current exe")?;
    let node = if js { corestore_benches::compare::node()? } else { None };
    println!(
        "| N | impl | write blocks/s | peak RSS writing | open | peak RSS after open + 1,000 \
         reads | random warm reads/s | on disk |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in ns {
        let options = ScaleOptions { blocks: n, batch, random };
        let mut runs = Vec::new();
        for (name, index) in [
            ("Rust, persistent index (default)", "persistent"),
            ("Rust, in-memory index", "memory"),
        ] {
            let program = || {
                let mut cmd = Command::new(&me);
                cmd.arg(format!("--index={index}"));
                cmd
            };
            runs.push((name, scale::run(program, options, name).await?));
        }
        if let Some(node) = &node {
            runs.push(("JS", scale::run(|| node.command("bench-scale.js"), options, "JS").await?));
        }
        for (name, r) in runs {
            // Byte counts stay far below 2^52: the f64 is exact.
            #[allow(clippy::cast_precision_loss)]
            let disk_gb = r.disk_bytes as f64 / 1e9;
            println!(
                "| {n} | {name} | {:.0}k | {:.0} MB | {:.3} s | {:.0} MB | {:.0}k | {disk_gb:.2} GB |",
                r.write.per_sec / 1e3,
                r.write.peak_rss_kb / 1024,
                r.read.open_seconds,
                r.read.peak_rss_after_open_kb / 1024,
                r.read.random_per_sec / 1e3,
            );
        }
    }
    Ok(())
}

fn number(args: &[String], i: usize) -> Result<u64> {
    let arg = args.get(i).with_context(|| format!("argument {i} is missing"))?;
    arg.parse().with_context(|| format!("{arg:?} is not a number"))
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let index = args.iter().find_map(|a| a.strip_prefix("--index=")).unwrap_or("memory");
    let backend = backend(index)?;
    args.retain(|a| !a.starts_with("--index="));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let dir = || args.get(1).map(PathBuf::from).context("the store directory is missing");
    match args.first().map(String::as_str) {
        Some("write") => {
            let out =
                rt.block_on(scale::write(&dir()?, number(&args, 2)?, number(&args, 3)?, backend))?;
            println!("{}", serde_json::to_string(&out)?);
        }
        Some("read") => {
            let out =
                rt.block_on(scale::read(&dir()?, number(&args, 2)?, number(&args, 3)?, backend))?;
            println!("{}", serde_json::to_string(&out)?);
        }
        Some("run") => {
            let mut ns = vec![250_000, 1_000_000, 4_000_000];
            let (mut batch, mut random, mut js) = (100, 100_000, true);
            let mut it = args.iter().skip(1);
            while let Some(flag) = it.next() {
                let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
                let parse = |v: &String| v.parse::<u64>().with_context(|| format!("{flag} {v}"));
                match flag.as_str() {
                    "--ns" => {
                        let list = value()?;
                        ns =
                            list.split(',').map(|v| parse(&v.to_owned())).collect::<Result<_>>()?;
                    }
                    "--batch" => batch = parse(value()?)?,
                    "--random" => random = parse(value()?)?,
                    "--no-js" => js = false,
                    other => bail!("unknown flag {other}"),
                }
            }
            rt.block_on(run(&ns, batch, random, js))?;
        }
        _ => bail!("usage: scale run [--ns N,N,..] [--batch B] [--random R] [--no-js]"),
    }
    Ok(())
}
