//! The backend trait: the only thing a custom storage engine implements.

use std::fmt::Debug;
use std::io;

use async_trait::async_trait;

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` (no error if absent).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Remove every key in `start..end` (byte-wise order).
    DeleteRange {
        /// First key removed.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// Operations applied all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.ops.push(BatchOp::Put { key, value });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: Vec<u8>) -> &mut Self {
        self.ops.push(BatchOp::Delete { key });
        self
    }

    /// Adds a range delete of `start..end`.
    pub fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) -> &mut Self {
        self.ops.push(BatchOp::DeleteRange { start, end });
        self
    }

    /// Adds any operation.
    pub fn push(&mut self, op: BatchOp) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// The operations, in the order they apply.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Takes the operations.
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True without operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An ordered key-value engine with atomic batches.
///
/// Keys and values are arbitrary bytes (the empty key included); keys order byte-wise
/// (lexicographically). Failures are `io::Error`s only: what a record means is the business of
/// the [`crate::Storage`] schema above, which never asks a backend to interpret bytes.
///
/// Implementations are shared (`Arc<dyn StorageBackend>`) and called concurrently: every method
/// takes `&self`, and each call must behave as if it ran alone (a reader never sees half of a
/// batch). Methods may run blocking work inline when it is short (microseconds); longer work
/// (an `fsync`, a compaction) belongs on a blocking pool. `examples/btree_backend.rs` is a
/// complete implementation in under 100 lines.
#[async_trait]
pub trait StorageBackend: Debug + Send + Sync + 'static {
    /// The value of `key`, or `None`.
    ///
    /// Reflects every batch whose [`StorageBackend::write`] returned `Ok` before this call
    /// started (read-your-writes), and no part of a batch still being written.
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>>;

    /// Up to `limit` entries with `start <= key < end`, in strictly ascending key order.
    ///
    /// An empty or inverted range (`start >= end`) and `limit == 0` return an empty `Vec`, never
    /// an error or a panic. Like [`StorageBackend::get`], the result reflects every batch
    /// acknowledged before the call. Callers page through large ranges by calling again from
    /// just after the last key returned, so `limit` must be honoured exactly.
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Applies `batch` atomically: after a crash at any moment, either every operation of the
    /// batch is visible or none is, and concurrent readers see it all at once. Operations apply
    /// in order, so later operations win over earlier ones (a put after a range delete of the
    /// same key survives it). A range delete with `start >= end` does nothing.
    ///
    /// Visible to readers once this returns `Ok`; durable only after a following
    /// [`StorageBackend::flush`]. On `Err` the batch must not be visible (all or nothing holds
    /// for failures too); the caller may retry it.
    async fn write(&self, batch: WriteBatch) -> io::Result<()>;

    /// Makes every batch acknowledged before this call durable: it survives a process crash
    /// (`kill -9`) and power loss once this returns `Ok`. On `Err` nothing is promised about
    /// durability, and a backend may refuse further writes until it is reopened.
    async fn flush(&self) -> io::Result<()>;
}
