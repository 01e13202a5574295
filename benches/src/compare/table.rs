//! The rows of the table, built from the typed reports, and their markdown.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Group, Sides};
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
    /// This workspace (`None` only while `pending`).
    pub rust: Option<f64>,
    /// The workload is not wired yet (the 1,000-cores slot).
    pub pending: bool,
}

impl Row {
    fn new(group: Group, workload: String, unit: Unit, js: Option<f64>, rust: f64) -> Self {
        Self { group, workload, unit, js, rust: Some(rust), pending: false }
    }

    /// Rust against JS, greater than 1 when Rust is better ([`RATIO_READS`]); `None` when a
    /// side is missing or the divisor is 0.
    pub fn ratio(&self) -> Option<f64> {
        let (js, rust) = (self.js?, self.rust?);
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
        let (js, rust, ratio) = if row.pending {
            let pending = "not wired yet: `--bin cores-bench`".to_owned();
            (pending.clone(), pending, "—".to_owned())
        } else {
            let cell = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| row.unit.format(v));
            let ratio = row.ratio().map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"));
            (cell(row.js), cell(row.rust), ratio)
        };
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

/// The rows of one replication workload: every pair's time against Node ↔ Node, and the peak
/// RSS of Rust ↔ Rust against Node ↔ Node. Pairs with Node only when `node`.
pub(super) fn replicate_rows(runs: &[Run], workload: Workload, node: bool) -> Vec<Row> {
    let find = |server, client| {
        runs.iter().find(|r| r.workload == workload && r.pair == Pair { server, client })
    };
    let node_node = find(Side::Node, Side::Node);
    let w = format!("{} × {}", count(workload.blocks), kib(workload.size));
    let mut rows = Vec::new();
    let mut pairs = vec![(Side::Rust, Side::Rust)];
    if node {
        pairs.extend([(Side::Node, Side::Rust), (Side::Rust, Side::Node)]);
    }
    for (server, client) in pairs {
        if let Some(run) = find(server, client) {
            rows.push(Row::new(
                Group::Replicate,
                format!("replicate {w} over TCP, {}: time (JS: Node → Node)", run.pair),
                Unit::Seconds,
                node_node.map(|r| r.seconds),
                run.seconds,
            ));
        }
    }
    if let Some(rust) = find(Side::Rust, Side::Rust) {
        let kib_of = |k: Option<u64>| mib(k.unwrap_or(0));
        rows.push(Row::new(
            Group::Replicate,
            format!("replicate {w}, Rust → Rust: client peak RSS (JS: Node → Node)"),
            Unit::Mib,
            node_node.map(|r| kib_of(r.client_rss_kib)),
            kib_of(rust.client_rss_kib),
        ));
        rows.push(Row::new(
            Group::Replicate,
            format!("replicate {w}, Rust → Rust: server peak RSS while serving (JS: Node → Node)"),
            Unit::Mib,
            node_node.map(|r| kib_of(r.server_rss_kib)),
            kib_of(rust.server_rss_kib),
        ));
    }
    rows
}

/// The slot of the 1,000-cores workload (see `Compare::cores`).
pub(super) fn pending_cores_row() -> Row {
    Row {
        group: Group::Cores,
        workload: "replicate 1,000 small cores, one store to another, Rust → Rust: time \
                   (JS: Node → Node)"
            .to_owned(),
        unit: Unit::Seconds,
        js: None,
        rust: None,
        pending: true,
    }
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
        assert_eq!(pending_cores_row().ratio(), None);
    }

    #[test]
    fn markdown_has_a_line_per_row_and_says_how_to_read_the_ratio() {
        let rows = [
            row(Unit::Seconds, Some(8.0), 2.0),
            row(Unit::BlocksPerSec, None, 12_345.0),
            pending_cores_row(),
        ];
        let md = markdown(&rows);
        assert!(md.starts_with(RATIO_READS));
        assert!(md.contains("| open | w | 8.000 s | 2.000 s | 4.00× |"), "{md}");
        assert!(md.contains("| open | w | — | 12.3k blocks/s | — |"), "{md}");
        assert!(md.contains("| cores | replicate 1,000 small cores"), "{md}");
        assert!(
            md.contains(
                "not wired yet: `--bin cores-bench` | not wired yet: `--bin cores-bench` | — |"
            ),
            "{md}"
        );
        assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 1 + rows.len());
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
