//! The replica fork path (issue 9, spec `wire.md` §5.6b): a writer truncates and appends again,
//! replicas find the common ancestor, truncate and adopt the new fork; equivocation freezes.

mod common;

use std::sync::Arc;

use common::{assert_verifiable, block, block_request, memory, writer};
use corestore_hypercore::{
    Data, Hypercore, NodeRequest, ReceiveError, Reorg, ReorgError, Request, UpgradeRequest,
    VerifyError,
};
use corestore_keys::KeyPair;
use corestore_storage::{FaultyStorage, MemoryStorage, Storage, StorageBackend};

fn state(core: &Hypercore) -> (u64, u64, u64, [u8; 32], Vec<u8>, u64) {
    (
        core.length(),
        core.byte_length(),
        core.fork(),
        core.tree_hash(),
        core.signature().to_vec(),
        core.contiguous_length(),
    )
}

/// Block `i` of the rewritten history (differs from `block(i)`).
fn other(i: u64) -> Vec<u8> {
    format!("fork-{i}").into_bytes()
}

/// A replica on `backend` of `source`, upgraded and with `blocks` downloaded.
async fn replica_on(
    backend: Arc<dyn StorageBackend>,
    source: &Hypercore,
    blocks: impl IntoIterator<Item = u64>,
) -> Hypercore {
    let storage = Storage::open(backend).await.unwrap();
    let mut r = Hypercore::open(&storage, *source.key(), None).await.unwrap();
    let up = Request {
        id: 1,
        fork: source.fork(),
        upgrade: Some(UpgradeRequest { start: 0, length: source.length() }),
        manifest: true,
        ..Request::default()
    };
    r.receive(source.create_proof(&up).await.unwrap()).await.unwrap();
    for i in blocks {
        let mut req = block_request(&r, 1, i).await;
        req.fork = source.fork();
        r.receive(source.create_proof(&req).await.unwrap()).await.unwrap();
    }
    r
}

fn fork_proof_request(source: &Hypercore) -> Request {
    Request {
        id: 7,
        fork: source.fork(),
        upgrade: Some(UpgradeRequest { start: 0, length: source.length() }),
        ..Request::default()
    }
}

/// Runs the bisection against `source`; returns the reorg and the number of requests.
async fn follow(r: &Hypercore, source: &Hypercore) -> (Reorg, usize) {
    let data = source.create_proof(&fork_proof_request(source)).await.unwrap();
    let mut reorg = r.verify_fork_proof(data).await.unwrap();
    let mut requests = 0;
    while let Some(mut req) = reorg.next_request() {
        requests += 1;
        assert!(requests < 64, "the bisection does not end");
        req.id = 8;
        reorg.handle(r, source.create_proof(&req).await.unwrap()).await.unwrap();
    }
    (reorg, requests)
}

/// The writer of seed 30 with `old` blocks, truncated to `keep` and grown to `new` blocks.
async fn rewritten(old: u64, keep: u64, new: u64) -> Hypercore {
    let mut w = writer(&memory().await, 30, old, 5).await;
    w.truncate(keep).await.unwrap();
    let blocks: Vec<Vec<u8>> = (keep..new).map(other).collect();
    w.append(&blocks).await.unwrap();
    w
}

#[tokio::test]
async fn a_replica_follows_a_truncate_and_append() {
    for (old, keep, new) in
        [(40, 23, 33), (40, 23, 60), (16, 8, 8), (9, 8, 12), (33, 1, 2), (21, 20, 21)]
    {
        let source = writer(&memory().await, 30, old, 5).await;
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let mut r = replica_on(backend.clone(), &source, 0..old).await;
        let w = rewritten(old, keep, new).await;
        let (reorg, requests) = follow(&r, &w).await;
        assert!(requests <= 8, "{requests} requests for {old}/{keep}/{new}");
        let applied = r.apply_reorg(reorg).await.unwrap();
        let case = format!("{old}/{keep}/{new}");
        assert_eq!(applied.ancestors, keep, "{case}");
        assert_eq!((applied.fork, applied.length, applied.truncated), (1, new, old - keep));
        assert_eq!((r.fork(), r.length(), r.tree_hash()), (1, new, w.tree_hash()), "{case}");
        assert_eq!((r.byte_length(), r.signature()), (w.byte_length(), w.signature()));
        assert_eq!(r.contiguous_length(), keep);
        for i in 0..old.max(new) {
            let expected = (i < keep).then(|| block(i));
            assert_eq!(r.get(i).await.unwrap(), expected, "{case} block {i}");
        }
        // New blocks verify at the new fork, and the replica serves the new fork.
        for i in keep..new {
            r.receive(w.create_proof(&block_request(&r, 1, i).await).await.unwrap()).await.unwrap();
            assert_eq!(r.get(i).await.unwrap(), Some(other(i)));
        }
        assert_verifiable(&r).await;
        let reopened =
            Hypercore::open(&Storage::open(backend).await.unwrap(), *w.key(), None).await.unwrap();
        assert_eq!(state(&reopened), state(&r), "{case}");
        assert_verifiable(&reopened).await;
    }
}

