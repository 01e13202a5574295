//! [`Core`]: the handle users hold on a core; one session of the shared core.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corestore_keys::{CoreKey, DiscoveryKey, Manifest};
use futures::Stream;

use crate::core::{CoreEvent, SharedCore};
use crate::error::{AppendError, BlockError, ClearError, ClosedError, SeekError, TruncateError};
use crate::get::GetOptions;
use crate::store::StoreSession;

type CacheSession = corestore_cache::Session<DiscoveryKey, SharedCore>;

/// The cache session behind one [`Core`], shared with the store that opened it so closing the
/// store can release it.
pub(crate) struct SessionSlot {
    session: Mutex<Option<CacheSession>>,
}

impl SessionSlot {
    pub(crate) fn new(session: CacheSession) -> Self {
        Self { session: Mutex::new(Some(session)) }
    }

    /// Takes the session out (the slot is closed from now on).
    pub(crate) fn take(&self) -> Option<CacheSession> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn is_live(&self) -> bool {
        self.session.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    fn fork(&self) -> Option<CacheSession> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(Clone::clone)
    }
}

/// What [`Core::info`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreInfo {
    /// The core key.
    pub key: CoreKey,
    /// The discovery key.
    pub discovery_key: DiscoveryKey,
    /// Number of blocks.
    pub length: u64,
    /// Number of blocks present locally from block 0 without a gap.
    pub contiguous_length: u64,
    /// Total bytes of all blocks.
    pub byte_length: u64,
    /// Fork id (bumped by every truncate).
    pub fork: u64,
    /// True when this session can append.
    pub writable: bool,
}

/// One session on an open core. Cloning it opens a new session (refcounted) on the same core;
/// the core closes when its last session is closed or dropped, or when the store that opened
/// the session closes. Every operation after close fails with a typed `Closed` error.
pub struct Core {
    shared: Arc<SharedCore>,
    slot: Arc<SessionSlot>,
    id: u64,
    store: Arc<StoreSession>,
    writable: bool,
    wait: bool,
    timeout: Option<Duration>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("key", self.shared.key())
            .field("writable", &self.writable)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(
        store: Arc<StoreSession>,
        session: CacheSession,
        options: &GetOptions,
        store_writable: bool,
    ) -> Self {
        let shared = session.value().clone();
        let (id, slot) = store.register(session);
        Self {
            shared,
            slot,
            id,
            store,
            writable: options.writable && store_writable,
            wait: options.wait,
            timeout: options.timeout,
        }
    }

    /// The shared core object (for the replicator).
    #[allow(dead_code)] // Used by the replicator (lead's part of issue 10).
    pub(crate) fn shared(&self) -> &Arc<SharedCore> {
        &self.shared
    }

    /// True once this session, its store or the core is closed.
    pub fn is_closed(&self) -> bool {
        !self.slot.is_live() || self.shared.is_closed()
    }

    fn check(&self) -> Result<(), ClosedError> {
        if self.is_closed() {
            Err(ClosedError::Closed)
        } else {
            Ok(())
        }
    }

    /// The core key (the manifest hash).
    pub fn key(&self) -> &CoreKey {
        self.shared.key()
    }

    /// The discovery key (what peers see).
    pub fn discovery_key(&self) -> &DiscoveryKey {
        self.shared.discovery_key()
    }

    /// The manifest, once known (a replica learns it from a peer).
    pub fn manifest(&self) -> Option<Manifest> {
        self.shared.snapshot().manifest
    }

    /// True when this session can append: the store holds a signer's secret key, and neither
    /// the session nor the store is read-only.
    pub fn writable(&self) -> bool {
        self.writable && self.shared.snapshot().writable
    }

    /// Number of blocks.
    pub fn length(&self) -> u64 {
        self.shared.head().0
    }

    /// Total bytes of all blocks.
    pub fn byte_length(&self) -> u64 {
        self.shared.head().1
    }

    /// Number of blocks present locally from block 0 without a gap.
    pub fn contiguous_length(&self) -> u64 {
        self.shared.head().2
    }

    /// The fork id.
    pub fn fork(&self) -> u64 {
        self.shared.head().3
    }

    /// Everything about the core's head at once.
    pub fn info(&self) -> Result<CoreInfo, ClosedError> {
        self.check()?;
        let (length, byte_length, contiguous_length, fork) = self.shared.head();
        Ok(CoreInfo {
            key: *self.key(),
            discovery_key: *self.discovery_key(),
            length,
            contiguous_length,
            byte_length,
            fork,
            writable: self.writable(),
        })
    }

    /// Appends one block; returns the new length.
    pub async fn append(&self, block: impl AsRef<[u8]>) -> Result<u64, AppendError> {
        self.append_batch(&[block]).await
    }

    /// Appends blocks as one signed batch; returns the new length.
    pub async fn append_batch<B: AsRef<[u8]>>(&self, blocks: &[B]) -> Result<u64, AppendError> {
        self.check().map_err(|_| AppendError::Closed)?;
        if !self.writable() {
            return Err(AppendError::NotWritable);
        }
        Ok(self.shared.append(blocks).await?)
    }

    /// Block `index`. Missing locally: with the session's `wait` (the default) it waits for the
    /// block to arrive (an append now; a download once replication is attached), up to the
    /// session's timeout; with `wait(false)` it returns `None` at once. Dropping the future
    /// cancels the wait.
    pub async fn get(&self, index: u64) -> Result<Option<Vec<u8>>, BlockError> {
        self.check().map_err(|_| BlockError::Closed)?;
        let read = self.shared.block(index, self.wait);
        match self.timeout {
            Some(timeout) => tokio::time::timeout(timeout, read)
                .await
                .map_err(|_| BlockError::Timeout { index, timeout })?,
            None => read.await,
        }
    }

