//! [`SharedCore`]: the one object per open core that every session of a store shares, and the
//! narrow internal API the replicator attaches to.
//!
//! Ownership: the [`Hypercore`] sits behind a `tokio::sync::RwLock`. Reads (`get`, `has`,
//! proofs) take the read lock; mutations (`append`, `truncate`, applying a verified proof) take
//! the write lock for the storage write only. The lock is never held across a network await:
//! the replicator must copy what it needs out of a guard before it sends anything.
//!
//! Change notification: every mutation publishes a [`CoreEvent`] on a lazily created broadcast
//! channel (for session event streams) and wakes `changed`, which [`SharedCore::block`] waits
//! on. A block that appears by download is announced the same way, so `get(i)` of a missing block
//! resolves when the replicator calls [`SharedCore::receive`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use corestore_cache::Closeable;
use corestore_hypercore::{self as hypercore, flat, Applied, Data, Hypercore, Request};
use corestore_keys::{CoreKey, DiscoveryKey, Manifest};
use futures::future::BoxFuture;
use tokio::sync::{broadcast, Notify, RwLock, RwLockReadGuard};

use crate::error::{BlockError, SeekError};

/// Events buffered per subscriber before it is told it lagged.
const EVENT_CAPACITY: usize = 64;

/// Something that happened to a core, as seen by [`crate::Core::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreEvent {
    /// The core grew (a local append or, later, a downloaded upgrade).
    Append {
        /// The new length.
        length: u64,
        /// The new byte length.
        byte_length: u64,
    },
    /// The core was truncated (its fork id changed).
    Truncate {
        /// The new length.
        length: u64,
        /// The new fork id.
        fork: u64,
    },
    /// This subscriber fell behind and missed events; read the current state instead.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// Per-core flags given by the first `get` that opened the core, kept for the replicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CoreFlags {
    /// Download everything (eager) rather than only what is asked for (sparse).
    pub(crate) eager: bool,
}

/// A copy of the log's head, refreshed after every mutation, so getters need no lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) length: u64,
    pub(crate) byte_length: u64,
    pub(crate) contiguous_length: u64,
    pub(crate) fork: u64,
    pub(crate) writable: bool,
    pub(crate) manifest: Option<Manifest>,
}

impl Snapshot {
    fn of(core: &Hypercore) -> Self {
        Self {
            length: core.length(),
            byte_length: core.byte_length(),
            contiguous_length: core.contiguous_length(),
            fork: core.fork(),
            writable: core.is_writable(),
            manifest: core.manifest().cloned(),
        }
    }
}

/// The shared state of one open core.
#[derive(Debug)]
pub(crate) struct SharedCore {
    key: CoreKey,
    discovery_key: DiscoveryKey,
    core: RwLock<Hypercore>,
    snapshot: Mutex<Snapshot>,
    events: Mutex<Option<broadcast::Sender<CoreEvent>>>,
    changed: Notify,
    closed: AtomicBool,
    #[cfg_attr(not(test), allow(dead_code))] // Read by the replicator (lead's part of issue 10).
    flags: CoreFlags,
}

impl SharedCore {
    pub(crate) fn new(core: Hypercore, flags: CoreFlags) -> Self {
        Self {
            key: *core.key(),
            discovery_key: *core.discovery_key(),
            snapshot: Mutex::new(Snapshot::of(&core)),
            core: RwLock::new(core),
            events: Mutex::new(None),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
            flags,
        }
    }

    pub(crate) fn key(&self) -> &CoreKey {
        &self.key
    }

    pub(crate) fn discovery_key(&self) -> &DiscoveryKey {
        &self.discovery_key
    }

    #[cfg_attr(not(test), allow(dead_code))] // Read by the replicator (lead's part of issue 10).
    pub(crate) fn flags(&self) -> CoreFlags {
        self.flags
    }

    /// The head as of the last mutation.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Length and fork only (no manifest clone).
    pub(crate) fn head(&self) -> (u64, u64, u64, u64) {
        let s = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        (s.length, s.byte_length, s.contiguous_length, s.fork)
    }

