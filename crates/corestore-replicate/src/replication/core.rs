//! [`SharedCore`]: one open core shared by every session that uses it and every connection that
//! replicates it.
//!
//! Ownership, written down (DESIGN.md asks for it): the `Hypercore` sits behind a
//! `tokio::sync::RwLock` that is only ever held across *storage* awaits (reads, proofs, one
//! atomic write), never across a network await; its [`Replicator`] sits behind a `std` mutex that
//! is never held across any await. Both the replicator and the wake-up channel are created by
//! the first use that needs them (an attached stream, a wanted block or range, an extension, a
//! waiter), not at open: most cores of a large store are never replicated, and each would carry
//! about 700 bytes of state it never uses. A connection task does the async work the replicator asks for
//! (proofs, verification) for its own peers, so a slow or stalled peer only ever stalls its own
//! connection task: other peers, other cores and local appends and reads go on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use corestore_hypercore::{AppendError, ClearError, ClearReport, Hypercore, TruncateError};
use corestore_keys::{CoreKey, DiscoveryKey, Manifest};
use corestore_storage::StorageError;
use tokio::sync::{broadcast, mpsc, oneshot, watch, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::stream::Command;
use crate::mux::ChannelId;
use crate::protocol::{Action, PeerId, RangeId, Replicator, ReplicatorConfig, ReplicatorEvent};

/// Events of a [`SharedCore`] kept for slow subscribers before the oldest are dropped. The
/// buffer is allocated in full (about 90 KiB) when the first subscriber comes, not before: most
/// cores of a large store are never subscribed to.
const EVENT_BACKLOG: usize = 1024;

/// Why a read of a [`SharedCore`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No peer delivered the block in time.
    #[error("block {index} did not arrive within {timeout:?}")]
    Timeout {
        /// The block.
        index: u64,
        /// The timeout that passed.
        timeout: Duration,
    },
}

/// How [`SharedCore::get`] waits for a block that is not stored locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetOptions {
    /// Wait for a peer to deliver it (`false`: answer `None` at once).
    pub wait: bool,
    /// Give up after this long (`None`: wait until the future is dropped, as JavaScript waits
    /// forever).
    pub timeout: Option<Duration>,
}

impl Default for GetOptions {
    fn default() -> Self {
        Self { wait: true, timeout: None }
    }
}

/// Where a peer's work goes: the command queue of the connection task it lives on.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
    pub(crate) channel: ChannelId,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) replicator: Replicator,
    pub(crate) links: HashMap<PeerId, Link>,
    /// Connections that attached this core but whose channel is not open yet (an `update()`
    /// waits for them, as JavaScript's `findingPeers`).
    pub(crate) pending: usize,
}

/// The head of a core as of its last change, readable without any lock on the core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoreHead {
    /// Number of blocks.
    pub length: u64,
    /// Number of bytes.
    pub byte_length: u64,
    /// Every block below this is stored locally.
    pub contiguous_length: u64,
    /// The fork.
    pub fork: u64,
    /// The core can append.
    pub writable: bool,
    /// The manifest, once known.
    pub manifest: Option<Manifest>,
}

impl CoreHead {
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

/// Write access to the core of a [`SharedCore`]; dropping it publishes the new head and wakes
/// every waiter.
#[derive(Debug)]
pub struct CoreWrite<'a> {
    guard: RwLockWriteGuard<'a, Hypercore>,
    shared: &'a SharedCore,
}

impl std::ops::Deref for CoreWrite<'_> {
    type Target = Hypercore;
    fn deref(&self) -> &Hypercore {
        &self.guard
    }
}

impl std::ops::DerefMut for CoreWrite<'_> {
    fn deref_mut(&mut self) -> &mut Hypercore {
        &mut self.guard
    }
}

impl Drop for CoreWrite<'_> {
    fn drop(&mut self) {
        let head = CoreHead::of(&self.guard);
        let mut current =
            self.shared.0.head.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let contiguous = head.contiguous_length;
        if *current != head {
            *current = head;
        }
        drop(current);
        self.shared.wake_contiguous(contiguous);
        self.shared.notify();
    }
}

