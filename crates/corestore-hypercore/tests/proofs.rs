//! Proofs made by one Rust core verify and apply on a sparse Rust replica; tampered proofs are
//! rejected with typed errors and change nothing.

mod common;

use common::{block, block_request, memory, missing_nodes, replica, upgrade_request, writer};
use corestore_hypercore::{
    Data, Hypercore, NodeRequest, ReceiveError, Request, UpgradeRequest, VerifiedProof, VerifyError,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The observable state of a core.
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

#[tokio::test]
async fn random_requests_verify_on_a_sparse_replica() {
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..40u64 {
        let length = rng.gen_range(1..200);
        let source =
            writer(&memory().await, 1 + (round % 5) as u8, length, rng.gen_range(1..20)).await;
        let mut r = replica(&source, round % 2 == 0).await;

        // Grow in one or two upgrades, sometimes with a block merged into the upgrade.
        let first = rng.gen_range(1..=length);
        let mut req = upgrade_request(&r, 1, first, true);
        if rng.gen_bool(0.5) {
            req.block = Some(NodeRequest { index: rng.gen_range(0..first), nodes: 0 });
        }
        let data = source.create_proof(&req).await.unwrap();
        assert_eq!(data.upgrade.as_ref().unwrap().upgrade_length(), length);
        let applied = r.receive(Data::decode(&data.encode()).unwrap()).await.unwrap();
        assert!(applied.upgraded);
        assert_eq!(r.length(), length, "additional nodes bring the replica to the full length");
        assert_eq!(r.tree_hash(), source.tree_hash());
        assert_eq!(r.manifest(), source.manifest());
        if let Some(b) = req.block {
            assert_eq!(r.get(b.index).await.unwrap(), Some(block(b.index)));
        }

        // Random blocks with exactly the nodes the replica lacks.
        for _ in 0..15 {
            let index = rng.gen_range(0..length);
            let req = block_request(&r, 2, index).await;
            let data = source.create_proof(&req).await.unwrap();
            let before = missing_nodes(&r, index).await;
            let applied = r.receive(Data::decode(&data.encode()).unwrap()).await.unwrap();
            assert_eq!(applied.block, Some(index));
            assert_eq!(r.get(index).await.unwrap(), Some(block(index)));
            assert!(r.has(index));
            assert!(before == 0 || missing_nodes(&r, index).await == 0);
        }
        // Asking for more nodes than needed still verifies (the path ends at a stored root).
        let index = rng.gen_range(0..length);
        let max = {
            let mut ite = corestore_hypercore::flat::Iter::new(2 * index);
            let mut n = 0;
            while !source.roots().iter().any(|root| root.index == ite.index) {
                ite.parent();
                n += 1;
            }
            n
        };
        let req = Request { block: Some(NodeRequest { index, nodes: max }), ..Request::default() };
        let data = source.create_proof(&req).await.unwrap();
        r.receive(data).await.unwrap();
        assert_eq!(r.get(index).await.unwrap(), Some(block(index)));
        assert_eq!(r.byte_length(), source.byte_length());
    }
}

#[tokio::test]
async fn incremental_upgrades_follow_the_writer() {
    let storage = memory().await;
    let mut source = writer(&storage, 3, 5, 5).await;
    let mut r = replica(&source, false).await;
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..30 {
        let more: Vec<Vec<u8>> =
            (source.length()..source.length() + rng.gen_range(1..30)).map(block).collect();
        source.append(&more).await.unwrap();
        let req = upgrade_request(&r, 1, source.length(), r.manifest().is_none());
        let data = source.create_proof(&req).await.unwrap();
        r.receive(data).await.unwrap();
        assert_eq!((r.length(), r.tree_hash()), (source.length(), source.tree_hash()));
        let index = rng.gen_range(0..source.length());
        let data = source.create_proof(&block_request(&r, 1, index).await).await.unwrap();
        r.receive(data).await.unwrap();
        assert_eq!(r.get(index).await.unwrap(), Some(block(index)));
    }
    // A hash request proves a tree node.
    let req = Request {
        hash: Some(NodeRequest { index: 2 * 3, nodes: missing_nodes(&r, 3).await }),
        ..Request::default()
    };
    let data = source.create_proof(&req).await.unwrap();
    assert!(data.hash.is_some());
    r.receive(data).await.unwrap();
}

#[tokio::test]
async fn tampered_proofs_are_rejected_and_change_nothing() {
    let source = writer(&memory().await, 4, 37, 4).await;
    let fresh = replica(&source, false).await;
    let req = Request {
        id: 1,
        block: Some(NodeRequest { index: 30, nodes: 0 }),
        upgrade: Some(UpgradeRequest { start: 0, length: 33 }),
        manifest: true,
        ..Request::default()
    };
    let good = source.create_proof(&req).await.unwrap();
    let bytes = good.encode();
    let reference = fresh.verify(good.clone()).await.unwrap();
    let before = state(&fresh);
    let mut rejected = 0;
    for at in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[at] ^= bit;
            let Ok(data) = Data::decode(&bad) else { continue };
            match fresh.verify(data).await {
                Err(ReceiveError::Invalid(_)) => rejected += 1,
                Err(e) => panic!("unexpected error kind {e:?}"),
                // The few bits nothing depends on (request id, an ignored patch count when the
                // manifest does not allow patches) must not change what is accepted.
                Ok(v) => {
                    assert_eq!(v.block(), reference.block(), "byte {at}");
                    let head = |p: &VerifiedProof| {
                        p.upgrade().map(|u| (u.length, u.roots.clone(), u.tree_hash))
                    };
                    assert_eq!(head(&v), head(&reference), "byte {at}");
                    assert_eq!(v.nodes(), reference.nodes(), "byte {at}");
                }
            }
            assert_eq!(state(&fresh), before);
        }
    }
    assert!(rejected > bytes.len(), "{rejected} of {} rejected", bytes.len() * 2);

    // A proof for another fork, a wrong manifest and a missing signature are typed errors.
    let mut other_fork = good.clone();
    other_fork.fork = 1;
    assert!(matches!(
        fresh.verify(other_fork).await,
        Err(ReceiveError::Invalid(VerifyError::ForkMismatch { local: 0, remote: 1 }))
    ));
    let mut foreign = good.clone();
    foreign.manifest = writer(&memory().await, 9, 1, 1).await.manifest().cloned();
    assert!(matches!(
        fresh.verify(foreign).await,
        Err(ReceiveError::Invalid(VerifyError::ManifestMismatch))
    ));
    let mut unsigned = good.clone();
    unsigned.upgrade.as_mut().unwrap().signature = None;
    assert!(matches!(
        fresh.verify(unsigned).await,
        Err(ReceiveError::Invalid(VerifyError::MissingSignature))
    ));
    let mut no_manifest = good;
    no_manifest.manifest = None;
    assert!(matches!(
        fresh.verify(no_manifest).await,
        Err(ReceiveError::Invalid(VerifyError::InvalidSignature { .. }))
    ));
}

