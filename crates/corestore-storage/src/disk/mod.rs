//! [`DiskStorage`]: the default, crash-safe disk backend: an append-only log (see [`log`] for
//! the file format) and a key → position index, kept on disk by default ([`lsm`]: sorted runs
//! and a bounded in-memory table) or wholly in memory ([`DiskOptions::persistent_index`] off, in
//! the Bitcask style).

mod block_cache;
mod index;
mod key;
mod keys;
mod legacy;
mod log;
mod lsm;
mod memtable;
mod options;
mod runs;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;

use crate::backend::{StorageBackend, WriteBatch};
pub use block_cache::BlockCacheStats;
use index::Index;
use keys::Keys;
use log::{Replay, Salt};
pub use options::DiskOptions;

const LOCK_FILE: &str = "LOCK";
const LOG_FILE: &str = "data.log";
const COMPACT_FILE: &str = "data.log.compact";
const INDEX_DIR: &str = "index";

/// Compaction is considered once the log is more than this many times the live data.
const COMPACT_RATIO: u64 = 2;

/// Once this many bytes were appended since the last background sync started, another one
/// starts (see [`DiskStorage::sync_in_background`]).
const BACKGROUND_SYNC: u64 = 16 << 20;

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
    /// A record is damaged before the point a completed flush made durable, and valid records
    /// follow it: opening would drop flushed data, so the store is left untouched.
    #[error(
        "store log is damaged at byte {offset}, inside data flushed up to byte {durable_len}; \
         refusing to open rather than drop flushed batches"
    )]
    Damaged {
        /// Where the bad record starts.
        offset: u64,
        /// How much of the log a later flush mark says was durable.
        durable_len: u64,
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
///   OS page cache and survive `kill -9` of this process, but not power loss. Inside a tokio
///   runtime the log is also synced in the background every 16 MiB appended, so a flush after
///   a large write waits for the last stretch only (this promises nothing more: only a
///   completed flush does).
/// - **Reads** look the key up in the index (key → position: the in-memory table, then the
///   newest run that may hold it, one `pread` of a 4 KiB index block at most per run that
///   covers the key; recently read index blocks are cached, see
///   [`DiskOptions::block_cache_bytes`]) and read the value with one `pread`. Values are never
///   cached.
/// - **Power loss.** Every record is bound to its file and position (see [`log`]), so pages
///   that a power loss zero-fills or drops end the log cleanly, and record-shaped bytes inside a
///   value are never replayed. A damaged record *before* what a completed flush made durable is
///   refused with [`DiskError::Damaged`], never cut.
/// - **Compaction** rewrites the live records into a fresh log once the log is over 64 MiB (see
///   [`DiskOptions`]) and more than twice the live data. It runs inside the
///   [`StorageBackend::write`] that crossed the threshold (writers wait, readers go on), and is
///   atomic: written aside, synced, then renamed over the log. A failed compaction leaves the
///   old log in use, is logged with `tracing`, and is tried again once the log has grown by
///   half (not after every write).
/// - **Memory** is bounded by [`DiskOptions::memtable_entries`] and
///   [`DiskOptions::block_cache_bytes`] (plus the first and last key of every 4 KiB index block,
///   about 1% of the index), whatever the store's size: repeated reads of values are served by
///   the OS page cache. Opening replays only the log written after the last run;
///   after a clean close (the table is written out when the store is dropped), nothing. With
///   [`DiskOptions::persistent_index`] off, every key is in memory and open replays the log.
/// - **Migration.** A store without an index (written with the in-memory index, or with an
///   index that does not match the log: another salt after a compaction, a cut tail, a lost or
///   damaged run) is indexed from the log on open, once: each run is written and synced, then a
///   manifest names it and how far the log is indexed (written aside, synced, renamed), so a
///   crash in the middle resumes from the last manifest.
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
    compaction_failures: AtomicU64,
    _lock: File,
    writer: Mutex<Writer>,
    state: RwLock<State>,
    /// The last background sync started (tests wait for it).
    #[cfg(test)]
    background: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Writer {
    file: Arc<File>,
    salt: Salt,
    end: u64,
    /// The durable length claimed by the last flush mark (or known durable otherwise).
    marked: u64,
    /// The log length just after the last flush mark: nothing new was written while equal.
    mark_end: u64,
    /// No automatic compaction is tried below this log length (set after a failed one).
    compact_after: u64,
    /// Log bytes known durable (a completed flush or compaction, or a clean open).
    synced: u64,
    broken: bool,
    /// A background `fdatasync` is running.
    syncing: bool,
    /// The log length when the last background `fdatasync` started.
    sync_started: u64,
}

impl Writer {
    fn new(file: Arc<File>, salt: Salt, end: u64, marked: u64) -> Self {
        Self {
            file,
            salt,
            end,
            marked,
            mark_end: end,
            compact_after: 0,
            synced: marked,
            broken: false,
            syncing: false,
            sync_started: end,
        }
    }

    /// Appends `record`, sealed for its place at the end; on failure rolls a partial append
    /// back (or, when that fails too, refuses further writes).
    fn append(&mut self, mut record: log::Record) -> io::Result<(log::Record, u64)> {
        let at = self.end;
        record.seal(&self.salt, at);
        if let Err(e) = self.file.write_all_at(&record.bytes, at) {
            if self.file.set_len(at).is_err() {
                self.broken = true;
            }
            return Err(e);
        }
        self.end += record.bytes.len() as u64;
        Ok((record, at))
    }
}

struct State {
    file: Arc<File>,
    index: Keys,
}

impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.read_state();
        f.debug_struct("DiskStorage")
            .field("dir", &self.inner.dir)
            .field("index", &state.index)
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens (creating if needed) the store in directory `path`, locks it, and replays the log
    /// written since the index last covered it. A torn tail left by a crash is cut off.
    ///
    /// After a clean close this reads almost nothing; after a crash, or on the first open of a
    /// store without a persistent index, it reads the log since the last index run (up to the
    /// whole log, at disk or page-cache speed). In an async context, call it through
    /// `spawn_blocking` if that may be long.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DiskError> {
        Self::open_with(path, DiskOptions::default())
    }

    /// [`DiskStorage::open`] with explicit [`DiskOptions`].
    pub fn open_with(path: impl AsRef<Path>, options: DiskOptions) -> Result<Self, DiskError> {
        let dir = path.as_ref().to_path_buf();
        create_dir_durably(&dir)?;
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
                file.write_all_at(&log::header(&log::new_salt()), 0)?;
                file.sync_all()?;
                std::fs::rename(&scratch, &log_path)?;
                sync_dir(&dir)?;
                file
            }
            Err(e) => return Err(e.into()),
        };
        let index = if options.persistent_index {
            Keys::Persistent(Box::new(lsm::Lsm::new(
                dir.join(INDEX_DIR),
                options.memtable_entries,
                options.block_cache_bytes,
            )?))
        } else {
            Keys::Memory(Index::default())
        };
        let (file, index, salt, end, marked) = recover(&dir, file, index, log_path)?;
        let file = Arc::new(file);
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                options,
                compactions: AtomicU64::new(0),
                compaction_failures: AtomicU64::new(0),
                _lock: lock,
                writer: Mutex::new(Writer::new(file.clone(), salt, end, marked)),
                state: RwLock::new(State { file, index }),
                #[cfg(test)]
                background: Mutex::new(None),
            }),
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Number of live records. With [`DiskOptions::persistent_index`] this merges the whole
    /// index (and reports 0 if that fails).
    pub fn len(&self) -> usize {
        self.inner.read_state().index.len().unwrap_or(0)
    }

    /// True without live records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the log file in bytes (live data plus garbage not yet compacted).
    pub fn log_len(&self) -> u64 {
        self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner).end
    }

    /// The figures of the cache of index run blocks ([`DiskOptions::block_cache_bytes`]); all
    /// zero without the persistent index.
    pub fn block_cache_stats(&self) -> BlockCacheStats {
        match &self.inner.read_state().index {
            Keys::Persistent(lsm) => lsm.cache_stats(),
            Keys::Memory(_) => BlockCacheStats::default(),
        }
    }

    /// Compactions run by this handle so far.
    pub fn compactions(&self) -> u64 {
        self.inner.compactions.load(Ordering::Relaxed)
    }

    /// Compactions that failed (and left the old log in use) in this handle so far.
    pub fn compaction_failures(&self) -> u64 {
        self.inner.compaction_failures.load(Ordering::Relaxed)
    }

    /// Inside a tokio runtime, once [`BACKGROUND_SYNC`] bytes were appended since the last one,
    /// starts an `fdatasync` of the log on the blocking pool: a later flush then waits for
    /// little, and what the log has durable grows even without flushes (the persistent index
    /// records it, so an open after a crash checks less). Durability promises nothing more
    /// than before; a failure makes the store refuse writes, as a failed flush does.
    fn sync_in_background(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (file, end) = {
            let mut writer = self.inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            if writer.broken || writer.syncing || writer.end - writer.sync_started < BACKGROUND_SYNC
            {
                return;
            }
            writer.syncing = true;
            writer.sync_started = writer.end;
            (writer.file.clone(), writer.end)
        };
        // Not the store itself: its lock goes when the last handle does, whatever runs here.
        let inner = Arc::downgrade(&self.inner);
        let job = runtime.spawn_blocking(move || {
            let synced = file.sync_data();
            let Some(inner) = inner.upgrade() else { return };
            let mut writer = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            writer.syncing = false;
            match synced {
                Ok(()) if Arc::ptr_eq(&writer.file, &file) => {
                    writer.synced = writer.synced.max(end);
                }
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(%error, "background sync of the store log failed");
                    writer.broken = true;
                }
            }
        });
        #[cfg(test)]
        {
            *self.inner.background.lock().unwrap_or_else(PoisonError::into_inner) = Some(job);
        }
        // Detached: nothing waits for it outside tests.
        #[cfg(not(test))]
        drop(job);
    }

    /// Rewrites the log with only the live records, now. The result is durable (it also
    /// flushes every earlier write).
    pub async fn compact(&self) -> io::Result<()> {
        let inner = self.inner.clone();
        offload(move || inner.compact()).await
    }
}

