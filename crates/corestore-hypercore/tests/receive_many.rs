//! [`Hypercore::receive_many`]: the answers of one read stored in one write, with exactly the
//! verdicts and the state of [`Hypercore::receive`] on each in order.

mod common;

use std::sync::Arc;

use common::{block, memory, upgrade_request, writer};
use corestore_hypercore::{Data, Hypercore, NodeRequest, ReceiveError, Request};
use corestore_storage::{FaultyStorage, MemoryStorage, Storage, StorageBackend};
use proptest::prelude::*;

fn request(id: u64, index: u64, nodes: u64) -> Request {
    Request { id, fork: 0, block: Some(NodeRequest { index, nodes }), ..Request::default() }
}

/// A replica on `backend` that took the upgrade to `source`'s length.
async fn upgraded(source: &Hypercore, backend: Arc<dyn StorageBackend>) -> Hypercore {
    let storage = Storage::open(backend).await.unwrap();
    let manifest = source.manifest().cloned();
    let mut r = Hypercore::open(&storage, *source.key(), manifest).await.unwrap();
    let up = source.create_proof(&upgrade_request(&r, 1, source.length(), true)).await.unwrap();
    r.receive(up).await.unwrap();
    r
}

/// The answers to requests for `order`, all made before any answer arrived (pipelined).
async fn answers(source: &Hypercore, r: &Hypercore, order: &[u64]) -> Vec<Data> {
    let mut out = Vec::new();
    for (id, &index) in order.iter().enumerate() {
        let q = request(id as u64 + 2, index, r.missing_nodes_hint(2 * index));
        out.push(source.create_proof(&q).await.unwrap());
    }
    out
}

/// What a core holds, compared across the two ways of receiving.
async fn state(core: &Hypercore) -> (u64, u64, Vec<Option<Vec<u8>>>) {
    let mut blocks = Vec::new();
    for i in 0..core.length() {
        blocks.push(core.get(i).await.unwrap());
    }
    (core.length(), core.contiguous_length(), blocks)
}

fn verdicts(results: &[Result<corestore_hypercore::Applied, ReceiveError>]) -> Vec<bool> {
    results.iter().map(Result::is_ok).collect()
}

/// Each answer of a pipelined window verifies on its own (its request asked for what was
/// missing then), so the whole window is one storage write.
#[tokio::test]
async fn a_window_of_answers_is_one_write_and_reopens_the_same() {
    let source = writer(&memory().await, 3, 300, 50).await;
    let inner: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let faulty = Arc::new(FaultyStorage::new(inner.clone()));
    let mut r = upgraded(&source, faulty.clone()).await;
    let order: Vec<u64> = (0..200).collect();
    let data = answers(&source, &r, &order).await;
    let writes = faulty.writes();
    let results = r.receive_many(data).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(faulty.writes() - writes, 1, "200 answers, one write");
    assert_eq!(r.contiguous_length(), 200);
    drop(r);
    let reopened =
        Hypercore::open(&Storage::open(inner).await.unwrap(), *source.key(), None).await.unwrap();
    assert_eq!(reopened.contiguous_length(), 200);
    for i in 0..300 {
        assert_eq!(reopened.get(i).await.unwrap(), (i < 200).then(|| block(i)));
    }
}

/// A failed write fails every answer of its group and changes nothing, in memory or stored;
/// the same answers go in once storage works again.
#[tokio::test]
async fn a_failed_group_write_changes_nothing() {
    let source = writer(&memory().await, 4, 64, 64).await;
    let inner: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let faulty = Arc::new(FaultyStorage::new(inner.clone()));
    let mut r = upgraded(&source, faulty.clone()).await;
    let data = answers(&source, &r, &(0..32).collect::<Vec<_>>()).await;
    let before = state(&r).await;
    faulty.fail_write_after(0);
    let results = r.receive_many(data.clone()).await;
    assert!(results.iter().all(|r| matches!(r, Err(ReceiveError::Storage(_)))));
    assert_eq!(state(&r).await, before);
    // No node of the failed group stays trusted (tree node 2, block 1's leaf, came as block
    // 0's sibling).
    assert_eq!(r.tree_node(2).await.unwrap(), None);
    faulty.heal();
    let results = r.receive_many(data).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(r.contiguous_length(), 32);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any order of answers, some forged, some repeated, with an upgrade among them: the same
    /// verdicts and the same core as receiving them one by one.
    #[test]
    fn the_same_verdicts_and_state_as_one_by_one(
        order in proptest::collection::vec(0u64..40, 1..60),
        forge in proptest::collection::vec(any::<bool>(), 60),
        upgrade_at in 0usize..60,
    ) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
            let source = writer(&memory().await, 5, 40, 40).await;
            let mut grown = writer(&memory().await, 5, 40, 40).await;
            grown.append(&[b"one more".to_vec()]).await.unwrap();
            let mut a = upgraded(&source, Arc::new(MemoryStorage::new())).await;
            let mut b = upgraded(&source, Arc::new(MemoryStorage::new())).await;
            let mut data = answers(&source, &a, &order).await;
            for (d, f) in data.iter_mut().zip(&forge) {
                if *f {
                    d.block.as_mut().unwrap().value.push(1);
                }
            }
            let up = grown.create_proof(&upgrade_request(&a, 99, 41, false)).await.unwrap();
            data.insert(upgrade_at.min(data.len()), up);
            let mut one_by_one = Vec::new();
            for d in data.clone() {
                one_by_one.push(a.receive(d).await);
            }
            let grouped = b.receive_many(data).await;
            prop_assert_eq!(verdicts(&one_by_one), verdicts(&grouped));
            prop_assert_eq!(state(&a).await, state(&b).await);
            Ok(())
        })?;
    }
}
