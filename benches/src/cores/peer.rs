//! The Rust side of one many-cores run, through the `corestore` facade: [`serve`] writes the
//! named cores into a disk store and serves the store; [`fetch`] opens every core by key in its
//! own disk store, replicates over one stream and waits until every block of every core is
//! downloaded and verified. Both speak the JSON lines of `tests/interop/scripts/bench-cores.js`.
//! [`CoresPeerCommand`] is their command line for a binary that nests it (`compare many-cores …`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use corestore::{CoreKey, CoreRef, Corestore};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{core_block, CoresWorkload};
use crate::replication::{peak_rss_kib, reset_peak_rss};

/// The two sides of a run as subcommands, the command line of `bench-cores.js`
/// (`serve --dir D --keys K --cores N --blocks N --size N`, `fetch … --port P …`), for a binary
/// that nests them under a subcommand of its own and names it in
/// [`super::ManyCoresOptions::rust_subcommand`].
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CoresPeerCommand {
    /// Write the cores and serve the store ([`serve`]).
    Serve {
        /// Directory of the new store.
        #[arg(long)]
        dir: PathBuf,
        /// Where to write the keys, one hex key a line.
        #[arg(long)]
        keys: PathBuf,
        /// The workload.
        #[command(flatten)]
        workload: WorkloadArgs,
    },
    /// Open every core by key, replicate, wait for all, verify ([`fetch`]).
    Fetch {
        /// Directory of the new store.
        #[arg(long)]
        dir: PathBuf,
        /// The keys the server wrote.
        #[arg(long)]
        keys: PathBuf,
        /// The server's port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        /// The workload.
        #[command(flatten)]
        workload: WorkloadArgs,
    },
}

/// [`CoresWorkload`] on a command line.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WorkloadArgs {
    /// Cores.
    #[arg(long)]
    cores: usize,
    /// Blocks per core.
    #[arg(long)]
    blocks: u64,
    /// Bytes per block (at least [`CoresWorkload::MIN_SIZE`]).
    #[arg(long)]
    size: usize,
}

impl WorkloadArgs {
    fn workload(self) -> Result<CoresWorkload> {
        let Self { cores, blocks, size } = self;
        ensure!(
            size >= CoresWorkload::MIN_SIZE,
            "--size {size}: a block carries its core and index, at least {} bytes",
            CoresWorkload::MIN_SIZE
        );
        Ok(CoresWorkload { cores, blocks, size })
    }
}

impl CoresPeerCommand {
    /// Runs this side ([`serve`] or [`fetch`]).
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Serve { dir, keys, workload } => serve(&dir, &keys, workload.workload()?).await,
            Self::Fetch { dir, keys, port, workload } => {
                fetch(&dir, &keys, port, workload.workload()?).await
            }
        }
    }
}

fn print(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()?;
    Ok(())
}

/// Writes `workload.cores` cores named `bench-<i>`, each of `workload.blocks` blocks (one
/// append per core), into a new store in `dir`; writes their keys (hex, one a line, in order)
/// to `keys_file`; then serves the store on 127.0.0.1 (every connection as the responder) until
/// stdin ends or says `exit`.
pub async fn serve(dir: &Path, keys_file: &Path, workload: CoresWorkload) -> Result<()> {
    let store = Corestore::open(dir).await.with_context(|| format!("open {}", dir.display()))?;
    let start = Instant::now();
    let mut cores = Vec::with_capacity(workload.cores);
    let mut keys = String::with_capacity(workload.cores * 65);
    for c in 0..workload.cores {
        let core = store.get(CoreRef::name(format!("bench-{c}"))).await?;
        let blocks: Vec<Vec<u8>> =
            (0..workload.blocks).map(|i| core_block(c, i, workload.size)).collect();
        core.append_batch(&blocks).await?;
        keys.push_str(&core.key().to_hex());
        keys.push('\n');
        cores.push(core);
    }
    std::fs::write(keys_file, keys)?;
    let write_seconds = start.elapsed().as_secs_f64();
    let peak_reset = reset_peak_rss();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    print(&json!({"port": port, "writeSeconds": write_seconds}))?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut streams = Vec::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                socket.set_nodelay(true)?;
                streams.push(store.replicate(socket, false)?);
            }
            line = stdin.next_line() => match line? {
                Some(line) if line.trim() != "exit" => {}
                _ => break,
            },
        }
    }
    let peak = peak_rss_kib();
    for stream in &streams {
        stream.close();
    }
    drop(cores);
    store.close().await?;
    print(&json!({"peakRssKiB": peak, "peakReset": peak_reset}))
}

/// Opens every core of `keys_file` in a new store in `dir`, then (the clock starts) connects
/// to `port` as the initiator, replicates the store over that one stream and waits until every
/// core holds all `workload.blocks` blocks, verified; then (the clock stops) reads every block
/// back and compares it with [`core_block`]. Fails when a block differs.
pub async fn fetch(dir: &Path, keys_file: &Path, port: u16, workload: CoresWorkload) -> Result<()> {
    let keys = std::fs::read_to_string(keys_file)?;
    let keys: Vec<CoreKey> = keys
        .lines()
        .map(|l| l.trim().parse().context("a line of the keys file is not a core key"))
        .collect::<Result<_>>()?;
    if keys.len() != workload.cores {
        bail!("{} keys for {} cores", keys.len(), workload.cores);
    }
    let store = Corestore::open(dir).await.with_context(|| format!("open {}", dir.display()))?;
    let mut cores = Vec::with_capacity(keys.len());
    for key in keys {
        cores.push(store.get(key).await?);
    }
    let start = Instant::now();
    let socket = TcpStream::connect(("127.0.0.1", port)).await?;
    socket.set_nodelay(true)?;
    let stream = store.replicate(socket, true)?;
    let downloads = cores.iter().map(|core| async move {
        let download = core.download(0, Some(workload.blocks)).await?;
        download.done().await;
        anyhow::Ok(())
    });
    futures::future::try_join_all(downloads).await?;
    let seconds = start.elapsed().as_secs_f64();
    let mut mismatches = 0u64;
    let mut bytes = 0u64;
    for (c, core) in cores.iter().enumerate() {
        for i in 0..workload.blocks {
            match core.get(i).await? {
                Some(b) if b == core_block(c, i, workload.size) => bytes += b.len() as u64,
                _ => mismatches += 1,
            }
        }
    }
    let peak = peak_rss_kib();
    stream.close();
    drop(cores);
    store.close().await?;
    print(&json!({
        "seconds": seconds,
        "cores": workload.cores,
        "bytes": bytes,
        "peakRssKiB": peak,
        "mismatches": mismatches,
    }))?;
    if mismatches > 0 {
        bail!("{mismatches} blocks differ from the writer's");
    }
    Ok(())
}
