//! The cross-implementation benchmark harness: `compare` runs every workload on Node
//! corestore 7 and on Rust back to back and prints one markdown table of both figures and
//! their ratio (> 1: Rust is better). `--smoke` runs tiny sizes (CI), `--only` a subset,
//! `--rust-only` skips Node, `--json` also writes every figure. `worker …`, `serve …`,
//! `fetch …` and `many-cores serve|fetch …` are the Rust side of single runs (the harness starts
//! them as child processes).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use corestore_benches::compare::{self, Compare, Group, Sizes, Worker};
use corestore_benches::cores::peer::CoresPeerCommand;
use corestore_benches::replication::peer::PeerCommand;

#[derive(Parser)]
#[command(about = "Node corestore 7 against Rust, every workload, one table")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Tiny sizes (the whole table in seconds), for CI.
    #[arg(long)]
    smoke: bool,
    /// Every count times this (e.g. 0.1 for a tenth of the full sizes; with --smoke, of those).
    #[arg(long, value_name = "F")]
    fraction: Option<f64>,
    /// Only these groups (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "GROUP")]
    only: Vec<Group>,
    /// Rust only: no Node, no `npm ci`.
    #[arg(long)]
    rust_only: bool,
    /// Also write the report (every figure) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Blocks of the append and read rows [100,000].
    #[arg(long, value_name = "N")]
    blocks: Option<u64>,
    /// Single appends [20,000].
    #[arg(long, value_name = "N")]
    single: Option<u64>,
    /// Random reads [100,000].
    #[arg(long, value_name = "N")]
    random: Option<u64>,
    /// Named cores opened [10,000].
    #[arg(long, value_name = "N")]
    cores: Option<u64>,
    /// Blocks of the 1 KiB replication [100,000].
    #[arg(long, value_name = "N")]
    replicate_1k: Option<u64>,
    /// Blocks of the 64 KiB replication [1,600].
    #[arg(long, value_name = "N")]
    replicate_64k: Option<u64>,
    /// Cores of the many small cores replicated over one stream [1,000].
    #[arg(long, value_name = "N")]
    many_cores: Option<usize>,
    /// Blocks of each of the many small cores [10].
    #[arg(long, value_name = "N")]
    many_cores_blocks: Option<u64>,
    /// Bytes per block of the many small cores [1,024; at least 16].
    #[arg(long, value_name = "BYTES")]
    many_cores_size: Option<usize>,
    /// Blocks of the store at scale [4,000,000].
    #[arg(long, value_name = "N")]
    blocks_4m: Option<u64>,
    /// Random warm gets of the store at scale [100,000].
    #[arg(long, value_name = "N")]
    random_4m: Option<u64>,
}

#[derive(Subcommand)]
enum Cmd {
    /// The table (the default).
    Run,
    /// The Rust side of one workload (prints its JSON report).
    #[command(subcommand, hide = true)]
    Worker(Worker),
    #[command(flatten)]
    Peer(PeerCommand),
    /// One side of a run of the many small cores (`serve …` or `fetch …`).
    #[command(subcommand, hide = true)]
    ManyCores(CoresPeerCommand),
}

impl Cli {
    fn sizes(&self) -> Sizes {
        let mut s = if self.smoke { Sizes::SMOKE } else { Sizes::FULL };
        if let Some(f) = self.fraction {
            s = s.fraction(f);
        }
        let set = |target: &mut u64, value: Option<u64>| *target = value.unwrap_or(*target);
        set(&mut s.log.blocks, self.blocks);
        set(&mut s.log.single, self.single);
        set(&mut s.log.random, self.random);
        set(&mut s.open_cores, self.cores);
        set(&mut s.replicate_small.blocks, self.replicate_1k);
        set(&mut s.replicate_large.blocks, self.replicate_64k);
        s.cores.cores = self.many_cores.unwrap_or(s.cores.cores);
        set(&mut s.cores.blocks, self.many_cores_blocks);
        s.cores.size = self.many_cores_size.unwrap_or(s.cores.size);
        set(&mut s.scale.blocks, self.blocks_4m);
        set(&mut s.scale.random, self.random_4m);
        s
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Peer(peer)) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(peer.run())
        }
        // The multi-thread runtime, as `cores-bench serve|fetch` run.
        Some(Cmd::ManyCores(peer)) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(peer.run())
        }
        Some(Cmd::Worker(worker)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(worker.run())
        }
        Some(Cmd::Run) | None => {
            let node = if cli.rust_only { None } else { compare::node()? };
            let exe = std::env::current_exe().context("the path of this binary")?;
            let harness = Compare::new(exe, node, cli.sizes()).only(&cli.only);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let report = runtime.block_on(harness.run())?;
            print!("{}", report.markdown());
            if let Some(path) = &cli.json {
                let json = serde_json::to_string_pretty(&report)?;
                std::fs::write(path, json + "\n")
                    .with_context(|| format!("write {}", path.display()))?;
            }
            Ok(())
        }
    }
}
