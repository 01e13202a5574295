//! The cross-implementation harness: every workload of this crate on Node corestore 7 and on
//! Rust, back to back, in separate processes, gathered into one [`Report`] whose
//! [`Report::markdown`] is the table of figures and ratios.
//!
//! The Rust side of each workload runs in a child process of the harness binary (its hidden
//! [`Worker`] subcommands and the replication peers' [`PeerCommand`]), so every run starts
//! with a fresh heap, as the Node side does.
//!
//! [`PeerCommand`]: crate::replication::peer::PeerCommand

mod table;
mod worker;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use corestore_interop::Node;
use serde::Serialize;

use crate::child;
use crate::cores::{run_many_cores, CoresWorkload, ManyCoresOptions, ManyCoresReport};
use crate::log::{LogOptions, LogReport};
use crate::open::{OpenReport, CORES};
use crate::replication::harness::{Harness, Pair, Run, Side, Workload};
use crate::scale::{ScaleOptions, ScaleReport};

pub use table::{markdown, Row, Unit, RATIO_READS};
pub use worker::{ScaleStep, Worker};

/// A group of rows, selectable with `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Appends, batched and single (the log workload).
    Append,
    /// Sequential and random reads (the log workload).
    Read,
    /// Open and reopen 10,000 named cores.
    Open,
    /// Replicate one core over TCP between two processes, every pair of implementations.
    Replicate,
    /// One store replicating 1,000 small cores to another over one stream, every pair.
    Cores,
    /// A store of 4 million blocks: write, reopen in a fresh process, reads.
    Scale,
}

impl Group {
    /// Every group, in the order of the table.
    pub const ALL: [Self; 6] =
        [Self::Append, Self::Read, Self::Open, Self::Replicate, Self::Cores, Self::Scale];

    /// The name `--only` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Read => "read",
            Self::Open => "open",
            Self::Replicate => "replicate",
            Self::Cores => "cores",
            Self::Scale => "scale",
        }
    }
}

/// The sizes of every workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sizes {
    /// Appends and reads.
    pub log: LogOptions,
    /// Named cores opened.
    pub open_cores: u64,
    /// The small-block replication (100,000 × 1 KiB).
    pub replicate_small: Workload,
    /// The large-block replication (1,600 × 64 KiB).
    pub replicate_large: Workload,
    /// The many small cores replicated over one stream (1,000 × 10 × 1 KiB).
    pub cores: CoresWorkload,
    /// The store at scale (4,000,000 × 1 KiB).
    pub scale: ScaleOptions,
}

impl Sizes {
    /// The sizes of the issue.
    pub const FULL: Self = Self {
        log: LogOptions::FULL,
        open_cores: CORES,
        replicate_small: Workload::SMALL,
        replicate_large: Workload::LARGE,
        cores: CoresWorkload::FULL,
        scale: ScaleOptions::FULL,
    };

    /// Tiny sizes, for CI (debug builds included): a few seconds per workload.
    pub const SMOKE: Self = Self {
        log: LogOptions { blocks: 2000, size: 1024, batch: 100, single: 200, random: 2000 },
        open_cores: 200,
        replicate_small: Workload { blocks: 1000, size: 1024 },
        replicate_large: Workload { blocks: 16, size: 65536 },
        cores: CoresWorkload::SMOKE,
        scale: ScaleOptions { blocks: 5000, batch: 100, random: 1000 },
    };

    /// An error naming the first size the workloads cannot run (a count of 0, blocks of fewer
    /// than 8 bytes, or of fewer than [`CoresWorkload::MIN_SIZE`] for the many cores).
    pub fn check(&self) -> Result<()> {
        let counts = [
            ("--blocks", self.log.blocks),
            ("--single", self.log.single),
            ("--random", self.log.random),
            ("the batch", self.log.batch),
            ("--cores", self.open_cores),
            ("--replicate-1k", self.replicate_small.blocks),
            ("--replicate-64k", self.replicate_large.blocks),
            ("--many-cores", self.cores.cores as u64),
            ("--many-cores-blocks", self.cores.blocks),
            ("--blocks-4m", self.scale.blocks),
            ("--random-4m", self.scale.random),
            ("the batch of the store at scale", self.scale.batch),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            anyhow::bail!("{name} must be at least 1");
        }
        let sizes = [self.log.size, self.replicate_small.size, self.replicate_large.size];
        anyhow::ensure!(
            sizes.iter().all(|&s| s >= 8),
            "blocks carry their index: at least 8 bytes"
        );
        anyhow::ensure!(
            self.cores.size >= CoresWorkload::MIN_SIZE,
            "--many-cores-size: blocks carry their core and index: at least {} bytes",
            CoresWorkload::MIN_SIZE
        );
        Ok(())
    }

