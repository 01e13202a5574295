//! The rows of the table, built from the typed reports, and their markdown.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Group, Sides};
use crate::cores::ManyCoresReport;
use crate::log::{LogOptions, LogReport};
use crate::open::OpenReport;
use crate::replication::harness::{Pair, Run, Side, Workload};
use crate::scale::{ScaleReport, OPEN_READS};

/// How to read the ratio column.
pub const RATIO_READS: &str = "ratio > 1: Rust is better \
    (rates: Rust ÷ JS; times and memory: JS ÷ Rust)";

/// The unit of a row's figures, which also says which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Unit {
    /// Blocks per second (higher is better).
    BlocksPerSec,
    /// Seconds (lower is better).
    Seconds,
    /// Mebibytes of memory (lower is better).
    Mib,
    /// Kibibytes of memory per core (lower is better).
    KibPerCore,
}

impl Unit {
    /// True for rates, where more is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Self::BlocksPerSec)
    }

    fn format(self, value: f64) -> String {
        match self {
            Self::BlocksPerSec if value >= 1e6 => format!("{:.2}M blocks/s", value / 1e6),
            Self::BlocksPerSec if value >= 1e4 => format!("{:.1}k blocks/s", value / 1e3),
            Self::BlocksPerSec => format!("{value:.0} blocks/s"),
            Self::Seconds => format!("{value:.3} s"),
            Self::Mib => format!("{value:.1} MiB"),
            Self::KibPerCore => format!("{value:.2} KiB/core"),
        }
    }
}

/// One row: a figure of each implementation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Its group.
    pub group: Group,
    /// What was measured.
    pub workload: String,
    /// The unit of `js` and `rust`.
    pub unit: Unit,
    /// Node corestore 7 (`None` without Node).
    pub js: Option<f64>,
    /// This workspace.
    pub rust: f64,
}

impl Row {
    fn new(group: Group, workload: String, unit: Unit, js: Option<f64>, rust: f64) -> Self {
        Self { group, workload, unit, js, rust }
    }

    /// Rust against JS, greater than 1 when Rust is better ([`RATIO_READS`]); `None` when a
    /// side is missing or the divisor is 0.
    pub fn ratio(&self) -> Option<f64> {
        let (js, rust) = (self.js?, self.rust);
        let (num, den) = if self.unit.higher_is_better() { (rust, js) } else { (js, rust) };
        (den > 0.0 && num.is_finite()).then(|| num / den)
    }
}

/// The table: a line saying how the ratio reads, then a markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{RATIO_READS}\n");
    out.push_str("| group | workload | JS (Node corestore 7) | Rust | ratio |\n");
    out.push_str("|---|---|---|---|---|\n");
    for row in rows {
        let js = row.js.map_or_else(|| "—".to_owned(), |v| row.unit.format(v));
        let rust = row.unit.format(row.rust);
        let ratio = row.ratio().map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"));
        let _ =
            writeln!(out, "| {} | {} | {js} | {rust} | {ratio} |", row.group.name(), row.workload);
    }
    out
}

/// `n` with a comma every three digits.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kib(size: usize) -> String {
    if size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

// KiB figures stay far below 2^52: the f64 is exact.
#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(super) fn append_rows(log: &Sides<LogReport>, o: &LogOptions) -> Vec<Row> {
    let js = log.js.as_ref();
    vec![
        Row::new(
            Group::Append,
            format!("append {} × {}, {} per append", count(o.blocks), kib(o.size), o.batch),
            Unit::BlocksPerSec,
            js.map(|r| r.append_batched.per_sec()),
            log.rust.append_batched.per_sec(),
        ),
        Row::new(
            Group::Append,
            format!("append {} × {}, one per append", count(o.single), kib(o.size)),
            Unit::BlocksPerSec,
            js.map(|r| r.append_single.per_sec()),
            log.rust.append_single.per_sec(),
        ),
    ]
}

