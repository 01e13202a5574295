//! [`DiskStorage`]: the default, crash-safe disk backend (an append-only log plus an in-memory
//! index, in the Bitcask style). See [`log`] for the file format.

mod key;
mod log;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;

use crate::backend::{StorageBackend, WriteBatch};
use log::{Index, Replay};

const LOCK_FILE: &str = "LOCK";
const LOG_FILE: &str = "data.log";
const COMPACT_FILE: &str = "data.log.compact";

/// Compaction is considered once the log is this large (by default)…
const COMPACT_MIN_LEN: u64 = 64 << 20;
/// …and more than this many times the live data.
const COMPACT_RATIO: u64 = 2;

/// Tuning for [`DiskStorage::open_with`]. The defaults suit stores of any size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskOptions {
    /// Compaction runs only once the log file is at least this many bytes (default 64 MiB)
    /// and more than twice the live data.
    pub compact_min_len: u64,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self { compact_min_len: COMPACT_MIN_LEN }
    }
}

impl DiskOptions {
    /// Sets [`DiskOptions::compact_min_len`] (tests use a small one to compact often).
    #[must_use]
    pub fn compact_min_len(mut self, bytes: u64) -> Self {
        self.compact_min_len = bytes;
        self
    }
}
/// Records written by compaction carry about this many bytes each.
const COMPACT_CHUNK: usize = 4 << 20;

/// Why a [`DiskStorage`] could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// Another process (or another `DiskStorage` in this one) has the store open.
    #[error("store is locked by another process: {}", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The log file is not a corestore log.
    #[error("{} is not a corestore log file", path.display())]
    NotALog {
        /// The file.
        path: PathBuf,
    },
    /// The log was written by an unknown (newer) format version.
    #[error("store log format version {found} is not supported (this build reads {supported})")]
    UnsupportedFormat {
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// A record with a valid checksum does not parse: the file is damaged, not torn.
    #[error("store log is corrupt at byte {offset}")]
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
    },
    /// The file system failed.
    #[error("store I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// The default disk backend: one directory, one append-only log file, one lock file.
///
/// - **Atomic batches.** A [`WriteBatch`] is one checksummed record written with one `pwrite`;
///   replay on open stops at the first short or bad record, so a batch is either whole or absent.
/// - **Durability.** [`StorageBackend::flush`] is `fdatasync` of the log: every batch written
///   before it survives `kill -9` and power loss once it returns `Ok`. Writes alone reach the
///   OS page cache and survive `kill -9` of this process, but not power loss.
/// - **Reads** come from an in-memory index (key → position) and one `pread`, so every key must
///   fit in memory (about 80 bytes plus the key per record); values stay on disk.
/// - **Compaction** rewrites the live records into a fresh log once the log is over 64 MiB (see
///   [`DiskOptions`]) and more than twice the live data. It runs inside the
///   [`StorageBackend::write`] that crossed the threshold (writers wait, readers go on), and is
///   atomic: written aside, synced, then renamed over the log. A failed compaction leaves the
///   old log in use, is logged with `tracing`, and is tried again after the next write.
/// - **Memory.** Besides the index, nothing is cached: repeated reads are served by the OS page
///   cache. Opening replays the whole log once.
/// - **Blocking.** Writes (one `pwrite` into the page cache) and reads (one `pread`) run inline
///   in the async methods: they are microseconds. `fsync` and compaction run on tokio's blocking
///   pool when called inside a tokio runtime, inline otherwise.
/// - **Locking.** The directory is locked with an exclusive lock on its `LOCK` file for as long
///   as the value lives; a second opener gets [`DiskError::Locked`].
///
/// After a failed write that could not be rolled back, or a failed `fsync`, the store refuses
/// further writes and flushes (an `fsync` error may have dropped dirty pages); reopen it.
#[derive(Clone)]
pub struct DiskStorage {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    options: DiskOptions,
    compactions: AtomicU64,
    _lock: File,
    writer: Mutex<Writer>,
    state: RwLock<State>,
}

