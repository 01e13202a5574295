//! [`Hypercore::clear`]: dropping local blocks. The JavaScript tests of hypercore 11
//! `test/clear.js` that apply to one core are ported here (their names in the docs); the
//! replication ones are in the `corestore` facade's tests.

mod common;

use std::sync::Arc;

use common::{block, block_request, memory, replica, upgrade_request, writer};
use corestore_hypercore::{ClearError, CreateProofError, Hypercore};
use corestore_keys::KeyPair;
use corestore_storage::{DiskOptions, DiskStorage, Storage, StorageBackend};

/// The blocks `[start, end)` stored in the backend itself (not through the bitfield).
async fn stored_blocks(storage: &Arc<Storage>, core: &Hypercore, start: u64, end: u64) -> Vec<u64> {
    let cs = storage.open_core(core.discovery_key()).await.unwrap().unwrap();
    cs.blocks(start, end, usize::MAX).await.unwrap().into_iter().map(|(i, _)| i).collect()
}

/// hypercore `test/clear.js` "clear".
#[tokio::test]
async fn clear() {
    let storage = memory().await;
    let mut a = writer(&storage, 1, 0, 1).await;
    a.append(&[b"a", b"b", b"c"]).await.unwrap();
    assert_eq!(a.contiguous_length(), 3);
    let report = a.clear(1, 2).await.unwrap();
    assert_eq!((report.start, report.end, report.blocks), (1, 2, 1));
    assert_eq!(a.contiguous_length(), 1, "contig updated");
    assert!(a.has(0), "has 0");
    assert!(!a.has(1), "has not 1");
    assert!(a.has(2), "has 2");
    assert_eq!(a.get(1).await.unwrap(), None);
    assert_eq!(stored_blocks(&storage, &a, 0, 3).await, [0, 2]);
    assert_eq!((a.length(), a.byte_length()), (3, 3), "the log itself is unchanged");
}

/// hypercore `test/clear.js` "incorrect clear".
#[tokio::test]
async fn incorrect_clear() {
    let storage = memory().await;
    let mut core = writer(&storage, 2, 0, 1).await;
    core.append(&vec![b"tick"; 129]).await.unwrap();
    core.clear(127, 128).await.unwrap();
    assert!(!core.has(127));
    assert!(core.has(128));
    assert_eq!(core.get(128).await.unwrap().as_deref(), Some(&b"tick"[..]));
}

/// hypercore `test/clear.js` "clear blocks with diff option": clearing past the length clears
/// nothing; the report counts the blocks removed, 0 the second time.
#[tokio::test]
async fn clear_blocks_with_diff_option() {
    let storage = memory().await;
    let mut core = writer(&storage, 3, 0, 1).await;
    core.append(&[vec![0u8; 128]]).await.unwrap();
    let past = core.clear(1337, 1338).await.unwrap();
    assert_eq!(past.blocks, 0);
    assert_eq!((past.start, past.end), (1, 1), "clamped to the length");
    assert!(core.clear(0, 1).await.unwrap().blocks > 0);
    assert_eq!(core.clear(0, 1).await.unwrap().blocks, 0);
    assert_eq!(core.clear(0, u64::MAX).await.unwrap().blocks, 0);
}

#[tokio::test]
async fn a_range_that_starts_after_it_ends_is_refused_and_changes_nothing() {
    let storage = memory().await;
    let mut core = writer(&storage, 4, 10, 10).await;
    let err = core.clear(5, 4).await.unwrap_err();
    assert!(matches!(err, ClearError::InvalidRange { start: 5, end: 4 }), "{err:?}");
    assert_eq!(core.contiguous_length(), 10);
    assert_eq!(stored_blocks(&storage, &core, 0, 10).await.len(), 10);
}

