//! The JavaScript corestore v6.18.4 `test/replication.js` suite, ported (each test names its
//! original), over in-memory duplex streams, plus the case no JavaScript test covers: a peer
//! without the key learns nothing.

use std::time::Duration;

use corestore::{CoreRef, Corestore, PrimaryKey, Replication, SessionOptions};
use futures::{StreamExt, TryStreamExt};

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("finished within 60 s")
}

/// `replicate(t, store1, store2)`: store1 initiates.
fn replicate(a: &Corestore, b: &Corestore) -> (Replication, Replication) {
    let (x, y) = tokio::io::duplex(256 * 1024);
    (a.replicate(x, true).unwrap(), b.replicate(y, false).unwrap())
}

async fn memory() -> Corestore {
    Corestore::in_memory().await.unwrap()
}

fn name(n: &str) -> CoreRef {
    CoreRef::name(n)
}

/// JS: `basic replication`.
#[tokio::test]
async fn basic_replication() {
    let (store1, store2) = (memory().await, memory().await);
    let core1 = store1.get(name("core-1")).await.unwrap();
    let core2 = store1.get(name("core-2")).await.unwrap();
    core1.append(b"hello").await.unwrap();
    core2.append(b"world").await.unwrap();
    let core3 = store2.get(*core1.key()).await.unwrap();
    let core4 = store2.get(*core2.key()).await.unwrap();
    let _streams = replicate(&store1, &store2);
    assert_eq!(within(core3.get(0)).await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(within(core4.get(0)).await.unwrap().as_deref(), Some(&b"world"[..]));
}

/// JS: `replicating cores created after replication begins`.
#[tokio::test]
async fn replicating_cores_created_after_replication_begins() {
    let (store1, store2) = (memory().await, memory().await);
    let _streams = replicate(&store1, &store2);
    let core1 = store1.get(name("core-1")).await.unwrap();
    let core2 = store1.get(name("core-2")).await.unwrap();
    core1.append(b"hello").await.unwrap();
    core2.append(b"world").await.unwrap();
    let core3 = store2.get(*core1.key()).await.unwrap();
    let core4 = store2.get(*core2.key()).await.unwrap();
    assert_eq!(within(core3.get(0)).await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(within(core4.get(0)).await.unwrap().as_deref(), Some(&b"world"[..]));
}

/// JS: `replicating cores using discovery key hook` (store1 has the core in storage only).
#[tokio::test]
async fn replicating_cores_using_discovery_key_hook() {
    let dir = tempfile::tempdir().unwrap();
    let store1 = Corestore::open(dir.path()).await.unwrap();
    let core = store1.get(name("main")).await.unwrap();
    core.append(b"hello").await.unwrap();
    let key = *core.key();
    drop(core);
    store1.close().await.unwrap();
    let store1 = Corestore::open(dir.path()).await.unwrap();
    assert_eq!(store1.stats().open_cores, 0);
    let store2 = memory().await;
    let (s1, s2) = replicate(&store1, &store2);
    let core2 = store2.get(key).await.unwrap();
    assert_eq!(within(core2.get(0)).await.unwrap().as_deref(), Some(&b"hello"[..]));
    s1.close();
    s2.close();
    let _ = within(s1.finished()).await;
    store1.close().await.unwrap();
}

/// JS: `session replication`: namespaces and sessions with their own primary keys share the
/// root's replication streams.
#[tokio::test]
async fn session_replication() {
    let store1 = memory().await;
    let store2 =
        Corestore::builder().primary_key(PrimaryKey::from_bytes([b'a'; 32])).open().await.unwrap();
    let ns1 = store1.namespace("a").unwrap();
    let ns2 = store2.namespace("a").unwrap();
    let ns3 = ns1.session(SessionOptions::new().primary_key(store2.primary_key().clone())).unwrap();
    let ns1core = ns1.get(name("main")).await.unwrap();
    let ns2core = ns2.get(name("main")).await.unwrap();
    let ns3core = ns3.get(name("main")).await.unwrap();
    assert_ne!(ns3core.key(), ns1core.key(), "override primaryKey");
    assert_eq!(ns3core.key(), ns2core.key(), "inherit namespace");
    let reset = ns3
        .session(
            SessionOptions::new()
                .primary_key(store1.primary_key().clone())
                .namespace(corestore::Namespace::ROOT),
        )
        .unwrap();
    let core0 = store1.get(name("main")).await.unwrap();
    let core1 = reset.get(name("main")).await.unwrap();
    assert_eq!(core1.key(), core0.key(), "reset namespace and primaryKey");
    core1.append(b"hello").await.unwrap();
    let remote = memory().await;
    let _streams = replicate(&remote, &store1);
    let clone1 = remote.get(*core1.key()).await.unwrap();
    assert_eq!(
        within(clone1.get(0)).await.unwrap().as_deref(),
        Some(&b"hello"[..]),
        "share replication streams with a session"
    );
}

/// JS: `on-off replication`: a core closed and reopened while the stream stays up.
#[tokio::test]
async fn on_off_replication() {
    let (store1, store2) = (memory().await, memory().await);
    let _streams = replicate(&store1, &store2);
    let a = store1.get(name("a")).await.unwrap();
    let key = *a.key();
    tokio::task::yield_now().await;
    a.close().await;
    let clone = store2.get(key).await.unwrap();
    tokio::task::yield_now().await;
    let a2 = store1.get(name("a")).await.unwrap();
    a2.append(b"hello world").await.unwrap();
    assert!(within(clone.get(0)).await.unwrap().is_some(), "replicated");
}

/// JS: `active replication`: an active store offers its open cores on a new stream at once.
#[tokio::test]
async fn active_replication() {
    let (store1, store2) = (memory().await, memory().await);
    let a = store1.get(name("a")).await.unwrap();
    let b = store1.get(name("b")).await.unwrap();
    a.append(b"hello").await.unwrap();
    b.append(b"world").await.unwrap();
    assert_eq!(a.peer_count() + b.peer_count(), 0);
    let _streams = replicate(&store1, &store2);
    let c = store2.get(*a.key()).await.unwrap();
    assert_eq!(within(c.get(0)).await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert!(a.peer_count() > 0, "a replicates on the stream");
}

/// JS: `passive replication`: a passive store attaches nothing itself, but answers the remote.
#[tokio::test]
async fn passive_replication() {
    let store1 = Corestore::builder().passive(true).open().await.unwrap();
    let store2 = memory().await;
    let a = store1.get(name("a")).await.unwrap();
    let b = store1.get(name("b")).await.unwrap();
    a.append(b"hello").await.unwrap();
    b.append(b"world").await.unwrap();
    let _streams = replicate(&store1, &store2);
    // A core store2 does not open: the passive side never offers it.
    let other = store1.get(name("other")).await.unwrap();
    let c = store2.get(*a.key()).await.unwrap();
    let d = store2.get(*b.key()).await.unwrap();
    assert_eq!(within(c.get(0)).await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(within(d.get(0)).await.unwrap().as_deref(), Some(&b"world"[..]));
    assert!(a.peer_count() > 0 && b.peer_count() > 0);
    assert_eq!(other.peer_count(), 0);
    assert_eq!(store2.stats().open_cores, 2, "store2 learned of no other core");
}

/// JS: `passive replication does not leak any sessions`: a core opened for a peer closes
/// after the stream ends.
#[tokio::test(start_paused = true)]
async fn passive_replication_does_not_leak_any_sessions() {
    let store1 = Corestore::builder().linger(Duration::from_millis(50)).open().await.unwrap();
    let store2 = memory().await;
    let a = store1.get(name("a")).await.unwrap();
    a.append(b"hello").await.unwrap();
    let key = *a.key();
    a.close().await;
    assert_eq!(store1.stats().open_cores, 0);
    let (s1, s2) = replicate(&store1, &store2);
    let b = store2.get(key).await.unwrap();
    within(b.get(0)).await.unwrap();
    assert_eq!(store1.stats().open_cores, 1);
    s1.close();
    let _ = within(s1.finished()).await;
    let _ = within(s2.finished()).await;
    within(async {
        while store1.stats().open_cores > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    b.close().await;
}

async fn auto_close_when_inactive(linger: Duration) {
    let store1 = Corestore::builder().linger(linger).open().await.unwrap();
    let store2 = Corestore::builder().linger(linger).open().await.unwrap();
    let a = store1.get(name("a")).await.unwrap();
    for block in [&b"testing 1"[..], b"testing 2", b"testing 3"] {
        a.append(block).await.unwrap();
    }
    let _streams = replicate(&store1, &store2);
    let key = *a.key();
    let b = store2.get(key).await.unwrap();
    assert_eq!(within(b.get(0)).await.unwrap().as_deref(), Some(&b"testing 1"[..]));
    a.close().await;
    b.close().await;
    within(async {
        while store1.stats().open_cores + store2.stats().open_cores > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let c = store2.get(key).await.unwrap();
    assert_eq!(
        within(c.get(1)).await.unwrap().as_deref(),
        Some(&b"testing 2"[..]),
        "re-replication still works"
    );
    c.close().await;
    let d = store2.get(key).await.unwrap();
    assert_eq!(
        within(d.get(2)).await.unwrap().as_deref(),
        Some(&b"testing 3"[..]),
        "re-replication still works"
    );
}

/// JS: `replication sessions auto close when inactive`.
#[tokio::test(start_paused = true)]
async fn replication_sessions_auto_close_when_inactive() {
    auto_close_when_inactive(Duration::ZERO).await;
}

/// JS: `replication sessions auto close when inactive with linger`.
#[tokio::test(start_paused = true)]
async fn replication_sessions_auto_close_when_inactive_with_linger() {
    auto_close_when_inactive(Duration::from_millis(50)).await;
}

/// JS: `remotely open a core`.
#[tokio::test]
async fn remotely_open_a_core() {
    let (store1, store2) = (memory().await, memory().await);
    let core = store1.get(name("core-1")).await.unwrap();
    core.append(b"a").await.unwrap();
    let key = *core.key();
    core.close().await;
    let mut opened = store1.watch().unwrap();
    let _streams = replicate(&store1, &store2);
    let clone = store2.get(key).await.unwrap();
    assert!(within(clone.update(None)).await.unwrap());
    assert_eq!(clone.length(), 1);
    assert_eq!(within(clone.get(0)).await.unwrap().as_deref(), Some(&b"a"[..]));
    let first = within(opened.next()).await.expect("store1 opened a core");
    assert_eq!(first.key(), &key, "core opened");
}

/// JS: `replication -- opening a core only affects direct replications`: in 1–2–3, store 1
/// opening a core makes store 2 open it, and store 3 not.
#[tokio::test]
async fn opening_a_core_only_affects_direct_replications() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let open = |i: usize| Corestore::open(dirs[i].path());
    let key;
    {
        let (store1, store2, store3) =
            (open(0).await.unwrap(), open(1).await.unwrap(), open(2).await.unwrap());
        let _a = replicate(&store1, &store2);
        let _b = replicate(&store1, &store3);
        let core1 = store1.get(name("core-1")).await.unwrap();
        core1.append(b"hello").await.unwrap();
        key = *core1.key();
        let core2 = store2.get(key).await.unwrap();
        within(core2.get(0)).await.unwrap();
        let core3 = store3.get(key).await.unwrap();
        within(core3.get(0)).await.unwrap();
        for s in [&store1, &store2, &store3] {
            assert_eq!(s.stats().open_cores, 1, "sanity check: 1 core initially");
        }
        drop((core1, core2, core3));
        for s in [store1, store2, store3] {
            s.close().await.unwrap();
        }
    }
    let (store1, store2, store3) =
        (open(0).await.unwrap(), open(1).await.unwrap(), open(2).await.unwrap());
    let mut opened2 = store2.watch().unwrap();
    let mut opened3 = store3.watch().unwrap();
    let _s12 = replicate(&store1, &store2);
    let _s23 = replicate(&store2, &store3);
    let reopened1 = store1.get(key).await.unwrap();
    assert_eq!(store1.stats().open_cores, 1);
    let got = within(opened2.next()).await.expect("store 2 opens the core");
    assert_eq!(got.key(), &key);
    // A barrier: a core store 2 opens itself reaches store 3 over the same stream, after
    // anything store 2 would have offered for the peer-opened core.
    let barrier = store2.get(name("barrier")).await.unwrap();
    barrier.append(b"x").await.unwrap();
    let seen = store3.get(*barrier.key()).await.unwrap();
    within(seen.get(0)).await.unwrap();
    let first = within(opened3.next()).await.unwrap();
    assert_eq!(first.key(), barrier.key());
    assert_eq!(store3.stats().open_cores, 1, "store 3 opened only the barrier core");
    drop(reopened1);
}

/// No JavaScript test covers it: a peer that does not know a core's key learns nothing of it,
/// even when it replicates with a store that holds it.
#[tokio::test]
async fn a_peer_without_the_key_learns_nothing() {
    let (store1, store2) = (memory().await, memory().await);
    let secret = store1.get(name("secret")).await.unwrap();
    secret.append(b"private").await.unwrap();
    let known = store1.get(name("known")).await.unwrap();
    known.append(b"public").await.unwrap();
    let mut opened = store2.watch().unwrap();
    let _streams = replicate(&store1, &store2);
    let mine = store2.get(*known.key()).await.unwrap();
    assert_eq!(within(mine.get(0)).await.unwrap().as_deref(), Some(&b"public"[..]));
    assert_eq!(within(opened.next()).await.unwrap().key(), known.key());
    assert_eq!(store2.stats().open_cores, 1);
    let listed: Vec<_> = store2.list().try_collect().await.unwrap();
    assert_eq!(listed, vec![*known.discovery_key()], "nothing else stored");
    assert_eq!(secret.peer_count(), 0, "the secret core has no peer");
}
