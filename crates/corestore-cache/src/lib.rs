//! A registry of open values keyed by an id, shared by a store and all its namespaces and
//! sessions: one value per key, opened once however many callers ask at the same time, and
//! closed exactly once, when its last [`Session`] is closed or dropped.
//!
//! The crate knows nothing about Hypercore: the facade keys its shared cores by discovery key
//! and implements [`Closeable`] for them. The rules:
//!
//! - **Single flight.** Concurrent [`Cache::open`] calls for one key run the opener once; the
//!   others wait and get a session on the same value. A cancelled or failed opener lets the next
//!   waiter try.
//! - **Refcounts.** A [`Session`] is a counted handle; cloning one is a new session. When the
//!   count reaches zero the value is closed (its [`Closeable::close`] runs once), unless a linger
//!   deadline keeps it a little longer (below).
//! - **Reopen during close.** Opening a key whose value is closing waits for that close to finish
//!   and then opens a fresh value: two values of one key are never alive at the same time.
//! - **Weak opens and linger.** [`Cache::open_weak`] opens (or finds) a value without taking a
//!   session, for values opened on behalf of a remote peer. Such a value, and any value
//!   [`Cache::touch`]ed, stays open for the cache's linger period after the last weak open or
//!   touch, then closes if no session took it. Time is tokio time, so tests drive it with
//!   `tokio::time::pause` instead of sleeping.
//! - **Store close.** [`Cache::close`] closes every value (waiting for opens and closes in
//!   flight), ends every [`Watcher`], and refuses later opens with [`CacheError::Closed`].
//!   Sessions that outlive it release nothing twice.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use corestore_cache::{Cache, Closeable};
//! use futures::future::BoxFuture;
//!
//! #[derive(Debug)]
//! struct File(&'static str);
//! impl Closeable for File {
//!     fn close(self: Arc<Self>) -> BoxFuture<'static, ()> {
//!         Box::pin(async {})
//!     }
//! }
//!
//! let cache: Cache<u32, File> = Cache::new(Duration::from_secs(5));
//! let a = cache.open(7, || async { Ok::<_, std::io::Error>(File("seven")) }).await?;
//! let b = cache.open(7, || async { unreachable!("already open") }).await?;
//! assert!(Arc::ptr_eq(a.value(), b.value()));
//! drop(a);
//! b.close().await; // the last session: the value is closed
//! assert!(cache.is_empty());
//! # Ok::<(), corestore_cache::CacheError<std::io::Error>>(())
//! # }).unwrap();
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cache;
mod session;
mod watch;

#[cfg(test)]
mod tests;

pub use cache::{Cache, CacheError, Closeable};
pub use session::Session;
pub use watch::Watcher;
