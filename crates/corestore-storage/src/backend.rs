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
/// Keys and values are arbitrary bytes; keys order byte-wise (lexicographically). Failures are
/// `io::Error`s only: what a record means is the business of the [`crate::Storage`] schema above.
#[async_trait]
pub trait StorageBackend: Debug + Send + Sync + 'static {
    /// The value of `key`, or `None`. Reflects every batch whose [`StorageBackend::write`]
    /// returned `Ok`.
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>>;

    /// Up to `limit` entries with `start <= key < end`, in ascending key order.
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Applies `batch` atomically: after a crash at any moment, either every operation of the
    /// batch is visible or none is. Later operations in a batch win over earlier ones. Visible to
    /// readers once this returns `Ok`; durable only after a following [`StorageBackend::flush`].
    async fn write(&self, batch: WriteBatch) -> io::Result<()>;

    /// Makes every batch written before this call durable: it survives a process crash or power
    /// loss once this returns `Ok`.
    async fn flush(&self) -> io::Result<()>;
}
