//! One narrow error per operation; each folds the layers' errors via `From`.

use std::time::Duration;

use corestore_hypercore as hypercore;
use corestore_keys::{DiscoveryKey, IdError};
use corestore_storage::StorageError;

/// Why a store could not be opened ([`crate::Corestore::open`], [`crate::Builder::open`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The explicit primary key differs from the one stored.
    #[error("another corestore is stored here (its primary key differs)")]
    AnotherCorestore,
    /// The disk backend could not be opened.
    #[cfg(unix)]
    #[error(transparent)]
    Disk(#[from] corestore_storage::DiskError),
    /// Storage failed.
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for OpenError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::ForeignStore => Self::AnotherCorestore,
            e => Self::Storage(e),
        }
    }
}

/// Why [`crate::Corestore::get`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// This store (or the root it belongs to) is closed.
    #[error("the corestore is closed")]
    Closed,
    /// Opening by discovery key (or with `create_if_missing(false)`) found nothing stored.
    #[error("no core is stored here for discovery key {discovery_key}")]
    NotStored {
        /// The discovery key asked for.
        discovery_key: DiscoveryKey,
    },
    /// A named core needs a non-empty name (as JavaScript refuses `get({ name: '' })`).
    #[error("a core name must not be empty")]
    EmptyName,
    /// The core could not be opened or created.
    #[error(transparent)]
    Open(#[from] hypercore::OpenError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a textual or byte key could not be used ([`crate::CoreRef::parse_key`]).
pub type KeyParseError = IdError;

/// Why an append failed (nothing was appended).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The session (or its store) is closed.
    #[error("the core session is closed")]
    Closed,
    /// This session cannot write (no secret key, or opened with `writable(false)`).
    #[error("the core session is not writable")]
    NotWritable,
    /// The log refused or storage failed.
    #[error(transparent)]
    Core(#[from] hypercore::AppendError),
}

/// Why reading a block failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The session (or its store) is closed, or it closed while waiting.
    #[error("the core session is closed")]
    Closed,
    /// The block did not arrive within the timeout.
    #[error("block {index} did not arrive within {timeout:?}")]
    Timeout {
        /// The block asked for.
        index: u64,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The block is not available locally and the read stream does not wait.
    #[error("block {index} is not available")]
    NotAvailable {
        /// The block.
        index: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a truncate failed (nothing changed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TruncateError {
    /// The session (or its store) is closed.
    #[error("the core session is closed")]
    Closed,
    /// This session cannot write.
    #[error("the core session is not writable")]
    NotWritable,
    /// The log refused or storage failed.
    #[error(transparent)]
    Core(#[from] hypercore::TruncateError),
}

/// Why a clear failed (nothing changed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearError {
    /// The session (or its store) is closed.
    #[error("the core session is closed")]
    Closed,
    /// The range starts after it ends, or the log refused, or storage failed.
    #[error(transparent)]
    Core(#[from] hypercore::ClearError),
}

/// Why a seek failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeekError {
    /// The session (or its store) is closed.
    #[error("the core session is closed")]
    Closed,
    /// The offset is past the end of the core.
    #[error("byte offset {offset} is beyond the core's {byte_length} bytes")]
    OutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The core's byte length.
        byte_length: u64,
    },
    /// A tree node on the way down is not stored (a sparse replica).
    #[error("tree node {index} is not available")]
    MissingNode {
        /// Its flat-tree index.
        index: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why an operation that can only fail by use after close failed ([`crate::Core::info`],
/// [`crate::Corestore::namespace`], [`crate::Corestore::session`], [`crate::Corestore::watch`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClosedError {
    /// The core session or store is closed.
    #[error("used after close")]
    Closed,
}

/// Why [`crate::Corestore::list`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The store is closed.
    #[error("the corestore is closed")]
    Closed,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why closing the root store failed (every core was closed; the final flush failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// Storage failed to flush.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