    fn refresh(&self, core: &Hypercore) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = Snapshot::of(core);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The log, for reads. Do not hold the guard across a network await.
    pub(crate) async fn read(&self) -> RwLockReadGuard<'_, Hypercore> {
        self.core.read().await
    }

    /// A receiver of every event from now on; `None` once the core closed.
    pub(crate) fn subscribe(&self) -> Option<broadcast::Receiver<CoreEvent>> {
        if self.is_closed() {
            return None;
        }
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        Some(events.get_or_insert_with(|| broadcast::channel(EVENT_CAPACITY).0).subscribe())
    }

    /// Announces `event` to subscribers and wakes block waiters.
    pub(crate) fn publish(&self, event: CoreEvent) {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = events.as_ref() {
            // No receiver is not an error: nobody is listening.
            drop(tx.send(event));
        }
        drop(events);
        self.changed.notify_waiters();
    }

    pub(crate) async fn append<B: AsRef<[u8]>>(
        &self,
        blocks: &[B],
    ) -> Result<u64, hypercore::AppendError> {
        let mut core = self.core.write().await;
        let before = core.length();
        let length = core.append(blocks).await?;
        if length != before {
            self.refresh(&core);
            let byte_length = core.byte_length();
            drop(core);
            self.publish(CoreEvent::Append { length, byte_length });
        }
        Ok(length)
    }

    pub(crate) async fn truncate(&self, length: u64) -> Result<(), hypercore::TruncateError> {
        let mut core = self.core.write().await;
        core.truncate(length).await?;
        self.refresh(&core);
        let (length, fork) = (core.length(), core.fork());
        drop(core);
        self.publish(CoreEvent::Truncate { length, fork });
        Ok(())
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
        let mut core = self.core.write().await;
        let learns_manifest = manifest.is_some() && core.manifest().is_none();
        let learns_key_pair = key_pair.is_some() && !core.is_writable();
        if self.is_closed() || !(learns_manifest || learns_key_pair) {
            return Ok(());
        }
        let manifest = core.manifest().cloned().or(manifest);
        *core = crate::open::reload(storage, self.key, manifest, key_pair).await?;
        self.refresh(&core);
        Ok(())
    }

    /// Answers a peer's request (read lock only).
    #[cfg_attr(not(test), allow(dead_code))] // Called by the replicator (lead's part of issue 10).
    pub(crate) async fn create_proof(
        &self,
        request: &Request,
    ) -> Result<Data, hypercore::CreateProofError> {
        self.core.read().await.create_proof(request).await
    }

    /// Verifies and stores a peer's data (write lock for the storage write), then announces the
    /// upgrade and wakes every `get` waiting for a block.
    #[cfg_attr(not(test), allow(dead_code))] // Called by the replicator (lead's part of issue 10).
    pub(crate) async fn receive(&self, data: Data) -> Result<Applied, hypercore::ReceiveError> {
        let mut core = self.core.write().await;
        let applied = core.receive(data).await?;
        self.refresh(&core);
        let byte_length = core.byte_length();
        drop(core);
        if applied.upgraded {
            self.publish(CoreEvent::Append { length: applied.length, byte_length });
        } else {
            self.changed.notify_waiters();
        }
        Ok(applied)
    }

    /// Block `index`: `None` when it is missing and `wait` is false; with `wait`, resolves when
    /// it appears locally (append or download). Cancel by dropping the future: nothing is left
    /// registered. The timeout is the caller's (`tokio::time::timeout`).
    pub(crate) async fn block(
        &self,
        index: u64,
        wait: bool,
    ) -> Result<Option<Vec<u8>>, BlockError> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change between check and await is not missed.
            notified.as_mut().enable();
            if self.is_closed() {
                return Err(BlockError::Closed);
            }
            {
                let core = self.core.read().await;
                if core.has(index) {
                    if let Some(block) = core.get(index).await? {
                        return Ok(Some(block));
                    }
                }
            }
            if !wait {
                return Ok(None);
            }
            notified.await;
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
        let core = self.core.read().await;
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
    fn close(self: std::sync::Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Wait for a mutation in flight, so its event goes out before the stream ends.
            let guard = self.core.write().await;
            self.closed.store(true, Ordering::Release);
            drop(guard);
            self.events.lock().unwrap_or_else(PoisonError::into_inner).take();
            self.changed.notify_waiters();
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use corestore_hypercore::{Hypercore, NodeRequest, UpgradeRequest};
    use corestore_keys::KeyPair;
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
    async fn a_waiting_get_resolves_when_the_block_is_downloaded() {
        let writer = writer(&[b"a", b"bb", b"ccc"]).await;
        assert!(writer.flags().eager);
        let reader = SharedCore::new(
            Hypercore::open(&storage().await, *writer.key(), None).await.unwrap(),
            CoreFlags::default(),
        );
        let mut events = reader.subscribe().unwrap();
        assert_eq!(reader.block(1, false).await.unwrap(), None);
        let wait = reader.block(1, true);
        tokio::pin!(wait);
        assert!(futures::poll!(wait.as_mut()).is_pending());

        let upgrade = Request {
            id: 1,
            upgrade: Some(UpgradeRequest { start: 0, length: 3 }),
            manifest: true,
            ..Request::default()
        };
        let applied = reader.receive(writer.create_proof(&upgrade).await.unwrap()).await.unwrap();
        assert!(applied.upgraded);
        assert_eq!(events.recv().await.unwrap(), CoreEvent::Append { length: 3, byte_length: 6 });
        assert_eq!(reader.snapshot().length, 3);
        assert!(futures::poll!(wait.as_mut()).is_pending(), "upgraded, block still missing");

        let nodes = reader.read().await.missing_nodes(2).await.unwrap();
        let block =
            Request { id: 2, block: Some(NodeRequest { index: 1, nodes }), ..Request::default() };
        reader.receive(writer.create_proof(&block).await.unwrap()).await.unwrap();
        assert_eq!(wait.await.unwrap().as_deref(), Some(&b"bb"[..]));
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
