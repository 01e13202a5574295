//! The registry: one slot per key (opening, open or closing), guarded by one mutex that is never
//! held across an await.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::session::Session;
use crate::watch::Watcher;

/// A value the cache can hold: it is closed exactly once, when the cache lets go of it.
pub trait Closeable: Send + Sync + 'static {
    /// Releases the value's resources. Called once, after the last session went (or when the
    /// store closes); the returned future is driven to completion by a spawned task when a tokio
    /// runtime is present, and by whoever waits for the close (a reopen, [`Cache::close`]).
    fn close(self: Arc<Self>) -> BoxFuture<'static, ()>;
}

/// Why [`Cache::open`] or [`Cache::open_weak`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError<E> {
    /// The cache (the store) is closed.
    #[error("the store is closed")]
    Closed,
    /// The opener failed; the next caller for this key tries again.
    #[error(transparent)]
    Open(E),
}

/// The close of one value, shared by everyone waiting for it.
pub(crate) type CloseFuture = Shared<BoxFuture<'static, ()>>;

/// Runs `done` on a task of its own, when a tokio runtime is present (nobody else may drive it;
/// a later reopen or [`Cache::close`] would).
pub(crate) fn spawn_close(done: &CloseFuture) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(done.clone());
    }
}

enum Slot<V> {
    /// An opener is running; dropping the sender (when the slot changes) wakes the waiters.
    Opening(watch::Sender<()>),
    Open(Entry<V>),
    Closing {
        generation: u64,
        done: CloseFuture,
    },
}

struct Entry<V> {
    value: Arc<V>,
    /// Distinguishes this value from earlier and later values of the same key.
    generation: u64,
    sessions: usize,
    /// A value without sessions stays open until then (set by weak opens and touches).
    linger_until: Option<Instant>,
    /// True while a linger task is waiting for this entry.
    timer_armed: bool,
}

struct State<K, V> {
    closed: bool,
    slots: HashMap<K, Slot<V>>,
    watchers: Vec<mpsc::UnboundedSender<Arc<V>>>,
    next_generation: u64,
}

/// A registry at most a quarter full above this many slots gives memory back (a store that
/// closed most of its 10,000 cores keeps no table sized for 10,000).
const SHRINK_ABOVE: usize = 64;

impl<K: Eq + Hash, V> State<K, V> {
    /// Removes `key`'s slot; once the table is mostly empty it shrinks to twice what is left,
    /// so a shrink (a rehash of what is left) comes only after at least as many removals.
    fn remove(&mut self, key: &K) {
        self.slots.remove(key);
        if self.slots.capacity() > SHRINK_ABOVE && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to(self.slots.len() * 2);
        }
    }
}

pub(crate) struct Inner<K, V> {
    state: Mutex<State<K, V>>,
    linger: Duration,
}

/// The registry of open values, shared (cheaply cloned) by a store and all its sessions.
pub struct Cache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Cache")
            .field("slots", &state.slots.len())
            .field("watchers", &state.watchers.len())
            .field("closed", &state.closed)
            .field("linger", &self.inner.linger)
            .finish()
    }
}

enum Step<V> {
    WaitOpen(watch::Receiver<()>),
    WaitClose(CloseFuture),
    Found(Arc<V>, u64),
    Open,
}

