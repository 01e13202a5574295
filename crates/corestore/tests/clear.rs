//! `Core::clear(range)` while replicating, over in-memory streams on a paused clock (timeouts
//! jump ahead when everything waits: no sleeps). The replication tests of hypercore 11
//! `test/clear.js` are ported here under their JavaScript names.

use std::ops::Bound;
use std::time::Duration;

use corestore::{BlockError, ClearError, CoreRef, Corestore, GetOptions, Replication};

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(600), f).await.expect("finished in time")
}

fn replicate(a: &Corestore, b: &Corestore) -> (Replication, Replication) {
    corestore::testing::connect(a, b).unwrap()
}

async fn memory() -> Corestore {
    Corestore::in_memory().await.unwrap()
}

fn blocks(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("block {i}").into_bytes()).collect()
}

/// The brief's scenario: A writes 100 blocks, B downloads them and clears 20..40, then gets 25
/// again from A; A (the writer) clears 60..70 for good and nobody can fetch those any more.
#[tokio::test(start_paused = true)]
async fn a_reader_clears_and_downloads_again_and_a_writer_clears_for_good() {
    let (a, b) = (memory().await, memory().await);
    let writer = a.get(CoreRef::name("log")).await.unwrap();
    writer.append_batch(&blocks(100)).await.unwrap();
    let _link = replicate(&a, &b);
    let reader = b.get(*writer.key()).await.unwrap();
    assert!(within(reader.update(None)).await.unwrap());
    let download = reader.download(0, Some(100)).await.unwrap();
    within(download.done()).await;
    drop(download);
    assert_eq!(reader.contiguous_length(), 100);

    let cleared = reader.clear(20..40).await.unwrap();
    assert_eq!((cleared.start, cleared.end, cleared.blocks), (20, 40, 20));
    for i in 20..40 {
        assert!(!reader.has(i).await.unwrap(), "block {i} is cleared");
    }
    assert!(reader.has(19).await.unwrap() && reader.has(40).await.unwrap());
    assert_eq!(reader.contiguous_length(), 20);
    assert_eq!(reader.length(), 100, "the log itself is unchanged");
    assert_eq!(within(reader.get(25)).await.unwrap(), Some(b"block 25".to_vec()), "re-downloaded");
    assert!(reader.has(25).await.unwrap() && !reader.has(24).await.unwrap());

    // The writer clears blocks the reader also dropped: nobody has them now.
    assert_eq!(writer.clear(60..70).await.unwrap().blocks, 10);
    assert_eq!(reader.clear(60..70).await.unwrap().blocks, 10);
    let waiting =
        b.get_with(*writer.key(), GetOptions::new().timeout(Duration::from_secs(5))).await.unwrap();
    assert!(matches!(waiting.get(65).await, Err(BlockError::Timeout { index: 65, .. })));
    let quick = b.get_with(*writer.key(), GetOptions::new().wait(false)).await.unwrap();
    assert_eq!(quick.get(65).await.unwrap(), None);
    // ... and the writer serves everything it kept.
    assert_eq!(within(reader.get(30)).await.unwrap(), Some(b"block 30".to_vec()));
    assert_eq!(writer.append(b"more").await.unwrap(), 101, "a writer that cleared still writes");
}

/// hypercore `test/clear.js` "clear + replication": the writer clears a block and downloads
/// it back from its reader.
#[tokio::test(start_paused = true)]
async fn clear_and_replication() {
    let (sa, sb) = (memory().await, memory().await);
    let a = sa.get(CoreRef::name("a")).await.unwrap();
    let _link = replicate(&sa, &sb);
    let b = sb.get(*a.key()).await.unwrap();
    a.append_batch(&[b"a", b"b", b"c"]).await.unwrap();
    within(b.update(None)).await.unwrap();
    within(b.download(0, Some(3)).await.unwrap().done()).await;
    a.clear(1..2).await.unwrap();
    assert!(!a.has(1).await.unwrap(), "a cleared");
    assert!(b.has(1).await.unwrap(), "b not cleared");
    assert_eq!(within(a.get(1)).await.unwrap().as_deref(), Some(&b"b"[..]), "a downloaded from b");
}

/// hypercore `test/clear.js` "clear + replication, gossip": a - b - c; b clears a block c
/// wants, so c gets it only once b has downloaded it again from a.
#[tokio::test(start_paused = true)]
async fn clear_and_replication_gossip() {
    let (sa, sb, sc) = (memory().await, memory().await, memory().await);
    let a = sa.get(CoreRef::name("a")).await.unwrap();
    let _ab = replicate(&sa, &sb);
    let _bc = replicate(&sb, &sc);
    let b = sb.get(*a.key()).await.unwrap();
    let c = sc.get(*a.key()).await.unwrap();
    a.append_batch(&[b"a", b"b", b"c"]).await.unwrap();
    within(b.update(None)).await.unwrap();
    within(b.download(0, Some(3)).await.unwrap().done()).await;
    within(c.update(None)).await.unwrap();
    assert_eq!(c.length(), 3);

    b.clear(1..2).await.unwrap();
    assert!(a.has(1).await.unwrap(), "a not cleared");
    assert!(!b.has(1).await.unwrap(), "b cleared");
    let quick = sc.get_with(*a.key(), GetOptions::new().wait(false)).await.unwrap();
    assert_eq!(quick.get(1).await.unwrap(), None);
    // JavaScript checks "c not downloaded" after an event flush; here c waits in vain.
    let patient =
        sc.get_with(*a.key(), GetOptions::new().timeout(Duration::from_secs(1))).await.unwrap();
    assert!(matches!(patient.get(1).await, Err(BlockError::Timeout { .. })), "c not downloaded");
    assert_eq!(within(b.get(1)).await.unwrap().as_deref(), Some(&b"b"[..]), "b downloaded from a");
    let got = within(c.get(1)).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"b"[..]), "c downloaded from b");
}

#[tokio::test]
async fn a_clear_survives_reopen_and_a_closed_session_cannot_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = Corestore::open(dir.path()).await.unwrap();
    let core = store.get(CoreRef::name("log")).await.unwrap();
    core.append_batch(&blocks(10)).await.unwrap();
    assert_eq!(core.clear(3..=4).await.unwrap().blocks, 2);
    assert_eq!(core.clear(8..).await.unwrap().blocks, 2);
    assert_eq!(core.clear(..).await.unwrap().blocks, 6);
    assert_eq!(core.clear(..).await.unwrap().blocks, 0);
    let backwards = (Bound::Included(5), Bound::Excluded(4));
    assert!(matches!(
        core.clear(backwards).await,
        Err(ClearError::Core(corestore::hypercore::ClearError::InvalidRange { start: 5, end: 4 }))
    ));
    let session = core.clone();
    session.close().await;
    drop(core);
    store.close().await.unwrap();

    let store = Corestore::open(dir.path()).await.unwrap();
    let core = store.get(CoreRef::name("log")).await.unwrap();
    assert_eq!((core.length(), core.contiguous_length()), (10, 0));
    for i in 0..10 {
        assert!(!core.has(i).await.unwrap());
    }
    let closed = core.clone();
    store.close().await.unwrap();
    assert!(matches!(closed.clear(0..1).await, Err(ClearError::Closed)));
}