    /// True when block `index` is stored locally.
    pub async fn has(&self, index: u64) -> Result<bool, ClosedError> {
        self.check()?;
        Ok(self.shared.read().await.has(index))
    }

    /// The block holding byte `offset`, and the offset inside that block.
    pub async fn seek(&self, offset: u64) -> Result<(u64, u64), SeekError> {
        self.check().map_err(|_| SeekError::Closed)?;
        self.shared.seek(offset).await
    }

    /// Learns the peers' length: asks them for an upgrade and waits until each has answered (or
    /// `timeout` passed). True when the core grew (JavaScript's `core.update()`).
    pub async fn update(&self, timeout: Option<std::time::Duration>) -> Result<bool, ClosedError> {
        self.check()?;
        Ok(self.shared.replicated().update(timeout).await)
    }

    /// Downloads blocks `[start, end)` from the peers (`end = None`: every block, live, until
    /// the handle is dropped); the handle reports progress and completion.
    pub async fn download(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> Result<crate::Download, ClosedError> {
        self.check()?;
        Ok(self.shared.replicated().download(start, end).await)
    }

    /// How many peers replicate this core now.
    pub fn peer_count(&self) -> usize {
        self.shared.replicated().peer_count()
    }

    /// Truncates the core to `length` blocks (a new fork).
    pub async fn truncate(&self, length: u64) -> Result<(), TruncateError> {
        self.check().map_err(|_| TruncateError::Closed)?;
        if !self.writable() {
            return Err(TruncateError::NotWritable);
        }
        Ok(self.shared.truncate(length).await?)
    }

    /// Removes the locally stored blocks of `range` (JavaScript's `core.clear(start, end)`),
    /// e.g. `core.clear(20..40)`, `core.clear(5..=5)` or `core.clear(..)`; a range past the
    /// length is clamped. Afterwards [`Core::has`] is false for them and [`Core::get`] with
    /// `wait` downloads them again, verified against the core's tree, which stays stored.
    /// Connected peers hear of it at once (a `range` message with `drop`) and stop asking this
    /// store for those blocks. Any session may clear, a writer's too: it then cannot serve the
    /// blocks it cleared. A download still running over the range (a [`crate::Download`] not
    /// dropped yet, or an eager core) fetches them again.
    ///
    /// Returns the range cleared and how many of its blocks were stored. One atomic write.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use corestore::{CoreRef, Corestore};
    ///
    /// let store = Corestore::in_memory().await?;
    /// let core = store.get(CoreRef::name("log")).await?;
    /// core.append_batch(&[b"a", b"b", b"c"]).await?;
    /// let cleared = core.clear(1..).await?;
    /// assert_eq!((cleared.start, cleared.end, cleared.blocks), (1, 3, 2));
    /// assert!(core.has(0).await? && !core.has(1).await?);
    /// assert_eq!((core.length(), core.contiguous_length()), (3, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn clear(
        &self,
        range: impl RangeBounds<u64>,
    ) -> Result<corestore_hypercore::ClearReport, ClearError> {
        self.check().map_err(|_| ClearError::Closed)?;
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        Ok(self.shared.clear(start, end).await?)
    }

    /// A stream of the blocks in `range`, in order. Not live: an unbounded range ends at the
    /// current length. Live: it ends at the range's end only, waiting for appends. A missing
    /// block is waited for when the session waits, else it ends the stream with
    /// [`BlockError::NotAvailable`]. The stream holds its own session.
    pub fn read_stream(
        &self,
        range: impl RangeBounds<u64>,
        live: bool,
    ) -> impl Stream<Item = Result<Vec<u8>, BlockError>> + Send + 'static {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => Some(e.saturating_add(1)),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => (!live).then(|| self.length()),
        };
        let session = self.clone();
        futures::stream::unfold((session, start, false), move |(core, index, done)| async move {
            if done || end.is_some_and(|e| index >= e) {
                return None;
            }
            let block =
                if live { core.shared.block(index, true).await } else { core.get(index).await };
            match block {
                Ok(Some(b)) => Some((Ok(b), (core, index + 1, false))),
                Ok(None) => Some((Err(BlockError::NotAvailable { index }), (core, index, true))),
                Err(e) => Some((Err(e), (core, index, true))),
            }
        })
    }

    /// A stream of the core's events from now on (append, truncate; replication adds its own).
    /// It ends when the core closes.
    pub fn events(&self) -> impl Stream<Item = CoreEvent> + Send + 'static {
        let rx = if self.is_closed() { None } else { self.shared.subscribe() };
        let shared = self.shared.clone();
        futures::stream::unfold((shared, rx), |(shared, rx)| async move {
            let mut rx = rx?;
            let event = shared.next_event(&mut rx).await?;
            Some((event, (shared, Some(rx))))
        })
    }

    /// Resolves when the core itself closes (its last session went, or the store closed).
    pub async fn closed(&self) {
        self.shared.closed().await;
    }

    /// Closes this session; if it was the core's last one, waits until the core is closed.
    pub async fn close(self) {
        self.store.unregister(self.id);
        if let Some(session) = self.slot.take() {
            session.close().await;
        }
    }
}

impl Clone for Core {
    /// A new session on the same core, tracked by the same store.
    fn clone(&self) -> Self {
        let (id, slot) = match self.slot.fork() {
            Some(session) => self.store.register(session),
            None => (0, Arc::new(SessionSlot { session: Mutex::new(None) })),
        };
        Self {
            shared: self.shared.clone(),
            slot,
            id,
            store: self.store.clone(),
            writable: self.writable,
            wait: self.wait,
            timeout: self.timeout,
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.store.unregister(self.id);
        drop(self.slot.take());
    }
}
