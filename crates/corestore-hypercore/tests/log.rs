//! The log on storage: append, get, truncate, reopen after restart, and crashes between batches.

mod common;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use common::{assert_verifiable, block, block_request, memory, replica, upgrade_request, writer};
use corestore_hypercore::{tree_hash, AppendError, Hypercore, TruncateError};
use corestore_keys::KeyPair;
use corestore_storage::{
    DiskStorage, FaultyStorage, MemoryStorage, Storage, StorageBackend, WriteBatch,
};

#[tokio::test]
async fn append_get_and_lengths() {
    let storage = memory().await;
    let mut core = writer(&storage, 1, 0, 1).await;
    assert_eq!((core.length(), core.byte_length(), core.fork()), (0, 0, 0));
    assert!(core.is_writable());
    assert_eq!(core.append(&[b"hello", b"world"]).await.unwrap(), 2);
    assert_eq!(core.append(&[b"!"]).await.unwrap(), 3);
    assert_eq!(core.append::<&[u8]>(&[]).await.unwrap(), 3);
    assert_eq!(core.byte_length(), 11);
    assert_eq!(core.contiguous_length(), 3);
    assert_eq!(
        hex::encode(core.tree_hash()),
        "8b512f5301c09f0e0e21a0c71c98fce14ddcc51125f4dfd8303fa22c75858aff"
    );
    // seed 1 → the §1.8 key and the §1.8 signature.
    assert_eq!(
        core.key().to_hex(),
        "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72"
    );
    assert_eq!(
        hex::encode(core.signature()),
        "0100ef90c38a7498eba2369e467f926fe785e962d8c781703766863ac4703d8a403c\
         4eea5634e581eabd45ec85239a9259af64bd825bd943376d4f8e2daa8aa4bb080000"
    );
    assert_eq!(core.get(1).await.unwrap().as_deref(), Some(&b"world"[..]));
    assert_eq!(core.get(3).await.unwrap(), None);
    assert!(core.has(2) && !core.has(3));

    let reader = replica(&core, true).await;
    let mut reader = reader;
    assert!(!reader.is_writable());
    assert!(matches!(reader.append(&[b"x"]).await, Err(AppendError::NotWritable)));
    assert!(matches!(reader.truncate(0).await, Err(TruncateError::NotWritable)));
}

#[tokio::test]
async fn reopen_gives_the_same_state() {
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let storage = Storage::open(backend.clone()).await.unwrap();
    let core = writer(&storage, 2, 1000, 37).await;
    let snapshot = (core.length(), core.byte_length(), core.tree_hash(), core.signature().to_vec());
    let mut r = replica(&core, false).await;
    drop(r);

    let storage = Storage::open(backend.clone()).await.unwrap();
    let mut again =
        Hypercore::open_existing(&storage, core.discovery_key()).await.unwrap().unwrap();
    assert!(again.is_writable(), "the secret key is stored");
    assert_eq!(
        (again.length(), again.byte_length(), again.tree_hash(), again.signature().to_vec()),
        snapshot
    );
    assert_eq!(again.contiguous_length(), 1000);
    for i in [0, 1, 500, 999] {
        assert_eq!(again.get(i).await.unwrap(), Some(block(i)));
    }
    again.append(&[b"more"]).await.unwrap();

    // A sparse replica reopens with the same blocks present.
    let rb: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let rs = Storage::open(rb.clone()).await.unwrap();
    r = Hypercore::open(&rs, *again.key(), None).await.unwrap();
    r.receive(again.create_proof(&upgrade_request(&r, 1, 1001, true)).await.unwrap())
        .await
        .unwrap();
    for i in [0, 3, 700, 1000] {
        r.receive(again.create_proof(&block_request(&r, 1, i).await).await.unwrap()).await.unwrap();
    }
    let expected = (r.length(), r.tree_hash(), r.contiguous_length());
    let r2 = Hypercore::open(&Storage::open(rb).await.unwrap(), *again.key(), None).await.unwrap();
    assert_eq!((r2.length(), r2.tree_hash(), r2.contiguous_length()), expected);
    assert_eq!(r2.contiguous_length(), 1);
    assert_eq!(r2.manifest(), again.manifest());
    for i in 0..1001 {
        assert_eq!(r2.has(i), [0, 3, 700, 1000].contains(&i), "block {i}");
    }
    assert_eq!(r2.get(700).await.unwrap(), Some(block(700)));
}

#[tokio::test]
async fn truncate_bumps_the_fork_and_proofs_follow() {
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let storage = Storage::open(backend.clone()).await.unwrap();
    let mut core = writer(&storage, 3, 100, 9).await;
    let at_37 = {
        let other = writer(&memory().await, 3, 37, 37).await;
        (other.tree_hash(), other.byte_length())
    };
    core.truncate(37).await.unwrap();
    assert_eq!((core.length(), core.fork()), (37, 1));
    assert_eq!((core.tree_hash(), core.byte_length()), at_37);
    assert_eq!(core.get(37).await.unwrap(), None);
    assert_eq!(core.contiguous_length(), 37);
    assert!(matches!(core.truncate(50).await, Err(TruncateError::BeyondLength { .. })));
    core.append(&[b"new"]).await.unwrap();
    assert_eq!(core.get(37).await.unwrap().as_deref(), Some(&b"new"[..]));

    let reopened =
        Hypercore::open_existing(&Storage::open(backend).await.unwrap(), core.discovery_key())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        (reopened.length(), reopened.fork(), reopened.tree_hash()),
        (38, 1, core.tree_hash())
    );

    let mut r = replica(&core, true).await;
    let mut req = upgrade_request(&r, 1, 38, false);
    req.fork = 0;
    assert!(core.create_proof(&req).await.is_err(), "requests for the old fork are refused");
    // A fresh replica at fork 0 cannot take fork-1 data; one that knows fork 1 is a later issue.
    req.fork = 1;
    let data = core.create_proof(&req).await.unwrap();
    assert!(r.receive(data).await.is_err());
}

