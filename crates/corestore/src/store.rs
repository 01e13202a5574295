//! [`Corestore`]: the root store and its namespaces and sessions, which share one storage, one
//! cache of open cores and one primary key (unless a session overrides it).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use corestore_cache::Cache;
use corestore_keys::{derive_seed, DiscoveryKey, Namespace, PrimaryKey};
use corestore_storage::{MemoryStorage, Storage, StorageBackend};
use futures::channel::oneshot;

use crate::backend::Releasable;
use crate::core::SharedCore;
use crate::error::{CloseError, ClosedError, GetError, OpenError};
use crate::get::{named_key_pair, Auth, CoreRef, GetOptions};
use crate::open::open_core;
use crate::session::{Core, SessionSlot};
use crate::watch::CoreWatch;

/// How long a core opened for a peer stays open without sessions (JavaScript's GC closes idle
/// cores after 6–8 s).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(6);

/// What a root store and all its sessions share.
pub(crate) struct Root {
    pub(crate) storage: Arc<Storage>,
    backend: Arc<Releasable>,
    pub(crate) cache: Cache<DiscoveryKey, SharedCore>,
    pub(crate) passive: bool,
    closed: AtomicBool,
    /// Live namespaces and sessions (not the root itself): JavaScript's `corestores` set.
    children: Mutex<HashMap<u64, Weak<StoreSession>>>,
    next_id: AtomicU64,
    /// Live replication streams: every core a session opens joins each of them.
    pub(crate) streams: Mutex<Vec<corestore_replicate::ReplicationHandle>>,
}

/// One store handle's own state: namespace, primary key, flags and what it opened.
pub(crate) struct StoreSession {
    pub(crate) root: Arc<Root>,
    id: u64,
    is_root: bool,
    namespace: Namespace,
    primary_key: PrimaryKey,
    read_only: bool,
    closed: AtomicBool,
    /// Core sessions opened through this store (closed with it).
    cores: Mutex<HashMap<u64, Arc<SessionSlot>>>,
    watchers: Mutex<Vec<oneshot::Sender<()>>>,
}

impl StoreSession {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.root.closed.load(Ordering::Acquire)
    }

    /// Registers a core session; `None` (and the session released) when the store is closed.
    pub(crate) fn register(
        &self,
        session: corestore_cache::Session<DiscoveryKey, SharedCore>,
    ) -> (u64, Arc<SessionSlot>) {
        let id = self.root.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(SessionSlot::new(session));
        let mut cores = self.cores.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            drop(slot.take());
        } else {
            cores.insert(id, slot.clone());
        }
        (id, slot)
    }

    pub(crate) fn unregister(&self, id: u64) {
        let mut cores = self.cores.lock().unwrap_or_else(PoisonError::into_inner);
        cores.remove(&id);
        shrink_sparse(&mut cores);
    }

    async fn close_own(&self) {
        self.closed.store(true, Ordering::Release);
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let slots: Vec<_> = {
            let mut cores = self.cores.lock().unwrap_or_else(PoisonError::into_inner);
            // Taken whole: a closed store keeps no table sized for what it had open.
            std::mem::take(&mut *cores).into_values().collect()
        };
        let closes =
            slots.iter().filter_map(|slot| slot.take()).map(corestore_cache::Session::close);
        futures::future::join_all(closes).await;
        self.root.forget_child(self.id);
    }
}

/// A registry at most a quarter full above this many slots gives memory back.
const SHRINK_ABOVE: usize = 64;

/// Shrinks a map that is mostly empty (most of its cores closed) to twice its length; a shrink
/// rehashes what is left, and comes only after at least as many removals.
fn shrink_sparse<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > SHRINK_ABOVE && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

