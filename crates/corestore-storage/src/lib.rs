//! Pluggable async storage for the Rust Corestore: a small object-safe [`StorageBackend`] trait
//! (point reads, ordered scans, atomic batches, durable flush), the record [`Storage`] schema
//! every core is kept in, and [`MemoryStorage`].
//!
//! All cores of a store share one backend, so thousands of cores never mean thousands of files.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backend;
mod memory;
mod records;
mod schema;

pub use backend::{BatchOp, StorageBackend, WriteBatch};
pub use memory::MemoryStorage;
pub use records::{CoreAuth, Hints, StoredKeyPair, StoredNode, TreeHead};
pub use schema::{CoreBatch, CoreStorage, Storage, StorageError, FORMAT_VERSION};