struct Writer {
    file: Arc<File>,
    end: u64,
    broken: bool,
}

struct State {
    file: Arc<File>,
    index: Index,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.read_state();
        f.debug_struct("DiskStorage")
            .field("dir", &self.inner.dir)
            .field("records", &state.index.map.len())
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens (creating if needed) the store in directory `path`, locks it, and replays its log.
    /// A torn tail left by a crash is cut off.
    ///
    /// This blocks while the log is read (about the log size at disk or page-cache speed); in
    /// an async context with a large store, call it through `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DiskError> {
        Self::open_with(path, DiskOptions::default())
    }

    /// [`DiskStorage::open`] with explicit [`DiskOptions`].
    pub fn open_with(path: impl AsRef<Path>, options: DiskOptions) -> Result<Self, DiskError> {
        let dir = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(DiskError::Locked { path: dir }),
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        // A compaction interrupted by a crash left only this scratch file; the log is intact.
        match std::fs::remove_file(dir.join(COMPACT_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let log_path = dir.join(LOG_FILE);
        let file = match OpenOptions::new().read(true).write(true).open(&log_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A new log appears whole or not at all: header written and synced aside, then
                // renamed into place (the scratch name is the compaction one, cleared above).
                let scratch = dir.join(COMPACT_FILE);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&scratch)?;
                file.write_all_at(&log::header(), 0)?;
                file.sync_all()?;
                std::fs::rename(&scratch, &log_path)?;
                sync_dir(&dir)?;
                file
            }
            Err(e) => return Err(e.into()),
        };
        let (index, end) = match log::replay(&file)? {
            Replay::Done { index, valid_len } => (index, valid_len),
            Replay::NotALog => return Err(DiskError::NotALog { path: log_path }),
            Replay::Version(found) => {
                return Err(DiskError::UnsupportedFormat { found, supported: log::LOG_VERSION })
            }
            Replay::Corrupt { offset } => return Err(DiskError::Corrupt { offset }),
        };
        let file_len = file.metadata()?.len();
        if file_len != end {
            // Only an unflushed tail can be torn by a crash; more than that means damage, which
            // a checksummed log can detect but not repair.
            tracing::warn!(
                dir = %dir.display(),
                kept = end,
                dropped = file_len - end,
                "cut a torn or damaged tail off the store log"
            );
            file.set_len(end)?;
            file.sync_all()?;
        }
        let file = Arc::new(file);
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                options,
                compactions: AtomicU64::new(0),
                _lock: lock,
                writer: Mutex::new(Writer { file: file.clone(), end, broken: false }),
                state: RwLock::new(State { file, index }),
            }),
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Number of live records.
    pub fn len(&self) -> usize {
        self.inner.read_state().index.map.len()
    }

    /// True without live records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the log file in bytes (live data plus garbage not yet compacted).
    pub fn log_len(&self) -> u64 {
        self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner).end
    }

    /// Compactions run by this handle so far.
    pub fn compactions(&self) -> u64 {
        self.inner.compactions.load(Ordering::Relaxed)
    }

    /// Rewrites the log with only the live records, now. The result is durable (it also
    /// flushes every earlier write).
    pub async fn compact(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        offload(move || inner.compact()).await
    }
}

