//! Corestore for Rust: a Hypercore factory that manages many named, signed, append-only logs
//! in one storage, wire- and key-compatible with JavaScript corestore 7.
//!
//! The facade re-exports its layers as modules (depend on a layer crate directly to take only
//! what you need).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backend;
mod core;
mod error;
mod get;
mod open;
mod session;
mod store;
mod watch;

pub use corestore_hypercore as hypercore;
pub use corestore_keys as keys;
pub use corestore_replicate as replicate;
pub use corestore_storage as storage;

pub use crate::core::CoreEvent;
pub use crate::error::{
    AppendError, BlockError, CloseError, ClosedError, GetError, KeyParseError, ListError,
    OpenError, SeekError, TruncateError,
};
pub use crate::get::{CoreRef, GetOptions};
pub use crate::session::{Core, CoreInfo};
pub use crate::store::{Builder, Corestore, SessionOptions, StoreStats, DEFAULT_LINGER};
pub use crate::watch::{CoreWatch, WatchedCore};
pub use corestore_keys::{CoreKey, DiscoveryKey, KeyPair, Manifest, Namespace, PrimaryKey};
