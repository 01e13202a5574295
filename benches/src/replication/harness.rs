//! Runs server/client pairs of Node and Rust peers as separate processes, one after another,
//! and prints the table with the ratios the issue asks for.

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

/// How long one side may take to start, download or stop before the run is abandoned.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// An implementation of one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    /// JavaScript corestore 7.12.5 / hypercore 11.39.5.
    Node,
    /// This workspace.
    Rust,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Node => "Node",
            Self::Rust => "Rust",
        })
    }
}

/// Who serves and who downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// Writes the core and serves it.
    pub server: Side,
    /// Downloads it.
    pub client: Side,
}

impl Pair {
    /// Node ↔ Node, Rust ↔ Rust, Node → Rust, Rust → Node: the order of the table.
    pub const ALL: [Self; 4] = [
        Self { server: Side::Node, client: Side::Node },
        Self { server: Side::Rust, client: Side::Rust },
        Self { server: Side::Node, client: Side::Rust },
        Self { server: Side::Rust, client: Side::Node },
    ];

    fn uses_node(self) -> bool {
        self.server == Side::Node || self.client == Side::Node
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", self.server, self.client)
    }
}

/// What is replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Blocks.
    pub blocks: u64,
    /// Bytes per block.
    pub size: usize,
}

impl Workload {
    /// 100,000 × 1 KiB.
    pub const SMALL: Self = Self { blocks: 100_000, size: 1024 };
    /// 1,600 × 64 KiB.
    pub const LARGE: Self = Self { blocks: 1600, size: 65536 };

    /// Bytes in the core.
    pub fn bytes(self) -> u64 {
        self.blocks * self.size as u64
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} × {} KiB", self.blocks, self.size / 1024)
    }
}

/// One finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Who served, who downloaded.
    pub pair: Pair,
    /// What.
    pub workload: Workload,
    /// Seconds from the client's connect to every block verified and stored.
    pub seconds: f64,
    /// Blocks the client read back identical to the writer's.
    pub verified_bytes: u64,
    /// The client's peak RSS, KiB.
    pub client_rss_kib: Option<u64>,
    /// The server's peak RSS while serving (or overall when it could not be reset), KiB.
    pub server_rss_kib: Option<u64>,
    /// True when the server's peak was reset after writing the source core.
    pub server_peak_reset: bool,
    /// Seconds the server took to write the source core (not part of `seconds`).
    pub write_seconds: f64,
}

impl Run {
    /// Megabytes (10^6 bytes) per second.
    // Byte counts of a benchmark stay far below 2^52: the f64 is exact.
    #[allow(clippy::cast_precision_loss)]
    pub fn mb_per_s(&self) -> f64 {
        self.workload.bytes() as f64 / 1e6 / self.seconds
    }
}

/// Starts the peers.
#[derive(Debug, Clone)]
pub struct Harness {
    rust: PathBuf,
    rust_args: Vec<String>,
    node: Option<Node>,
}

impl Harness {
    /// Rust peers run `rust_exe serve|fetch …`; Node peers (installed with `npm ci` when
    /// missing) run `bench-replicate.js`. `node` is false, or Node is not installed: Node pairs
    /// are skipped.
    pub fn new(rust_exe: PathBuf, node: bool, caller: &str) -> Self {
        let node = if node { Node::get(caller) } else { None };
        Self::with_node(rust_exe, node)
    }

    /// [`Harness::new`] with Node already made ready (or `None`: Node pairs are skipped).
    pub fn with_node(rust_exe: PathBuf, node: Option<Node>) -> Self {
        Self { rust: rust_exe, rust_args: Vec::new(), node }
    }

    /// Passes `args` to every Rust peer too (after its own).
    #[must_use]
    pub fn with_rust_args(mut self, args: &[&str]) -> Self {
        self.rust_args = args.iter().map(|&a| a.to_owned()).collect();
        self
    }

    /// True when Node pairs can run.
    pub fn has_node(&self) -> bool {
        self.node.is_some()
    }

    fn command(&self, side: Side, args: &[String]) -> Result<Command> {
        let mut cmd = match side {
            Side::Rust => {
                let mut cmd = std::process::Command::new(&self.rust);
                cmd.args(args).args(&self.rust_args);
                cmd
            }
            Side::Node => {
                let node = self.node.as_ref().context("Node is not available")?;
                let mut cmd = node.command("bench-replicate.js");
                cmd.args(args);
                cmd
            }
        };
        cmd.stderr(Stdio::inherit());
        let mut cmd = Command::from(cmd);
        cmd.kill_on_drop(true);
        Ok(cmd)
    }

