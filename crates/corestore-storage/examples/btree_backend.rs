//! A custom storage backend in under 100 lines: a `BTreeMap` behind a mutex, used through the
//! corestore schema. Run with `cargo run -p corestore-storage --example btree_backend`.

use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use corestore_keys::{KeyPair, Manifest};
use corestore_storage::{BatchOp, CoreAuth, Storage, StorageBackend, TreeHead, WriteBatch};

/// Every key and value in one ordered map. A batch is applied under one lock, so it is atomic;
/// nothing is durable, so `flush` has nothing to do.
#[derive(Debug, Default)]
struct BTreeBackend {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl BTreeBackend {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl StorageBackend for BTreeBackend {
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        Ok(self.map().get(key).cloned())
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new()); // BTreeMap::range panics on an inverted range.
        }
        let range = (Bound::Included(start), Bound::Excluded(end));
        let map = self.map();
        Ok(map.range::<[u8], _>(range).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        let mut map = self.map();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => drop(map.insert(key, value)),
                BatchOp::Delete { key } => drop(map.remove(&key)),
                BatchOp::DeleteRange { start, end } if start < end => {
                    map.retain(|k, _| k < &start || k >= &end);
                }
                BatchOp::DeleteRange { .. } => {}
            }
        }
        Ok(())
    }

    async fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let storage = Storage::open(Arc::new(BTreeBackend::default())).await?;
    let primary_key = storage.init_primary_key(None).await?;

    let key_pair = KeyPair::from_seed(&[7; 32]);
    let manifest = Manifest::single_signer(key_pair.public_key());
    let key = manifest.hash();
    let auth = CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        frozen: false,
        manifest: Some(manifest),
        key_pair: None,
    };
    let core = storage.create_core(&auth, None).await?;

    let mut batch = core.batch();
    batch
        .put_block(0, b"hello")
        .put_block(1, b"world")
        .put_head(&TreeHead { length: 2, ..TreeHead::default() });
    core.write(batch).await?;
    core.flush().await?;

    assert!(storage.has_core(&auth.discovery_key).await?);
    for (index, block) in core.blocks(0, 2, 10).await? {
        println!("block {index}: {}", String::from_utf8_lossy(&block));
    }
    println!("head length {:?}, primary key set: {}", core.head().await?.map(|h| h.length), {
        storage.primary_key() == Some(primary_key)
    });
    Ok(())
}
