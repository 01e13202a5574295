//! The replication benchmark of issue 9: `replication-bench` (or `replication-bench run`)
//! prints the table of Node ↔ Node, Rust ↔ Rust, Node → Rust and Rust → Node over TCP loopback,
//! 100,000 × 1 KiB and 1,600 × 64 KiB; `--smoke` runs a tiny version. `serve` and `fetch` are
//! the two sides of one run (the harness starts them as separate processes).

use anyhow::Result;
use clap::{Parser, Subcommand};
use corestore_benches::replication::harness::{self, Harness, Pair, Side, Workload};
use corestore_benches::replication::peer::PeerCommand;

#[derive(Parser)]
#[command(about = "Replication benchmark: Node and Rust peers over TCP loopback")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Run a tiny table (2,000 × 1 KiB and 32 × 64 KiB), for CI.
    #[arg(long, global = true)]
    smoke: bool,
    /// Only the pairs without Node.
    #[arg(long, global = true)]
    rust_only: bool,
    /// The tokio runtime of the Rust peers: `multi` (one worker per core) or `current` (one
    /// thread).
    #[arg(long, global = true, default_value = "multi")]
    runtime: Flavor,
    /// Run each pair this many times back to back and keep the fastest.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Flavor {
    Multi,
    Current,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole table (the default).
    Run,
    #[command(flatten)]
    Peer(PeerCommand),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = match cli.runtime {
        Flavor::Multi => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
        Flavor::Current => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
    };
    match cli.command.unwrap_or(Cmd::Run) {
        Cmd::Peer(peer) => runtime.block_on(peer.run()),
        Cmd::Run => {
            let workloads = if cli.smoke {
                vec![Workload { blocks: 2000, size: 1024 }, Workload { blocks: 32, size: 65536 }]
            } else {
                vec![Workload::SMALL, Workload::LARGE]
            };
            let pairs: Vec<Pair> = Pair::ALL
                .into_iter()
                .filter(|p| !cli.rust_only || (p.server == Side::Rust && p.client == Side::Rust))
                .collect();
            let harness =
                Harness::new(std::env::current_exe()?, !cli.rust_only, "replication-bench");
            let runs = runtime.block_on(harness.best_of(cli.repeat, &workloads, &pairs))?;
            print!("{}", harness::report(&runs));
            Ok(())
        }
    }
}