    /// Every count of `self` times `fraction` (at least 1; block sizes and batches unchanged,
    /// and the blocks of each of the many cores, the shape of one core, unchanged too: only the
    /// number of cores scales).
    #[must_use]
    pub fn fraction(self, fraction: f64) -> Self {
        // Counts are at most millions: the f64 round trip is exact enough, and a negative or
        // NaN fraction saturates to the floor of 1.
        #[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]
        let f = |n: u64| ((n as f64 * fraction).round() as u64).max(1);
        Self {
            log: LogOptions {
                blocks: f(self.log.blocks),
                single: f(self.log.single),
                random: f(self.log.random),
                ..self.log
            },
            open_cores: f(self.open_cores),
            replicate_small: Workload {
                blocks: f(self.replicate_small.blocks),
                ..self.replicate_small
            },
            replicate_large: Workload {
                blocks: f(self.replicate_large.blocks),
                ..self.replicate_large
            },
            cores: CoresWorkload {
                cores: usize::try_from(f(self.cores.cores as u64)).unwrap_or(usize::MAX),
                ..self.cores
            },
            scale: ScaleOptions {
                blocks: f(self.scale.blocks),
                random: f(self.scale.random),
                ..self.scale
            },
        }
    }
}

/// Both implementations' report of one workload (`js` is `None` without Node).
#[derive(Debug, Clone, Serialize)]
pub struct Sides<T> {
    /// Node corestore 7.
    pub js: Option<T>,
    /// This workspace.
    pub rust: T,
}

/// Everything one run of the harness measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The sizes it ran.
    pub sizes: Sizes,
    /// The groups it ran.
    pub groups: Vec<Group>,
    /// True when the JavaScript side ran.
    pub node: bool,
    /// Appends and reads (groups `append`, `read`).
    pub log: Option<Sides<LogReport>>,
    /// Open 10k (group `open`).
    pub open: Option<Sides<OpenReport>>,
    /// Every replication run, both workloads (group `replicate`).
    pub replication: Vec<Run>,
    /// The many small cores, every pair run (group `cores`).
    pub cores: Option<ManyCoresReport>,
    /// The store at scale (group `scale`).
    pub scale: Option<Sides<ScaleReport>>,
    /// The table.
    pub rows: Vec<Row>,
}

impl Report {
    /// The table, in markdown, with a line saying how the ratio reads.
    pub fn markdown(&self) -> String {
        markdown(&self.rows)
    }
}

/// Makes Node ready for the JavaScript side: `npm ci` in `tests/interop` when `node_modules`
/// is missing or stale. `Ok(None)`, after a notice on stderr, when `node` is not on PATH; an
/// error when `CORESTORE_INTEROP=require` or the install fails.
pub fn node() -> Result<Option<Node>> {
    let node = Node::try_get().context("the JavaScript side (Node corestore 7)")?;
    if node.is_none() {
        eprintln!(
            "NOTICE: `node` is not on PATH: the JavaScript column stays empty \
             (CORESTORE_INTEROP=require makes this an error)"
        );
    }
    Ok(node)
}

/// Runs the workloads.
#[derive(Debug, Clone)]
pub struct Compare {
    exe: PathBuf,
    node: Option<Node>,
    sizes: Sizes,
    groups: Vec<Group>,
}

impl Compare {
    /// Every group at `sizes`; the Rust side runs `exe` (a binary whose subcommands include
    /// [`Worker`] as `worker …` and the replication peers as `serve …`/`fetch …`, such as
    /// `compare`); the JavaScript side runs when `node` is given.
    pub fn new(exe: PathBuf, node: Option<Node>, sizes: Sizes) -> Self {
        Self { exe, node, sizes, groups: Group::ALL.to_vec() }
    }

