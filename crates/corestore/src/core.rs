//! [`SharedCore`]: the one object per open core that every session of a store shares.
//!
//! It wraps the replication layer's [`corestore_replicate::SharedCore`], which owns the
//! [`Hypercore`] (behind a `tokio::sync::RwLock` held only across storage awaits, never across a
//! network await) and its replicator: appends, truncates and downloads all go through it, so
//! every replication stream hears of them, and a `get` of a missing block asks the peers. This
//! layer adds what a store needs on top: the open/closed state and the session-facing events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use corestore_cache::Closeable;
use corestore_hypercore::{self as hypercore, flat, Hypercore};
use corestore_keys::{CoreKey, DiscoveryKey, Manifest};
use corestore_replicate::protocol::{ReplicatorConfig, ReplicatorEvent};
use corestore_replicate::{CoreWrite, GetOptions as WaitOptions};
use futures::future::BoxFuture;
use tokio::sync::{broadcast, Notify, RwLockReadGuard};

use crate::error::{BlockError, SeekError};

/// Something that happened to a core, as seen by [`crate::Core::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreEvent {
    /// The core grew (a local append or a downloaded upgrade).
    Append {
        /// The new length.
        length: u64,
        /// The new byte length.
        byte_length: u64,
    },
    /// The core was truncated (its fork id changed), locally or by following the writer.
    Truncate {
        /// The new length.
        length: u64,
        /// The new fork id.
        fork: u64,
    },
    /// A block was downloaded from a peer and verified.
    Download {
        /// The block.
        index: u64,
        /// Its size.
        bytes: u64,
    },
    /// A block was sent to a peer.
    Upload {
        /// The block.
        index: u64,
        /// Its size.
        bytes: u64,
    },
    /// A peer started replicating this core.
    PeerAdd,
    /// A peer stopped replicating this core.
    PeerRemove,
    /// This subscriber fell behind and missed events; read the current state instead.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

impl CoreEvent {
    fn from_replication(event: &ReplicatorEvent, byte_length: u64) -> Option<Self> {
        Some(match *event {
            ReplicatorEvent::Appended { length, byte_length } => {
                Self::Append { length, byte_length }
            }
            ReplicatorEvent::Upgraded { length } => Self::Append { length, byte_length },
            ReplicatorEvent::Truncated { length, fork } => Self::Truncate { length, fork },
            ReplicatorEvent::Downloaded { index, bytes, .. } => Self::Download { index, bytes },
            ReplicatorEvent::Uploaded { index, bytes, .. } => Self::Upload { index, bytes },
            ReplicatorEvent::PeerAdded(_) => Self::PeerAdd,
            ReplicatorEvent::PeerRemoved(_) => Self::PeerRemove,
            _ => return None,
        })
    }
}

/// Per-core flags given by the first `get` that opened the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CoreFlags {
    /// Download everything (eager) rather than only what is asked for (sparse).
    pub(crate) eager: bool,
}

/// A copy of the log's head, refreshed after every change, so getters need no lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) length: u64,
    pub(crate) byte_length: u64,
    pub(crate) contiguous_length: u64,
    pub(crate) fork: u64,
    pub(crate) writable: bool,
    pub(crate) manifest: Option<Manifest>,
}

/// The shared state of one open core.
#[derive(Debug)]
pub(crate) struct SharedCore {
    replicated: corestore_replicate::SharedCore,
    changed: Notify,
    closed: AtomicBool,
}

impl SharedCore {
    pub(crate) fn new(core: Hypercore, flags: CoreFlags) -> Self {
        let config = ReplicatorConfig { eager: flags.eager, ..ReplicatorConfig::default() };
        Self {
            replicated: corestore_replicate::SharedCore::new(core, config),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The core as the replication layer shares it (attach it to streams).
    pub(crate) fn replicated(&self) -> &corestore_replicate::SharedCore {
        &self.replicated
    }

    pub(crate) fn key(&self) -> &CoreKey {
        self.replicated.key()
    }

    pub(crate) fn discovery_key(&self) -> &DiscoveryKey {
        self.replicated.discovery_key()
    }

    /// The head as of the last change.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let h = self.replicated.head();
        Snapshot {
            length: h.length,
            byte_length: h.byte_length,
            contiguous_length: h.contiguous_length,
            fork: h.fork,
            writable: h.writable,
            manifest: h.manifest,
        }
    }

    /// Length, byte length, contiguous length and fork (no manifest clone).
    pub(crate) fn head(&self) -> (u64, u64, u64, u64) {
        self.replicated.lengths()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The log, for reads. Do not hold the guard across a network await.
    pub(crate) async fn read(&self) -> RwLockReadGuard<'_, Hypercore> {
        self.replicated.read().await
    }

    async fn write(&self) -> CoreWrite<'_> {
        self.replicated.write().await
    }

