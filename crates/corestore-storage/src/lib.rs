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
//! dependency (`crc32fast`); fjall and redb are not in the dependency tree.
//!
//! Log format version 2 (records bound to their position) replaced version 1; a version-1 log
//! is converted once on open (written aside, synced, renamed), and a newer version is refused
//! with [`DiskError::UnsupportedFormat`].
//!
//! # At any size: the persistent index (the default)
//! The log's key → position index lives on disk by default (sorted runs of 4 KiB checksummed
//! blocks, a bounded in-memory table, a manifest; see [`DiskOptions::persistent_index`]), so
//! memory is bounded by [`DiskOptions::memtable_entries`], not by the data, and a clean open
//! replays nothing. The index is a cache of the log: missing, stale or damaged, it is rebuilt
//! from the log on open, once (a store written with the in-memory index, or by an older build,
//! opens that way), and a crash in the middle resumes from the last manifest. Besides the model
//! proptests, the power-loss model and the kill -9 test, the crate's own unit tests copy the store
//! at every point where writing or merging runs leaves distinct files and reopen each copy as a
//! crash and as a power cut would leave it.
//!
//! `benches/examples/scale.rs`, one run (2026-12-01, 2 cores shared with other builds, load
//! average 2–4; full table in `benches/README.md`), 1 KiB blocks appended through
//! `Hypercore::append` in batches of 100, one flush at the end, then a fresh process:
//!
//! | N | impl | write blocks/s | peak RSS writing | open | RSS after open + 1,000 reads | random reads/s |
//! |---|---|---|---|---|---|---|
//! | 100k | default (persistent index) | 141k | 32 MB | 0.003 s | 5 MB | 157k |
//! | 100k | in-memory index | 140k | 52 MB | 0.151 s | 45 MB | 419k |
//! | 100k | JS corestore 7 | 35k | 160 MB | 0.434 s | 123 MB | 7k |
//! | 250k | default (persistent index) | 179k | 36 MB | 0.004 s | 5 MB | 232k |
//! | 250k | in-memory index | 295k | 114 MB | 0.342 s | 105 MB | 404k |
//! | 250k | JS corestore 7 | 43k | 182 MB | 0.277 s | 114 MB | 9k |
//!
//! With [`DiskOptions::persistent_index`] off every key lives in memory (about 400 bytes of RAM
//! per appended 1 KiB block, 1.6 GB at 4M blocks) and open replays the whole log (seconds at
//! millions of blocks); point reads take one `pread` instead of two, so small stores read
//! faster. Limits of the persistent index: a range delete (truncate, clear) writes one deletion
//! entry per key in the range (memory stays bounded, the work is proportional to the range), and
//! records its runs already cover are not checked again on open, so damage to the log inside
//! them (media damage; a crash or power cut cannot cause it, the log is synced before a run
//! covers it as durable) is not refused the way replaying the whole log refuses it; a damaged
//! run block fails reads with `InvalidData` (deleting `index/` rebuilds it).
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
pub use disk::{BlockCacheStats, DiskError, DiskOptions, DiskStorage};
pub use faulty::{FaultKind, FaultyStorage, InjectedFault};
pub use memory::MemoryStorage;
pub use records::{CoreAuth, Hints, RecordError, StoredKeyPair, StoredNode, TreeHead};
pub use schema::{CoreBatch, CoreStorage, Storage, StorageError, FORMAT_VERSION};