impl Root {
    /// The replicator's entry point for a channel a peer opened: the core of `discovery_key` if
    /// it is open or stored here (never created), held weakly: it closes after the linger period
    /// unless a session takes it or [`Root::touch`] is called. `None` when nothing is stored or
    /// the store is closed.
    pub(crate) async fn open_for_peer(
        &self,
        discovery_key: DiscoveryKey,
    ) -> Result<Option<Arc<SharedCore>>, GetError> {
        let auth = crate::get::Auth::resolve(
            CoreRef::DiscoveryKey(discovery_key),
            &GetOptions::default(),
            &Namespace::ROOT,
            None,
        )?;
        let storage = self.storage.clone();
        let flags = crate::core::CoreFlags::default();
        match self.cache.open_weak(discovery_key, || open_core(storage, auth, false, flags)).await {
            Ok(core) => Ok(Some(core)),
            Err(corestore_cache::CacheError::Open(GetError::NotStored { .. })) => Ok(None),
            Err(corestore_cache::CacheError::Open(e)) => Err(e),
            // The store closed: it serves nothing.
            Err(_) => Ok(None),
        }
    }

    /// A namespace or session closed or was dropped: it leaves the set.
    fn forget_child(&self, id: u64) {
        let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        children.remove(&id);
        shrink_sparse(&mut children);
    }

    /// Keeps a peer-opened core open for another linger period (replication activity).
    #[cfg_attr(not(test), allow(dead_code))] // Called by the replicator (lead's part of issue 10).
    pub(crate) fn touch(&self, discovery_key: &DiscoveryKey) -> bool {
        self.cache.touch(discovery_key)
    }
}

impl Drop for StoreSession {
    fn drop(&mut self) {
        // A dropped namespace or session leaves the root's set; its cores stay with their handles.
        self.root.forget_child(self.id);
    }
}

/// Counters for tests, benchmarks and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreStats {
    /// Cores open, opening or closing in the shared cache.
    pub open_cores: usize,
    /// Live core sessions opened through this store handle.
    pub core_sessions: usize,
    /// Live namespaces and sessions of the root (JavaScript's `corestores` set).
    pub store_sessions: usize,
    /// Live watchers of this store handle.
    pub watchers: usize,
}

/// Options of [`Corestore::session`]: what the new store overrides.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    primary_key: Option<PrimaryKey>,
    namespace: Option<Namespace>,
    read_only: Option<bool>,
}

impl SessionOptions {
    /// Inherit everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Derive named cores from this primary key instead of the store's.
    #[must_use]
    pub fn primary_key(mut self, primary_key: PrimaryKey) -> Self {
        self.primary_key = Some(primary_key);
        self
    }

    /// Use this namespace ([`Namespace::ROOT`] resets to the default one).
    #[must_use]
    pub fn namespace(mut self, namespace: Namespace) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// Make every core of the session read-only (or lift an inherited read-only flag).
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = Some(read_only);
        self
    }
}

/// Configures and opens a [`Corestore`].
pub struct Builder {
    backend: Option<Arc<dyn StorageBackend>>,
    path: Option<PathBuf>,
    primary_key: Option<PrimaryKey>,
    read_only: bool,
    passive: bool,
    linger: Duration,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("path", &self.path)
            .field("custom_backend", &self.backend.is_some())
            .field("primary_key", &self.primary_key.as_ref().map(|_| "<redacted>"))
            .field("read_only", &self.read_only)
            .field("passive", &self.passive)
            .field("linger", &self.linger)
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            backend: None,
            path: None,
            primary_key: None,
            read_only: false,
            passive: false,
            linger: DEFAULT_LINGER,
        }
    }
}