impl<K, V> Inner<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    fn lock(&self) -> MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the open slot of `key` by its close, started now on a task of its own (in
    /// place: no removal that could make the table grow while it empties). `None` when it is
    /// not open.
    fn close_entry(self: &Arc<Self>, state: &mut State<K, V>, key: &K) -> Option<CloseFuture> {
        let done = self.close_entry_unspawned(state, key)?;
        spawn_close(&done);
        Some(done)
    }

    /// [`Inner::close_entry`] for a caller that drives the close itself (and spawns it if it
    /// gives up: [`crate::Session::close`]).
    fn close_entry_unspawned(
        self: &Arc<Self>,
        state: &mut State<K, V>,
        key: &K,
    ) -> Option<CloseFuture> {
        let Some(Slot::Open(entry)) = state.slots.get(key) else { return None };
        let (value, generation) = (entry.value.clone(), entry.generation);
        Some(self.start_close(state, key.clone(), value, generation))
    }

    fn start_close(
        self: &Arc<Self>,
        state: &mut State<K, V>,
        key: K,
        value: Arc<V>,
        generation: u64,
    ) -> CloseFuture {
        let weak = Arc::downgrade(self);
        let slot_key = key.clone();
        let done = async move {
            value.close().await;
            if let Some(inner) = weak.upgrade() {
                inner.finish_close(&key, generation);
            }
        }
        .boxed()
        .shared();
        state.slots.insert(slot_key, Slot::Closing { generation, done: done.clone() });
        done
    }

    fn finish_close(&self, key: &K, generation: u64) {
        let mut state = self.lock();
        if matches!(state.slots.get(key), Some(Slot::Closing { generation: g, .. }) if *g == generation)
        {
            state.remove(key);
        }
    }

    /// Drops one session of `key`'s value `generation`; returns the close it started, if any,
    /// for the caller to drive (or spawn).
    pub(crate) fn release(self: &Arc<Self>, key: &K, generation: u64) -> Option<CloseFuture> {
        let mut state = self.lock();
        let Some(Slot::Open(entry)) = state.slots.get_mut(key) else { return None };
        if entry.generation != generation {
            return None;
        }
        entry.sessions = entry.sessions.saturating_sub(1);
        if entry.sessions > 0 {
            return None;
        }
        if entry.linger_until.is_some_and(|until| until > Instant::now()) {
            self.arm_linger(entry, key);
            return None;
        }
        self.close_entry_unspawned(&mut state, key)
    }

    /// Adds a session to `key`'s value `generation`; false when that value is gone.
    pub(crate) fn retain(&self, key: &K, generation: u64) -> bool {
        let mut state = self.lock();
        match state.slots.get_mut(key) {
            Some(Slot::Open(entry)) if entry.generation == generation => {
                entry.sessions += 1;
                true
            }
            _ => false,
        }
    }

    fn arm_linger(self: &Arc<Self>, entry: &mut Entry<V>, key: &K) {
        if entry.timer_armed {
            return;
        }
        let (Some(until), Ok(handle)) = (entry.linger_until, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        entry.timer_armed = true;
        let weak = Arc::downgrade(self);
        let key = key.clone();
        let generation = entry.generation;
        handle.spawn(async move {
            let mut deadline = until;
            loop {
                tokio::time::sleep_until(deadline).await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.linger_expired(&key, generation) {
                    Some(next) => deadline = next,
                    None => return,
                }
            }
        });
    }

    /// The linger task woke: closes the value if it is still idle, or returns the new deadline.
    fn linger_expired(self: &Arc<Self>, key: &K, generation: u64) -> Option<Instant> {
        let mut state = self.lock();
        let Some(Slot::Open(entry)) = state.slots.get_mut(key) else { return None };
        if entry.generation != generation {
            return None;
        }
        if entry.sessions > 0 {
            entry.timer_armed = false;
            return None;
        }
        match entry.linger_until {
            Some(until) if until > Instant::now() => Some(until),
            _ => {
                self.close_entry(&mut state, key);
                None
            }
        }
    }

    async fn acquire<F, Fut, E>(
        self: &Arc<Self>,
        key: &K,
        open: F,
        strong: bool,
    ) -> Result<(Arc<V>, u64), CacheError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        loop {
            let step = {
                let mut state = self.lock();
                if state.closed {
                    return Err(CacheError::Closed);
                }
                let linger = self.linger;
                match state.slots.get_mut(key) {
                    Some(Slot::Open(entry)) => {
                        if strong {
                            entry.sessions += 1;
                        } else {
                            entry.linger_until = Some(Instant::now() + linger);
                            if entry.sessions == 0 {
                                self.arm_linger(entry, key);
                            }
                        }
                        Step::Found(entry.value.clone(), entry.generation)
                    }
                    Some(Slot::Opening(tx)) => Step::WaitOpen(tx.subscribe()),
                    Some(Slot::Closing { done, .. }) => Step::WaitClose(done.clone()),
                    None => {
                        let (tx, _) = watch::channel(());
                        state.slots.insert(key.clone(), Slot::Opening(tx));
                        Step::Open
                    }
                }
            };
            match step {
                // `changed` returns when the opener's slot is replaced (its sender dropped).
                Step::WaitOpen(mut rx) => while rx.changed().await.is_ok() {},
                Step::WaitClose(done) => done.await,
                Step::Found(value, generation) => return Ok((value, generation)),
                Step::Open => break,
            }
        }
        let mut guard = OpeningGuard { inner: self, key, armed: true };
        let value = Arc::new(open().await.map_err(CacheError::Open)?);
        let mut state = self.lock();
        guard.armed = false;
        let generation = state.next_generation;
        state.next_generation += 1;
        if state.closed {
            // The store closed while we were opening: close the value right away.
            spawn_close(&self.start_close(&mut state, key.clone(), value, generation));
            return Err(CacheError::Closed);
        }
        let mut entry = Entry {
            value: value.clone(),
            generation,
            sessions: usize::from(strong),
            linger_until: (!strong).then(|| Instant::now() + self.linger),
            timer_armed: false,
        };
        if !strong {
            self.arm_linger(&mut entry, key);
        }
        state.slots.insert(key.clone(), Slot::Open(entry));
        state.watchers.retain(|w| w.send(value.clone()).is_ok());
        Ok((value, generation))
    }
}

/// Removes an `Opening` slot whose opener failed or was cancelled, waking its waiters.
struct OpeningGuard<'a, K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    inner: &'a Arc<Inner<K, V>>,
    key: &'a K,
    armed: bool,
}