impl Drop for Inner {
    /// Writes the persistent index's in-memory table out, so the next open replays nothing.
    fn drop(&mut self) {
        let writer = self.writer.get_mut().unwrap_or_else(PoisonError::into_inner);
        if writer.broken {
            return;
        }
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Keys::Persistent(lsm) = &mut state.index {
            let written = writer.file.sync_data().and_then(|()| lsm.spill(writer.end, writer.end));
            if let Err(error) = written {
                tracing::warn!(%error, "could not write the index table out on close");
            }
        }
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
        let record = log::encode_batch(batch, log::MAX_RECORD)?;
        let mut writer = self.lock_writer()?;
        let (record, at) = writer.append(record)?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = record.apply(&mut state.index, at) {
            // The record is in the log but not wholly in the index: only a reopen (which
            // replays it) brings them back together.
            writer.broken = true;
            return Err(e);
        }
        match state.index.maybe_spill(writer.end, writer.synced) {
            Ok(_) => {}
            // The batch is in; the table stays in memory and is written out after a later
            // write.
            Err(error) => tracing::warn!(%error, "could not write the index table out"),
        }
        Ok(writer.end >= self.options.compact_min_len
            && writer.end >= writer.compact_after
            && state.index.mostly_garbage(writer.end, COMPACT_RATIO))
    }

