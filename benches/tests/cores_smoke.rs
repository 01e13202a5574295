//! The many-cores benchmark's smoke mode: 20 cores really replicate from one store to another
//! over one TCP stream between two processes, for every pair (Node ↔ Node, Rust ↔ Rust, Node →
//! Rust, Rust → Node; only Rust ↔ Rust without Node), and the client reads back every block of
//! every core identical to the writer's. Nothing here looks at the time.

use std::path::PathBuf;

use corestore_benches::cores::{run_many_cores, CoresWorkload, ManyCoresOptions, Pair, Side};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_20_cores_replicate_over_one_stream_for_every_pair() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_cores-bench"));
    let mut options = ManyCoresOptions::new(exe, CoresWorkload::SMOKE);
    options.pairs = Pair::ALL.to_vec();
    options.caller = "smoke_20_cores_replicate_over_one_stream_for_every_pair".into();
    let report = run_many_cores(&options).await.expect("every run verified");
    let rust = Pair { server: Side::Rust, client: Side::Rust };
    assert!(report.run(rust).is_some(), "Rust ↔ Rust always runs");
    for run in &report.runs {
        assert_eq!(run.verified_bytes, CoresWorkload::SMOKE.bytes(), "{}", run.pair);
        assert!(run.client_rss_kib.is_some_and(|k| k > 0), "client peak RSS reported");
        assert!(run.server_rss_kib.is_some_and(|k| k > 0), "server peak RSS reported");
    }
    if std::env::var("CORESTORE_INTEROP").is_ok_and(|v| v == "require") {
        assert_eq!(report.runs.len(), 4, "with Node required, every pair ran");
    }
    let table = report.to_string();
    assert!(table.contains("20 cores × 10 blocks × 1024 B"), "{table}");
}
