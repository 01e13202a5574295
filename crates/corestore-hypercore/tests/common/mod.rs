//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::sync::Arc;

use corestore_hypercore::{
    flat, tree_hash, verify, Data, Hypercore, NodeRequest, Request, SignedTree, TrustedTree,
    UpgradeRequest, Verifier,
};
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

/// Checks a reopened core against its stored head: the signature verifies, and a proof of every
/// present block verifies against the signed tree (as a peer knowing only the key would see it).
pub async fn assert_verifiable(core: &Hypercore) {
    let verifier = Verifier::new(*core.key(), core.manifest().unwrap());
    let signed =
        SignedTree { tree_hash: core.tree_hash(), length: core.length(), fork: core.fork() };
    assert!(core.length() == 0 || verifier.verify(&signed, core.signature()));
    assert_eq!(tree_hash(core.roots()), core.tree_hash());
    if core.length() == 0 {
        return;
    }
    let empty =
        TrustedTree { key: core.key(), manifest: None, fork: core.fork(), length: 0, roots: &[] };
    let req = Request {
        upgrade: Some(UpgradeRequest { start: 0, length: core.length() }),
        manifest: true,
        fork: core.fork(),
        ..Request::default()
    };
    let data = Data::decode(&core.create_proof(&req).await.unwrap().encode()).unwrap();
    let head = verify(data, &empty).unwrap().complete(|_| None).unwrap().upgrade().unwrap().clone();
    assert_eq!(head.tree_hash, core.tree_hash());
    let trusted = TrustedTree { length: head.length, roots: &head.roots, ..empty };
    for i in 0..core.contiguous_length() {
        let mut ite = flat::Iter::new(2 * i);
        let mut nodes = 0;
        while !head.roots.iter().any(|r| r.index == ite.index) {
            ite.parent();
            nodes += 1;
        }
        let req = Request {
            block: Some(NodeRequest { index: i, nodes }),
            fork: core.fork(),
            ..Request::default()
        };
        let data = Data::decode(&core.create_proof(&req).await.unwrap().encode()).unwrap();
        let roots = head.roots.clone();
        let proof = verify(data, &trusted)
            .unwrap()
            .complete(|index| roots.iter().find(|r| r.index == index).copied())
            .unwrap();
        assert_eq!(proof.block(), Some((i, &core.get(i).await.unwrap().unwrap()[..])));
    }
}
