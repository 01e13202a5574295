//! The Rust side of one replication run: a process that writes a core and serves it
//! ([`serve`]), or one that downloads it into its own store and checks it ([`fetch`]). Both
//! speak the JSON lines of `tests/interop/scripts/bench-replicate.js`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use corestore_hypercore::Hypercore;
use corestore_keys::{CoreKey, KeyPair};
use corestore_replicate::protocol::ReplicatorConfig;
use corestore_replicate::{Replication, ReplicationOptions, Role, SharedCore};
use corestore_storage::{DiskStorage, Storage, StorageBackend};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{block, blocks_per_append, peak_rss_kib, reset_peak_rss};

/// The two sides of a run as subcommands (`serve …`, `fetch …`), the command line of
/// `bench-replicate.js`: a binary that flattens this into its own subcommands can be the Rust
/// peer of a [`super::harness::Harness`].
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PeerCommand {
    /// Write a core and serve it (one side of a run).
    Serve {
        /// Directory of the new store.
        #[arg(long)]
        dir: PathBuf,
        /// Blocks to write.
        #[arg(long)]
        blocks: u64,
        /// Bytes per block.
        #[arg(long)]
        size: usize,
    },
    /// Download a core, verify and store it (the other side).
    Fetch {
        /// Directory of the new store.
        #[arg(long)]
        dir: PathBuf,
        /// The core key, hex.
        #[arg(long)]
        key: String,
        /// The server's port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        /// Blocks to download.
        #[arg(long)]
        blocks: u64,
        /// Bytes per block.
        #[arg(long)]
        size: usize,
    },
}

impl PeerCommand {
    /// Runs this side ([`serve`] or [`fetch`]).
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Serve { dir, blocks, size } => serve(&dir, blocks, size).await,
            Self::Fetch { dir, key, port, blocks, size } => {
                fetch(&dir, &key, port, blocks, size).await
            }
        }
    }
}

async fn disk_storage(dir: &Path) -> Result<Arc<Storage>> {
    let backend: Arc<dyn StorageBackend> =
        Arc::new(DiskStorage::open(dir).with_context(|| format!("open {}", dir.display()))?);
    Ok(Storage::open(backend).await?)
}

fn print(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()?;
    Ok(())
}

/// Writes `blocks` blocks of `size` bytes to a new core in `dir`, then serves it on 127.0.0.1
/// (every connection as the responder) until stdin ends or says `exit`.
pub async fn serve(dir: &Path, blocks: u64, size: usize) -> Result<()> {
    let storage = disk_storage(dir).await?;
    let mut core = Hypercore::create(&storage, KeyPair::generate(), None).await?;
    let per_append = blocks_per_append(size);
    let start = Instant::now();
    let mut i = 0;
    while i < blocks {
        let end = blocks.min(i + per_append);
        let batch: Vec<Vec<u8>> = (i..end).map(|j| block(j, size)).collect();
        core.append(&batch).await?;
        i = end;
    }
    let write_seconds = start.elapsed().as_secs_f64();
    let peak_reset = reset_peak_rss();
    let shared = SharedCore::new(core, ReplicatorConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    print(&json!({"key": shared.key().to_hex(), "port": port, "writeSeconds": write_seconds}))?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut connections = Vec::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                socket.set_nodelay(true)?;
                let conn = Replication::spawn(socket, Role::Responder, ReplicationOptions::default());
                conn.attach(&shared);
                connections.push(conn);
            }
            line = stdin.next_line() => match line? {
                Some(line) if line.trim() != "exit" => {}
                _ => break,
            },
        }
    }
    let peak = peak_rss_kib();
    for conn in &connections {
        conn.close();
    }
    print(&json!({"peakRssKiB": peak, "peakReset": peak_reset}))
}

/// Downloads `blocks` blocks of `size` bytes of core `key` from `port` into a new store in
/// `dir` (as the initiator), then reads every block back and compares it with [`block`].
/// Fails when a block differs.
pub async fn fetch(dir: &Path, key: &str, port: u16, blocks: u64, size: usize) -> Result<()> {
    let storage = disk_storage(dir).await?;
    let key: CoreKey = key.parse().context("--key is not a core key")?;
    let core = Hypercore::open(&storage, key, None).await?;
    let shared = SharedCore::new(core, ReplicatorConfig::default());
    let start = Instant::now();
    let socket = TcpStream::connect(("127.0.0.1", port)).await?;
    socket.set_nodelay(true)?;
    let conn = Replication::spawn(socket, Role::Initiator, ReplicationOptions::default());
    conn.attach(&shared);
    let download = shared.download(0, Some(blocks)).await;
    download.done().await;
    let seconds = start.elapsed().as_secs_f64();
    drop(download);
    let core = shared.read().await;
    let mut mismatches = 0u64;
    let mut bytes = 0u64;
    for i in 0..blocks {
        match core.get(i).await? {
            Some(b) if b == block(i, size) => bytes += b.len() as u64,
            _ => mismatches += 1,
        }
    }
    drop(core);
    let peak = peak_rss_kib();
    conn.close();
    let _ = conn.finished().await;
    print(&json!({
        "seconds": seconds,
        "blocks": blocks,
        "bytes": bytes,
        "peakRssKiB": peak,
        "mismatches": mismatches,
    }))?;
    if mismatches > 0 {
        bail!("{mismatches} blocks differ from the writer's");
    }
    Ok(())
}
