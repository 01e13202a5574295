//! The many-small-cores benchmark (issue 10): one store writes `cores` named cores of `blocks`
//! blocks each and serves them; another store, in its own process, is given the keys, opens
//! every core, replicates with the first over **one** TCP loopback stream and waits until every
//! core is fully downloaded and verified. Time runs from the connect to the last core complete;
//! both sides report their peak RSS. The same workload runs Node ↔ Node (corestore 7.12.5,
//! `tests/interop/scripts/bench-cores.js`) and Rust ↔ Rust (the `corestore` facade, [`peer`]),
//! back to back, and [`ManyCoresReport`] prints the ratio.
//!
//! [`run_many_cores`] is the entry point for other harnesses; `cores-bench` is its command line.

pub mod peer;

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use corestore_interop::Node;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub use crate::replication::harness::{Pair, Side};

/// How long one side may take to start, download or stop before the run is abandoned.
const STEP_TIMEOUT: Duration = Duration::from_secs(900);

/// What is replicated: `cores` cores of `blocks` blocks of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CoresWorkload {
    /// Cores.
    pub cores: usize,
    /// Blocks per core.
    pub blocks: u64,
    /// Bytes per block (at least 16).
    pub size: usize,
}

impl CoresWorkload {
    /// The workload: 1,000 cores × 10 blocks × 1 KiB.
    pub const FULL: Self = Self { cores: 1000, blocks: 10, size: 1024 };
    /// The CI smoke workload: 20 cores × 10 blocks × 1 KiB.
    pub const SMOKE: Self = Self { cores: 20, blocks: 10, size: 1024 };
    /// The fewest bytes a block can have: it carries its core number and index.
    pub const MIN_SIZE: usize = 16;

    /// Bytes in all cores.
    pub fn bytes(self) -> u64 {
        self.cores as u64 * self.blocks * self.size as u64
    }

    /// The workload's part of a peer's command line (`--cores N --blocks N --size N`), as
    /// `bench-cores.js` and [`peer::CoresPeerCommand`] take it.
    pub fn args(self) -> Vec<String> {
        vec![
            "--cores".into(),
            self.cores.to_string(),
            "--blocks".into(),
            self.blocks.to_string(),
            "--size".into(),
            self.size.to_string(),
        ]
    }
}

impl fmt::Display for CoresWorkload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cores × {} blocks × {} B", self.cores, self.blocks, self.size)
    }
}

/// Block `i` of core `c`, `size` bytes (at least 16): the 8-byte little-endian core number, the
/// 8-byte little-endian block index, then byte `j` = `(c * 31 + i * 13 + j) & 255`. The Node
/// script writes the same bytes.
pub fn core_block(c: usize, i: u64, size: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(size.max(16));
    b.extend_from_slice(&(c as u64).to_le_bytes());
    b.extend_from_slice(&i.to_le_bytes());
    let seed = (c as u64).wrapping_mul(31).wrapping_add(i.wrapping_mul(13));
    b.extend((16..size).map(|j| (seed.wrapping_add(j as u64) & 255) as u8));
    b
}

/// How to run [`run_many_cores`].
#[derive(Debug, Clone)]
pub struct ManyCoresOptions {
    /// The executable of the Rust peers: `rust_exe [rust_subcommand…] serve|fetch …`
    /// (`cores-bench`, or a binary that nests [`peer::CoresPeerCommand`] under a subcommand).
    pub rust_exe: PathBuf,
    /// Arguments of every Rust peer before its own `serve`/`fetch` (empty for `cores-bench`;
    /// `["many-cores"]` for `compare`).
    pub rust_subcommand: Vec<String>,
    /// Extra arguments for every Rust peer (after its own).
    pub rust_args: Vec<String>,
    /// The workload.
    pub workload: CoresWorkload,
    /// The pairs to run, in order (Node pairs are skipped when Node is missing).
    pub pairs: Vec<Pair>,
    /// Run each pair this many times back to back and keep the fastest.
    pub repeat: u32,
    /// Who asks (for the interop harness's messages about a missing Node).
    pub caller: String,
    /// Node, already made ready by the caller; when `None` and a pair needs Node, it is made
    /// ready with `Node::get(caller)` (`npm ci` when missing; Node pairs skipped without Node).
    pub node: Option<Node>,
}