/// A sparse replica keeps only blocks its nodes prove to be shared, and never an old one.
#[tokio::test]
async fn a_sparse_replica_keeps_only_proven_blocks() {
    let source = writer(&memory().await, 30, 40, 5).await;
    let mut r = replica_on(Arc::new(MemoryStorage::new()), &source, [0, 5, 17, 22, 30]).await;
    let w = rewritten(40, 23, 33).await;
    let (reorg, _) = follow(&r, &w).await;
    let applied = r.apply_reorg(reorg).await.unwrap();
    assert!(applied.ancestors <= 23);
    for i in 0..40 {
        let got = r.get(i).await.unwrap();
        assert!(got.is_none() || (i < applied.ancestors && got == Some(block(i))), "block {i}");
    }
    assert_verifiable(&r).await;
}

#[tokio::test]
async fn a_new_fork_that_shares_nothing() {
    let source = writer(&memory().await, 30, 12, 4).await;
    let mut r = replica_on(Arc::new(MemoryStorage::new()), &source, 0..12).await;
    let w = rewritten(12, 0, 5).await;
    let (reorg, _) = follow(&r, &w).await;
    let applied = r.apply_reorg(reorg).await.unwrap();
    assert_eq!((applied.ancestors, applied.truncated, applied.length), (0, 12, 5));
    for i in 0..12 {
        assert_eq!(r.get(i).await.unwrap(), None);
    }
    assert_eq!((r.contiguous_length(), r.tree_hash()), (0, w.tree_hash()));
    assert_verifiable(&r).await;
}

/// A failed write changes nothing; a torn batch (a broken backend) reopens into a verifiable
/// core or is refused with a typed error, never into a mix that is trusted.
#[tokio::test]
async fn a_reorg_under_faulty_storage() {
    let source = writer(&memory().await, 30, 20, 5).await;
    let w = rewritten(20, 11, 15).await;
    let mut torn_outcomes = [0usize; 3];
    for keep_ops in [None, Some(0), Some(1), Some(2), Some(3), Some(4), Some(5), Some(8)] {
        let inner: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let faulty = Arc::new(FaultyStorage::new(inner.clone()));
        let mut r = replica_on(faulty.clone(), &source, 0..20).await;
        let (reorg, _) = follow(&r, &w).await;
        let before = state(&r);
        match keep_ops {
            None => faulty.fail_write_after(0),
            Some(keep) => faulty.tear_write_after(0, keep),
        };
        assert!(matches!(r.apply_reorg(reorg.clone()).await, Err(ReorgError::Storage(_))));
        assert_eq!(state(&r), before, "a failed apply changes nothing in memory");
        let storage = Storage::open(inner).await.unwrap();
        match Hypercore::open(&storage, *w.key(), None).await {
            Ok(reopened) => {
                let s = state(&reopened);
                if keep_ops.is_none() {
                    assert_eq!(s, before);
                }
                assert!(
                    (s.0, s.2, s.3) == (20, 0, source.tree_hash())
                        || (s.0, s.2, s.3) == (15, 1, w.tree_hash()),
                    "{keep_ops:?}: {s:?}"
                );
                assert_verifiable(&reopened).await;
                torn_outcomes[usize::from(s.2 == 1)] += 1;
            }
            Err(e) => {
                assert!(keep_ops.is_some(), "{e}");
                assert!(
                    matches!(
                        e,
                        corestore_hypercore::OpenError::CorruptHead { .. }
                            | corestore_hypercore::OpenError::MissingRoot { .. }
                    ),
                    "{keep_ops:?}: {e}"
                );
                torn_outcomes[2] += 1;
            }
        }
        // The same replica retries after the fault and succeeds.
        faulty.heal();
        r.apply_reorg(reorg).await.unwrap();
        assert_eq!((r.fork(), r.length(), r.tree_hash()), (1, 15, w.tree_hash()));
    }
    assert!(torn_outcomes[0] > 0, "{torn_outcomes:?}");
}

