//! Corestore for Rust: a Hypercore factory that manages many named, signed, append-only logs and
//! replicates them over one encrypted stream, wire- and key-compatible with JavaScript corestore 7.
//!
//! The facade re-exports its layers as modules. Only key derivation is available so far; the
//! storage, log, cache and replication layers arrive with their issues.

pub use corestore_keys as keys;