impl Builder {
    /// In memory unless [`Builder::path`] or [`Builder::storage`] is given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Store on disk in this directory ([`corestore_storage::DiskStorage`]).
    #[must_use]
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Store in a custom backend.
    #[must_use]
    pub fn storage(mut self, backend: Arc<dyn StorageBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Use this primary key (JavaScript's `primaryKey` with `unsafe: true`); refused with
    /// [`OpenError::AnotherCorestore`] when the storage holds another one.
    #[must_use]
    pub fn primary_key(mut self, primary_key: PrimaryKey) -> Self {
        self.primary_key = Some(primary_key);
        self
    }

    /// Open every core read-only and create nothing.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// A passive store replicates a core only when the peer asks for it (kept for replication).
    #[must_use]
    pub fn passive(mut self, passive: bool) -> Self {
        self.passive = passive;
        self
    }

    /// How long a core opened for a peer stays open without sessions.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Opens the store: reads (or on first open stores) the primary key.
    pub async fn open(self) -> Result<Corestore, OpenError> {
        let backend: Arc<dyn StorageBackend> = match (self.backend, self.path) {
            (Some(backend), _) => backend,
            #[cfg(unix)]
            (None, Some(path)) => Arc::new(corestore_storage::DiskStorage::open(path)?),
            #[cfg(not(unix))]
            (None, Some(_)) => Arc::new(MemoryStorage::new()),
            (None, None) => Arc::new(MemoryStorage::new()),
        };
        let backend = Arc::new(Releasable::new(backend));
        let storage = Storage::open(backend.clone()).await?;
        let primary_key = match (self.read_only, storage.primary_key(), self.primary_key) {
            (true, Some(stored), Some(wanted)) if stored != wanted => {
                return Err(OpenError::AnotherCorestore)
            }
            (true, Some(stored), _) => stored,
            (true, None, wanted) => wanted.unwrap_or_else(PrimaryKey::generate),
            (false, _, wanted) => storage.init_primary_key(wanted).await?,
        };
        let root = Arc::new(Root {
            storage,
            backend,
            cache: Cache::new(self.linger),
            passive: self.passive,
            closed: AtomicBool::new(false),
            children: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            streams: Mutex::new(Vec::new()),
        });
        let session = StoreSession {
            root,
            id: 0,
            is_root: true,
            namespace: Namespace::ROOT,
            primary_key,
            read_only: self.read_only,
            closed: AtomicBool::new(false),
            cores: Mutex::new(HashMap::new()),
            watchers: Mutex::new(Vec::new()),
        };
        Ok(Corestore { inner: Arc::new(session) })
    }
}

/// A store of many named and keyed cores sharing one storage. Cloning the handle is cheap and
/// shares the same store; [`Corestore::namespace`] and [`Corestore::session`] make new stores
/// on the same cores.
#[derive(Clone)]
pub struct Corestore {
    pub(crate) inner: Arc<StoreSession>,
}

impl fmt::Debug for Corestore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Corestore")
            .field("namespace", &self.inner.namespace)
            .field("root", &self.inner.is_root)
            .field("read_only", &self.inner.read_only)
            .field("closed", &self.inner.is_closed())
            .finish_non_exhaustive()
    }
}