    /// Runs `pair` on `workload` in fresh temp directories.
    pub async fn run(&self, pair: Pair, workload: Workload) -> Result<Run> {
        let tmp = tempfile::tempdir()?;
        let size = workload.size.to_string();
        let blocks = workload.blocks.to_string();
        let dir = |name: &str| tmp.path().join(name).display().to_string();
        let common = ["--blocks".into(), blocks, "--size".into(), size];

        let mut serve_args = vec!["serve".into(), "--dir".into(), dir("server")];
        serve_args.extend(common.iter().cloned());
        let mut server = self.command(pair.server, &serve_args)?;
        let mut server = server.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let mut server_out = BufReader::new(server.stdout.take().context("server stdout")?).lines();
        let ready = within("server start", server_out.next_line()).await??;
        let ready: Value = serde_json::from_str(&ready.context("server exited before serving")?)?;
        let key = ready["key"].as_str().context("server printed no key")?.to_owned();
        let port = ready["port"].as_u64().context("server printed no port")?;

        let mut fetch_args = vec!["fetch".into(), "--dir".into(), dir("client")];
        fetch_args.extend(["--key".into(), key, "--port".into(), port.to_string()]);
        fetch_args.extend(common.iter().cloned());
        let client = self.command(pair.client, &fetch_args)?.stdout(Stdio::piped()).output();
        let client = within("client download", client).await??;
        ensure!(client.status.success(), "{pair} client failed: {}", client.status);
        let report = String::from_utf8(client.stdout)?;
        let report: Value =
            serde_json::from_str(report.lines().last().context("client printed nothing")?)?;

        let stopped = stop(&mut server, &mut server_out).await?;
        let run = Run {
            pair,
            workload,
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

    /// Runs every pair on every workload, in order; Node pairs only when Node is available.
    pub async fn table(&self, workloads: &[Workload], pairs: &[Pair]) -> Result<Vec<Run>> {
        self.best_of(1, workloads, pairs).await
    }

    /// [`Harness::table`], each run `repeat` times back to back; the fastest of them counts
    /// (the machine is shared, so slower runs measure the neighbours).
    pub async fn best_of(
        &self,
        repeat: u32,
        workloads: &[Workload],
        pairs: &[Pair],
    ) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for &workload in workloads {
            for &pair in pairs {
                if pair.uses_node() && !self.has_node() {
                    continue;
                }
                let mut best: Option<Run> = None;
                for _ in 0..repeat.max(1) {
                    let run = self.run(pair, workload).await?;
                    eprintln!("  {}", row(&run));
                    if best.as_ref().is_none_or(|b| run.seconds < b.seconds) {
                        best = Some(run);
                    }
                }
                runs.extend(best);
            }
        }
        Ok(runs)
    }
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

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".into(), |k| format!("{} MiB", k.div_ceil(1024)))
}

/// One line of the table.
pub fn row(run: &Run) -> String {
    format!(
        "{:<18} {:<13} {:>8.2} s {:>8.1} MB/s   client peak RSS {:>8}   server peak RSS {:>8}{}",
        run.workload.to_string(),
        run.pair.to_string(),
        run.seconds,
        run.mb_per_s(),
        mib(run.client_rss_kib),
        mib(run.server_rss_kib),
        if run.server_peak_reset { "" } else { " (incl. writing)" },
    )
}

/// The table and the ratios against Node ↔ Node, with the targets.
pub fn report(runs: &[Run]) -> String {
    let mut out = String::new();
    out.push_str("workload           server → client  time       throughput   peak RSS (client, server while serving)\n");
    for run in runs {
        out.push_str(&row(run));
        out.push('\n');
    }
    let mut workloads: Vec<Workload> = runs.iter().map(|r| r.workload).collect();
    workloads.dedup();
    for workload in workloads {
        let find = |pair: Pair| runs.iter().find(|r| r.workload == workload && r.pair == pair);
        let Some(node) = find(Pair::ALL[0]) else { continue };
        let target = if workload.size >= 64 * 1024 { 4.0 } else { 10.0 };
        for (pair, target) in [(Pair::ALL[1], target), (Pair::ALL[2], 1.0), (Pair::ALL[3], 1.0)] {
            if let Some(run) = find(pair) {
                let ratio = node.seconds / run.seconds;
                let verdict = if ratio >= target { "met" } else { "NOT met" };
                let _ = writeln!(
                    out,
                    "{workload}: {pair} is {ratio:.2}× Node → Node (target ≥ {target}×: {verdict})"
                );
            }
        }
    }
    out
}