    fn flush(&self) -> io::Result<()> {
        let (file, end) = {
            let writer = self.lock_writer()?;
            (writer.file.clone(), writer.end)
        };
        file.sync_data().inspect_err(|_| {
            self.writer.lock().unwrap_or_else(PoisonError::into_inner).broken = true;
        })?;
        // Record how far this flush reached, so that damage before it is refused on open rather
        // than cut. The mark itself becomes durable with the next flush.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let stale = writer.broken || !Arc::ptr_eq(&writer.file, &file);
        if !stale {
            writer.synced = writer.synced.max(end);
        }
        // Skipped too when nothing but the last mark was written since it (that mark is now
        // durable itself).
        if stale || end <= writer.marked || end == writer.mark_end {
            return Ok(());
        }
        match writer.append(log::encode_mark(end)) {
            Ok(_) => {
                writer.marked = end;
                writer.mark_end = writer.end;
            }
            // The flush itself succeeded; without the mark, damage to this stretch would be
            // cut on open rather than refused.
            Err(error) => tracing::warn!(%error, "could not append a flush mark to the log"),
        }
        Ok(())
    }

    /// A failed automatic compaction is not tried again until the log has grown by half.
    fn back_off(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.compact_after = writer.end + writer.end / 2;
        self.compaction_failures.fetch_add(1, Ordering::Relaxed);
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
            let salt = log::new_salt();
            let state = self.read_state();
            let (index, end) = match &state.index {
                Keys::Memory(index) => {
                    let (index, end) = log::rewrite(
                        &state.file,
                        index,
                        &new,
                        &salt,
                        COMPACT_CHUNK,
                        log::MAX_RECORD,
                    )?;
                    (Rebuilt::Memory(index), end)
                }
                Keys::Persistent(lsm) => {
                    let (mut sink, id) = lsm.begin_replace()?;
                    let end = log::rewrite_into(
                        &state.file,
                        lsm.live()?,
                        &new,
                        &salt,
                        COMPACT_CHUNK,
                        log::MAX_RECORD,
                        &mut sink,
                    )?;
                    sink.finish()?;
                    (Rebuilt::Run(lsm.open_replacement(id)?), end)
                }
            };
            drop(state);
            new.sync_all()?;
            Ok::<_, io::Error>((new, index, salt, end))
        })();
        let (new, index, salt, end) = match written {
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
        let mut index_error = Ok(());
        match (index, &mut state.index) {
            (Rebuilt::Memory(index), keys) => *keys = Keys::Memory(index),
            (Rebuilt::Run(run), Keys::Persistent(lsm)) => {
                // The runs of the old log no longer apply: install the one written alongside
                // the new log (a crash before this manifest lands rebuilds the index on open).
                index_error = lsm.install(run, salt, end);
            }
            (Rebuilt::Run(_), Keys::Memory(_)) => {}
        }
        state.file = new.clone();
        // If the rename may not be durable, a crash could bring the old log back without the
        // appends that follow: refuse them.
        *writer = Writer::new(new, salt, end, end);
        writer.broken = dir_synced.is_err() || index_error.is_err();
        self.compactions.fetch_add(1, Ordering::Relaxed);
        dir_synced.and(index_error)
    }
}

