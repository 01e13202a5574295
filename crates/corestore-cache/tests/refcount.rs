//! Property test over random sequences of open / weak open / clone / close / drop / touch /
//! time / store-close: no leak, no double close, no use after close, never two live values of
//! one key. Tokio time is paused, so the linger is driven without sleeping.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corestore_cache::{Cache, CacheError, Closeable, Session};
use futures::future::BoxFuture;
use proptest::prelude::*;

const LINGER: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Probe {
    key: u8,
    closes: AtomicUsize,
    closing: AtomicBool,
}

impl Closeable for Probe {
    fn close(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.closing.store(true, Ordering::SeqCst);
            // Leave the close in flight for a while, so reopens race with it.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            self.closes.fetch_add(1, Ordering::SeqCst);
        })
    }
}

#[derive(Debug, Clone)]
enum Op {
    Open { key: u8, concurrent: usize },
    OpenWeak(u8),
    Clone(usize),
    Close(usize),
    Drop(usize),
    Touch(u8),
    Yield,
    Advance(u64),
    StoreClose,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, 1..4usize).prop_map(|(key, concurrent)| Op::Open { key, concurrent }),
        2 => (0..3u8).prop_map(Op::OpenWeak),
        3 => any::<usize>().prop_map(Op::Clone),
        3 => any::<usize>().prop_map(Op::Close),
        3 => any::<usize>().prop_map(Op::Drop),
        1 => (0..3u8).prop_map(Op::Touch),
        2 => Just(Op::Yield),
        2 => (0..250u64).prop_map(Op::Advance),
        1 => Just(Op::StoreClose),
    ]
}

#[derive(Default)]
struct World {
    /// Every value ever opened.
    values: Mutex<Vec<Arc<Probe>>>,
    violation: Mutex<Option<String>>,
}

impl World {
    fn fail(&self, why: String) {
        self.violation.lock().unwrap().get_or_insert(why);
    }

    fn opener(
        &self,
        key: u8,
    ) -> impl FnOnce() -> futures::future::Ready<Result<Probe, std::convert::Infallible>> + '_ {
        move || {
            let values = self.values.lock().unwrap();
            if values.iter().any(|v| v.key == key && v.closes.load(Ordering::SeqCst) == 0) {
                self.fail(format!("key {key} opened while a previous value is not closed"));
            }
            futures::future::ready(Ok(Probe {
                key,
                closes: AtomicUsize::new(0),
                closing: AtomicBool::new(false),
            }))
        }
    }

    fn record(&self, value: &Arc<Probe>) {
        let mut values = self.values.lock().unwrap();
        if !values.iter().any(|v| Arc::ptr_eq(v, value)) {
            values.push(value.clone());
        }
    }

    fn check(&self, sessions: &[Session<u8, Probe>], store_closed: bool) -> Result<(), String> {
        if let Some(v) = self.violation.lock().unwrap().clone() {
            return Err(v);
        }
        for v in self.values.lock().unwrap().iter() {
            if v.closes.load(Ordering::SeqCst) > 1 {
                return Err(format!("value of key {} closed twice", v.key));
            }
        }
        if !store_closed {
            for s in sessions {
                if s.is_live() && s.value().closing.load(Ordering::SeqCst) {
                    return Err(format!("live session on closed value of key {}", s.key()));
                }
            }
        }
        Ok(())
    }
}

async fn run(ops: Vec<Op>) -> Result<(), String> {
    let world = World::default();
    let cache: Cache<u8, Probe> = Cache::new(LINGER);
    let mut sessions: Vec<Session<u8, Probe>> = Vec::new();
    let mut store_closed = false;
    for op in ops {
        match op {
            Op::Open { key, concurrent } => {
                let opens = (0..concurrent).map(|_| cache.open(key, world.opener(key)));
                for result in futures::future::join_all(opens).await {
                    match result {
                        Ok(s) => {
                            world.record(s.value());
                            sessions.push(s);
                        }
                        Err(CacheError::Closed) if store_closed => {}
                        Err(e) => return Err(format!("open failed: {e:?}")),
                    }
                }
            }
            Op::OpenWeak(key) => match cache.open_weak(key, world.opener(key)).await {
                Ok(v) => world.record(&v),
                Err(CacheError::Closed) if store_closed => {}
                Err(e) => return Err(format!("weak open failed: {e:?}")),
            },
            Op::Clone(i) if !sessions.is_empty() => {
                let s = sessions[i % sessions.len()].clone();
                sessions.push(s);
            }
            Op::Close(i) if !sessions.is_empty() => {
                sessions.swap_remove(i % sessions.len()).close().await;
            }
            Op::Drop(i) if !sessions.is_empty() => drop(sessions.swap_remove(i % sessions.len())),
            Op::Touch(key) => drop(cache.touch(&key)),
            Op::Yield => tokio::task::yield_now().await,
            Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Op::StoreClose => {
                cache.close().await;
                store_closed = true;
                for v in world.values.lock().unwrap().iter() {
                    if v.closes.load(Ordering::SeqCst) != 1 {
                        return Err(format!("store close left key {} open", v.key));
                    }
                }
            }
            Op::Clone(_) | Op::Close(_) | Op::Drop(_) => {}
        }
        world.check(&sessions, store_closed)?;
    }
    // Release everything, let the linger pass: every value closed exactly once, nothing left.
    sessions.clear();
    tokio::time::sleep(LINGER * 3).await;
    world.check(&sessions, store_closed)?;
    for v in world.values.lock().unwrap().iter() {
        if v.closes.load(Ordering::SeqCst) != 1 {
            return Err(format!("leak: value of key {} never closed", v.key));
        }
    }
    if !cache.is_empty() {
        return Err(format!("leak: {} slots left", cache.len()));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn refcounts_never_leak_double_close_or_use_after_close(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(ops)).map_err(TestCaseError::fail)?;
    }
}