impl ManyCoresOptions {
    /// Node ↔ Node then Rust ↔ Rust on `workload`, once each.
    pub fn new(rust_exe: PathBuf, workload: CoresWorkload) -> Self {
        Self {
            rust_exe,
            rust_subcommand: Vec::new(),
            rust_args: Vec::new(),
            workload,
            pairs: vec![Pair::ALL[0], Pair::ALL[1]],
            repeat: 1,
            caller: "cores-bench".into(),
            node: None,
        }
    }
}

/// One finished run of one pair.
#[derive(Debug, Clone, Serialize)]
pub struct ManyCoresRun {
    /// Who served, who downloaded.
    pub pair: Pair,
    /// Seconds from the client's connect to every core complete.
    pub seconds: f64,
    /// Bytes the client read back identical to the writer's.
    pub verified_bytes: u64,
    /// The client's peak RSS, KiB.
    pub client_rss_kib: Option<u64>,
    /// The server's peak RSS while serving (or overall when it could not be reset), KiB.
    pub server_rss_kib: Option<u64>,
    /// True when the server's peak was reset after writing the cores.
    pub server_peak_reset: bool,
    /// Seconds the server took to write the cores (not part of `seconds`).
    pub write_seconds: f64,
}

/// Every run of [`run_many_cores`], printable as a table with the Rust ↔ Rust / Node ↔ Node
/// ratio.
#[derive(Debug, Clone, Serialize)]
pub struct ManyCoresReport {
    /// The workload.
    pub workload: CoresWorkload,
    /// The runs, in the order of [`ManyCoresOptions::pairs`].
    pub runs: Vec<ManyCoresRun>,
}

impl ManyCoresReport {
    /// The run of `pair`, if it ran.
    pub fn run(&self, pair: Pair) -> Option<&ManyCoresRun> {
        self.runs.iter().find(|r| r.pair == pair)
    }

    /// Node ↔ Node seconds over Rust ↔ Rust seconds (above 1: Rust is faster), when both ran.
    pub fn rust_speedup(&self) -> Option<f64> {
        let node = self.run(Pair::ALL[0])?;
        let rust = self.run(Pair::ALL[1])?;
        Some(node.seconds / rust.seconds)
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".into(), |k| format!("{} MiB", k.div_ceil(1024)))
}

impl fmt::Display for ManyCoresReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}, over one stream (TCP loopback), each side its own process and disk store",
            self.workload
        )?;
        writeln!(f, "server → client  connect → all complete   client peak RSS   server peak RSS (serving)   write")?;
        for run in &self.runs {
            let mut line = String::new();
            let _ = write!(
                line,
                "{:<15}  {:>10.3} s             {:>12}      {:>12}{}   {:.2} s",
                run.pair.to_string(),
                run.seconds,
                mib(run.client_rss_kib),
                mib(run.server_rss_kib),
                if run.server_peak_reset { "              " } else { " (incl. writing)" },
                run.write_seconds,
            );
            writeln!(f, "{line}")?;
        }
        if let Some(ratio) = self.rust_speedup() {
            writeln!(f, "Rust → Rust is {ratio:.2}× Node → Node (time; above 1 is faster)")?;
        }
        Ok(())
    }
}

/// Runs the pairs of `options` on its workload, one after another, each side in its own
/// process with its own temporary disk store; fails when a client's blocks differ.
pub async fn run_many_cores(options: &ManyCoresOptions) -> Result<ManyCoresReport> {
    let wants_node = options.pairs.iter().any(|p| p.server == Side::Node || p.client == Side::Node);
    let node = match &options.node {
        Some(node) => Some(node.clone()),
        None if wants_node => Node::get(&options.caller),
        None => None,
    };
    let mut runs = Vec::new();
    for &pair in &options.pairs {
        let uses_node = pair.server == Side::Node || pair.client == Side::Node;
        if uses_node && node.is_none() {
            continue;
        }
        let mut best: Option<ManyCoresRun> = None;
        for _ in 0..options.repeat.max(1) {
            let run = run_pair(options, node.as_ref(), pair).await?;
            if best.as_ref().is_none_or(|b| run.seconds < b.seconds) {
                best = Some(run);
            }
        }
        runs.extend(best);
    }
    Ok(ManyCoresReport { workload: options.workload, runs })
}