    /// A receiver of every replication event from now on; `None` once the core closed.
    pub(crate) fn subscribe(&self) -> Option<broadcast::Receiver<ReplicatorEvent>> {
        (!self.is_closed()).then(|| self.replicated.subscribe())
    }

    /// The next session-facing event of `rx`, or `None` once the core closed.
    pub(crate) async fn next_event(
        &self,
        rx: &mut broadcast::Receiver<ReplicatorEvent>,
    ) -> Option<CoreEvent> {
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                () = self.closed() => return None,
            };
            match event {
                Ok(event) => {
                    if let Some(e) = CoreEvent::from_replication(&event, self.head().1) {
                        return Some(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Some(CoreEvent::Lagged { missed });
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    pub(crate) async fn append<B: AsRef<[u8]>>(
        &self,
        blocks: &[B],
    ) -> Result<u64, hypercore::AppendError> {
        self.replicated.append(blocks).await
    }

    pub(crate) async fn truncate(&self, length: u64) -> Result<(), hypercore::TruncateError> {
        self.replicated.truncate(length).await
    }

    pub(crate) async fn clear(
        &self,
        start: u64,
        end: u64,
    ) -> Result<hypercore::ClearReport, hypercore::ClearError> {
        self.replicated.clear(start, end).await
    }

    /// Takes a manifest or key pair a later `get` brings that this core lacks: the log is
    /// reloaded from storage with it (and stores it) under the write lock, so every session sees
    /// it. Nothing happens when the core already has them.
    pub(crate) async fn learn(
        &self,
        storage: &std::sync::Arc<corestore_storage::Storage>,
        manifest: Option<Manifest>,
        key_pair: Option<corestore_keys::KeyPair>,
    ) -> Result<(), hypercore::OpenError> {
        let mut core = self.write().await;
        let learns_manifest = manifest.is_some() && core.manifest().is_none();
        let learns_key_pair = key_pair.is_some() && !core.is_writable();
        if self.is_closed() || !(learns_manifest || learns_key_pair) {
            return Ok(());
        }
        let manifest = core.manifest().cloned().or(manifest);
        let key = *self.key();
        *core = crate::open::reload(storage, key, manifest, key_pair).await?;
        Ok(())
    }

    /// Block `index`: `None` when it is missing and `wait` is false; with `wait`, asks the peers
    /// and resolves when it is stored (downloaded or appended), or fails when the core closes.
    /// Cancel by dropping the future: the request is withdrawn. The timeout is the caller's.
    pub(crate) async fn block(
        &self,
        index: u64,
        wait: bool,
    ) -> Result<Option<Vec<u8>>, BlockError> {
        if self.is_closed() {
            return Err(BlockError::Closed);
        }
        let get = self.replicated.get(index, WaitOptions { wait, timeout: None });
        tokio::select! {
            block = get => block.map_err(|e| match e {
                corestore_replicate::GetError::Storage(e) => BlockError::Storage(e),
                _ => BlockError::Closed,
            }),
            () = self.closed() => Err(BlockError::Closed),
        }
    }

    /// Resolves when the core closes (at once if it is closed).
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// The block holding byte `offset` and the offset inside it, walking the stored tree from
    /// the roots down. `offset == byte_length` gives `(length, 0)`.
    pub(crate) async fn seek(&self, offset: u64) -> Result<(u64, u64), SeekError> {
        let core = self.read().await;
        let byte_length = core.byte_length();
        if offset > byte_length {
            return Err(SeekError::OutOfRange { offset, byte_length });
        }
        if offset == byte_length {
            return Ok((core.length(), 0));
        }
        let mut rest = offset;
        for root in core.roots() {
            if rest >= root.size {
                rest -= root.size;
                continue;
            }
            let mut index = root.index;
            while let (Some(left), Some(right)) =
                (flat::left_child(index), flat::right_child(index))
            {
                let node =
                    core.tree_node(left).await?.ok_or(SeekError::MissingNode { index: left })?;
                if rest < node.size {
                    index = left;
                } else {
                    rest -= node.size;
                    index = right;
                }
            }
            return Ok((index / 2, rest));
        }
        Err(SeekError::OutOfRange { offset, byte_length })
    }
}

impl Closeable for SharedCore {
    fn close(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Wait for a change in flight, so its event goes out before the stream ends.
            let guard = self.write().await;
            self.closed.store(true, Ordering::Release);
            drop(guard);
            self.replicated.detach_all();
            self.changed.notify_waiters();
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use corestore_hypercore::Hypercore;
    use corestore_keys::KeyPair;
    use corestore_replicate::{Replication, Role};
    use corestore_storage::{MemoryStorage, Storage};

    use super::*;

    async fn storage() -> Arc<Storage> {
        Storage::open(Arc::new(MemoryStorage::new())).await.unwrap()
    }

    async fn writer(blocks: &[&[u8]]) -> SharedCore {
        let core = Hypercore::create(&storage().await, KeyPair::generate(), None).await.unwrap();
        let shared = SharedCore::new(core, CoreFlags { eager: true });
        shared.append(blocks).await.unwrap();
        shared
    }

    #[tokio::test]
    async fn a_waiting_get_asks_the_peers_and_resolves_when_the_block_is_downloaded() {
        let writer = writer(&[b"a", b"bb", b"ccc"]).await;
        let reader = SharedCore::new(
            Hypercore::open(&storage().await, *writer.key(), None).await.unwrap(),
            CoreFlags::default(),
        );
        let mut events = reader.subscribe().unwrap();
        assert_eq!(reader.block(1, false).await.unwrap(), None);
        let (a, b) = tokio::io::duplex(64 * 1024);
        let options = corestore_replicate::ReplicationOptions::default;
        let ra = Replication::spawn(a, Role::Initiator, options());
        let rb = Replication::spawn(b, Role::Responder, options());
        ra.attach(writer.replicated());
        rb.attach(reader.replicated());
        assert_eq!(reader.block(1, true).await.unwrap().as_deref(), Some(&b"bb"[..]));
        assert_eq!(reader.snapshot().length, 3);
        let mut seen = vec![];
        while !seen.iter().any(|e| matches!(e, CoreEvent::Download { index: 1, .. })) {
            seen.push(reader.next_event(&mut events).await.unwrap());
        }
        assert!(seen.contains(&CoreEvent::PeerAdd), "{seen:?}");
        assert!(seen.contains(&CoreEvent::Append { length: 3, byte_length: 6 }), "{seen:?}");
        assert!(!reader.read().await.has(0) && !reader.read().await.has(2), "only block 1 moved");
    }

    #[tokio::test]
    async fn a_waiting_get_ends_when_the_core_closes_and_can_be_dropped() {
        let core = Arc::new(writer(&[b"x"]).await);
        let mut dropped = Box::pin(core.block(5, true));
        assert!(futures::poll!(dropped.as_mut()).is_pending());
        drop(dropped); // cancelled by drop: nothing left behind
        let wait = core.block(7, true);
        tokio::pin!(wait);
        assert!(futures::poll!(wait.as_mut()).is_pending());
        core.clone().close().await;
        assert!(matches!(wait.await, Err(BlockError::Closed)));
        assert!(core.subscribe().is_none());
        core.closed().await;
    }

    #[tokio::test]
    async fn seek_finds_the_block_of_every_byte() {
        let blocks: Vec<Vec<u8>> = (1..=11u8).map(|n| vec![n; usize::from(n)]).collect();
        let core = writer(&blocks.iter().map(Vec::as_slice).collect::<Vec<_>>()).await;
        let mut offset = 0;
        for (index, block) in blocks.iter().enumerate() {
            for inner in 0..block.len() as u64 {
                assert_eq!(core.seek(offset + inner).await.unwrap(), (index as u64, inner));
            }
            offset += block.len() as u64;
        }
        assert_eq!(core.seek(offset).await.unwrap(), (11, 0));
        assert!(matches!(core.seek(offset + 1).await, Err(SeekError::OutOfRange { .. })));
    }
}
