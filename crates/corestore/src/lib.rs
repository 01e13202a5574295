//! Corestore for Rust: a Hypercore factory that manages many named, signed, append-only logs and
//! replicates them over one encrypted stream, wire- and key-compatible with JavaScript corestore 7.
//!
//! The facade re-exports its layers as modules (depend on a layer crate directly to take only
//! what you need). The `Corestore` type itself — `open`, `get`, `namespace`, `session`,
//! `replicate` — arrives with the cache and replication-protocol issues; until then the layers
//! below are usable on their own.

pub use corestore_hypercore as hypercore;
pub use corestore_keys as keys;
pub use corestore_replicate as replicate;
pub use corestore_storage as storage;
