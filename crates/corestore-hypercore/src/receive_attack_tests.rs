//! [`Hypercore::receive_many`] attacked through the node cache (issue 9): the nodes a group pins
//! must stay trusted until the group is written, whatever the cache does meanwhile.

use std::sync::Arc;

use corestore_keys::KeyPair;
use corestore_storage::{MemoryStorage, Storage, StorageBackend};

use crate::hash::Node;
use crate::message::{Data, NodeRequest, Request, UpgradeRequest};
use crate::nodes::NODE_CACHE_LIMIT;
use crate::Hypercore;

async fn store() -> Arc<Storage> {
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    Storage::open(backend).await.unwrap()
}

fn block(i: u64) -> Vec<u8> {
    format!("block {i}").into_bytes()
}

/// A verdict, printed (`ReceiveError` holds I/O errors, so it has no `PartialEq`).
fn verdict(result: Result<crate::Applied, crate::ReceiveError>) -> String {
    format!("{:?}", result.map(|a| a.block))
}

async fn proof(source: &Hypercore, index: u64, nodes: u64) -> Data {
    let request =
        Request { id: 1, block: Some(NodeRequest { index, nodes }), ..Request::default() };
    source.create_proof(&request).await.unwrap()
}

/// A replica of `source` (upgraded to its length) that downloaded block 0 one by one.
async fn replica(source: &Hypercore) -> Hypercore {
    let mut r = Hypercore::open(&store().await, *source.key(), None).await.unwrap();
    let upgrade = Request {
        id: 1,
        upgrade: Some(UpgradeRequest { start: 0, length: source.length() }),
        manifest: true,
        ..Request::default()
    };
    r.receive(source.create_proof(&upgrade).await.unwrap()).await.unwrap();
    let nodes = r.missing_nodes(0).await.unwrap();
    r.receive(proof(source, 0, nodes).await).await.unwrap();
    r
}

/// Fills `core`'s cache up to its limit with nodes far outside its tree, all at depth 20 (above
/// every node of a 64-block tree), as the cache of a large core is full of upper tree levels.
fn fill_to_the_limit(core: &Hypercore) {
    let depth_20 = (1u64 << 20) - 1;
    let mut k = 1;
    while core.cache.len() < NODE_CACHE_LIMIT {
        core.cache.fill(Node { index: depth_20 + k * (1 << 21), size: 1, hash: [0; 32] });
        k += 1;
    }
    assert_eq!(core.cache.len(), NODE_CACHE_LIMIT);
}

/// A group whose first proof pins the nodes of block 40's path, whose second proof reads a
/// stored node that is not cached (the cache, full, evicts its lowest levels to make room: the
/// pinned nodes, never written, among them), and whose third proof, for block 41, ends at
/// block 41's leaf, which the first proof brought (a peer may send fewer nodes than asked
/// when it knows the receiver has them, as after the first proof it does).
///
/// One by one, all three are stored. Grouped, the pinned leaf was evicted before the group was
/// written, so the third proof fails with `MissingTrustedNode` (`ReceiveError::Invalid`, which
/// drops the peer that sent a valid block).
#[tokio::test]
async fn nodes_pinned_by_a_group_survive_a_full_cache() {
    let mut source =
        Hypercore::create(&store().await, KeyPair::from_seed(&[9; 32]), None).await.unwrap();
    let blocks: Vec<Vec<u8>> = (0..64).map(block).collect();
    source.append(&blocks).await.unwrap();

    let mut one_by_one = replica(&source).await;
    let a = proof(&source, 40, one_by_one.missing_nodes(80).await.unwrap()).await;
    let c = proof(&source, 1, 0).await;
    // Block 41 proved up to its own leaf (tree node 82), which `a` carries as a sibling.
    let b = proof(&source, 41, 0).await;
    assert!(b.block.as_ref().unwrap().nodes.is_empty());
    let group = vec![a, c, b];

    let mut expected = Vec::new();
    for d in group.clone() {
        expected.push(verdict(one_by_one.receive(d).await));
    }
    assert_eq!(expected, ["Ok(Some(40))", "Ok(Some(1))", "Ok(Some(41))"]);

    let mut grouped = replica(&source).await;
    grouped.cache.clear();
    // The nodes block 40's proof is checked against are cached (no read while verifying it).
    grouped.missing_nodes(80).await.unwrap();
    fill_to_the_limit(&grouped);
    let results: Vec<String> = grouped.receive_many(group).await.into_iter().map(verdict).collect();
    assert_eq!(results, expected);
    for i in [0, 1, 40, 41] {
        assert_eq!(grouped.get(i).await.unwrap(), Some(block(i)));
    }
    assert!(grouped.cache.len() <= NODE_CACHE_LIMIT, "the bound is back once written");
}