/// hypercore `test/clear.js` "clear - no side effect from clearing unknown nodes": a replica
/// that knows the length but holds no block clears blocks it never had.
#[tokio::test]
async fn clear_no_side_effect_from_clearing_unknown_nodes() {
    let storage = memory().await;
    let writer1 = writer(&storage, 5, 4, 4).await;
    let mut clone = replica(&writer1, true).await;
    for i in 0..3 {
        assert_eq!(clone.clear(i, i + 1).await.unwrap().blocks, 0, "never had it");
    }
    clone
        .receive(writer1.create_proof(&upgrade_request(&clone, 1, 4, false)).await.unwrap())
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(clone.clear(i, i + 1).await.unwrap().blocks, 0);
    }
    let request = block_request(&clone, 2, 3).await;
    clone.receive(writer1.create_proof(&request).await.unwrap()).await.unwrap();
    assert_eq!(clone.get(3).await.unwrap(), Some(block(3)));
}

#[tokio::test]
async fn a_cleared_block_downloads_again_and_verifies_against_the_kept_tree() {
    let storage = memory().await;
    let source = writer(&storage, 6, 100, 10).await;
    let mut reader = replica(&source, true).await;
    reader
        .receive(source.create_proof(&upgrade_request(&reader, 1, 100, false)).await.unwrap())
        .await
        .unwrap();
    for i in 0..100 {
        let request = block_request(&reader, 2 + i, i).await;
        reader.receive(source.create_proof(&request).await.unwrap()).await.unwrap();
    }
    assert_eq!(reader.contiguous_length(), 100);
    assert_eq!(reader.clear(20, 40).await.unwrap().blocks, 20);
    assert_eq!(reader.contiguous_length(), 20);
    assert!((20..40).all(|i| !reader.has(i)) && reader.has(19) && reader.has(40));

    // The tree is still there: the request needs no nodes, and the block alone verifies.
    let request = block_request(&reader, 500, 25).await;
    assert_eq!(request.block.unwrap().nodes, 0, "tree nodes were kept");
    let applied = reader.receive(source.create_proof(&request).await.unwrap()).await.unwrap();
    assert_eq!(applied.block, Some(25));
    assert_eq!(reader.get(25).await.unwrap(), Some(block(25)));

    // A wrong block for a cleared index does not verify against the kept nodes.
    let request = block_request(&reader, 501, 26).await;
    let mut data = source.create_proof(&request).await.unwrap();
    if let Some(b) = data.block.as_mut() {
        b.value = b"forged".to_vec();
    }
    assert!(reader.receive(data).await.is_err());
    assert!(!reader.has(26));

    // Every cleared block back: the contiguous length is whole again.
    for i in 20..40 {
        if !reader.has(i) {
            let request = block_request(&reader, 600 + i, i).await;
            reader.receive(source.create_proof(&request).await.unwrap()).await.unwrap();
        }
    }
    assert_eq!(reader.contiguous_length(), 100);
}

#[tokio::test]
async fn a_writer_that_cleared_a_block_cannot_serve_it_but_still_appends_and_proves_others() {
    let storage = memory().await;
    let mut core = writer(&storage, 7, 50, 50).await;
    core.clear(10, 20).await.unwrap();
    let mut reader = replica(&core, true).await;
    reader
        .receive(core.create_proof(&upgrade_request(&reader, 1, 50, false)).await.unwrap())
        .await
        .unwrap();
    let request = block_request(&reader, 2, 15).await;
    assert!(matches!(
        core.create_proof(&request).await,
        Err(CreateProofError::BlockNotAvailable { index: 15 })
    ));
    let request = block_request(&reader, 3, 30).await;
    reader.receive(core.create_proof(&request).await.unwrap()).await.unwrap();
    assert_eq!(reader.get(30).await.unwrap(), Some(block(30)));
    assert_eq!(core.append(&[b"more"]).await.unwrap(), 51);
    assert_eq!(core.contiguous_length(), 10, "the hole stays a hole");
}