/// Two validly signed trees at the same fork: the core freezes (persisted), refuses upgrades
/// and reorgs, and hands back the counter-proof, which freezes the other side too.
#[tokio::test]
async fn equivocation_freezes_the_core() {
    let kp = KeyPair::from_seed(&[31; 32]);
    let mut a = Hypercore::create(&memory().await, kp.clone(), None).await.unwrap();
    let mut b = Hypercore::create(&memory().await, kp, None).await.unwrap();
    a.append(&(0..10).map(block).collect::<Vec<_>>()).await.unwrap();
    b.append(&(0..8).map(other).collect::<Vec<_>>()).await.unwrap();
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let mut r = replica_on(backend.clone(), &a, 0..3).await;

    // A's own tree, and data that is no conflict proof, are not conflicts.
    let same = a.create_proof(&fork_proof_request(&a)).await.unwrap();
    assert_eq!(r.check_conflict(&same).await.unwrap(), None);
    let push = Request {
        id: 0,
        upgrade: Some(UpgradeRequest { start: 0, length: 8 }),
        ..Request::default()
    };
    let theirs = b.create_proof(&push).await.unwrap();
    let mut later = theirs.clone();
    later.fork = 1;
    assert_eq!(r.check_conflict(&later).await.ok().flatten(), None);
    let mut forged = theirs.clone();
    forged.upgrade.as_mut().unwrap().signature = Some(vec![1; 68]);
    assert!(r.check_conflict(&forged).await.is_err());
    assert!(!r.is_frozen());

    // B's tree at fork 0 conflicts with A's.
    // (Applying it is a no-op: it is not longer than the local tree.)
    let before = state(&r);
    let _ = r.receive(theirs.clone()).await;
    assert_eq!(state(&r), before);
    let counter = r.check_conflict(&theirs).await.unwrap().expect("a conflict");
    assert!(r.is_frozen());
    let up = counter.upgrade.as_ref().unwrap();
    assert_eq!((counter.request, up.start, up.length), (0, 0, 8));
    // The counter-proof is A's tree, and it freezes B.
    assert_eq!(b.check_conflict(&counter).await.unwrap().map(|d| d.upgrade.is_some()), Some(true));
    assert!(b.is_frozen());

    // Frozen: no more upgrades or reorgs; blocks of the known tree still verify.
    a.append(&[b"more"]).await.unwrap();
    let data = a
        .create_proof(&Request {
            id: 2,
            upgrade: Some(UpgradeRequest { start: 10, length: 1 }),
            ..Request::default()
        })
        .await
        .unwrap();
    assert!(matches!(r.receive(data).await, Err(ReceiveError::Frozen)));
    r.receive(a.create_proof(&block_request(&r, 3, 5).await).await.unwrap()).await.unwrap();
    let w = rewritten(10, 4, 6).await;
    let fork_proof = w.create_proof(&fork_proof_request(&w)).await.unwrap();
    assert!(matches!(r.verify_fork_proof(fork_proof).await, Err(ReorgError::Frozen)));

    let reopened =
        Hypercore::open(&Storage::open(backend).await.unwrap(), *a.key(), None).await.unwrap();
    assert!(reopened.is_frozen());
    assert_eq!(reopened.length(), 10);
}

