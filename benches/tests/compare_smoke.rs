//! The cross-implementation harness's smoke mode, so it cannot rot: the whole table at tiny
//! sizes (Node included when it is installed; with `CORESTORE_INTEROP=require` a missing Node
//! fails), every row with figures. Nothing here looks at how fast anything was.

use std::path::PathBuf;
use std::process::Command;

use corestore_benches::compare::{self, Compare, Group, Row, Sizes, Unit, RATIO_READS};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_compare"))
}

/// Rows per group. A replication workload (each of the two of `replicate`, the one of `cores`)
/// has a time row per pair against Node ↔ Node (three pairs with Node, Rust ↔ Rust alone
/// without) and two peak-RSS rows of Rust ↔ Rust.
fn expected_rows(group: Group, node: bool) -> usize {
    let per_replication = if node { 3 + 2 } else { 1 + 2 };
    match group {
        Group::Append | Group::Read => 2,
        Group::Scale => 5,
        Group::Open => 6,
        Group::Replicate => 2 * per_replication,
        Group::Cores => per_replication,
    }
}

fn check_figure(row: &Row, value: Option<f64>, side: &str) {
    let v = value.unwrap_or_else(|| panic!("{side} figure missing: {row:?}"));
    assert!(v.is_finite(), "{side} figure is not a number: {row:?}");
    match row.unit {
        // Rates and times are positive; RSS over a baseline may be 0 at tiny sizes.
        Unit::BlocksPerSec | Unit::Seconds => assert!(v > 0.0, "{side}: {row:?}"),
        Unit::Mib | Unit::KibPerCore => assert!(v >= 0.0, "{side}: {row:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_the_whole_table_has_every_row_with_figures() {
    let node = compare::node().expect("Node is ready or absent (not required)");
    let has_node = node.is_some();
    let report = Compare::new(exe(), node, Sizes::SMOKE).run().await.expect("every workload ran");
    assert_eq!(report.groups, Group::ALL);
    assert_eq!(report.node, has_node);
    for group in Group::ALL {
        let rows = report.rows.iter().filter(|r| r.group == group).count();
        assert_eq!(rows, expected_rows(group, has_node), "rows of {group:?}: {:#?}", report.rows);
    }
    for row in &report.rows {
        check_figure(row, Some(row.rust), "Rust");
        if has_node {
            check_figure(row, row.js, "JS");
            if matches!(row.unit, Unit::BlocksPerSec | Unit::Seconds) {
                assert!(row.ratio().is_some_and(f64::is_finite), "ratio of {row:?}");
            }
        } else {
            assert_eq!(row.js, None);
        }
    }
    assert_eq!(report.replication.len(), if has_node { 2 * 4 } else { 2 });
    for run in &report.replication {
        assert_eq!(run.verified_bytes, run.workload.bytes(), "{} {}", run.workload, run.pair);
    }
    let cores = report.cores.as_ref().expect("the cores group ran");
    assert_eq!(cores.workload, Sizes::SMOKE.cores);
    assert_eq!(cores.runs.len(), if has_node { 4 } else { 1 });
    for run in &cores.runs {
        assert_eq!(run.verified_bytes, cores.workload.bytes(), "cores {}", run.pair);
    }

    let md = report.markdown();
    assert!(md.starts_with(RATIO_READS));
    let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(lines.len(), 1 + report.rows.len(), "a header and a line per row:\n{md}");
    for (line, row) in lines.iter().skip(1).zip(&report.rows) {
        assert!(line.contains(&row.workload), "{line}");
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let digit = |c: &str| c.chars().next().is_some_and(|ch| ch.is_ascii_digit());
        assert!(digit(cells[4]), "Rust cell has a number: {line}");
        assert_eq!(digit(cells[3]), has_node, "JS cell: {line}");
    }
    println!("{md}");
}

#[test]
fn smoke_the_command_line_prints_the_table_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = Command::new(exe())
        .args(["--smoke", "--rust-only", "--only", "open,append", "--cores", "30", "--json"])
        .arg(&json)
        .output()
        .expect("run compare");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with(RATIO_READS), "{table}");
    assert!(table.contains("| open | open + ready 30 named cores: time | — |"), "{table}");
    assert!(table.contains("| append | append 2,000 × 1 KiB, 100 per append | — |"), "{table}");
    assert!(!table.contains("| read |") && !table.contains("| scale |"), "{table}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["node"], false);
    assert_eq!(report["groups"], serde_json::json!(["append", "open"]));
    assert_eq!(report["rows"].as_array().map(Vec::len), Some(8));
    assert_eq!(report["sizes"]["open_cores"], 30);
    assert!(report["open"]["rust"]["reopen"]["seconds"].as_f64().is_some_and(|s| s > 0.0));
    assert!(report["log"]["rust"]["appendBatched"]["blocks"] == 2000);
}

/// `--only cores` at tiny sizes: the many-cores workload really runs (Rust ↔ Rust here) with
/// the sizes given on the command line, and its rows carry figures.
#[test]
fn smoke_only_cores_runs_the_many_cores_workload_at_the_sizes_given() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = Command::new(exe())
        .args(["--smoke", "--rust-only", "--only", "cores", "--many-cores", "7"])
        .args(["--many-cores-blocks", "3", "--many-cores-size", "512", "--json"])
        .arg(&json)
        .output()
        .expect("run compare");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    let w = "replicate 7 cores × 3 blocks × 512 B over one stream";
    for row in [
        format!("| cores | {w}, Rust → Rust: time (JS: Node → Node) | — | "),
        format!("| cores | {w}, Rust → Rust: client peak RSS (JS: Node → Node) | — | "),
        format!(
            "| cores | {w}, Rust → Rust: server peak RSS while serving (JS: Node → Node) | — | "
        ),
    ] {
        assert!(table.contains(&row), "{row}\n{table}");
    }
    assert_eq!(table.lines().filter(|l| l.starts_with("| cores |")).count(), 3, "{table}");
    assert!(!table.contains("not wired"), "{table}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["groups"], serde_json::json!(["cores"]));
    assert_eq!(report["sizes"]["cores"], serde_json::json!({"cores": 7, "blocks": 3, "size": 512}));
    let runs = report["cores"]["runs"].as_array().expect("the cores report");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["pair"], serde_json::json!({"server": "Rust", "client": "Rust"}));
    assert_eq!(runs[0]["verified_bytes"], 7 * 3 * 512);
    assert!(runs[0]["seconds"].as_f64().is_some_and(|s| s > 0.0));
}

#[test]
fn a_bad_group_is_a_clear_error() {
    let out = Command::new(exe()).args(["--only", "nonsense"]).output().expect("run compare");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'nonsense'") && err.contains("replicate"), "{err}");
}

/// `compare` with no `node` on PATH: a notice and an empty JavaScript column; with
/// `CORESTORE_INTEROP=require`, one clear error line and a failure, never a panic.
#[test]
fn without_node_the_js_column_is_empty_and_require_makes_it_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let compare = |require: bool| {
        let mut cmd = Command::new(exe());
        cmd.args(["--smoke", "--only", "open", "--cores", "10"]).env("PATH", empty.path());
        if require {
            cmd.env("CORESTORE_INTEROP", "require");
        } else {
            cmd.env_remove("CORESTORE_INTEROP");
        }
        cmd.output().expect("run compare")
    };

    let out = compare(false);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("NOTICE: `node` is not on PATH"), "{stderr}");
    assert!(stdout.contains("| open | open + ready 10 named cores: time | — |"), "{stdout}");

    let out = compare(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("CORESTORE_INTEROP=require but `node` is not on PATH"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no table");
}