pub(super) fn read_rows(log: &Sides<LogReport>, o: &LogOptions) -> Vec<Row> {
    let js = log.js.as_ref();
    vec![
        Row::new(
            Group::Read,
            format!("sequential get of {} (store reopened)", count(o.blocks)),
            Unit::BlocksPerSec,
            js.map(|r| r.sequential_get.per_sec()),
            log.rust.sequential_get.per_sec(),
        ),
        Row::new(
            Group::Read,
            format!("random get, {} of {}", count(o.random), count(o.blocks)),
            Unit::BlocksPerSec,
            js.map(|r| r.storage_random_get.per_sec()),
            log.rust.storage_random_get.per_sec(),
        ),
    ]
}

pub(super) fn open_rows(open: &Sides<OpenReport>) -> Vec<Row> {
    let js = open.js.as_ref();
    let rust = &open.rust;
    let n = count(rust.cores);
    vec![
        Row::new(
            Group::Open,
            format!("open + ready {n} named cores: time"),
            Unit::Seconds,
            js.map(|r| r.open.seconds),
            rust.open.seconds,
        ),
        Row::new(
            Group::Open,
            format!("open + ready {n} named cores: RSS per core over the empty store"),
            Unit::KibPerCore,
            js.map(|r| r.kib_per_core(&r.open)),
            rust.kib_per_core(&rust.open),
        ),
        Row::new(
            Group::Open,
            format!("reopen the store + ready the {n}: time"),
            Unit::Seconds,
            js.map(|r| r.reopen.seconds),
            rust.reopen.seconds,
        ),
        Row::new(
            Group::Open,
            format!("reopen the store + ready the {n}: RSS per core over the empty store"),
            Unit::KibPerCore,
            js.map(|r| r.kib_per_core(&r.reopen)),
            rust.kib_per_core(&rust.reopen),
        ),
        Row::new(
            Group::Open,
            format!("close the {n} reopened: RSS per core left over the empty store"),
            Unit::KibPerCore,
            js.map(|r| r.kib_per_core(&r.close_again)),
            rust.kib_per_core(&rust.close_again),
        ),
        Row::new(
            Group::Open,
            "then close the store: RSS per core left over the empty store".to_string(),
            Unit::KibPerCore,
            js.and_then(|r| Some(r.kib_per_core(&r.store_closed?))),
            rust.store_closed.map(|s| rust.kib_per_core(&s)).unwrap_or_default(),
        ),
    ]
}

/// One pair's figures of a replication run (one core, or many over one stream).
#[derive(Debug, Clone, Copy)]
struct PairRun {
    pair: Pair,
    seconds: f64,
    client_rss_kib: Option<u64>,
    server_rss_kib: Option<u64>,
}

/// The rows of one replication workload: every pair's time against Node ↔ Node
/// (`"{time}, {pair}: time (JS: Node → Node)"`), and the peak RSS of Rust ↔ Rust against
/// Node ↔ Node (`"{rss}, Rust → Rust: client peak RSS …"`). Pairs with Node only when `node`.
fn pair_rows(group: Group, runs: &[PairRun], time: &str, rss: &str, node: bool) -> Vec<Row> {
    let find = |server, client| runs.iter().find(|r| r.pair == Pair { server, client });
    let node_node = find(Side::Node, Side::Node);
    let mut rows = Vec::new();
    let mut pairs = vec![(Side::Rust, Side::Rust)];
    if node {
        pairs.extend([(Side::Node, Side::Rust), (Side::Rust, Side::Node)]);
    }
    for (server, client) in pairs {
        if let Some(run) = find(server, client) {
            rows.push(Row::new(
                group,
                format!("{time}, {}: time (JS: Node → Node)", run.pair),
                Unit::Seconds,
                node_node.map(|r| r.seconds),
                run.seconds,
            ));
        }
    }
    if let Some(rust) = find(Side::Rust, Side::Rust) {
        let kib_of = |k: Option<u64>| mib(k.unwrap_or(0));
        rows.push(Row::new(
            group,
            format!("{rss}, Rust → Rust: client peak RSS (JS: Node → Node)"),
            Unit::Mib,
            node_node.map(|r| kib_of(r.client_rss_kib)),
            kib_of(rust.client_rss_kib),
        ));
        rows.push(Row::new(
            group,
            format!("{rss}, Rust → Rust: server peak RSS while serving (JS: Node → Node)"),
            Unit::Mib,
            node_node.map(|r| kib_of(r.server_rss_kib)),
            kib_of(rust.server_rss_kib),
        ));
    }
    rows
}

