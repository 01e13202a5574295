//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::sync::Arc;

use corestore_hypercore::{Hypercore, NodeRequest, Request, UpgradeRequest};
use corestore_keys::{KeyPair, Manifest};
use corestore_storage::{MemoryStorage, Storage, StorageBackend};

/// A fresh in-memory store.
pub async fn memory() -> Arc<Storage> {
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    Storage::open(backend).await.unwrap()
}

/// Deterministic block `i` of varying length (0..=40 bytes).
pub fn block(i: u64) -> Vec<u8> {
    let len = (i * 7 % 41) as usize;
    (0..len).map(|j| (i as u8).wrapping_mul(31).wrapping_add(j as u8)).collect()
}

/// A writable core of `seed` with `length` blocks appended in batches of `batch`.
pub async fn writer(storage: &Arc<Storage>, seed: u8, length: u64, batch: u64) -> Hypercore {
    let mut core = Hypercore::create(storage, KeyPair::from_seed(&[seed; 32]), None).await.unwrap();
    let mut i = 0;
    while i < length {
        let end = (i + batch).min(length);
        let blocks: Vec<Vec<u8>> = (i..end).map(block).collect();
        core.append(&blocks).await.unwrap();
        i = end;
    }
    core
}

/// A read-only replica of `source`, knowing only its key (and the manifest when asked).
pub async fn replica(source: &Hypercore, with_manifest: bool) -> Hypercore {
    let manifest: Option<Manifest> = with_manifest.then(|| source.manifest().unwrap().clone());
    Hypercore::open(&memory().await, *source.key(), manifest).await.unwrap()
}

/// How many tree levels above block `index` the replica lacks (hypercore `missingNodes`).
pub async fn missing_nodes(core: &Hypercore, index: u64) -> u64 {
    core.missing_nodes(2 * index).await.unwrap()
}

/// A block request with the number of nodes the replica needs.
pub async fn block_request(core: &Hypercore, id: u64, index: u64) -> Request {
    let nodes = missing_nodes(core, index).await;
    Request {
        id,
        fork: core.fork(),
        block: Some(NodeRequest { index, nodes }),
        ..Request::default()
    }
}

/// An upgrade request from the replica's length to `length`.
pub fn upgrade_request(core: &Hypercore, id: u64, length: u64, manifest: bool) -> Request {
    Request {
        id,
        fork: core.fork(),
        upgrade: Some(UpgradeRequest { start: core.length(), length: length - core.length() }),
        manifest,
        ..Request::default()
    }
}
