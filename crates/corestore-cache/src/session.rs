//! [`Session`]: one counted handle on an open value.

use std::fmt;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::Arc;

use crate::cache::{spawn_close, CloseFuture, Closeable, Inner};

/// A counted handle on an open value. Cloning it is a new session; the value closes when the
/// last session is closed or dropped. A session that outlives its value (the store closed) keeps
/// the `Arc` but releases nothing: the value's own state says it is closed.
pub struct Session<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    inner: Arc<Inner<K, V>>,
    key: K,
    generation: u64,
    value: Arc<V>,
    live: bool,
}

impl<K, V> Session<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    pub(crate) fn new(inner: Arc<Inner<K, V>>, key: K, generation: u64, value: Arc<V>) -> Self {
        Self { inner, key, generation, value, live: true }
    }

    /// The shared value.
    pub fn value(&self) -> &Arc<V> {
        &self.value
    }

    /// The key it is cached under.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// True until this session is released (closed, or its value closed by the store).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Releases this session; if it was the last one, waits until the value is closed (the
    /// close runs here; dropping this future before it ends hands the close to a task).
    pub async fn close(mut self) {
        if let Some(done) = self.release() {
            let unfinished = SpawnUnfinished(Some(done.clone()));
            done.await;
            drop(unfinished);
        }
    }

    fn release(&mut self) -> Option<CloseFuture> {
        if !std::mem::replace(&mut self.live, false) {
            return None;
        }
        self.inner.release(&self.key, self.generation)
    }
}

impl<K, V> Clone for Session<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    fn clone(&self) -> Self {
        let live = self.live && self.inner.retain(&self.key, self.generation);
        Self {
            inner: self.inner.clone(),
            key: self.key.clone(),
            generation: self.generation,
            value: self.value.clone(),
            live,
        }
    }
}

impl<K, V> Drop for Session<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    fn drop(&mut self) {
        // A close started here runs on a task of its own (or whoever waits for it next).
        if let Some(done) = self.release() {
            spawn_close(&done);
        }
    }
}

/// Spawns a close its caller stopped driving before it ended.
struct SpawnUnfinished(Option<CloseFuture>);

impl Drop for SpawnUnfinished {
    fn drop(&mut self) {
        if let Some(done) = self.0.take().filter(|done| done.peek().is_none()) {
            spawn_close(&done);
        }
    }
}

impl<K, V> Deref for Session<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    V: Closeable,
{
    type Target = V;

    fn deref(&self) -> &V {
        &self.value
    }
}

impl<K, V> fmt::Debug for Session<K, V>
where
    K: Clone + Eq + Hash + Send + Sync + 'static + fmt::Debug,
    V: Closeable,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("key", &self.key)
            .field("generation", &self.generation)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}
