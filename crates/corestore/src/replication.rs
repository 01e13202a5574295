//! Replicating a whole store: [`Corestore::replicate`] (JavaScript's `store.replicate`).
//!
//! Every core open in the store when a stream starts is attached to it, and every core a session
//! opens later joins every live stream. When the remote opens a channel for a core we have in
//! storage (open or not), it is loaded, held for the linger period, and replicated on that stream
//! only: a core opened for one peer is never offered to the others (no transitive opening). A
//! passive store attaches nothing by itself and only answers the remote's opens.

use std::sync::{Arc, PoisonError};

use corestore_replicate::{
    RemoteOpenHook, Replication, ReplicationHandle, ReplicationOptions, Role, StreamConfig,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::core::SharedCore;
use crate::error::ClosedError;
use crate::store::{Corestore, Root};

/// Why a store could not start replicating.
pub type ReplicateError = ClosedError;

impl Root {
    /// Attaches a core a session opened to every live stream (unless the store is passive).
    pub(crate) fn attach_everywhere(&self, core: &SharedCore) {
        if self.passive {
            return;
        }
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.retain(|s| !s.is_closed());
        for stream in streams.iter() {
            stream.attach(core.replicated());
        }
    }

    fn add_stream(&self, stream: ReplicationHandle) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.retain(|s| !s.is_closed());
        streams.push(stream);
    }
}

/// Keeps a core opened for a peer open while it has peers: until the first peer comes (at most
/// one linger period plus a grace for the channel to open) and then until the last one leaves.
async fn hold_while_replicated(
    session: corestore_cache::Session<corestore_keys::DiscoveryKey, SharedCore>,
    linger: std::time::Duration,
) {
    let core = session.value().replicated().clone();
    let mut events = core.subscribe();
    let grace = linger.max(std::time::Duration::from_secs(10));
    let first_peer = async {
        while core.peer_count() == 0 {
            if events.recv().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(grace, first_peer).await.is_ok() {
        while core.peer_count() > 0 && !session.value().is_closed() {
            if matches!(events.recv().await, Err(tokio::sync::broadcast::error::RecvError::Closed))
            {
                break;
            }
        }
    }
    drop(session);
}

impl Corestore {
    /// Replicates this store with a peer over `io` (a TCP socket, an in-memory duplex):
    /// the Noise handshake as `is_initiator` says, then one channel per core, as JavaScript's
    /// `store.replicate(isInitiator)` piped to the socket. See the [module docs](self) for which
    /// cores take part. The stream runs in its own task until either side ends it.
    pub fn replicate<T>(&self, io: T, is_initiator: bool) -> Result<Replication, ReplicateError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.replicate_with(io, is_initiator, StreamConfig::new())
    }

    /// [`Corestore::replicate`] with explicit secret-stream settings (key pair, keep-alive).
    pub fn replicate_with<T>(
        &self,
        io: T,
        is_initiator: bool,
        stream: StreamConfig,
    ) -> Result<Replication, ReplicateError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        if self.is_closed() {
            return Err(ClosedError::Closed);
        }
        let root = self.inner.root.clone();
        let weak = Arc::downgrade(&root);
        let on_remote_open: RemoteOpenHook = Arc::new(move |discovery_key| {
            let weak = weak.clone();
            Box::pin(async move {
                let root = weak.upgrade()?;
                let core = root.open_for_peer(discovery_key).await.ok().flatten()?;
                // Held open while peers replicate it, then left to linger and close.
                if let Some(session) = root.cache.session(&discovery_key) {
                    tokio::spawn(hold_while_replicated(session, root.cache.linger()));
                }
                Some(core.replicated().clone())
            })
        });
        let role = if is_initiator { Role::Initiator } else { Role::Responder };
        let options = ReplicationOptions { stream, on_remote_open: Some(on_remote_open) };
        let replication = Replication::spawn(io, role, options);
        if !root.passive {
            // Cores opened by sessions, not the ones held for other peers.
            for (key, core) in root.cache.values() {
                if root.cache.sessions(&key) > 0 {
                    replication.attach(core.replicated());
                }
            }
        }
        root.add_stream(replication.handle());
        Ok(replication)
    }
}