/// The rows of one single-core replication workload ([`pair_rows`]).
pub(super) fn replicate_rows(runs: &[Run], workload: Workload, node: bool) -> Vec<Row> {
    let runs: Vec<PairRun> = runs
        .iter()
        .filter(|r| r.workload == workload)
        .map(|r| PairRun {
            pair: r.pair,
            seconds: r.seconds,
            client_rss_kib: r.client_rss_kib,
            server_rss_kib: r.server_rss_kib,
        })
        .collect();
    let w = format!("replicate {} × {}", count(workload.blocks), kib(workload.size));
    pair_rows(Group::Replicate, &runs, &format!("{w} over TCP"), &w, node)
}

/// The rows of the many small cores over one stream ([`pair_rows`]).
pub(super) fn cores_rows(report: &ManyCoresReport, node: bool) -> Vec<Row> {
    let runs: Vec<PairRun> = report
        .runs
        .iter()
        .map(|r| PairRun {
            pair: r.pair,
            seconds: r.seconds,
            client_rss_kib: r.client_rss_kib,
            server_rss_kib: r.server_rss_kib,
        })
        .collect();
    let c = report.workload;
    let w = format!(
        "replicate {} cores × {} blocks × {} over one stream",
        count(c.cores as u64),
        count(c.blocks),
        kib(c.size)
    );
    pair_rows(Group::Cores, &runs, &w, &w, node)
}