    /// Only these groups (all of them when `groups` is empty).
    #[must_use]
    pub fn only(mut self, groups: &[Group]) -> Self {
        if !groups.is_empty() {
            self.groups = groups.to_vec();
            self.groups.sort_unstable();
            self.groups.dedup();
        }
        self
    }

    fn runs(&self, group: Group) -> bool {
        self.groups.contains(&group)
    }

    fn worker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("worker").args(args);
        cmd
    }

    /// Runs the selected groups in the order of the table, JavaScript first within each.
    pub async fn run(&self) -> Result<Report> {
        let sizes = self.sizes;
        sizes.check()?;
        let log = if self.runs(Group::Append) || self.runs(Group::Read) {
            Some(self.log().await?)
        } else {
            None
        };
        let open = if self.runs(Group::Open) { Some(self.open().await?) } else { None };
        let replication =
            if self.runs(Group::Replicate) { self.replicate().await? } else { Vec::new() };
        let cores = if self.runs(Group::Cores) { Some(self.cores().await?) } else { None };
        let scale = if self.runs(Group::Scale) { Some(self.scale().await?) } else { None };

        let mut rows = Vec::new();
        if let Some(log) = &log {
            if self.runs(Group::Append) {
                rows.extend(table::append_rows(log, &sizes.log));
            }
            if self.runs(Group::Read) {
                rows.extend(table::read_rows(log, &sizes.log));
            }
        }
        if let Some(open) = &open {
            rows.extend(table::open_rows(open));
        }
        if self.runs(Group::Replicate) {
            for workload in [sizes.replicate_small, sizes.replicate_large] {
                rows.extend(table::replicate_rows(&replication, workload, self.node.is_some()));
            }
        }
        if let Some(cores) = &cores {
            rows.extend(table::cores_rows(cores, self.node.is_some()));
        }
        if let Some(scale) = &scale {
            rows.extend(table::scale_rows(scale));
        }
        Ok(Report {
            sizes,
            groups: self.groups.clone(),
            node: self.node.is_some(),
            log,
            open,
            replication,
            cores,
            scale,
            rows,
        })
    }

    async fn log(&self) -> Result<Sides<LogReport>> {
        let args = self.sizes.log.args();
        let js = match &self.node {
            Some(node) => {
                eprintln!("compare: appends and reads, Node");
                let mut cmd = node.command("bench-hypercore.js");
                cmd.args(&args);
                Some(child::report(cmd, "bench-hypercore.js").await?)
            }
            None => None,
        };
        eprintln!("compare: appends and reads, Rust");
        let mut cmd = self.worker(&["log"]);
        cmd.args(&args);
        let rust = child::report(cmd, "Rust log worker").await?;
        Ok(Sides { js, rust })
    }

    async fn open(&self) -> Result<Sides<OpenReport>> {
        let cores = self.sizes.open_cores.to_string();
        let js = match &self.node {
            Some(node) => {
                eprintln!("compare: open {cores} cores, Node");
                let mut cmd = node.command("bench-open.js");
                cmd.args(["--cores", &cores]).env("NODE_OPTIONS", "--expose-gc");
                Some(child::report(cmd, "bench-open.js").await?)
            }
            None => None,
        };
        eprintln!("compare: open {cores} cores, Rust");
        let rust = child::report(self.worker(&["open", "--cores", &cores]), "Rust open worker");
        Ok(Sides { js, rust: rust.await? })
    }

    async fn replicate(&self) -> Result<Vec<Run>> {
        eprintln!("compare: replication over TCP");
        let harness = Harness::with_node(self.exe.clone(), self.node.clone());
        let rust_rust = Pair { server: Side::Rust, client: Side::Rust };
        let pairs: Vec<Pair> =
            Pair::ALL.into_iter().filter(|&p| self.node.is_some() || p == rust_rust).collect();
        let workloads = [self.sizes.replicate_small, self.sizes.replicate_large];
        harness.table(&workloads, &pairs).await
    }

    /// One store replicating many small cores to another over one stream
    /// ([`run_many_cores`]): Node ↔ Node first, then Rust ↔ Rust, Node → Rust, Rust → Node
    /// (Rust ↔ Rust alone without Node). The Rust peers are `compare many-cores serve|fetch …`.
    async fn cores(&self) -> Result<ManyCoresReport> {
        let workload = self.sizes.cores;
        eprintln!("compare: {workload} over one stream");
        let rust_rust = Pair { server: Side::Rust, client: Side::Rust };
        let options = ManyCoresOptions {
            rust_subcommand: vec!["many-cores".to_owned()],
            pairs: Pair::ALL
                .into_iter()
                .filter(|&p| self.node.is_some() || p == rust_rust)
                .collect(),
            caller: "compare".to_owned(),
            node: self.node.clone(),
            ..ManyCoresOptions::new(self.exe.clone(), workload)
        };
        run_many_cores(&options).await
    }

    async fn scale(&self) -> Result<Sides<ScaleReport>> {
        let options = self.sizes.scale;
        let js = match &self.node {
            Some(node) => {
                eprintln!("compare: store of {} blocks, Node", options.blocks);
                let program = || node.command("bench-scale.js");
                Some(crate::scale::run(program, options, "Node").await?)
            }
            None => None,
        };
        eprintln!("compare: store of {} blocks, Rust", options.blocks);
        let rust = crate::scale::run(|| self.worker(&["scale"]), options, "Rust").await?;
        Ok(Sides { js, rust })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_scales_counts_not_block_sizes() {
        let tenth = Sizes::FULL.fraction(0.1);
        assert_eq!(tenth.log.blocks, 10_000);
        assert_eq!(tenth.log.size, 1024);
        assert_eq!(tenth.log.batch, 100);
        assert_eq!(tenth.open_cores, 1000);
        assert_eq!(tenth.replicate_large, Workload { blocks: 160, size: 65536 });
        assert_eq!(tenth.scale.blocks, 400_000);
        assert_eq!(tenth.cores, CoresWorkload { cores: 100, blocks: 10, size: 1024 });
        assert_eq!(Sizes::FULL.cores, CoresWorkload { cores: 1000, blocks: 10, size: 1024 });
        assert_eq!(Sizes::SMOKE.fraction(0.0).cores.cores, 1);
        assert_eq!(Sizes::SMOKE.fraction(0.0).replicate_large.blocks, 1);
        assert_eq!(Sizes::SMOKE.fraction(f64::NAN).scale.blocks, 1);
    }

    #[test]
    fn sizes_of_zero_are_refused_before_anything_runs() {
        assert!(Sizes::FULL.check().is_ok() && Sizes::SMOKE.fraction(0.01).check().is_ok());
        let mut s = Sizes::SMOKE;
        s.log.random = 0;
        assert_eq!(s.check().unwrap_err().to_string(), "--random must be at least 1");
        let mut s = Sizes::SMOKE;
        s.scale.blocks = 0;
        assert_eq!(s.check().unwrap_err().to_string(), "--blocks-4m must be at least 1");
        let mut s = Sizes::SMOKE;
        s.log.size = 4;
        assert!(s.check().is_err());
        let mut s = Sizes::SMOKE;
        s.cores.cores = 0;
        assert_eq!(s.check().unwrap_err().to_string(), "--many-cores must be at least 1");
        let mut s = Sizes::SMOKE;
        s.cores.blocks = 0;
        assert_eq!(s.check().unwrap_err().to_string(), "--many-cores-blocks must be at least 1");
        let mut s = Sizes::SMOKE;
        s.cores.size = 15;
        let err = s.check().unwrap_err().to_string();
        assert!(err.starts_with("--many-cores-size") && err.contains("16 bytes"), "{err}");
        s.cores.size = 16;
        assert!(s.check().is_ok());
    }

    #[test]
    fn only_sorts_and_dedups_and_empty_means_all() {
        let c = Compare::new(PathBuf::from("x"), None, Sizes::SMOKE);
        assert_eq!(c.clone().only(&[]).groups, Group::ALL);
        let c = c.only(&[Group::Scale, Group::Open, Group::Scale]);
        assert_eq!(c.groups, [Group::Open, Group::Scale]);
    }
}