/// Replays the log into `index` and settles its end: a cut padding restored, a torn unflushed
/// tail cut, a version-1 log converted. Returns the log, the index, its salt, its length and
/// the durable length claimed so far.
fn recover(
    dir: &Path,
    file: File,
    mut index: Keys,
    log_path: PathBuf,
) -> Result<(File, Keys, Salt, u64, u64), DiskError> {
    let recovered = match log::replay(&file, &mut index)? {
        Replay::Done { salt, valid_len, durable_len } => {
            let file_len = file.metadata()?.len();
            match file_len.cmp(&valid_len) {
                std::cmp::Ordering::Equal => (file, index, salt, valid_len, durable_len),
                std::cmp::Ordering::Less => {
                    // Only the zero padding after the last record was cut: put it back, so
                    // the next record starts where replay will look for it.
                    file.set_len(valid_len)?;
                    file.sync_all()?;
                    (file, index, salt, valid_len, durable_len)
                }
                std::cmp::Ordering::Greater => {
                    // Only an unflushed tail is cut: damage before a flush mark was refused.
                    tracing::warn!(
                        dir = %dir.display(),
                        kept = valid_len,
                        dropped = file_len - valid_len,
                        "cut a torn tail (written after the last flush) off the store log"
                    );
                    file.set_len(valid_len)?;
                    file.sync_all()?;
                    if matches!(index, Keys::Memory(_)) {
                        // A persistent index left here by an earlier open may cover the cut
                        // stretch, which later appends will reuse: make the next open with it
                        // rebuild it from the log.
                        forget_persistent_index(dir)?;
                    }
                    (file, index, salt, valid_len, valid_len)
                }
            }
        }
        Replay::Legacy { index: legacy, valid_len } => {
            let (file, converted, salt, end) = convert(dir, &file, &legacy)?;
            let index = match index {
                Keys::Memory(_) => Keys::Memory(converted),
                persistent @ Keys::Persistent(_) => {
                    // Index the converted log from scratch.
                    let mut persistent = persistent;
                    log::replay(&file, &mut persistent)?;
                    persistent
                }
            };
            tracing::info!(
                dir = %dir.display(),
                replayed = valid_len,
                written = end,
                "converted the store log from format version 1"
            );
            (file, index, salt, end, end)
        }
        Replay::NotALog => return Err(DiskError::NotALog { path: log_path }),
        Replay::Version(found) => {
            return Err(DiskError::UnsupportedFormat { found, supported: log::LOG_VERSION })
        }
        Replay::Corrupt { offset } => return Err(DiskError::Corrupt { offset }),
        Replay::Damaged { offset, durable_len } => {
            return Err(DiskError::Damaged { offset, durable_len })
        }
    };
    Ok(recovered)
}

