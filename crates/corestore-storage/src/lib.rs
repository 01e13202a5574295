//! Pluggable async storage for the Rust Corestore: a small object-safe [`StorageBackend`] trait
//! (point reads, ordered scans, atomic batches, durable flush), the record [`Storage`] schema
//! every core is kept in, [`MemoryStorage`], and the crash-safe default [`DiskStorage`].
//!
//! All cores of a store share one backend, so thousands of cores never mean thousands of files.
//!
//! # Layers
//! - [`StorageBackend`]: four async methods over ordered bytes; failures are `io::Error` only.
//!   Sync vs async is decided once: the trait is async (`async-trait`), backends whose calls are
//!   short may run them inline (both shipped backends do, see [`DiskStorage`]).
//! - [`Storage`] / [`CoreStorage`] / [`CoreBatch`]: typed records with an order-preserving key
//!   layout (blocks, tree nodes and bitfield pages scan in index order) and a versioned store
//!   head: a store written by a newer format is refused with [`StorageError::UnsupportedFormat`].
//! - Backends: [`MemoryStorage`] (tests, ephemeral stores), [`DiskStorage`] (default on disk,
//!   Unix only) and [`FaultyStorage`], a fault-injecting wrapper for tests of the layers above.
//!
//! # Writing a custom backend
//! Implement the four methods of [`StorageBackend`] and hand an `Arc` of it to
//! [`Storage::open`]; `examples/btree_backend.rs` does it over a `BTreeMap` in under 100 lines.
//! The invariants to keep are in each method's rustdoc: reads see every acknowledged write, scans
//! are ascending and bounded, a batch is all-or-nothing across a crash, and `flush` makes every
//! earlier batch durable.
//!
//! # Testing the layers above
//! Wrap any backend in [`FaultyStorage`] to fail the Nth write or flush, or to tear a batch (a
//! model of a broken backend). The crate's own `tests/crash.rs` kills a writer process with
//! SIGKILL at random moments and checks every acknowledged batch after reopening: 20 trials by
//! default, more with `CORESTORE_CRASH_TRIALS=100`. `tests/power_loss.rs` models power loss at
//! the file level (every page written after the last completed flush kept, zero-filled or
//! dropped) over random workloads, and checks that the store opens with every flushed batch and
//! a prefix of the rest; `CORESTORE_POWERLOSS_LONG=1` runs it longer.
//!
//! # Why this disk backend
//! Candidates were measured through this schema on the 2-core development machine (one run,
//! 2026-11-25; full table and method in `benches/README.md`): 100,000 blocks of 1 KiB written
//! via [`CoreBatch`] in batches of 100, then 100,000 random [`CoreStorage::block`] reads, warm.
//!
//! | engine | write, no flush | write + flush at end | flush per batch | random reads | build |
//! |---|---|---|---|---|---|
//! | own append-only log ([`DiskStorage`]) | 642k/s | 248k/s | 37k/s | 357k/s | 0.5 s |
//! | fjall 3.1 | 151k/s | 116k/s | 24k/s | 184k/s | 31 s |
//! | redb 4.6 | 323k/s | 101k/s | 52k/s | 279k/s | 16 s |
//!
//! The log wins on writes and reads, is crash-safe by construction (one checksummed record per
//! batch, bound to its file and position; a torn unflushed tail cut on open, damage to flushed
//! data refused; checked by a `kill -9` test and a power-loss model) and adds one tiny
//! dependency (`crc32fast`); fjall and redb are not in the dependency tree. Its cost: every key
//! lives in memory (values stay on disk).
//!
//! Log format version 2 (records bound to their position) replaced version 1; a version-1 log
//! is converted once on open (written aside, synced, renamed), and a newer version is refused
//! with [`DiskError::UnsupportedFormat`].
//!
//! # At scale: the persistent index (opt-in)
//! With the default in-memory index, memory and open time grow with the store (about 400 bytes
//! of RAM per 1 KiB block written through `Hypercore::append`; 4M blocks: 1.6 GB, open 3–12 s).
//! [`DiskOptions::persistent_index`] keeps the same log but its index on disk (sorted runs, a
//! bounded in-memory table, a manifest; rebuilt from the log whenever it is missing or stale),
//! so memory is bounded by [`DiskOptions::memtable_entries`] and a clean open replays nothing.
//! One run of `benches/examples/scale.rs` at 4M blocks of 1 KiB (2 loaded cores; table in
//! `benches/README.md`): open 0.027 s (JS corestore 7: see README), 24 MB after open and 1,000
//! random reads, 86 MB peak while writing, 76k appended blocks/s, 102k random reads/s. It passes
//! the model proptests, the power-loss model and the kill -9 test. It is not the default yet: it
//! has had far less testing than the in-memory index, a range delete (truncate, clear) writes
//! one deletion entry per key (memory stays bounded, but the work is proportional to the range),
//! and its small-store numbers were measured only on a loaded machine.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backend;
#[cfg(unix)]
mod disk;
mod faulty;
mod memory;
mod records;
mod schema;

pub use backend::{BatchOp, StorageBackend, WriteBatch};
#[cfg(unix)]
pub use disk::{DiskError, DiskOptions, DiskStorage};
pub use faulty::{FaultKind, FaultyStorage, InjectedFault};
pub use memory::MemoryStorage;
pub use records::{CoreAuth, Hints, RecordError, StoredKeyPair, StoredNode, TreeHead};
pub use schema::{CoreBatch, CoreStorage, Storage, StorageError, FORMAT_VERSION};