/// A backend that fails every write after the first `ok` ones, applying nothing of them: a
/// crash between batches.
#[derive(Debug)]
struct CrashAfter {
    inner: Arc<MemoryStorage>,
    left: AtomicU64,
}

#[async_trait]
impl StorageBackend for CrashAfter {
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(key).await
    }
    async fn scan(&self, s: &[u8], e: &[u8], limit: usize) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(s, e, limit).await
    }
    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        if self.left.fetch_sub(1, Ordering::SeqCst) == 0 {
            self.left.store(0, Ordering::SeqCst);
            return Err(io::Error::other("crash"));
        }
        self.inner.write(batch).await
    }
    async fn flush(&self) -> io::Result<()> {
        self.inner.flush().await
    }
}

#[tokio::test]
async fn a_crash_between_batches_leaves_a_verifiable_core() {
    for crash_at in 2..14u64 {
        let inner = Arc::new(MemoryStorage::new());
        let backend: Arc<dyn StorageBackend> =
            Arc::new(CrashAfter { inner: inner.clone(), left: AtomicU64::new(crash_at) });
        let storage = Storage::open(backend).await.unwrap();
        let mut core =
            Hypercore::create(&storage, KeyPair::from_seed(&[7; 32]), None).await.unwrap();
        let mut acknowledged = 0;
        for round in 0..10u64 {
            let blocks: Vec<Vec<u8>> = (acknowledged..=acknowledged + round).map(block).collect();
            let failed = if round == 6 {
                core.truncate(acknowledged / 2).await.is_err()
            } else {
                core.append(&blocks).await.is_err()
            };
            if failed {
                break;
            }
            acknowledged = core.length();
        }
        // Whatever failed changed nothing in memory either.
        assert_eq!(core.length(), acknowledged);
        // "Restart": reopen from what reached the inner backend.
        let inner: Arc<dyn StorageBackend> = inner;
        let storage = Storage::open(inner).await.unwrap();
        let Some(reopened) =
            Hypercore::open_existing(&storage, core.discovery_key()).await.unwrap()
        else {
            continue; // crashed before the core was created
        };
        assert_eq!(reopened.length(), acknowledged, "crash at write {crash_at}");
        assert_eq!(reopened.tree_hash(), core.tree_hash());
        assert_verifiable(&reopened).await;
    }
}

/// The storage crate's fault injector: failed writes (a crash between batches) and torn batches
/// (a backend breaking atomicity) both reopen into a verifiable core.
#[tokio::test]
async fn faulty_storage_never_leaves_an_unverifiable_core() {
    for torn in [false, true] {
        for fault_at in 0..9u64 {
            for keep in 0..6usize {
                if !torn && keep > 0 {
                    continue;
                }
                let inner: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
                let faulty = Arc::new(FaultyStorage::new(inner.clone()));
                let backend: Arc<dyn StorageBackend> = faulty.clone();
                let storage = Storage::open(backend).await.unwrap();
                let mut core =
                    Hypercore::create(&storage, KeyPair::from_seed(&[8; 32]), None).await.unwrap();
                if torn {
                    faulty.tear_write_after(fault_at, keep);
                } else {
                    faulty.fail_write_after(fault_at);
                }
                let mut acknowledged = (0, tree_hash(&[]));
                for round in 0..9u64 {
                    let failed = if round == 5 {
                        core.truncate(core.length() / 3).await.is_err()
                    } else {
                        let start = core.length();
                        let blocks: Vec<Vec<u8>> = (start..=start + round).map(block).collect();
                        core.append(&blocks).await.is_err()
                    };
                    if failed {
                        break;
                    }
                    acknowledged = (core.length(), core.tree_hash());
                }
                assert_eq!((core.length(), core.tree_hash()), acknowledged);
                let storage = Storage::open(inner).await.unwrap();
                let reopened = Hypercore::open_existing(&storage, core.discovery_key())
                    .await
                    .unwrap_or_else(|e| panic!("torn {torn} at {fault_at}/{keep}: {e}"))
                    .unwrap();
                if !torn {
                    assert_eq!((reopened.length(), reopened.tree_hash()), acknowledged);
                }
                assert_verifiable(&reopened).await;
            }
        }
    }
}

/// The default disk backend: a core reopens from disk with the same state.
#[tokio::test]
async fn disk_reopen_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let (dk, expected) = {
        let backend: Arc<dyn StorageBackend> = Arc::new(DiskStorage::open(dir.path()).unwrap());
        let storage = Storage::open(backend).await.unwrap();
        let mut core = writer(&storage, 9, 300, 7).await;
        core.truncate(200).await.unwrap();
        core.append(&[b"after truncate"]).await.unwrap();
        core.flush().await.unwrap();
        (*core.discovery_key(), (core.length(), core.fork(), core.tree_hash(), core.byte_length()))
    };
    let backend: Arc<dyn StorageBackend> = Arc::new(DiskStorage::open(dir.path()).unwrap());
    let storage = Storage::open(backend).await.unwrap();
    let core = Hypercore::open_existing(&storage, &dk).await.unwrap().unwrap();
    assert_eq!((core.length(), core.fork(), core.tree_hash(), core.byte_length()), expected);
    assert_eq!(core.get(200).await.unwrap().as_deref(), Some(&b"after truncate"[..]));
    assert_eq!(core.get(199).await.unwrap(), Some(block(199)));
    assert_verifiable(&core).await;
}
