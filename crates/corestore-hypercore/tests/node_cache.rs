//! The node cache filled under `&self` (issue 9): proofs created by several tasks at once (read
//! guards, each filling the cache from storage) while another task truncates and appends, or
//! follows a writer's truncates as a replica (write guard), are always proofs of the tree they
//! were created at, never of a node left over from before a truncate.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{memory, writer};
use corestore_hypercore::{
    flat, verify, CreateProofError, Hypercore, NodeRequest, ProofError, Request, TrustedTree,
    UpgradeRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::RwLock;

/// Checks, as a peer that knows only the key, that `core` proves block `index` of its current
/// tree: the signed head verifies and the block verifies against its roots.
async fn proves(core: &Hypercore, index: u64) {
    let empty =
        TrustedTree { key: core.key(), manifest: None, fork: core.fork(), length: 0, roots: &[] };
    let up = Request {
        fork: core.fork(),
        upgrade: Some(UpgradeRequest { start: 0, length: core.length() }),
        manifest: true,
        ..Request::default()
    };
    let data = core.create_proof(&up).await.unwrap();
    let head = verify(data, &empty).unwrap().complete(|_| None).unwrap().upgrade().unwrap().clone();
    assert_eq!(
        (head.fork, head.length, head.tree_hash),
        (core.fork(), core.length(), core.tree_hash())
    );
    let mut ite = flat::Iter::new(2 * index);
    let mut nodes = 0;
    while !head.roots.iter().any(|r| r.index == ite.index) {
        ite.parent();
        nodes += 1;
    }
    let request = Request {
        fork: core.fork(),
        block: Some(NodeRequest { index, nodes }),
        ..Request::default()
    };
    let data = match core.create_proof(&request).await {
        Ok(data) => data,
        // A replica keeps the blocks below the common ancestor of a reorg, but not the new
        // fork's sibling nodes next to it (deleted with the old fork's): until those blocks
        // come, it cannot prove the one before them (a typed error, answered as no data).
        Err(CreateProofError::Proof(ProofError::MissingNode { .. })) if !core.is_writable() => {
            return
        }
        Err(e) => panic!("block {index}: {e:?}"),
    };
    let trusted = TrustedTree { length: head.length, roots: &head.roots, ..empty };
    let roots = head.roots.clone();
    let proof = verify(data, &trusted)
        .unwrap()
        .complete(|i| roots.iter().find(|r| r.index == i).copied())
        .unwrap();
    let value = core.get(index).await.unwrap().unwrap();
    assert_eq!(proof.block(), Some((index, &value[..])));
}

/// Four tasks create proofs of random blocks while a fifth truncates to a random length and
/// appends other blocks, 40 times (fork 0 → 40), on a two-thread runtime: every proof is of the
/// tree current under its read guard. (A writer is not exposed to stale nodes even without the
/// cache clear in `truncate`: its appends rewrite every node past the truncation; the replica
/// test below is the one that fails without the clear in `apply_reorg`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_created_during_truncates_and_appends_prove_the_current_fork() {
    let core = Arc::new(RwLock::new(writer(&memory().await, 21, 300, 300).await));
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for seed in 0..4 {
        let (core, done) = (core.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut checked = 0u64;
            while !done.load(Ordering::Acquire) || checked == 0 {
                {
                    let core = core.read().await;
                    let index = rng.gen_range(0..core.length());
                    proves(&core, index).await;
                }
                checked += 1;
                tokio::task::yield_now().await;
            }
            checked
        }));
    }
    let mut rng = StdRng::seed_from_u64(99);
    for round in 0..40u64 {
        {
            let mut core = core.write().await;
            let length = core.length();
            core.truncate(rng.gen_range(length / 2..length)).await.unwrap();
            let blocks: Vec<Vec<u8>> = (0..rng.gen_range(1..80))
                .map(|i| format!("fork {round} block {i}").into_bytes())
                .collect();
            core.append(&blocks).await.unwrap();
        }
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    let core = core.read().await;
    assert_eq!(core.fork(), 40);
    for index in 0..core.length() {
        proves(&core, index).await;
    }
}

/// Proofs of random present blocks of a shared core by four tasks until `done`.
fn provers(
    core: &Arc<RwLock<Hypercore>>,
    done: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..4)
        .map(|seed| {
            let (core, done) = (core.clone(), done.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut checked = 0u64;
                while !done.load(Ordering::Acquire) {
                    {
                        let core = core.read().await;
                        let present: Vec<u64> =
                            (0..core.length()).filter(|&i| core.has(i)).collect();
                        if !present.is_empty() {
                            proves(&core, present[rng.gen_range(0..present.len())]).await;
                            checked += 1;
                        }
                    }
                    tokio::task::yield_now().await;
                }
                checked
            })
        })
        .collect()
}

/// A replica serving proofs from four tasks while it follows its writer through 12 truncates
/// (fork proof, reorg, then the new fork's blocks as one group): every proof is of the fork the
/// replica is at, and the new fork's blocks verify against its nodes, not the old fork's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_following_truncates_serves_proofs_of_its_current_fork() {
    let mut source = writer(&memory().await, 22, 120, 120).await;
    let mut r = Hypercore::open(&memory().await, *source.key(), None).await.unwrap();
    let up = Request {
        id: 1,
        upgrade: Some(UpgradeRequest { start: 0, length: source.length() }),
        manifest: true,
        ..Request::default()
    };
    r.receive(source.create_proof(&up).await.unwrap()).await.unwrap();
    let replica = Arc::new(RwLock::new(r));
    let done = Arc::new(AtomicBool::new(false));
    let readers = provers(&replica, &done);
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..12u64 {
        // The replica downloads every block of the writer's current fork, in one group.
        {
            let mut r = replica.write().await;
            let mut group = Vec::new();
            for i in (0..source.length()).filter(|&i| !r.has(i)) {
                // As the replicator asks: nodes from memory, all asked before any answer.
                let nodes = r.missing_nodes_hint(2 * i);
                let block = Some(NodeRequest { index: i, nodes });
                let request = Request { id: 1, fork: r.fork(), block, ..Request::default() };
                group.push(source.create_proof(&request).await.unwrap());
            }
            let results = r.receive_many(group).await;
            assert!(results.iter().all(Result::is_ok), "round {round}: {results:?}");
        }
        tokio::task::yield_now().await;
        let length = source.length();
        source.truncate(rng.gen_range(length / 2..length)).await.unwrap();
        let blocks: Vec<Vec<u8>> = (0..rng.gen_range(1..60))
            .map(|i| format!("fork {round} block {i}").into_bytes())
            .collect();
        source.append(&blocks).await.unwrap();
        // The replica follows: fork proof, reorg steps (read guard), then apply (write guard).
        let fork_proof = Request {
            id: 2,
            fork: source.fork(),
            upgrade: Some(UpgradeRequest { start: 0, length: source.length() }),
            ..Request::default()
        };
        let data = source.create_proof(&fork_proof).await.unwrap();
        let mut reorg = replica.read().await.verify_fork_proof(data).await.unwrap();
        while let Some(mut request) = reorg.next_request() {
            request.id = 3;
            let answer = source.create_proof(&request).await.unwrap();
            reorg.handle(&*replica.read().await, answer).await.unwrap();
        }
        replica.write().await.apply_reorg(reorg).await.unwrap();
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.await.unwrap();
    }
    let r = replica.read().await;
    assert_eq!(
        (r.fork(), r.length(), r.tree_hash()),
        (source.fork(), source.length(), source.tree_hash())
    );
}