/// Hostile fork proofs and answers are refused with typed errors and change nothing.
#[tokio::test]
async fn hostile_fork_proofs_are_refused() {
    let source = writer(&memory().await, 30, 20, 5).await;
    let mut r = replica_on(Arc::new(MemoryStorage::new()), &source, 0..20).await;
    let before = state(&r);
    let w = rewritten(20, 9, 14).await;
    let good = w.create_proof(&fork_proof_request(&w)).await.unwrap();

    // Not a higher fork.
    let same_fork = source.create_proof(&fork_proof_request(&source)).await.unwrap();
    assert!(matches!(
        r.verify_fork_proof(same_fork).await,
        Err(ReorgError::ForkNotHigher { local: 0, remote: 0 })
    ));
    // Not from 0, or no upgrade.
    let mut not_from_zero = good.clone();
    not_from_zero.upgrade.as_mut().unwrap().start = 1;
    assert!(matches!(r.verify_fork_proof(not_from_zero).await, Err(ReorgError::NotAForkProof)));
    let no_upgrade = Data { fork: 1, ..Data::default() };
    assert!(matches!(r.verify_fork_proof(no_upgrade).await, Err(ReorgError::NotAForkProof)));
    // Signed by another key pair (a writer of another core truncating the same way).
    let mut stranger = writer(&memory().await, 32, 20, 5).await;
    stranger.truncate(9).await.unwrap();
    let theirs = stranger.create_proof(&fork_proof_request(&stranger)).await.unwrap();
    assert!(matches!(
        r.verify_fork_proof(theirs.clone()).await,
        Err(ReorgError::Invalid(VerifyError::InvalidSignature { .. }))
    ));
    let mut foreign_manifest = theirs;
    foreign_manifest.manifest = stranger.manifest().cloned();
    let fresh = Hypercore::open(&memory().await, *source.key(), None).await.unwrap();
    assert!(matches!(
        fresh.verify_fork_proof(foreign_manifest).await,
        Err(ReorgError::Invalid(VerifyError::ManifestMismatch))
    ));
    // Lengths that lie: a longer or shorter claimed upgrade, a re-signed fork number.
    for (dl, fork) in [(1i64, 1u64), (-1, 1), (0, 2)] {
        let mut lie = good.clone();
        lie.fork = fork;
        let up = lie.upgrade.as_mut().unwrap();
        up.length = up.length.checked_add_signed(dl).unwrap();
        assert!(
            matches!(r.verify_fork_proof(lie).await, Err(ReorgError::Invalid(_))),
            "{dl} {fork}"
        );
    }
    let mut dropped = good.clone();
    dropped.upgrade.as_mut().unwrap().nodes.pop();
    assert!(matches!(r.verify_fork_proof(dropped).await, Err(ReorgError::Invalid(_))));
    assert_eq!(state(&r), before);

    // Answers that do not prove the bisection's node.
    let mut reorg = r.verify_fork_proof(good).await.unwrap();
    let want = reorg.want().expect("a bisection");
    let req = reorg.next_request().unwrap();
    let mut answer = w.create_proof(&req).await.unwrap();
    let wrong_fork = source.create_proof(&Request { fork: 0, ..req.clone() }).await.unwrap();
    assert!(matches!(
        reorg.handle(&r, wrong_fork).await,
        Err(ReorgError::WrongFork { fork: 1, remote: 0 })
    ));
    let mut tampered = answer.clone();
    tampered.hash.as_mut().unwrap().nodes[0].hash[0] ^= 1;
    assert!(matches!(reorg.handle(&r, tampered).await, Err(ReorgError::UnexpectedAnswer { .. })));
    let other_node = w
        .create_proof(&Request {
            fork: 1,
            hash: Some(NodeRequest { index: 2 * want.start, nodes: want.nodes.saturating_sub(1) }),
            ..Request::default()
        })
        .await
        .unwrap();
    if want.nodes > 0 {
        assert!(matches!(
            reorg.handle(&r, other_node).await,
            Err(ReorgError::UnexpectedAnswer { .. })
        ));
    }
    assert_eq!(reorg.want(), Some(want), "rejected answers change nothing");
    // Unfinished, foreign and stale reorgs are not applied.
    assert!(matches!(r.apply_reorg(reorg.clone()).await, Err(ReorgError::Unfinished)));
    let mut twin = replica_on(Arc::new(MemoryStorage::new()), &source, 0..20).await;
    answer.request = 8;
    reorg.handle(&r, answer).await.unwrap();
    while let Some(req) = reorg.next_request() {
        reorg.handle(&r, w.create_proof(&req).await.unwrap()).await.unwrap();
    }
    assert!(matches!(twin.apply_reorg(reorg.clone()).await, Err(ReorgError::ForeignReorg)));
    assert_eq!(state(&r), before);
    let mut grown_source = writer(&memory().await, 30, 21, 5).await;
    grown_source.append::<&[u8]>(&[]).await.unwrap();
    let up = Request {
        id: 1,
        upgrade: Some(UpgradeRequest { start: 20, length: 1 }),
        ..Request::default()
    };
    r.receive(grown_source.create_proof(&up).await.unwrap()).await.unwrap();
    assert!(matches!(r.apply_reorg(reorg).await, Err(ReorgError::Stale)));
    assert_eq!(r.length(), 21);
}
