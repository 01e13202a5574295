//! The many-small-cores benchmark of issue 10: `cores-bench` (or `cores-bench run`) replicates
//! 1,000 cores × 10 blocks × 1 KiB from one store to another over one TCP loopback stream,
//! Node ↔ Node then Rust ↔ Rust, and prints both with the ratio; `--smoke` runs 20 cores.
//! `serve` and `fetch` are the two Rust sides of one run (separate processes).

use anyhow::Result;
use clap::{Parser, Subcommand};
use corestore_benches::cores::peer::CoresPeerCommand;
use corestore_benches::cores::{self, CoresWorkload, ManyCoresOptions, Pair, Side};

#[derive(Parser)]
#[command(about = "Many small cores over one replication stream: Node and Rust stores")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// 20 cores instead of 1,000 (for CI).
    #[arg(long, global = true)]
    smoke: bool,
    /// Cores (overrides the workload's).
    #[arg(long)]
    cores: Option<usize>,
    /// Blocks per core (overrides the workload's).
    #[arg(long)]
    blocks: Option<u64>,
    /// Bytes per block (overrides the workload's).
    #[arg(long)]
    size: Option<usize>,
    /// Only Rust ↔ Rust.
    #[arg(long, global = true)]
    rust_only: bool,
    /// Also the mixed pairs (Node → Rust, Rust → Node).
    #[arg(long, global = true)]
    all_pairs: bool,
    /// Run each pair this many times back to back and keep the fastest.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// The comparison (the default).
    Run,
    /// `serve` and `fetch`: the two Rust sides of one run, with the workload on their own
    /// command line (as `bench-cores.js` takes it).
    #[command(flatten)]
    Peer(CoresPeerCommand),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let base = if cli.smoke { CoresWorkload::SMOKE } else { CoresWorkload::FULL };
    let workload = CoresWorkload {
        cores: cli.cores.unwrap_or(base.cores),
        blocks: cli.blocks.unwrap_or(base.blocks),
        size: cli.size.unwrap_or(base.size).max(16),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command.unwrap_or(Cmd::Run) {
        Cmd::Peer(peer) => runtime.block_on(peer.run()),
        Cmd::Run => {
            let mut options = ManyCoresOptions::new(std::env::current_exe()?, workload);
            options.repeat = cli.repeat;
            if cli.all_pairs {
                options.pairs = Pair::ALL.to_vec();
            }
            if cli.rust_only {
                options.pairs = vec![Pair { server: Side::Rust, client: Side::Rust }];
            }
            let report = runtime.block_on(cores::run_many_cores(&options))?;
            print!("{report}");
            Ok(())
        }
    }
}
