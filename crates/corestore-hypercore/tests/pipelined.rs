//! Pipelined downloads: requests sent while earlier ones are in flight ask for whole paths
//! ([`Hypercore::missing_nodes_hint`]), and verification stops at the first trusted node held
//! in memory (`verify_known`), so a sequential download hashes about one parent per block.

mod common;

use common::{block, memory, replica, upgrade_request, writer};
use corestore_hypercore::{Data, Hypercore, NodeRequest, ReceiveError, Request, VerifyError};
use proptest::prelude::*;

fn request(id: u64, fork: u64, index: u64, nodes: u64) -> Request {
    Request { id, fork, block: Some(NodeRequest { index, nodes }), ..Request::default() }
}

/// Every request of a 64-block window is made before any answer arrives (full paths), then the
/// answers are received in order: each verifies, and after the first few each stores only
/// what is new (the rest of its path is already trusted).
#[tokio::test]
async fn a_window_of_full_path_proofs_verifies_in_order_and_stores_no_duplicate() {
    let storage = memory().await;
    let source = writer(&storage, 7, 64, 64).await;
    let mut r = replica(&source, true).await;
    let up = source.create_proof(&upgrade_request(&r, 1, 64, true)).await.unwrap();
    r.receive(up).await.unwrap();
    let requests: Vec<Request> =
        (0..64).map(|i| request(i + 2, 0, i, r.missing_nodes_hint(2 * i))).collect();
    assert!(requests.iter().all(|q| q.block.unwrap().nodes == 6), "whole paths: 6 levels");
    let mut stored = 0;
    for (i, q) in requests.iter().enumerate() {
        let data = source.create_proof(q).await.unwrap();
        let proof = r.verify(Data::decode(&data.encode()).unwrap()).await.unwrap();
        stored += proof.nodes().len();
        r.apply(proof).await.unwrap();
        assert_eq!(r.get(i as u64).await.unwrap(), Some(block(i as u64)));
    }
    // The whole tree of 64 leaves has 127 nodes, the root was known from the upgrade.
    assert_eq!(stored, 126, "every node stored once");
    assert_eq!(r.contiguous_length(), 64);
}

/// A forged block whose path meets a trusted node early must still be refused there: the
/// block after a verified one has its leaf known already (it came as the sibling), so a wrong
/// value fails at the leaf, whatever the rest of the proof says.
#[tokio::test]
async fn a_wrong_block_is_refused_at_the_first_trusted_node() {
    let storage = memory().await;
    let source = writer(&storage, 8, 16, 16).await;
    let mut r = replica(&source, true).await;
    r.receive(source.create_proof(&upgrade_request(&r, 1, 16, true)).await.unwrap()).await.unwrap();
    let first = source.create_proof(&request(2, 0, 4, r.missing_nodes_hint(8))).await.unwrap();
    r.receive(first).await.unwrap();

    // Block 5: its leaf (tree node 10) is trusted now; a full path proof with another value.
    let mut forged = source.create_proof(&request(3, 0, 5, 4)).await.unwrap();
    forged.block.as_mut().unwrap().value = b"not block five".to_vec();
    assert!(matches!(
        r.receive(forged).await,
        Err(ReceiveError::Invalid(VerifyError::ChecksumMismatch { index: 10 }))
    ));
    // Block 6: leaf unknown, parent (tree node 13) trusted; a sibling leaf with another hash.
    let mut forged = source.create_proof(&request(4, 0, 6, 4)).await.unwrap();
    forged.block.as_mut().unwrap().nodes[0].hash[0] ^= 1;
    assert!(matches!(
        r.receive(forged).await,
        Err(ReceiveError::Invalid(VerifyError::ChecksumMismatch { index: 13 }))
    ));
    // Nothing of the forgeries was stored; the honest proofs still go in.
    assert!(!r.has(5) && !r.has(6));
    for index in [5, 6] {
        let data = source.create_proof(&request(5, 0, index, 4)).await.unwrap();
        r.receive(data).await.unwrap();
        assert_eq!(r.get(index).await.unwrap(), Some(block(index)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The hint never asks for fewer nodes than the exact count, and equals it while every
    /// stored node is in memory (the replica's nodes all came through this instance).
    #[test]
    fn the_hint_is_never_below_the_exact_count(length in 1u64..200, picks in proptest::collection::vec(0u64..200, 0..20)) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
            let storage = memory().await;
            let source = writer(&storage, 9, length, 7).await;
            let replica_storage = memory().await;
            let manifest = source.manifest().cloned();
            let mut r = Hypercore::open(&replica_storage, *source.key(), manifest).await.unwrap();
            r.receive(source.create_proof(&upgrade_request(&r, 1, length, true)).await.unwrap())
                .await
                .unwrap();
            for (id, pick) in picks.iter().enumerate() {
                let index = pick % length;
                let nodes = r.missing_nodes(2 * index).await.unwrap();
                prop_assert_eq!(r.missing_nodes_hint(2 * index), nodes);
                let data = source.create_proof(&request(id as u64 + 2, 0, index, nodes)).await.unwrap();
                r.receive(data).await.unwrap();
            }
            // Reopened from storage: the cache is cold, the hint may only be larger.
            drop(r);
            let reopened = Hypercore::open(&replica_storage, *source.key(), None).await.unwrap();
            for index in 0..length {
                prop_assert!(reopened.missing_nodes_hint(2 * index) >= reopened.missing_nodes(2 * index).await.unwrap());
            }
            Ok(())
        })?;
    }
}
