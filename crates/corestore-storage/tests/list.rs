//! Paging through stored cores ([`Storage::discovery_keys_page`],
//! [`Storage::namespace_discovery_keys_page`]): every core once, in order, across pages of any
//! size, on the memory and disk backends.
#![cfg(unix)] // DiskStorage is Unix-only.

use std::sync::Arc;

use corestore_keys::{CoreKey, DiscoveryKey, Namespace};
use corestore_storage::{CoreAuth, DiskStorage, MemoryStorage, Storage, StorageBackend};

fn auth(i: u32) -> CoreAuth {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    let key = CoreKey::from_bytes(bytes);
    CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        manifest: None,
        key_pair: None,
        frozen: false,
    }
}

async fn all_pages(storage: &Storage, limit: usize) -> Vec<DiscoveryKey> {
    let mut out: Vec<DiscoveryKey> = Vec::new();
    loop {
        let page = storage.discovery_keys_page(out.last(), limit).await.unwrap();
        assert!(page.len() <= limit);
        let last = page.len() < limit;
        out.extend(page);
        if last {
            return out;
        }
    }
}

async fn all_names(
    storage: &Storage,
    ns: &Namespace,
    limit: usize,
) -> Vec<(Vec<u8>, DiscoveryKey)> {
    let mut out: Vec<(Vec<u8>, DiscoveryKey)> = Vec::new();
    loop {
        let after = out.last().map(|(name, _)| name.clone());
        let page =
            storage.namespace_discovery_keys_page(ns, after.as_deref(), limit).await.unwrap();
        let last = page.len() < limit;
        out.extend(page);
        if last {
            return out;
        }
    }
}

async fn check(backend: Arc<dyn StorageBackend>) {
    let storage = Storage::open(backend).await.unwrap();
    assert!(storage.discovery_keys_page(None, 10).await.unwrap().is_empty());
    let a = Namespace::ROOT.child("a");
    let last = Namespace::from_bytes([0xff; 32]);
    for i in 0..2500 {
        let alias_name = format!("core-{i:05}").into_bytes();
        let alias = match i % 5 {
            0 => Some((&a, alias_name.as_slice())),
            1 => Some((&last, alias_name.as_slice())),
            _ => None,
        };
        storage.create_core(&auth(i), alias).await.unwrap();
    }
    let everything = storage.discovery_keys().await.unwrap();
    assert_eq!(everything.len(), 2500);
    for limit in [1024, 7, 2500, 1] {
        assert_eq!(all_pages(&storage, limit).await, everything, "pages of {limit}");
    }
    let named = all_names(&storage, &a, 64).await;
    assert_eq!(named.len(), 500);
    assert!(named.windows(2).all(|w| w[0].0 < w[1].0), "name order");
    let keys: Vec<DiscoveryKey> = named.iter().map(|(_, dk)| *dk).collect();
    assert_eq!(keys, storage.namespace_discovery_keys(&a).await.unwrap());
    assert_eq!(named[0], (b"core-00000".to_vec(), auth(0).discovery_key));
    assert_eq!(all_names(&storage, &last, 499).await.len(), 500, "the all-0xff namespace ends");
    assert!(all_names(&storage, &Namespace::ROOT, 10).await.is_empty());
}

#[tokio::test]
async fn pages_cover_every_core_once_in_order_in_memory() {
    check(Arc::new(MemoryStorage::new())).await;
}

#[tokio::test]
async fn pages_cover_every_core_once_in_order_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    check(Arc::new(DiskStorage::open(dir.path()).unwrap())).await;
}
