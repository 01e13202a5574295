//! [`Releasable`]: the store's view of its backend, let go of when the root store closes, so a
//! closed disk store releases its directory lock even while old handles are still around.

use std::io;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use corestore_storage::{StorageBackend, WriteBatch};

/// A backend that fails every call with `io::ErrorKind::NotConnected` once released.
#[derive(Debug)]
pub(crate) struct Releasable {
    inner: RwLock<Option<Arc<dyn StorageBackend>>>,
}

impl Releasable {
    pub(crate) fn new(inner: Arc<dyn StorageBackend>) -> Self {
        Self { inner: RwLock::new(Some(inner)) }
    }

    /// Drops the store's reference to the backend (a disk store unlocks when it was the last).
    pub(crate) fn release(&self) {
        self.inner.write().unwrap_or_else(PoisonError::into_inner).take();
    }

    fn backend(&self) -> io::Result<Arc<dyn StorageBackend>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the corestore is closed"))
    }
}

#[async_trait]
impl StorageBackend for Releasable {
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.backend()?.get(key).await
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.backend()?.scan(start, end, limit).await
    }

    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        self.backend()?.write(batch).await
    }

    async fn flush(&self) -> io::Result<()> {
        self.backend()?.flush().await
    }
}
