//! Unit tests of the cache rules, on paused tokio time (no sleeps).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::Notify;

use crate::{Cache, CacheError, Closeable};

const LINGER: Duration = Duration::from_secs(5);
const JUST_BEFORE: Duration = Duration::from_millis(4999);

#[derive(Debug, Default)]
struct Probe {
    closes: AtomicUsize,
    /// When set, `close` waits for a notification before finishing.
    gate: Option<Arc<Notify>>,
}

impl Closeable for Probe {
    fn close(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            self.closes.fetch_add(1, Ordering::SeqCst);
        })
    }
}

fn closes(p: &Probe) -> usize {
    p.closes.load(Ordering::SeqCst)
}

type Res = Result<Probe, std::io::Error>;

#[tokio::test(start_paused = true)]
async fn concurrent_opens_run_the_opener_once() {
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let opened = AtomicUsize::new(0);
    let open = || async {
        opened.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        Res::Ok(Probe::default())
    };
    let (a, b, c) = tokio::join!(cache.open(1, open), cache.open(1, open), cache.open(1, open));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert!(Arc::ptr_eq(a.value(), b.value()) && Arc::ptr_eq(b.value(), c.value()));
    assert_eq!(cache.sessions(&1), 3);
    drop((a, b));
    assert_eq!(closes(c.value()), 0);
    let value = c.value().clone();
    c.close().await;
    assert_eq!(closes(&value), 1);
    assert!(cache.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_or_failed_opener_lets_the_next_caller_open() {
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let never = cache.open(1, futures::future::pending::<Res>);
    assert!(tokio::time::timeout(Duration::from_secs(1), never).await.is_err());
    let failed = cache.open(1, || async { Res::Err(std::io::Error::other("disk")) }).await;
    assert!(matches!(failed, Err(CacheError::Open(_))));
    assert!(cache.is_empty());
    let ok = cache.open(1, || async { Res::Ok(Probe::default()) }).await.unwrap();
    assert_eq!(cache.sessions(&1), 1);
    drop(ok);
}

#[tokio::test(start_paused = true)]
async fn clones_are_sessions_and_drop_closes_the_last() {
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let a = cache.open(1, || async { Res::Ok(Probe::default()) }).await.unwrap();
    let b = a.clone();
    let c = cache.session(&1).unwrap();
    assert_eq!(cache.sessions(&1), 3);
    let value = a.value().clone();
    drop(a);
    drop(b);
    assert_eq!(closes(&value), 0);
    drop(c);
    tokio::task::yield_now().await; // the close runs on a spawned task
    assert_eq!(closes(&value), 1);
    assert!(cache.is_empty());
    assert!(cache.session(&1).is_none());
}

#[tokio::test(start_paused = true)]
async fn reopening_during_a_close_waits_for_it_then_opens_fresh() {
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let a = cache.open(1, || async { Res::Ok(Probe { gate: Some(g), ..Probe::default() }) });
    let a = a.await.unwrap();
    let old = a.value().clone();
    drop(a); // close in flight, held at the gate
    tokio::task::yield_now().await;
    let reopen = cache.open(1, || async {
        assert_eq!(closes(&old), 1, "opened before the old value finished closing");
        Res::Ok(Probe::default())
    });
    tokio::pin!(reopen);
    assert!(futures::poll!(reopen.as_mut()).is_pending());
    gate.notify_one();
    let fresh = reopen.await.unwrap();
    assert!(!Arc::ptr_eq(fresh.value(), &old));
    assert_eq!(closes(&old), 1);
    assert_eq!(closes(fresh.value()), 0);
}

#[tokio::test(start_paused = true)]
async fn weak_values_linger_then_close_unless_a_session_takes_them() {
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let weak = cache.open_weak(1, || async { Res::Ok(Probe::default()) }).await.unwrap();
    assert_eq!(cache.sessions(&1), 0);
    tokio::time::sleep(JUST_BEFORE).await;
    assert_eq!(closes(&weak), 0);
    assert!(cache.touch(&1)); // activity pushes the deadline
    tokio::time::sleep(JUST_BEFORE).await;
    assert_eq!(closes(&weak), 0);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(closes(&weak), 1);
    assert!(cache.is_empty());

    // A session taken during the linger keeps it; its release after the deadline closes it.
    let weak = cache.open_weak(2, || async { Res::Ok(Probe::default()) }).await.unwrap();
    let strong = cache.open(2, || async { Res::Ok(Probe::default()) }).await.unwrap();
    assert!(Arc::ptr_eq(&weak, strong.value()));
    tokio::time::sleep(LINGER * 2).await;
    assert_eq!(closes(&weak), 0);
    strong.close().await;
    assert_eq!(closes(&weak), 1);

    // Released within the linger: it stays until the deadline.
    let weak = cache.open_weak(3, || async { Res::Ok(Probe::default()) }).await.unwrap();
    let strong = cache.open(3, || async { Res::Ok(Probe::default()) }).await.unwrap();
    strong.close().await;
    assert_eq!(closes(&weak), 0);
    tokio::time::sleep(LINGER + Duration::from_millis(1)).await;
    assert_eq!(closes(&weak), 1);
}

#[tokio::test(start_paused = true)]
async fn store_close_closes_everything_ends_watchers_and_refuses_opens() {
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let mut watcher = cache.watch();
    let a = cache.open(1, || async { Res::Ok(Probe::default()) }).await.unwrap();
    let b = cache.open_weak(2, || async { Res::Ok(Probe::default()) }).await.unwrap();
    assert!(Arc::ptr_eq(&watcher.next().await.unwrap(), a.value()));
    assert!(Arc::ptr_eq(&watcher.next().await.unwrap(), &b));
    assert_eq!(cache.watcher_count(), 1);
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let slow_open = cache.open(3, || async move {
        g.notified().await;
        Res::Ok(Probe::default())
    });
    tokio::pin!(slow_open);
    assert!(futures::poll!(slow_open.as_mut()).is_pending());
    let close = cache.close();
    tokio::pin!(close);
    assert!(futures::poll!(close.as_mut()).is_pending(), "waits for the open in flight");
    gate.notify_one();
    assert!(matches!(slow_open.await, Err(CacheError::Closed)));
    close.await;
    assert_eq!((closes(a.value()), closes(&b)), (1, 1));
    assert!(cache.is_empty());
    assert_eq!(cache.watcher_count(), 0);
    assert!(watcher.next().await.is_none());
    let again = cache.open(1, || async { Res::Ok(Probe::default()) }).await;
    assert!(matches!(again, Err(CacheError::Closed)));
    // A session that outlived the store releases nothing twice.
    let c = a.clone();
    assert!(!c.is_live());
    drop(a);
    drop(c);
    tokio::task::yield_now().await;
    assert_eq!(closes(&b), 1);
    cache.close().await; // idempotent
}

#[tokio::test(start_paused = true)]
async fn the_registry_gives_its_memory_back_when_most_values_closed() {
    let cache: Cache<u32, Probe> = Cache::new(LINGER);
    let gate = Arc::new(Notify::new());
    let mut sessions = Vec::new();
    for key in 0..10_000 {
        let probe = Probe { gate: Some(gate.clone()), ..Probe::default() };
        sessions.push(cache.open(key, || async { Res::Ok(probe) }).await.unwrap());
    }
    let full = cache.slot_capacity();
    let kept = sessions.split_off(9_990);
    let values: Vec<_> = sessions.iter().map(|s| s.value().clone()).collect();
    drop(sessions);
    // Every open slot became a closing one in place: the table did not grow to close them.
    assert_eq!(cache.len(), 10_000);
    assert!(cache.slot_capacity() <= full, "{} slots while closing, {full} open", {
        cache.slot_capacity()
    });
    while values.iter().any(|v| closes(v) == 0) {
        gate.notify_waiters();
        tokio::task::yield_now().await;
    }
    assert_eq!(cache.len(), 10);
    assert!(cache.slot_capacity() <= 64, "{} slots kept for 10 values", cache.slot_capacity());
    let last: Vec<_> = kept.iter().map(|s| s.value().clone()).collect();
    drop(kept);
    while last.iter().any(|v| closes(v) == 0) {
        gate.notify_waiters();
        tokio::task::yield_now().await;
    }
    assert!(cache.is_empty());
    assert!(cache.slot_capacity() <= 64, "{} slots kept for none", cache.slot_capacity());
    // It grows again as needed.
    let again = cache.open(7, || async { Res::Ok(Probe::default()) }).await.unwrap();
    assert_eq!(cache.sessions(&7), 1);
    again.close().await;
}

#[tokio::test(start_paused = true)]
async fn an_awaited_close_runs_in_its_caller_and_leaves_no_task_behind() {
    let cache: Cache<u32, Probe> = Cache::new(LINGER);
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = tasks();
    for key in 0..100 {
        let session = cache.open(key, || async { Res::Ok(Probe::default()) }).await.unwrap();
        let value = session.value().clone();
        session.close().await;
        assert_eq!(closes(&value), 1);
    }
    assert!(cache.is_empty());
    assert_eq!(tasks(), before, "100 awaited closes left tasks waiting to run");
}

#[tokio::test(start_paused = true)]
async fn a_close_whose_caller_gave_up_still_finishes() {
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let gate = Arc::new(Notify::new());
    let probe = Probe { gate: Some(gate.clone()), ..Probe::default() };
    let session = cache.open(1, || async { Res::Ok(probe) }).await.unwrap();
    let value = session.value().clone();
    let mut close = Box::pin(session.close());
    assert!(futures::poll!(close.as_mut()).is_pending(), "the close waits at the gate");
    drop(close);
    for _ in 0..100 {
        if closes(&value) > 0 {
            break;
        }
        gate.notify_waiters();
        tokio::task::yield_now().await;
    }
    assert_eq!(closes(&value), 1, "the abandoned close finished on its own");
    assert!(cache.is_empty());
}