/// A clear survives a reopen: including the blocks after the range that only the
/// contiguous-length hint had recorded (a writer appending contiguously stores no bitfield page).
#[tokio::test]
async fn a_clear_survives_reopen_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (dk, key) = {
        let backend: Arc<dyn StorageBackend> = Arc::new(DiskStorage::open(dir.path()).unwrap());
        let storage = Storage::open(backend).await.unwrap();
        let mut core = writer(&storage, 8, 70_000, 10_000).await;
        core.clear(5, 6).await.unwrap();
        core.clear(40_000, 40_010).await.unwrap();
        core.flush().await.unwrap();
        (*core.discovery_key(), *core.key())
    };
    let backend: Arc<dyn StorageBackend> = Arc::new(DiskStorage::open(dir.path()).unwrap());
    let storage = Storage::open(backend).await.unwrap();
    let mut core = Hypercore::open_existing(&storage, &dk).await.unwrap().unwrap();
    assert_eq!(*core.key(), key);
    assert!(core.is_writable());
    assert_eq!(core.contiguous_length(), 5);
    assert!(core.has(4) && !core.has(5));
    assert!((6..40_000).all(|i| core.has(i)), "blocks after the cleared one are still there");
    assert!((40_000..40_010).all(|i| !core.has(i)));
    assert!((40_010..70_000).all(|i| core.has(i)));
    assert_eq!(core.get(6).await.unwrap(), Some(block(6)));
    assert_eq!(core.get(69_999).await.unwrap(), Some(block(69_999)));
    assert_eq!(stored_blocks(&storage, &core, 0, 70_000).await.len(), 70_000 - 11);
    assert_eq!(core.append(&[b"after reopen"]).await.unwrap(), 70_001);
}

/// hypercore `test/clear.js` "clear - large cores" (300,000 blocks; the clears straddle our
/// bitfield's page boundary of 32,768 bits as well as JavaScript's 65,536).
#[tokio::test]
async fn clear_large_cores() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn StorageBackend> = Arc::new(DiskStorage::open(dir.path()).unwrap());
    let storage = Storage::open(backend).await.unwrap();
    let mut a = Hypercore::create(&storage, KeyPair::from_seed(&[9; 32]), None).await.unwrap();
    let blocks: Vec<Vec<u8>> = (0..300_000).map(|i| format!("Block-{i}").into_bytes()).collect();
    a.append(&blocks).await.unwrap();
    assert_eq!(a.contiguous_length(), 300_000, "sanity check");
    assert_eq!(stored_blocks(&storage, &a, 0, u64::MAX).await.len(), 300_000);

    a.clear(100, 1000).await.unwrap();
    a.clear((1 << 15) - 10, (1 << 15) + 10).await.unwrap();
    a.clear((1 << 16) - 10, (1 << 16) + 10).await.unwrap();
    a.clear(290_000, 299_998).await.unwrap();

    let text = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap()).unwrap();
    for (first, end) in [
        (100, 1000),
        ((1 << 15) - 10, (1 << 15) + 10),
        ((1 << 16) - 10, (1 << 16) + 10),
        (290_000, 299_998),
    ] {
        assert_eq!(text(a.get(first - 1).await.unwrap()), format!("Block-{}", first - 1));
        assert_eq!(a.get(first).await.unwrap(), None);
        assert_eq!(a.get(end - 1).await.unwrap(), None);
        assert_eq!(text(a.get(end).await.unwrap()), format!("Block-{end}"));
        assert_eq!(
            stored_blocks(&storage, &a, first - 1, end + 1).await,
            [first - 1, end],
            "correct state in storage"
        );
    }
    assert_eq!(a.contiguous_length(), 100);
}

/// The disk log reclaims cleared blocks in compaction, as it does truncated ones.
#[tokio::test]
async fn compaction_reclaims_cleared_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskStorage::open_with(dir.path(), DiskOptions::default()).unwrap());
    let backend: Arc<dyn StorageBackend> = disk.clone();
    let storage = Storage::open(backend).await.unwrap();
    let mut core = Hypercore::create(&storage, KeyPair::from_seed(&[10; 32]), None).await.unwrap();
    let blocks = vec![vec![7u8; 1024]; 1000];
    core.append(&blocks).await.unwrap();
    disk.compact().await.unwrap();
    let before = disk.log_len();
    core.clear(0, 900).await.unwrap();
    disk.compact().await.unwrap();
    let after = disk.log_len();
    assert!(before - after > 900 * 1024, "log {before} -> {after} bytes");
    assert_eq!(core.get(950).await.unwrap().as_deref(), Some(&blocks[950][..]));
}