#[derive(Debug)]
struct Inner {
    key: CoreKey,
    discovery_key: DiscoveryKey,
    head: Mutex<CoreHead>,
    core: RwLock<Hypercore>,
    /// The replicator's configuration, until [`SharedCore::lock`] creates the state with it.
    config: ReplicatorConfig,
    /// Created by the first [`SharedCore::lock`]: a replicator that does not exist yet is one
    /// with no peers and no wants, whose every input would be a no-op.
    state: OnceLock<Box<Mutex<State>>>,
    /// Created by the first waiter ([`SharedCore::changed`]): until then a wake-up has nobody to
    /// wake (a `watch` channel is about 350 bytes with its eight notifiers).
    changed: OnceLock<watch::Sender<u64>>,
    /// Waiters for the contiguous length to reach a value (woken only then, not per block).
    contiguous: Mutex<Vec<(u64, oneshot::Sender<()>)>>,
    /// Created by the first [`SharedCore::subscribe`]: until then events have no receiver.
    events: OnceLock<broadcast::Sender<ReplicatorEvent>>,
}

/// One open core, shared (cloning is cheap and gives another handle on the same core).
#[derive(Debug, Clone)]
pub struct SharedCore(Arc<Inner>);

impl SharedCore {
    /// Shares `core`, replicated with `config`.
    pub fn new(core: Hypercore, config: ReplicatorConfig) -> Self {
        Self(Arc::new(Inner {
            key: *core.key(),
            discovery_key: *core.discovery_key(),
            head: Mutex::new(CoreHead::of(&core)),
            core: RwLock::new(core),
            config,
            state: OnceLock::new(),
            changed: OnceLock::new(),
            contiguous: Mutex::new(Vec::new()),
            events: OnceLock::new(),
        }))
    }

    /// The core key.
    pub fn key(&self) -> &CoreKey {
        &self.0.key
    }

    /// The discovery key.
    pub fn discovery_key(&self) -> &DiscoveryKey {
        &self.0.discovery_key
    }

