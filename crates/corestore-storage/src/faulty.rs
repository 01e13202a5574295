//! [`FaultyStorage`]: a fault-injecting wrapper around any backend, for tests of the layers above.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::backend::{StorageBackend, WriteBatch};

/// Which operation an injected fault hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// A [`StorageBackend::write`] that applied nothing.
    Write,
    /// A [`StorageBackend::write`] that applied only a prefix of its batch (a torn batch).
    TornWrite,
    /// A [`StorageBackend::flush`].
    Flush,
    /// A [`StorageBackend::get`] or [`StorageBackend::scan`].
    Read,
}

/// The error inside every `io::Error` that [`FaultyStorage`] injects (`ErrorKind::Other`).
/// Recognize it with [`InjectedFault::is_injected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("injected storage fault ({kind:?})")]
pub struct InjectedFault {
    /// What failed.
    pub kind: FaultKind,
}

impl InjectedFault {
    /// True when `err` was injected by a [`FaultyStorage`].
    pub fn is_injected(err: &io::Error) -> bool {
        err.get_ref().and_then(|e| e.downcast_ref::<Self>()).is_some()
    }

    fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

#[derive(Debug, Default)]
struct Plan {
    /// Fail the write after this many more writes.
    write: Option<u64>,
    /// Tear the write after this many more writes, keeping this many operations.
    torn: Option<(u64, usize)>,
    /// Fail the flush after this many more flushes.
    flush: Option<u64>,
    /// Fail every operation (a dead disk) while set.
    dead: bool,
    /// Fail every read while set.
    reads: bool,
}

/// Wraps any [`StorageBackend`] and fails chosen operations, like redb's `FailingBackend`.
///
/// Faults are one-shot and counted from the moment they are armed: `fail_write_after(0)` fails
/// the next write, `fail_write_after(2)` lets two writes through and fails the third. A write
/// that one fault fails does not count towards another: with both a fail and a tear due on the
/// same write, the write fails and the next one is torn. A failed
/// write or flush does nothing to the inner backend; the call returns an `io::Error` carrying
/// [`InjectedFault`].
///
/// [`FaultyStorage::tear_write_after`] applies only a prefix of a batch and then fails. That
/// **models a broken backend** that does not honour the atomicity of [`StorageBackend::write`]
/// (no shipped backend does this); use it to check that upper layers detect torn state, e.g. a
/// block without its tree head, instead of trusting it.
pub struct FaultyStorage {
    inner: Arc<dyn StorageBackend>,
    plan: Mutex<Plan>,
    writes: AtomicU64,
    flushes: AtomicU64,
}

impl fmt::Debug for FaultyStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStorage")
            .field("inner", &self.inner)
            .field("plan", &*self.plan.lock().unwrap_or_else(PoisonError::into_inner))
            .field("writes", &self.writes())
            .field("flushes", &self.flushes())
            .finish()
    }
}