pub(super) fn scale_rows(scale: &Sides<ScaleReport>) -> Vec<Row> {
    let js = scale.js.as_ref();
    let rust = &scale.rust;
    let o = rust.options;
    let n = format!("store of {} × 1 KiB", count(o.blocks));
    vec![
        Row::new(
            Group::Scale,
            format!("{n}: write, {} per append (Rust: incl. the final flush)", o.batch),
            Unit::BlocksPerSec,
            js.map(|r| r.write.per_sec),
            rust.write.per_sec,
        ),
        Row::new(
            Group::Scale,
            format!("{n}: peak RSS while writing"),
            Unit::Mib,
            js.map(|r| mib(r.write.peak_rss_kb)),
            mib(rust.write.peak_rss_kb),
        ),
        Row::new(
            Group::Scale,
            format!("{n}: reopen in a fresh process (store + core)"),
            Unit::Seconds,
            js.map(|r| r.read.open_seconds),
            rust.read.open_seconds,
        ),
        Row::new(
            Group::Scale,
            format!("{n}: peak RSS after reopen + {} random gets", count(OPEN_READS)),
            Unit::Mib,
            js.map(|r| mib(r.read.peak_rss_after_open_kb)),
            mib(rust.read.peak_rss_after_open_kb),
        ),
        Row::new(
            Group::Scale,
            format!("{n}: random warm gets, {}", count(o.random)),
            Unit::BlocksPerSec,
            js.map(|r| r.read.random_per_sec),
            rust.read.random_per_sec,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cores::{CoresWorkload, ManyCoresRun};

    fn row(unit: Unit, js: Option<f64>, rust: f64) -> Row {
        Row::new(Group::Open, "w".into(), unit, js, rust)
    }

    #[test]
    fn the_ratio_is_above_one_when_rust_is_better() {
        assert_eq!(row(Unit::BlocksPerSec, Some(100.0), 400.0).ratio(), Some(4.0));
        assert_eq!(row(Unit::Seconds, Some(8.0), 2.0).ratio(), Some(4.0));
        assert_eq!(row(Unit::Mib, Some(10.0), 20.0).ratio(), Some(0.5));
        assert_eq!(row(Unit::KibPerCore, Some(3.0), 0.0).ratio(), None, "no division by 0");
        assert_eq!(row(Unit::Seconds, None, 2.0).ratio(), None);
    }

    #[test]
    fn markdown_has_a_line_per_row_and_says_how_to_read_the_ratio() {
        let rows = [row(Unit::Seconds, Some(8.0), 2.0), row(Unit::BlocksPerSec, None, 12_345.0)];
        let md = markdown(&rows);
        assert!(md.starts_with(RATIO_READS));
        assert!(md.contains("| open | w | 8.000 s | 2.000 s | 4.00× |"), "{md}");
        assert!(md.contains("| open | w | — | 12.3k blocks/s | — |"), "{md}");
        assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 1 + rows.len());
    }

    fn cores_run(server: Side, client: Side, seconds: f64, rss_kib: u64) -> ManyCoresRun {
        ManyCoresRun {
            pair: Pair { server, client },
            seconds,
            verified_bytes: 0,
            client_rss_kib: Some(rss_kib),
            server_rss_kib: Some(rss_kib / 2),
            server_peak_reset: true,
            write_seconds: 0.0,
        }
    }

    #[test]
    fn the_cores_rows_are_every_pair_against_node_and_the_rss_of_rust() {
        let report = ManyCoresReport {
            workload: CoresWorkload { cores: 1000, blocks: 10, size: 1024 },
            runs: vec![
                cores_run(Side::Node, Side::Node, 5.0, 400 * 1024),
                cores_run(Side::Rust, Side::Rust, 0.5, 40 * 1024),
                cores_run(Side::Node, Side::Rust, 1.25, 50 * 1024),
                cores_run(Side::Rust, Side::Node, 2.5, 300 * 1024),
            ],
        };
        let w = "replicate 1,000 cores × 10 blocks × 1 KiB over one stream";
        let rows = cores_rows(&report, true);
        let got: Vec<(&str, Unit, Option<f64>, f64)> =
            rows.iter().map(|r| (r.workload.as_str(), r.unit, r.js, r.rust)).collect();
        let time = |pair: &str| format!("{w}, {pair}: time (JS: Node → Node)");
        let (rr, nr, rn) = (time("Rust → Rust"), time("Node → Rust"), time("Rust → Node"));
        let client = format!("{w}, Rust → Rust: client peak RSS (JS: Node → Node)");
        let server = format!("{w}, Rust → Rust: server peak RSS while serving (JS: Node → Node)");
        assert_eq!(
            got,
            [
                (rr.as_str(), Unit::Seconds, Some(5.0), 0.5),
                (nr.as_str(), Unit::Seconds, Some(5.0), 1.25),
                (rn.as_str(), Unit::Seconds, Some(5.0), 2.5),
                (client.as_str(), Unit::Mib, Some(400.0), 40.0),
                (server.as_str(), Unit::Mib, Some(200.0), 20.0),
            ]
        );
        assert!(rows.iter().all(|r| r.group == Group::Cores));
        assert_eq!(rows[0].ratio(), Some(10.0));

        // Rust only: Rust ↔ Rust's time and RSS, with an empty JS column.
        let rust_only = ManyCoresReport { runs: report.runs[1..2].to_vec(), ..report };
        let rows = cores_rows(&rust_only, false);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].workload, rr);
        assert!(rows.iter().all(|r| r.js.is_none()));
    }

    #[test]
    fn counts_and_sizes_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(4_000_000), "4,000,000");
        assert_eq!(kib(65536), "64 KiB");
        assert_eq!(kib(1000), "1000 B");
        assert_eq!(Unit::BlocksPerSec.format(2_500_000.0), "2.50M blocks/s");
        assert_eq!(Unit::BlocksPerSec.format(950.4), "950 blocks/s");
    }
}