impl Inner {
    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writer(&self) -> io::Result<std::sync::MutexGuard<'_, Writer>> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.broken {
            return Err(io::Error::other("store failed earlier and refuses writes; reopen it"));
        }
        Ok(writer)
    }

    /// Appends one batch; returns whether compaction is due.
    fn write(&self, batch: WriteBatch) -> io::Result<bool> {
        if batch.is_empty() {
            return Ok(false);
        }
        let encoded = log::encode(batch)?;
        let mut writer = self.lock_writer()?;
        let at = writer.end;
        if let Err(e) = writer.file.write_all_at(&encoded.bytes, at) {
            // Roll back a partial append so the next record starts at a clean boundary.
            if writer.file.set_len(at).is_err() {
                writer.broken = true;
            }
            return Err(e);
        }
        writer.end += encoded.bytes.len() as u64;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        encoded.apply(&mut state.index, at);
        Ok(writer.end >= self.options.compact_min_len
            && writer.end > COMPACT_RATIO * state.index.live_bytes)
    }

    fn flush(&self) -> io::Result<()> {
        let file = self.lock_writer()?.file.clone();
        file.sync_data().inspect_err(|_| {
            self.writer.lock().unwrap_or_else(PoisonError::into_inner).broken = true;
        })
    }

    fn compact(&self) -> io::Result<()> {
        let mut writer = self.lock_writer()?;
        let scratch = self.dir.join(COMPACT_FILE);
        let written = (|| {
            let new = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&scratch)?;
            // Writers are excluded by the writer lock, so the index cannot change under us;
            // readers go on reading the old file.
            let (index, end) = {
                let state = self.read_state();
                log::rewrite(&state.file, &state.index, &new, COMPACT_CHUNK)?
            };
            new.sync_all()?;
            Ok::<_, io::Error>((new, index, end))
        })();
        let (new, index, end) = match written {
            Ok(written) => written,
            Err(e) => {
                // The log is untouched; the scratch file is reclaimed now or on the next open.
                let _ = std::fs::remove_file(&scratch);
                return Err(e);
            }
        };
        if let Err(e) = std::fs::rename(&scratch, self.dir.join(LOG_FILE)) {
            let _ = std::fs::remove_file(&scratch);
            return Err(e);
        }
        // From here the new file is the log: switch to it whatever happens next.
        let dir_synced = sync_dir(&self.dir);
        let new = Arc::new(new);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        *state = State { file: new.clone(), index };
        // If the rename may not be durable, a crash could bring the old log back without the
        // appends that follow: refuse them.
        *writer = Writer { file: new, end, broken: dir_synced.is_err() };
        self.compactions.fetch_add(1, Ordering::Relaxed);
        dir_synced
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Runs blocking `f` on tokio's blocking pool when inside a runtime, inline otherwise.
async fn offload<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(f).await.map_err(io::Error::other)?,
        Err(_) => f(),
    }
}