impl FaultyStorage {
    /// Wraps `inner`; no fault is armed.
    pub fn new(inner: Arc<dyn StorageBackend>) -> Self {
        Self {
            inner,
            plan: Mutex::new(Plan::default()),
            writes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// The wrapped backend (reads and writes on it bypass the faults).
    pub fn inner(&self) -> &Arc<dyn StorageBackend> {
        &self.inner
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets `n` more writes succeed, then fails the next one without applying it.
    pub fn fail_write_after(&self, n: u64) -> &Self {
        self.plan().write = Some(n);
        self
    }

    /// Lets `n` more writes succeed, then applies only the first `keep` operations of the next
    /// batch and fails it: a torn batch, as only a broken backend would leave.
    pub fn tear_write_after(&self, n: u64, keep: usize) -> &Self {
        self.plan().torn = Some((n, keep));
        self
    }

    /// Lets `n` more flushes succeed, then fails the next one (the data may or may not be
    /// durable, as with a real failed `fsync`; the inner backend is not flushed).
    pub fn fail_flush_after(&self, n: u64) -> &Self {
        self.plan().flush = Some(n);
        self
    }

    /// While `dead`, every operation fails (a disk that went away).
    pub fn set_dead(&self, dead: bool) -> &Self {
        self.plan().dead = dead;
        self
    }

    /// While `failing`, every `get` and `scan` fails.
    pub fn set_failing_reads(&self, failing: bool) -> &Self {
        self.plan().reads = failing;
        self
    }

    /// Disarms every fault.
    pub fn heal(&self) -> &Self {
        *self.plan() = Plan::default();
        self
    }

    /// Writes attempted so far (failed ones included).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Flushes attempted so far (failed ones included).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    fn check_read(&self) -> io::Result<()> {
        let plan = self.plan();
        if plan.dead || plan.reads {
            return Err(InjectedFault { kind: FaultKind::Read }.into_io());
        }
        Ok(())
    }
}

/// Counts one operation down; true when the armed fault fires now.
fn fires(slot: &mut Option<u64>) -> bool {
    match slot {
        Some(0) => {
            *slot = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

#[async_trait]
impl StorageBackend for FaultyStorage {
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.check_read()?;
        self.inner.get(key).await
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.check_read()?;
        self.inner.scan(start, end, limit).await
    }

    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let (fail, torn) = {
            let mut plan = self.plan();
            let fail = plan.dead | fires(&mut plan.write);
            // A write failed by a fault does not count towards the other armed fault.
            let torn = match plan.torn {
                _ if fail => None,
                Some((0, keep)) => {
                    plan.torn = None;
                    Some(keep)
                }
                Some((n, keep)) => {
                    plan.torn = Some((n - 1, keep));
                    None
                }
                None => None,
            };
            (fail, torn)
        };
        if fail {
            return Err(InjectedFault { kind: FaultKind::Write }.into_io());
        }
        if let Some(keep) = torn {
            let mut prefix = WriteBatch::new();
            for op in batch.into_ops().into_iter().take(keep) {
                prefix.push(op);
            }
            self.inner.write(prefix).await?;
            return Err(InjectedFault { kind: FaultKind::TornWrite }.into_io());
        }
        self.inner.write(batch).await
    }

    async fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let fail = {
            let mut plan = self.plan();
            plan.dead | fires(&mut plan.flush)
        };
        if fail {
            return Err(InjectedFault { kind: FaultKind::Flush }.into_io());
        }
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    fn put(k: u8) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(vec![k], vec![k]);
        b
    }

    #[tokio::test]
    async fn nth_write_and_flush_fail_once() {
        let s = FaultyStorage::new(Arc::new(MemoryStorage::new()));
        s.fail_write_after(1).fail_flush_after(0);
        s.write(put(1)).await.unwrap();
        let err = s.write(put(2)).await.unwrap_err();
        assert!(InjectedFault::is_injected(&err));
        s.write(put(3)).await.unwrap();
        assert!(InjectedFault::is_injected(&s.flush().await.unwrap_err()));
        s.flush().await.unwrap();
        assert_eq!(s.get(&[2]).await.unwrap(), None);
        assert_eq!(s.get(&[3]).await.unwrap(), Some(vec![3]));
        assert_eq!((s.writes(), s.flushes()), (3, 2));
    }

    #[tokio::test]
    async fn torn_write_applies_a_prefix() {
        let s = FaultyStorage::new(Arc::new(MemoryStorage::new()));
        s.tear_write_after(1, 2);
        s.write(put(0)).await.unwrap();
        let mut b = WriteBatch::new();
        b.put(vec![1], vec![1]).put(vec![2], vec![2]).put(vec![3], vec![3]);
        let err = s.write(b).await.unwrap_err();
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<InjectedFault>()),
            Some(&InjectedFault { kind: FaultKind::TornWrite })
        );
        assert_eq!(s.scan(&[0], &[9], 10).await.unwrap().len(), 3);
        assert_eq!(s.get(&[3]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_torn_fault_survives_a_fail_fault_on_the_same_write() {
        let s = FaultyStorage::new(Arc::new(MemoryStorage::new()));
        s.fail_write_after(0).tear_write_after(0, 1);
        let kind = |e: io::Error| {
            e.get_ref().and_then(|e| e.downcast_ref::<InjectedFault>()).map(|f| f.kind)
        };
        assert_eq!(kind(s.write(put(1)).await.unwrap_err()), Some(FaultKind::Write));
        let mut b = WriteBatch::new();
        b.put(vec![2], vec![2]).put(vec![3], vec![3]);
        assert_eq!(kind(s.write(b).await.unwrap_err()), Some(FaultKind::TornWrite));
        assert_eq!(s.scan(&[0], &[9], 10).await.unwrap(), vec![(vec![2], vec![2])]);
        s.write(put(4)).await.unwrap();
    }

    #[tokio::test]
    async fn dead_disk_fails_everything_until_healed() {
        let s = FaultyStorage::new(Arc::new(MemoryStorage::new()));
        s.set_dead(true);
        assert!(s.write(put(1)).await.is_err());
        assert!(s.get(&[1]).await.is_err());
        assert!(s.flush().await.is_err());
        s.heal();
        s.write(put(1)).await.unwrap();
        s.set_failing_reads(true);
        assert!(s.scan(&[0], &[9], 1).await.is_err());
    }
}
