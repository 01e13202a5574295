//! Benchmarks for the Rust Corestore: one criterion bench per layer in `benches/`, and (as the
//! layers land) the cross-implementation harness that runs the same workload on the JavaScript
//! reference and on Rust in one run. Run with `cargo bench -p corestore-benches`.

pub mod cores;
pub mod replication;
