//! The replication benchmark's smoke mode: every pair (Node ↔ Node, Rust ↔ Rust, Node → Rust,
//! Rust → Node) really replicates a small core between two processes over TCP loopback, and the
//! client reads back every block identical to the writer's. Nothing here looks at the time.

use std::path::PathBuf;

use corestore_benches::replication::harness::{Harness, Pair, Side, Workload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_every_pair_replicates_and_verifies_a_small_core() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_replication-bench"));
    let harness = Harness::new(exe, true, "smoke_every_pair_replicates_and_verifies_a_small_core");
    let workloads = [Workload { blocks: 2000, size: 1024 }, Workload { blocks: 24, size: 65536 }];
    let runs = harness.table(&workloads, &Pair::ALL).await.expect("every run verified");
    let pairs = if harness.has_node() { 4 } else { 1 };
    assert_eq!(runs.len(), workloads.len() * pairs);
    for run in &runs {
        assert_eq!(run.verified_bytes, run.workload.bytes(), "{} {}", run.workload, run.pair);
        assert!(run.client_rss_kib.is_some_and(|k| k > 0), "client peak RSS reported");
        assert!(run.server_rss_kib.is_some_and(|k| k > 0), "server peak RSS reported");
    }
    assert!(runs.iter().any(|r| r.pair == Pair { server: Side::Rust, client: Side::Rust }));
}
