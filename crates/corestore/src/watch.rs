//! [`CoreWatch`]: cores as they open, for [`crate::Corestore::watch`].

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use corestore_cache::Watcher;
use corestore_keys::{CoreKey, DiscoveryKey};
use futures::channel::oneshot;
use futures::{FutureExt, Stream, StreamExt};

use crate::core::SharedCore;

/// A stream of every core opened (by any session of the store, or for a peer) after
/// [`crate::Corestore::watch`]; it ends when the watching store closes.
pub struct CoreWatch {
    cores: Watcher<SharedCore>,
    stop: oneshot::Receiver<()>,
}

impl CoreWatch {
    pub(crate) fn new(cores: Watcher<SharedCore>, stop: oneshot::Receiver<()>) -> Self {
        Self { cores, stop }
    }
}

impl fmt::Debug for CoreWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreWatch").finish_non_exhaustive()
    }
}

impl Stream for CoreWatch {
    type Item = WatchedCore;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedCore>> {
        // The store drops the sender when it closes: the watch ends.
        if self.stop.poll_unpin(cx).is_ready() {
            return Poll::Ready(None);
        }
        self.cores.poll_next_unpin(cx).map(|core| core.map(|c| WatchedCore::new(&c)))
    }
}

/// A weak reference to a core that opened: it does not keep the core open.
#[derive(Clone)]
pub struct WatchedCore {
    core: Weak<SharedCore>,
    key: CoreKey,
    discovery_key: DiscoveryKey,
}

impl fmt::Debug for WatchedCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedCore").field("key", &self.key).finish_non_exhaustive()
    }
}

impl WatchedCore {
    fn new(core: &Arc<SharedCore>) -> Self {
        Self { core: Arc::downgrade(core), key: *core.key(), discovery_key: *core.discovery_key() }
    }

    /// The core key.
    pub fn key(&self) -> &CoreKey {
        &self.key
    }

    /// The discovery key (open a session with `store.get(discovery_key)`).
    pub fn discovery_key(&self) -> &DiscoveryKey {
        &self.discovery_key
    }

    /// True once the core closed.
    pub fn is_closed(&self) -> bool {
        self.core.upgrade().is_none_or(|c| c.is_closed())
    }

    /// Resolves when the core closes.
    pub async fn closed(&self) {
        if let Some(core) = self.core.upgrade() {
            core.closed().await;
        }
    }
}