/// Removes the persistent index's manifest, if any, so that its runs are never trusted again.
fn forget_persistent_index(dir: &Path) -> io::Result<()> {
    let index = dir.join(INDEX_DIR);
    match std::fs::remove_file(index.join("MANIFEST")) {
        Ok(()) => sync_dir(&index),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Converts a version-1 log, replayed into `index`, to the current format: written aside,
/// synced, then renamed over the old log (a crash leaves either log whole).
fn convert(dir: &Path, old: &File, index: &Index) -> io::Result<(File, Index, Salt, u64)> {
    let scratch = dir.join(COMPACT_FILE);
    let new =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&scratch)?;
    let salt = log::new_salt();
    let (index, end) = log::rewrite(old, index, &new, &salt, COMPACT_CHUNK, log::MAX_RECORD)?;
    new.sync_all()?;
    std::fs::rename(&scratch, dir.join(LOG_FILE))?;
    sync_dir(dir)?;
    Ok((new, index, salt, end))
}

/// Creates `dir` and any missing parent, and syncs the parent of each directory it created, so
/// the new entries survive power loss.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        if path.exists() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        match created.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => sync_dir(parent)?,
            None => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// The index a compaction built for the new log.
enum Rebuilt {
    Memory(Index),
    /// The run written for the persistent index.
    Run(Arc<lsm::Run>),
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    tests::SYNCED_DIRS.with(|d| d.borrow_mut().push(dir.to_path_buf()));
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
            match state.index.get(key)? {
                Some(loc) => (state.file.clone(), loc),
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
            let locs = state.index.range(start, end, limit)?;
            (state.file.clone(), locs)
        };
        locs.into_iter().map(|(k, loc)| Ok((k, log::read_value(&file, loc)?))).collect()
    }

    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        let compact = self.inner.write(batch)?;
        self.sync_in_background();
        if compact {
            // The batch is in; a failed compaction leaves the log valid and is retried after
            // the next write, so it is not this write's error.
            if let Err(error) = self.compact().await {
                self.inner.back_off();
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
mod index_tests;
#[cfg(test)]
mod tests;