fn command(
    options: &ManyCoresOptions,
    node: Option<&Node>,
    side: Side,
    args: &[String],
) -> Result<Command> {
    let mut cmd = match side {
        Side::Rust => {
            let mut cmd = std::process::Command::new(&options.rust_exe);
            cmd.args(&options.rust_subcommand).args(args).args(&options.rust_args);
            cmd
        }
        Side::Node => {
            let mut cmd = node.context("Node is not available")?.command("bench-cores.js");
            cmd.args(args);
            cmd
        }
    };
    cmd.stderr(Stdio::inherit());
    let mut cmd = Command::from(cmd);
    cmd.kill_on_drop(true);
    Ok(cmd)
}

async fn run_pair(
    options: &ManyCoresOptions,
    node: Option<&Node>,
    pair: Pair,
) -> Result<ManyCoresRun> {
    let tmp = tempfile::tempdir()?;
    let path = |name: &str| tmp.path().join(name).display().to_string();
    let workload = options.workload;

    let mut serve_args = vec!["serve".into(), "--dir".into(), path("server")];
    serve_args.extend(["--keys".into(), path("keys.txt")]);
    serve_args.extend(workload.args());
    let mut server = command(options, node, pair.server, &serve_args)?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut server_out = BufReader::new(server.stdout.take().context("server stdout")?).lines();
    let ready = within("server start", server_out.next_line()).await??;
    let ready: Value = serde_json::from_str(&ready.context("server exited before serving")?)?;
    let port = ready["port"].as_u64().context("server printed no port")?;

    let mut fetch_args = vec!["fetch".into(), "--dir".into(), path("client")];
    fetch_args.extend(["--keys".into(), path("keys.txt"), "--port".into(), port.to_string()]);
    fetch_args.extend(workload.args());
    let client = command(options, node, pair.client, &fetch_args)?.stdout(Stdio::piped()).output();
    let client = within("client download", client).await??;
    ensure!(client.status.success(), "{pair} client failed: {}", client.status);
    let report = String::from_utf8(client.stdout)?;
    let report: Value =
        serde_json::from_str(report.lines().last().context("client printed nothing")?)?;

    let stopped = stop(&mut server, &mut server_out).await?;
    let run = ManyCoresRun {
        pair,
        seconds: report["seconds"].as_f64().context("client printed no time")?,
        verified_bytes: report["bytes"].as_u64().unwrap_or(0),
        client_rss_kib: report["peakRssKiB"].as_u64(),
        server_rss_kib: stopped["peakRssKiB"].as_u64(),
        server_peak_reset: stopped["peakReset"].as_bool().unwrap_or(false),
        write_seconds: ready["writeSeconds"].as_f64().unwrap_or(0.0),
    };
    if report["mismatches"].as_u64() != Some(0) || run.verified_bytes != workload.bytes() {
        bail!("{pair}: the client's blocks differ from the writer's: {report}");
    }
    Ok(run)
}

async fn within<F: std::future::Future>(what: &str, f: F) -> Result<F::Output> {
    tokio::time::timeout(STEP_TIMEOUT, f).await.with_context(|| format!("{what} timed out"))
}

/// Tells the server to stop and reads its last report.
async fn stop(
    server: &mut Child,
    out: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Result<Value> {
    let mut stdin = server.stdin.take().context("server stdin")?;
    stdin.write_all(b"exit\n").await?;
    drop(stdin);
    let line = within("server stop", out.next_line()).await??;
    let status = within("server exit", server.wait()).await??;
    ensure!(status.success(), "server failed: {status}");
    Ok(serde_json::from_str(&line.context("server printed no report")?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_carry_their_core_and_index_and_the_shared_pattern() {
        let b = core_block(7, 3, 1024);
        assert_eq!(b.len(), 1024);
        assert_eq!(b[..8], 7u64.to_le_bytes());
        assert_eq!(b[8..16], 3u64.to_le_bytes());
        // (7 * 31 + 3 * 13 + 16) & 255 = 272 & 255 = 16, as the Node script computes it.
        assert_eq!(b[16], 16);
        assert_ne!(core_block(1, 0, 64), core_block(0, 1, 64));
        assert_eq!(CoresWorkload::FULL.bytes(), 10_240_000);
    }
}
