//! [`MemoryStorage`]: an in-memory backend for tests and ephemeral stores.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;

use crate::backend::{BatchOp, StorageBackend, WriteBatch};

/// An in-memory [`StorageBackend`] over a `BTreeMap`. Every batch is atomic; nothing is durable.
#[derive(Default)]
pub struct MemoryStorage {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True without records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage").field("records", &self.len()).finish()
    }
}

#[async_trait]
impl StorageBackend for MemoryStorage {
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.map.read().unwrap_or_else(PoisonError::into_inner).get(key).cloned())
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        Ok(map
            .range::<[u8], _>((std::ops::Bound::Included(start), std::ops::Bound::Excluded(end)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => {
                    map.insert(key, value);
                }
                BatchOp::Delete { key } => {
                    map.remove(&key);
                }
                BatchOp::DeleteRange { start, end } => {
                    if start < end {
                        let doomed: Vec<Vec<u8>> =
                            map.range(start..end).map(|(k, _)| k.clone()).collect();
                        for k in doomed {
                            map.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}