impl<K, V> Drop for OpeningGuard<'_, K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.inner.lock();
            if matches!(state.slots.get(self.key), Some(Slot::Opening(_))) {
                state.remove(self.key);
            }
        }
    }
}

impl<K, V> Cache<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    /// An empty cache whose weakly opened or touched values linger `linger` without sessions.
    pub fn new(linger: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    closed: false,
                    slots: HashMap::new(),
                    watchers: Vec::new(),
                    next_generation: 0,
                }),
                linger,
            }),
        }
    }

    /// The linger period.
    pub fn linger(&self) -> Duration {
        self.inner.linger
    }

    /// A session on `key`'s value, running `open` only if no value is open or opening (waiting
    /// for a close in flight first). Concurrent calls for one key share one opener.
    pub async fn open<F, Fut, E>(&self, key: K, open: F) -> Result<Session<K, V>, CacheError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let (value, generation) = self.inner.acquire(&key, open, true).await?;
        Ok(Session::new(self.inner.clone(), key, generation, value))
    }

    /// `key`'s value without a session (opening it like [`Cache::open`] if needed), kept open
    /// for the linger period from now unless a session holds it longer. For values opened on
    /// behalf of a remote peer.
    pub async fn open_weak<F, Fut, E>(&self, key: K, open: F) -> Result<Arc<V>, CacheError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        Ok(self.inner.acquire(&key, open, false).await?.0)
    }

    /// A new session on `key`'s value if it is open now (not opening or closing).
    pub fn session(&self, key: &K) -> Option<Session<K, V>> {
        let mut state = self.inner.lock();
        let Some(Slot::Open(entry)) = state.slots.get_mut(key) else { return None };
        entry.sessions += 1;
        Some(Session::new(self.inner.clone(), key.clone(), entry.generation, entry.value.clone()))
    }

    /// `key`'s value if it is open now, without taking a session.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        match self.inner.lock().slots.get(key) {
            Some(Slot::Open(entry)) => Some(entry.value.clone()),
            _ => None,
        }
    }

    /// Pushes `key`'s linger deadline to the linger period from now (activity on a value opened
    /// for a peer). False when the value is not open.
    pub fn touch(&self, key: &K) -> bool {
        let mut state = self.inner.lock();
        let Some(Slot::Open(entry)) = state.slots.get_mut(key) else { return false };
        entry.linger_until = Some(Instant::now() + self.inner.linger);
        if entry.sessions == 0 {
            self.inner.arm_linger(entry, key);
        }
        true
    }

    /// Number of live sessions on `key`'s open value (0 when it is not open).
    pub fn sessions(&self, key: &K) -> usize {
        match self.inner.lock().slots.get(key) {
            Some(Slot::Open(entry)) => entry.sessions,
            _ => 0,
        }
    }

    /// Slots the registry has room for without growing (its memory, for leak tests).
    #[cfg(test)]
    pub(crate) fn slot_capacity(&self) -> usize {
        self.inner.lock().slots.capacity()
    }

    /// Number of values open, opening or closing.
    pub fn len(&self) -> usize {
        self.inner.lock().slots.len()
    }

    /// True when no value is open, opening or closing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value open now, with its key.
    pub fn values(&self) -> Vec<(K, Arc<V>)> {
        let state = self.inner.lock();
        state
            .slots
            .iter()
            .filter_map(|(k, slot)| match slot {
                Slot::Open(entry) => Some((k.clone(), entry.value.clone())),
                _ => None,
            })
            .collect()
    }

    /// A stream of every value opened from now on; it ends when the cache closes.
    pub fn watch(&self) -> Watcher<V> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.inner.lock();
        if !state.closed {
            state.watchers.push(tx);
        }
        Watcher::new(rx)
    }

    /// Number of live watchers (dropped ones are pruned).
    pub fn watcher_count(&self) -> usize {
        let mut state = self.inner.lock();
        state.watchers.retain(|w| !w.is_closed());
        state.watchers.len()
    }

    /// True once [`Cache::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Closes every value, waiting for opens and closes in flight, and ends every watcher.
    /// Later opens fail with [`CacheError::Closed`]. Idempotent.
    pub async fn close(&self) {
        loop {
            let mut closes = Vec::new();
            let mut opening = Vec::new();
            {
                let mut state = self.inner.lock();
                state.closed = true;
                state.watchers.clear();
                let keys: Vec<K> = state.slots.keys().cloned().collect();
                for key in keys {
                    match state.slots.get(&key) {
                        Some(Slot::Open(_)) => {
                            closes.extend(self.inner.close_entry(&mut state, &key));
                        }
                        Some(Slot::Closing { done, .. }) => closes.push(done.clone()),
                        Some(Slot::Opening(tx)) => opening.push(tx.subscribe()),
                        None => {}
                    }
                }
            }
            if closes.is_empty() && opening.is_empty() {
                return;
            }
            futures::future::join_all(closes).await;
            for mut rx in opening {
                while rx.changed().await.is_ok() {}
            }
        }
    }
}