#[async_trait]
impl StorageBackend for DiskStorage {
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let (file, loc) = {
            let state = self.inner.read_state();
            match state.index.map.get(&key::IndexKey::new(key)) {
                Some(loc) => (state.file.clone(), *loc),
                None => return Ok(None),
            }
        };
        log::read_value(&file, loc).map(Some)
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let (file, locs) = {
            let state = self.inner.read_state();
            let locs: Vec<(Vec<u8>, log::Loc)> = state
                .index
                .map
                .range(key::IndexKey::new(start)..key::IndexKey::new(end))
                .take(limit)
                .map(|(k, loc)| (k.to_vec(), *loc))
                .collect();
            (state.file.clone(), locs)
        };
        locs.into_iter().map(|(k, loc)| Ok((k, log::read_value(&file, loc)?))).collect()
    }

    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        if self.inner.write(batch)? {
            // The batch is in; a failed compaction leaves the log valid and is retried after
            // the next write, so it is not this write's error.
            if let Err(error) = self.compact().await {
                tracing::warn!(%error, dir = %self.inner.dir.display(), "log compaction failed");
            }
        }
        Ok(())
    }

    async fn flush(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        offload(move || inner.flush()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ops: &[(&[u8], Option<&[u8]>)]) -> WriteBatch {
        let mut b = WriteBatch::new();
        for (k, v) in ops {
            match v {
                Some(v) => b.put(k.to_vec(), v.to_vec()),
                None => b.delete(k.to_vec()),
            };
        }
        b
    }

    #[tokio::test]
    async fn reopen_replays_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = DiskStorage::open(dir.path()).unwrap();
            s.write(batch(&[(b"a", Some(b"1")), (b"b", Some(b"2"))])).await.unwrap();
            s.write(batch(&[(b"a", None), (b"c", Some(b"3"))])).await.unwrap();
            s.flush().await.unwrap();
        }
        let log = dir.path().join(LOG_FILE);
        let good = std::fs::metadata(&log).unwrap().len();
        // A torn append: a record header promising more than was written.
        let f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all_at(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9], good).unwrap();
        let s = DiskStorage::open(dir.path()).unwrap();
        assert_eq!(s.get(b"a").await.unwrap(), None);
        assert_eq!(s.get(b"b").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(s.get(b"c").await.unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(std::fs::metadata(&log).unwrap().len(), good);
    }

    #[tokio::test]
    async fn bad_checksum_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = DiskStorage::open(dir.path()).unwrap();
            s.write(batch(&[(b"a", Some(b"1"))])).await.unwrap();
            s.write(batch(&[(b"b", Some(b"2"))])).await.unwrap();
        }
        let log = dir.path().join(LOG_FILE);
        let len = std::fs::metadata(&log).unwrap().len();
        let f = OpenOptions::new().write(true).open(&log).unwrap();
        f.write_all_at(b"X", len - 1).unwrap();
        let s = DiskStorage::open(dir.path()).unwrap();
        assert_eq!(s.get(b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get(b"b").await.unwrap(), None);
    }

    #[test]
    fn second_open_is_locked_and_foreign_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DiskStorage::open(dir.path()).unwrap();
        let err = DiskStorage::open(dir.path()).unwrap_err();
        assert!(matches!(err, DiskError::Locked { .. }));
        assert!(err.to_string().starts_with("store is locked by another process"));
        drop(first);
        drop(DiskStorage::open(dir.path()).unwrap());

        std::fs::write(dir.path().join(LOG_FILE), b"CORESTORELOG\x07\0\0\0").unwrap();
        assert!(matches!(
            DiskStorage::open(dir.path()),
            Err(DiskError::UnsupportedFormat { found: 7, supported: 1 })
        ));
        std::fs::write(dir.path().join(LOG_FILE), b"something else entirely").unwrap();
        assert!(matches!(DiskStorage::open(dir.path()), Err(DiskError::NotALog { .. })));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_never_see_half_a_batch_even_across_compactions() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            DiskStorage::open_with(dir.path(), DiskOptions::default().compact_min_len(64 << 10))
                .unwrap();
        let writer = {
            let s = s.clone();
            tokio::spawn(async move {
                for n in 0u32..2000 {
                    let v = n.to_be_bytes().repeat(64);
                    s.write(batch(&[(b"a", Some(&v)), (b"b", Some(&v)), (b"c", Some(&v))]))
                        .await
                        .unwrap();
                }
            })
        };
        let mut last = Vec::new();
        while !writer.is_finished() {
            let rows = s.scan(b"a", b"d", 10).await.unwrap();
            if let Some((_, first)) = rows.first() {
                assert_eq!(rows.len(), 3);
                assert!(rows.iter().all(|(_, v)| v == first), "a torn batch was visible");
                assert!(*first >= last, "a read went back in time");
                last.clone_from(first);
            }
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert!(s.compactions() > 0);
    }

    #[tokio::test]
    async fn compaction_keeps_live_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStorage::open(dir.path()).unwrap();
        for round in 0..50u8 {
            s.write(batch(&[(b"k", Some(&[round; 1000])), (&[round], Some(b"v"))])).await.unwrap();
        }
        let mut range = WriteBatch::new();
        range.delete_range(vec![10], vec![40]);
        s.write(range).await.unwrap();
        let before = s.log_len();
        s.compact().await.unwrap();
        assert!(s.log_len() < before / 10);
        assert_eq!(s.len(), 21);
        drop(s);
        let s = DiskStorage::open(dir.path()).unwrap();
        assert_eq!(s.get(b"k").await.unwrap(), Some(vec![49; 1000]));
        assert_eq!(s.get(&[9]).await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(s.get(&[10]).await.unwrap(), None);
        assert_eq!(s.scan(&[0], &[255], 100).await.unwrap().len(), 21);
    }
}