impl Corestore {
    /// Opens (or creates) a store on disk in `path`.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, OpenError> {
        Builder::new().path(path).open().await
    }

    /// A fresh store in memory.
    pub async fn in_memory() -> Result<Self, OpenError> {
        Builder::new().open().await
    }

    /// A builder for a custom backend, primary key or flags.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The primary key named cores are derived from.
    pub fn primary_key(&self) -> &PrimaryKey {
        &self.inner.primary_key
    }

    /// This store's namespace (JavaScript's `store.ns`); [`Namespace::ROOT`] for the root.
    pub fn namespace_key(&self) -> Namespace {
        self.inner.namespace
    }

    /// True when cores opened through this store are read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// True when the root store was opened passive.
    pub fn is_passive(&self) -> bool {
        self.inner.root.passive
    }

    /// True once this store (or its root) is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Opens a core with the default options (see [`Corestore::get_with`]).
    pub async fn get(&self, core: impl Into<CoreRef>) -> Result<Core, GetError> {
        self.get_with(core, GetOptions::default()).await
    }

    /// Opens a core, or a new session on it when it is already open in any session of the
    /// store.
    pub async fn get_with(
        &self,
        core: impl Into<CoreRef>,
        options: GetOptions,
    ) -> Result<Core, GetError> {
        let store = &self.inner;
        if store.is_closed() {
            return Err(GetError::Closed);
        }
        let core = core.into();
        let storage = store.root.storage.clone();
        let named = match &core {
            CoreRef::Name(name) if !name.is_empty() => {
                let seed = derive_seed(&store.primary_key, &store.namespace, name);
                let manifest = options.manifest.as_ref();
                Some(named_key_pair(&storage, &store.namespace, name, &seed, manifest).await?)
            }
            _ => None,
        };
        let by_discovery_key = matches!(core, CoreRef::DiscoveryKey(_));
        let auth = Auth::resolve(core, &options, &store.namespace, named)?;
        let create = options.create_if_missing && !store.read_only && !by_discovery_key;
        let flags = crate::core::CoreFlags { eager: options.eager };
        let discovery_key = auth.discovery_key;
        let (manifest, key_pair) = (auth.manifest.clone(), auth.key_pair.clone());
        let session = store
            .root
            .cache
            .open(discovery_key, || open_core(storage, auth, create, flags))
            .await
            .map_err(|e| match e {
                corestore_cache::CacheError::Open(e) => e,
                _ => GetError::Closed,
            })?;
        let snapshot = session.value().snapshot();
        let learns = (manifest.is_some() && snapshot.manifest.is_none())
            || (key_pair.is_some() && !snapshot.writable);
        if learns {
            session.value().learn(&store.root.storage, manifest, key_pair).await?;
        }
        store.root.attach_everywhere(session.value());
        Ok(Core::new(store.clone(), session, &options, !store.read_only))
    }

    /// A store on the same cores in the child namespace `name` (chainable).
    pub fn namespace(&self, name: impl AsRef<[u8]>) -> Result<Self, ClosedError> {
        let namespace = self.inner.namespace.child(name);
        self.session(SessionOptions::new().namespace(namespace))
    }

    /// A store on the same cores, storage and cache, with `options` overridden.
    pub fn session(&self, options: SessionOptions) -> Result<Self, ClosedError> {
        let parent = &self.inner;
        if parent.is_closed() {
            return Err(ClosedError::Closed);
        }
        let root = parent.root.clone();
        let id = root.next_id.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(StoreSession {
            root: root.clone(),
            id,
            is_root: false,
            namespace: options.namespace.unwrap_or(parent.namespace),
            primary_key: options.primary_key.unwrap_or_else(|| parent.primary_key.clone()),
            read_only: options.read_only.unwrap_or(parent.read_only),
            closed: AtomicBool::new(false),
            cores: Mutex::new(HashMap::new()),
            watchers: Mutex::new(Vec::new()),
        });
        let mut children = root.children.lock().unwrap_or_else(PoisonError::into_inner);
        if root.closed.load(Ordering::Acquire) {
            return Err(ClosedError::Closed);
        }
        children.insert(id, Arc::downgrade(&session));
        drop(children);
        Ok(Self { inner: session })
    }

    /// A stream of every core opened from now on, in any session of the store; it ends when
    /// this store closes.
    pub fn watch(&self) -> Result<CoreWatch, ClosedError> {
        let (tx, rx) = oneshot::channel();
        let mut watchers = self.inner.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            return Err(ClosedError::Closed);
        }
        watchers.push(tx);
        drop(watchers);
        Ok(CoreWatch::new(self.inner.root.cache.watch(), rx))
    }

    /// Counters: open cores, this store's sessions and watchers, the root's live sessions.
    pub fn stats(&self) -> StoreStats {
        let store = &self.inner;
        let mut watchers = store.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        watchers.retain(|w| !w.is_canceled());
        StoreStats {
            open_cores: store.root.cache.len(),
            core_sessions: store.cores.lock().unwrap_or_else(PoisonError::into_inner).len(),
            store_sessions: store
                .root
                .children
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            watchers: watchers.len(),
        }
    }

    /// Closes this store: every core session it opened and every watcher. Closing a namespace
    /// or session leaves the root and its other sessions open; closing the root closes every
    /// session and core and flushes storage. Later use is a typed `Closed` error.
    pub async fn close(&self) -> Result<(), CloseError> {
        let store = &self.inner;
        if !store.is_root {
            store.close_own().await;
            return Ok(());
        }
        store.root.closed.store(true, Ordering::Release);
        let children: Vec<Arc<StoreSession>> = {
            let children = store.root.children.lock().unwrap_or_else(PoisonError::into_inner);
            children.values().filter_map(Weak::upgrade).collect()
        };
        let mut closes: Vec<_> = children.iter().map(|c| c.close_own()).collect();
        closes.push(store.close_own());
        futures::future::join_all(closes).await;
        store.root.cache.close().await;
        let flushed = store.root.storage.flush().await;
        store.root.backend.release();
        flushed?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_most_cores_gives_the_session_registry_memory_back() {
        let store = Corestore::in_memory().await.unwrap();
        let mut cores = Vec::new();
        for i in 0..2_000 {
            cores.push(store.get(CoreRef::name(format!("core-{i}"))).await.unwrap());
        }
        let capacity = || store.inner.cores.lock().unwrap().capacity();
        assert!(capacity() >= 2_000);
        let kept = cores.split_off(1_995);
        for core in cores {
            core.close().await;
        }
        assert!(capacity() <= 64, "{} registry slots kept for 5 cores", capacity());
        for core in kept {
            core.close().await;
        }
        assert_eq!(store.stats().open_cores, 0);
        assert!(capacity() <= 64, "{} registry slots kept for none", capacity());
    }

    #[tokio::test]
    async fn a_core_never_replicated_has_no_replicator_and_the_first_stream_creates_it() {
        let (a, b) = (Corestore::in_memory().await.unwrap(), Corestore::in_memory().await.unwrap());
        let core = a.get(CoreRef::name("lazy")).await.unwrap();
        core.append(b"local").await.unwrap();
        assert_eq!(core.get(0).await.unwrap().as_deref(), Some(&b"local"[..]));
        let again = a.get(CoreRef::name("lazy")).await.unwrap();
        assert_eq!(again.info().unwrap().length, 1);
        let replicated = core.shared().replicated();
        assert!(!replicated.has_replication_state(), "opened, read, appended: no replicator");
        let _link = crate::testing::connect(&a, &b).unwrap();
        assert!(replicated.has_replication_state(), "the stream attached it");
        let replica = b.get(*core.key()).await.unwrap();
        assert_eq!(replica.get(0).await.unwrap().as_deref(), Some(&b"local"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_core_opened_for_a_peer_lingers_then_closes_unless_a_session_takes_it() {
        let store = Builder::new().linger(Duration::from_secs(6)).open().await.unwrap();
        let root = store.inner.root.clone();
        let unknown = DiscoveryKey::from_bytes([9; 32]);
        assert!(root.open_for_peer(unknown).await.unwrap().is_none(), "nothing created");
        assert!(futures::StreamExt::next(&mut store.list()).await.is_none());

        let dk = *store.get(CoreRef::name("served")).await.unwrap().discovery_key();
        tokio::task::yield_now().await;
        assert_eq!(store.stats().open_cores, 0, "closed with its last session");
        let core = root.open_for_peer(dk).await.unwrap().expect("stored, so opened");
        assert_eq!(store.stats().open_cores, 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(root.touch(&dk));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!core.is_closed(), "touched within the linger");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(core.is_closed());
        assert_eq!(store.stats().open_cores, 0);

        // A local session taken meanwhile keeps it open past the linger.
        let core = root.open_for_peer(dk).await.unwrap().expect("stored");
        let session = store.get(dk).await.unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!core.is_closed());
        session.close().await;
        assert!(core.is_closed());
        store.close().await.unwrap();
        assert!(root.open_for_peer(dk).await.unwrap().is_none(), "closed store opens nothing");
    }
}