#[tokio::test]
async fn block_proofs_need_trusted_nodes() {
    let source = writer(&memory().await, 5, 16, 16).await;
    let mut r = replica(&source, true).await;
    // Without an upgrade the replica trusts nothing yet.
    let data = source
        .create_proof(&Request {
            block: Some(NodeRequest { index: 3, nodes: 2 }),
            ..Request::default()
        })
        .await
        .unwrap();
    assert!(matches!(r.verify(data.clone()).await, Err(ReceiveError::Invalid(_))));
    r.receive(source.create_proof(&upgrade_request(&r, 1, 16, false)).await.unwrap())
        .await
        .unwrap();
    // Too few nodes: the path ends at a node the replica does not have.
    assert!(matches!(
        r.verify(data).await,
        Err(ReceiveError::Invalid(VerifyError::MissingTrustedNode { .. }))
    ));
    // A block value swapped for another block's fails the checksum.
    let mut data = source.create_proof(&block_request(&r, 1, 3).await).await.unwrap();
    data.block.as_mut().unwrap().value = block(4);
    assert!(matches!(
        r.verify(data).await,
        Err(ReceiveError::Invalid(VerifyError::ChecksumMismatch { .. }))
    ));
    // Stale: a verified upgrade cannot be applied after the core moved on.
    let mut source = source;
    source.append(&[b"x"]).await.unwrap();
    let up1 = r
        .verify(source.create_proof(&upgrade_request(&r, 1, 17, false)).await.unwrap())
        .await
        .unwrap();
    let up2 = up1.clone();
    r.apply(up1).await.unwrap();
    assert!(matches!(r.apply(up2).await, Err(ReceiveError::Stale)));
}