    /// True when both handles share one core.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Read access to the core (held only across storage awaits).
    pub async fn read(&self) -> RwLockReadGuard<'_, Hypercore> {
        self.0.core.read().await
    }

    /// Write access to the core, for changes other than the ones this type makes itself (for
    /// example reloading it with a manifest learned later). Never hold it across a network
    /// await; dropping it publishes the new head.
    pub async fn write(&self) -> CoreWrite<'_> {
        CoreWrite { guard: self.0.core.write().await, shared: self }
    }

    /// The head as of the last change (no lock on the core).
    pub fn head(&self) -> CoreHead {
        self.0.head.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Length, byte length, contiguous length and fork as of the last change.
    pub fn lengths(&self) -> (u64, u64, u64, u64) {
        let h = self.0.head.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (h.length, h.byte_length, h.contiguous_length, h.fork)
    }

    pub(crate) fn publish(&self, event: ReplicatorEvent) {
        if let Some(events) = self.0.events.get() {
            let _ = events.send(event);
        }
    }

    /// The replication events of this core (downloads, uploads, peers, upgrades, extensions)
    /// from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReplicatorEvent> {
        self.0.events.get_or_init(|| broadcast::channel(EVENT_BACKLOG).0).subscribe()
    }

    /// True once anyone subscribed to the events (the event buffer exists).
    #[cfg(test)]
    pub(crate) fn has_event_buffer(&self) -> bool {
        self.0.events.get().is_some()
    }

    /// True once a waiter created the wake-up channel.
    #[cfg(test)]
    pub(crate) fn has_wake_channel(&self) -> bool {
        self.0.changed.get().is_some()
    }

    /// True once something needed the replication state: a stream attached this core, or a
    /// block, range, upgrade or extension was asked for. A core that was only opened, read and
    /// appended to has none (it costs no replicator).
    pub fn has_replication_state(&self) -> bool {
        self.0.state.get().is_some()
    }

    /// How many peers replicate this core now.
    pub fn peer_count(&self) -> usize {
        self.existing().map_or(0, |state| state.replicator.peers().count())
    }

    /// The replication state, created now if this is its first use.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        let state = self.0.state.get_or_init(|| {
            Box::new(Mutex::new(State {
                replicator: Replicator::new(self.0.config.clone()),
                links: HashMap::new(),
                pending: 0,
            }))
        });
        // A panic while the lock was held leaves plain bookkeeping behind; keep going with it.
        state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The replication state if it exists (inputs that change nothing in a fresh replicator,
    /// such as a local append with no peers, skip it rather than create it).
    fn existing(&self) -> Option<MutexGuard<'_, State>> {
        let state = self.0.state.get()?;
        Some(state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Runs `f` on the replicator, then routes what it asked for.
    pub(crate) fn with_replicator<R>(&self, f: impl FnOnce(&mut Replicator) -> R) -> R {
        let mut state = self.lock();
        let out = f(&mut state.replicator);
        self.route(&mut state);
        out
    }

    /// Drains the replicator's actions to the connection tasks of their peers.
    pub(crate) fn route(&self, state: &mut State) {
        let mut changed = false;
        while let Some(action) = state.replicator.poll_action() {
            let (peer, command) = match action {
                Action::Event(event) => {
                    changed = true;
                    self.publish(event);
                    continue;
                }
                Action::Send { peer, message } => (peer, Command::Send { message }),
                Action::Request { peer, request } => (peer, Command::Request { request }),
                Action::Answer { peer, ticket, request } => {
                    (peer, Command::Answer { peer, ticket, request })
                }
                Action::Verify { peer, data } => (peer, Command::Verify { peer, data }),
                Action::VerifyForkProof { peer, request, data } => {
                    (peer, Command::VerifyForkProof { peer, request, data })
                }
                Action::ReorgAnswer { peer, request, data, reorg } => {
                    (peer, Command::ReorgAnswer { peer, request, data, reorg })
                }
                Action::ApplyReorg { peer, reorg } => (peer, Command::ApplyReorg { reorg }),
                Action::CheckConflict { peer, data } => {
                    (peer, Command::CheckConflict { peer, data })
                }
                Action::Close { peer, error } => {
                    changed = true;
                    (peer, Command::CloseChannel { error })
                }
                Action::EndConnection { peer, error } => {
                    changed = true;
                    (peer, Command::End { error })
                }
            };
            if let Some(link) = state.links.get(&peer) {
                let _ = link.tx.send(Command::Channel {
                    channel: link.channel,
                    core: self.clone(),
                    command: Box::new(command),
                });
            }
        }
        if changed {
            self.notify();
        }
    }

    /// Stops replicating this core on every connection that carries it (the core is closing).
    pub fn detach_all(&self) {
        let Some(state) = self.existing() else { return };
        for link in state.links.values() {
            let _ = link.tx.send(Command::Detach(self.0.discovery_key));
        }
    }

    /// Resolves when the contiguous length is at least `length` (or the core is gone).
    fn contiguous_reaches(&self, length: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiters =
            self.0.contiguous.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        waiters.retain(|(_, w)| !w.is_closed());
        if self.head().contiguous_length >= length {
            let _ = tx.send(());
        } else {
            waiters.push((length, tx));
        }
        rx
    }

    fn wake_contiguous(&self, contiguous: u64) {
        let mut waiters =
            self.0.contiguous.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if waiters.iter().any(|(at, _)| *at <= contiguous) {
            for (_, tx) in waiters.extract_if(.., |(at, _)| *at <= contiguous) {
                let _ = tx.send(());
            }
        }
    }

    /// Wakes every waiter (a block, a length or a peer changed).
    pub(crate) fn notify(&self) {
        if let Some(changed) = self.0.changed.get() {
            changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Appends `blocks` (one signature, one atomic write); peers hear of it at once.
    pub async fn append<B: AsRef<[u8]>>(&self, blocks: &[B]) -> Result<u64, AppendError> {
        let mut core = self.write().await;
        let before = core.length();
        let length = core.append(blocks).await?;
        if length != before {
            let byte_length = core.byte_length();
            // No replication state: no peer to tell.
            if let Some(mut state) = self.existing() {
                state.replicator.handle_append(&*core);
                // The head first (dropping the guard publishes it), then what peers and
                // subscribers hear: whoever reacts to an event reads the head it announces.
                drop(core);
                self.route(&mut state);
            } else {
                drop(core);
            }
            self.publish(ReplicatorEvent::Appended { length, byte_length });
        }
        Ok(length)
    }

    /// Truncates the core to `length` blocks (a new fork); peers hear of it at once.
    pub async fn truncate(&self, length: u64) -> Result<(), TruncateError> {
        let mut core = self.write().await;
        core.truncate(length).await?;
        let fork = core.fork();
        // No replication state: no peer to tell, no request to cancel.
        if let Some(mut state) = self.existing() {
            state.replicator.handle_truncate(&*core, now());
            drop(core);
            self.route(&mut state);
        } else {
            drop(core);
        }
        self.publish(ReplicatorEvent::Truncated { length, fork });
        Ok(())
    }

    /// Clears the stored blocks `[start, end)` (`Hypercore::clear`); peers hear
    /// `range { drop: true }` at once and stop asking for them.
    pub async fn clear(&self, start: u64, end: u64) -> Result<ClearReport, ClearError> {
        let mut core = self.write().await;
        let report = core.clear(start, end).await?;
        // No replication state: no peer to tell, no range to rewind.
        if let Some(mut state) = self.existing().filter(|_| report.blocks > 0) {
            state.replicator.handle_clear(report.start, report.end, &*core, now());
            self.route(&mut state);
        }
        Ok(report)
    }

    /// Block `index`: from storage, or else from a peer, waiting as `options` say. Dropping the
    /// future cancels the wait (and the request, when nobody else wants the block).
    pub async fn get(&self, index: u64, options: GetOptions) -> Result<Option<Vec<u8>>, GetError> {
        {
            let core = self.read().await;
            if core.has(index) || !options.wait {
                return Ok(core.get(index).await?);
            }
        }
        let mut changed = self.changed();
        {
            let core = self.read().await;
            if core.has(index) || !options.wait {
                return Ok(core.get(index).await?);
            }
        }
        let _want = BlockWant::new(self, index).await;
        let wait = async {
            loop {
                {
                    let core = self.read().await;
                    if core.has(index) {
                        return Ok(core.get(index).await?);
                    }
                }
                if changed.changed().await.is_err() {
                    return Ok(None);
                }
            }
        };
        match options.timeout {
            None => wait.await,
            Some(timeout) => tokio::time::timeout(timeout, wait)
                .await
                .map_err(|_| GetError::Timeout { index, timeout })?,
        }
    }

    /// Learns the peers' length: asks for an upgrade and waits until every peer has answered
    /// (or `timeout` passed). Returns true when the core grew.
    pub async fn update(&self, timeout: Option<Duration>) -> bool {
        // No replication state: no stream has this core, nobody to ask (as a fresh replicator,
        // settled at once).
        if !self.has_replication_state() {
            return false;
        }
        let mut changed = self.changed();
        let before = self.read().await.length();
        let wait = async {
            {
                let core = self.read().await;
                self.with_replicator(|r| r.want_upgrade(&*core, now()));
            }
            loop {
                {
                    let core = self.read().await;
                    let state = self.lock();
                    if state.pending == 0 && state.replicator.is_settled(&*core) {
                        return;
                    }
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        };
        match timeout {
            None => wait.await,
            Some(t) => {
                let _ = tokio::time::timeout(t, wait).await;
            }
        }
        self.read().await.length() > before
    }

    /// Downloads blocks `[start, end)` (`None`: everything, live, until the handle is dropped).
    pub async fn download(&self, start: u64, end: Option<u64>) -> Download {
        let core = self.read().await;
        let id = self.with_replicator(|r| r.want_range(start, end, &*core, now()));
        drop(core);
        Download { core: self.clone(), id, start, end }
    }

    /// Registers an extension: its messages arrive as [`ReplicatorEvent::Extension`].
    pub fn register_extension(&self, name: &str) {
        self.lock().replicator.register_extension(name);
    }

    /// Sends an extension message to every peer.
    pub fn broadcast_extension(&self, name: &str, message: &Bytes) {
        self.with_replicator(|r| r.send_extension(None, name, message));
    }

    /// Sends an extension message to one peer.
    pub fn send_extension(&self, peer: PeerId, name: &str, message: &Bytes) {
        self.with_replicator(|r| r.send_extension(Some(peer), name, message));
    }

    pub(crate) fn changed(&self) -> watch::Receiver<u64> {
        self.0.changed.get_or_init(|| watch::channel(0).0).subscribe()
    }
}

pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Keeps a block wanted until dropped.
struct BlockWant<'a> {
    core: &'a SharedCore,
    index: u64,
}

impl<'a> BlockWant<'a> {
    async fn new(core: &'a SharedCore, index: u64) -> Self {
        let view = core.read().await;
        core.with_replicator(|r| r.want_block(index, &*view, now()));
        Self { core, index }
    }
}

impl Drop for BlockWant<'_> {
    fn drop(&mut self) {
        let index = self.index;
        self.core.with_replicator(|r| r.unwant_block(index));
    }
}

/// A running download of a range; dropping it stops the download.
#[derive(Debug)]
pub struct Download {
    core: SharedCore,
    id: RangeId,
    start: u64,
    end: Option<u64>,
}

impl Download {
    /// Blocks of the range stored locally, and the range's size (`None` for a live range).
    pub async fn progress(&self) -> (u64, Option<u64>) {
        let core = self.core.read().await;
        let end = self.end.unwrap_or(core.length());
        let have = (self.start..end).filter(|&i| core.has(i)).count() as u64;
        (have, self.end.map(|e| e.saturating_sub(self.start)))
    }

    /// Waits until every block of a bounded range is stored (a live range waits for the core's
    /// current length).
    pub async fn done(&self) {
        let mut changed = self.core.changed();
        // Every block below `cursor` is stored: each wake-up looks at each block once at most.
        let mut cursor = self.start;
        loop {
            {
                let core = self.core.read().await;
                let end = self.end.unwrap_or(core.length());
                cursor = cursor.max(core.contiguous_length());
                while cursor < end && core.has(cursor) {
                    cursor += 1;
                }
                if cursor >= end {
                    return;
                }
                // From the contiguous prefix on, the range is done exactly when the contiguous
                // length reaches its end: wait for that alone, not for every stored block.
                if self.end.is_some() && cursor <= core.contiguous_length() {
                    drop(core);
                    let _ = self.core.contiguous_reaches(end).await;
                    continue;
                }
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        let id = self.id;
        self.core.with_replicator(|r| r.unwant_range(id));
    }
}

#[cfg(test)]
mod tests {
    use corestore_keys::KeyPair;
    use corestore_storage::{MemoryStorage, Storage};

    use super::*;

    #[tokio::test]
    async fn the_event_buffer_comes_with_the_first_subscriber_and_events_reach_it() {
        let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
        let core = Hypercore::create(&storage, KeyPair::generate(), None).await.unwrap();
        let shared = SharedCore::new(core, ReplicatorConfig::default());
        shared.append(&[b"unheard"]).await.unwrap();
        assert!(!shared.has_event_buffer(), "no subscriber, no 1,024-event buffer");
        let mut events = shared.subscribe();
        assert!(shared.has_event_buffer());
        shared.append(&[b"heard"]).await.unwrap();
        let event = events.recv().await.unwrap();
        assert_eq!(event, ReplicatorEvent::Appended { length: 2, byte_length: 12 });
        assert!(events.try_recv().is_err(), "events from before the subscription are not kept");
    }

    #[tokio::test]
    async fn reading_stored_blocks_creates_no_wake_channel_and_a_waiting_get_does() {
        let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
        let core = Hypercore::create(&storage, KeyPair::generate(), None).await.unwrap();
        let shared = SharedCore::new(core, ReplicatorConfig::default());
        shared.append(&[b"stored"]).await.unwrap();
        let read = shared.get(0, GetOptions::default()).await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"stored"[..]));
        assert!(!shared.has_wake_channel(), "a stored block needs no waiting");
        let waiting = tokio::spawn({
            let shared = shared.clone();
            async move { shared.get(1, GetOptions::default()).await }
        });
        while !shared.has_wake_channel() {
            tokio::task::yield_now().await;
        }
        // The append that stores block 1 wakes the waiter through the channel it created.
        shared.append(&[b"appended"]).await.unwrap();
        let read = waiting.await.unwrap().unwrap();
        assert_eq!(read.as_deref(), Some(&b"appended"[..]));
    }
}
