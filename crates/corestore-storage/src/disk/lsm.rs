//! The persistent index of [`super::DiskStorage`] (the default,
//! [`super::DiskOptions::persistent_index`]): the key → position index of the log, kept on disk
//! as sorted runs ([`super::runs`]) plus a bounded in-memory table of recent changes
//! ([`super::memtable`]).
//!
//! - The index is a cache of the log, never the other way round: the `MANIFEST` names the runs
//!   and the log position they cover (the checkpoint) and the salt of the log they index. On
//!   open the runs are loaded (their block fences only) and the log is replayed from the
//!   checkpoint; a missing, damaged or foreign manifest or run means the index is rebuilt from
//!   the whole log.
//! - When the table holds `memtable_entries` keys it is written out as a new run (written and
//!   synced), and a new manifest is written aside, synced and renamed into place. The log is not
//!   synced for it: the manifest records how much of the log was durable (`synced`), and an open
//!   that finds the checkpoint beyond that first checks every record in between (headers and
//!   checksums; a power loss that took any of them means a rebuild). A clean close syncs the
//!   log and writes the table out, so the next open checks and replays nothing. Runs are then
//!   merged so that each is at least twice the size of the next newer one (a few runs,
//!   amortized O(n log n) merging); a merge copies the blocks of one run that sort wholly
//!   before the other run's next key without parsing them (appended data: nearly all).
//! - A range delete becomes a deletion entry per live key in the range.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::block_cache::{BlockCache, BlockCacheStats};
use super::index::{Apply, Loc};
use super::key::IndexKey;
use super::log::Salt;
use super::memtable::Memtable;
pub(super) use super::runs::Run;
use super::runs::{Cursor, Entry, RunWriter};

const MANIFEST: &str = "MANIFEST";

/// What tests run at a crash point.
#[cfg(test)]
pub(super) type CrashHook = Box<dyn FnMut(&'static str)>;

#[cfg(test)]
thread_local! {
    /// Called at every point of writing the index where a crash leaves distinct files (tests
    /// copy the store there and open the copy).
    pub(super) static CRASH_POINT: std::cell::RefCell<Option<CrashHook>> =
        std::cell::RefCell::new(None);
}

#[cfg(test)]
pub(super) fn crash_point(what: &'static str) {
    CRASH_POINT.with(|hook| {
        if let Some(hook) = hook.borrow_mut().as_mut() {
            hook(what);
        }
    });
}

#[cfg(not(test))]
pub(super) fn crash_point(_what: &'static str) {}
const MANIFEST_MAGIC: &[u8; 8] = b"CSINDEX1";
/// Refuse manifests naming more runs than this (a damaged manifest must not allocate much).
const MAX_RUNS: usize = 4096;

/// The persistent index.
pub(super) struct Lsm {
    dir: PathBuf,
    mem: Memtable,
    mem_limit: usize,
    /// Newest first.
    runs: Vec<Arc<Run>>,
    next_id: u64,
    /// Where replay starts: every record before it is in the runs.
    checkpoint: u64,
    /// The end of the last record with entries in the runs (past `checkpoint` when a table was
    /// written out in the middle of a record): the log must be intact up to here.
    covers: u64,
    /// The log length known durable when the manifest was written (at most `checkpoint`).
    synced: u64,
    /// The salt of the log the runs index.
    salt: Salt,
    /// Bytes of values known to be overwritten or deleted (the compaction trigger).
    pub(super) garbage: u64,
    /// The record being applied (a table written out in the middle of it has replay start at
    /// its beginning, so the whole record is applied again).
    record: (u64, u64),
    /// Verified run blocks, shared by every run.
    cache: Arc<BlockCache>,
}

impl std::fmt::Debug for Lsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lsm")
            .field("memtable", &self.mem.len())
            .field("runs", &self.runs)
            .field("checkpoint", &self.checkpoint)
            .finish_non_exhaustive()
    }
}

fn run_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("run-{id:016x}.idx"))
}

impl Lsm {
    /// An index kept in directory `dir` (created if needed), caching up to `cache_bytes` of run
    /// blocks; nothing is loaded until replay calls [`Apply::start`] with the log's salt.
    pub(super) fn new(dir: PathBuf, mem_limit: usize, cache_bytes: usize) -> io::Result<Self> {
        super::create_dir_durably(&dir)?;
        Ok(Self {
            dir,
            mem: Memtable::default(),
            mem_limit: mem_limit.max(1),
            runs: Vec::new(),
            next_id: 0,
            checkpoint: super::log::HEADER_LEN,
            covers: super::log::HEADER_LEN,
            synced: super::log::HEADER_LEN,
            salt: [0; 16],
            garbage: 0,
            record: (super::log::HEADER_LEN, super::log::HEADER_LEN),
            cache: Arc::new(BlockCache::new(cache_bytes)),
        })
    }

    /// The figures of the run block cache.
    pub(super) fn cache_stats(&self) -> BlockCacheStats {
        self.cache.stats()
    }

    /// Loads the manifest and its runs if they index the log with `salt`; `false` otherwise.
    fn load(&mut self, salt: &Salt) -> bool {
        let Ok(raw) = std::fs::read(self.dir.join(MANIFEST)) else { return false };
        let Some(body_len) = raw.len().checked_sub(4) else { return false };
        let (body, crc) = raw.split_at(body_len);
        if crc32fast::hash(body).to_le_bytes() != crc || body.get(..8) != Some(MANIFEST_MAGIC) {
            return false;
        }
        let dword = |at: usize| {
            body.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        let (Some(checkpoint), Some(synced), Some(garbage), Some(next_id), Some(covers)) =
            (dword(8), dword(32), dword(40), dword(48), dword(56))
        else {
            return false;
        };
        if body.get(16..32) != Some(&salt[..]) {
            return false;
        }
        let count = body
            .get(64..68)
            .map_or(usize::MAX, |b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize);
        if count > MAX_RUNS || body.len() != 68 + 8 * count || checkpoint > covers {
            return false;
        }
        let mut runs = Vec::with_capacity(count);
        for n in 0..count {
            let Some(id) = dword(68 + 8 * n) else { return false };
            match Run::open(&run_path(&self.dir, id), id, &self.cache) {
                Ok(run) => runs.push(Arc::new(run)),
                Err(error) => {
                    tracing::warn!(%error, id, "index run unreadable; rebuilding the index");
                    return false;
                }
            }
        }
        self.runs = runs;
        self.checkpoint = checkpoint;
        self.covers = covers;
        self.synced = synced.min(covers);
        self.garbage = garbage;
        self.next_id = next_id;
        true
    }

    /// Removes run files the manifest does not name (left by an interrupted write or merge).
    fn remove_strays(&self) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let named = self.runs.iter().any(|r| *name == *format!("run-{:016x}.idx", r.id));
            if !named && (name.starts_with("run-") || name.ends_with(".tmp")) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    fn write_manifest(&self) -> io::Result<()> {
        let mut body = Vec::with_capacity(64 + 8 * self.runs.len());
        body.extend_from_slice(MANIFEST_MAGIC);
        body.extend_from_slice(&self.checkpoint.to_le_bytes());
        body.extend_from_slice(&self.salt);
        body.extend_from_slice(&self.synced.to_le_bytes());
        body.extend_from_slice(&self.garbage.to_le_bytes());
        body.extend_from_slice(&self.next_id.to_le_bytes());
        body.extend_from_slice(&self.covers.to_le_bytes());
        let count = u32::try_from(self.runs.len()).map_err(io::Error::other)?;
        body.extend_from_slice(&count.to_le_bytes());
        for run in &self.runs {
            body.extend_from_slice(&run.id.to_le_bytes());
        }
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let scratch = self.dir.join("MANIFEST.tmp");
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&scratch)?;
        file.write_all_at(&body, 0)?;
        file.sync_all()?;
        crash_point("manifest written aside");
        std::fs::rename(&scratch, self.dir.join(MANIFEST))?;
        crash_point("manifest renamed");
        super::sync_dir(&self.dir)
    }

    /// The value position of `key`.
    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<Loc>> {
        if let Some(entry) = self.mem.get(key) {
            return Ok(*entry);
        }
        for run in &self.runs {
            if let Some(entry) = run.get(key)? {
                return Ok(entry);
            }
        }
        Ok(None)
    }

    /// Up to `limit` live entries with `start <= key < end`, ascending.
    pub(super) fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Loc)>> {
        let mut out = Vec::new();
        if start >= end || limit == 0 {
            return Ok(out);
        }
        let mut merge = self.merge_from(start, true)?;
        while let Some((key, loc)) = merge.next_entry()? {
            if key >= end {
                break;
            }
            if let Some(loc) = loc {
                out.push((key.to_vec(), loc));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every live entry, ascending, streamed.
    pub(super) fn live(&self) -> io::Result<impl Iterator<Item = io::Result<(Vec<u8>, Loc)>> + '_> {
        let mut merge = self.merge_from(&[], false)?;
        Ok(std::iter::from_fn(move || loop {
            match merge.next_entry() {
                Err(e) => return Some(Err(e)),
                Ok(None) => return None,
                Ok(Some((k, Some(loc)))) => return Some(Ok((k.to_vec(), loc))),
                Ok(Some((_, None))) => {}
            }
        }))
    }

    /// Number of live entries (a full merge over the index).
    pub(super) fn count(&self) -> io::Result<usize> {
        let mut n = 0;
        for entry in self.live()? {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    /// A merge of the table and every run from `start` on, caching the run blocks it reads
    /// when `fill`.
    fn merge_from(&self, start: &[u8], fill: bool) -> io::Result<Merge<'_>> {
        let mut cursors = Vec::with_capacity(self.runs.len());
        for run in &self.runs {
            cursors.push(run.cursor(start, fill)?);
        }
        let mem: Box<dyn Iterator<Item = Entry> + '_> =
            Box::new(self.mem.iter_from(start).map(|(k, v)| (k.to_vec(), *v)));
        Ok(Merge::new(mem.peekable(), cursors))
    }

    /// True when the in-memory table is full.
    pub(super) fn is_full(&self) -> bool {
        self.mem.len() >= self.mem_limit
    }

    /// Writes the in-memory table out as a run covering the log up to `log_end`, of which
    /// `synced` bytes are known durable, merges runs, and installs a new manifest. On error
    /// nothing visible changed.
    pub(super) fn spill(&mut self, log_end: u64, synced: u64) -> io::Result<()> {
        self.spill_at(log_end, log_end, synced)
    }

    /// [`Lsm::spill`] with replay to start at `from` and entries up to the log's `covers`.
    fn spill_at(&mut self, from: u64, covers: u64, synced: u64) -> io::Result<()> {
        if self.mem.is_empty() {
            // Nothing to write out; record a durable length that grew, so the next open need
            // not check the log up to the checkpoint.
            let synced = synced.min(self.covers);
            if synced > self.synced {
                let old = std::mem::replace(&mut self.synced, synced);
                self.write_manifest().inspect_err(|_| self.synced = old)?;
            }
            return Ok(());
        }
        // The table and the newest runs it is merged with (each run at least twice the size
        // of everything newer, as if merged one by one) become one run: written and synced
        // once, in one pass.
        let mut merged = self.mem.len() as u64;
        let included = self
            .runs
            .iter()
            .take_while(|run| {
                let take = merged.saturating_mul(2) >= run.entries;
                if take {
                    merged += run.entries;
                }
                take
            })
            .count();
        let id = self.next_id;
        let path = run_path(&self.dir, id);
        let mut writer = RunWriter::create(&path)?;
        let inputs = self.runs.get(..included).unwrap_or_default();
        // Only the oldest run may forget deletions: nothing older is left for them to hide.
        let drop_deletes = included == self.runs.len();
        let garbage =
            self.garbage + merge_into(Some(&self.mem), inputs, &mut writer, drop_deletes)?;
        writer.finish()?;
        crash_point(if included > 0 { "merged run written" } else { "run written" });
        let run = Arc::new(Run::open(&path, id, &self.cache)?);
        let doomed: Vec<u64> = inputs.iter().map(|r| r.id).collect();
        let mut runs = self.runs.clone();
        runs.splice(0..included, [run]);
        let next_id = id + 1;
        let old = std::mem::replace(&mut self.runs, runs);
        let (old_checkpoint, old_next, old_garbage) = (self.checkpoint, self.next_id, self.garbage);
        let (old_synced, old_covers) = (self.synced, self.covers);
        self.checkpoint = from;
        self.covers = covers;
        self.synced = synced.max(self.synced).min(covers);
        self.next_id = next_id;
        self.garbage = garbage;
        if let Err(e) = self.write_manifest() {
            self.runs = old;
            self.checkpoint = old_checkpoint;
            self.covers = old_covers;
            self.synced = old_synced;
            self.next_id = old_next;
            self.garbage = old_garbage;
            return Err(e);
        }
        self.mem.clear();
        for id in doomed {
            let _ = std::fs::remove_file(run_path(&self.dir, id));
            crash_point("merged run removed");
        }
        Ok(())
    }

    /// Starts the run that will replace the whole index after a compaction: entries are
    /// added (ascending) through the returned sink, then [`Lsm::install`] switches to it.
    pub(super) fn begin_replace(&self) -> io::Result<(RunSink, u64)> {
        let id = self.next_id;
        Ok((RunSink { writer: RunWriter::create(&run_path(&self.dir, id))? }, id))
    }

    /// Opens run `id`, written through [`Lsm::begin_replace`] (before the new log replaces the
    /// old one, so that a failure here leaves the old log and index in use).
    pub(super) fn open_replacement(&self, id: u64) -> io::Result<Arc<Run>> {
        Ok(Arc::new(Run::open(&run_path(&self.dir, id), id, &self.cache)?))
    }

    /// Makes `run` (from [`Lsm::open_replacement`]) the whole index of the new log with `salt`,
    /// covering it up to `log_end`. The in-memory switch always happens; the manifest is
    /// written last (if that fails, the next open rebuilds the index from the log).
    pub(super) fn install(&mut self, run: Arc<Run>, salt: Salt, log_end: u64) -> io::Result<()> {
        let id = run.id;
        let old: Vec<u64> = self.runs.iter().map(|r| r.id).collect();
        self.runs = vec![run];
        self.mem.clear();
        self.next_id = id + 1;
        self.checkpoint = log_end;
        self.covers = log_end;
        self.synced = log_end;
        self.salt = salt;
        self.garbage = 0;
        self.write_manifest()?;
        for id in old {
            let _ = std::fs::remove_file(run_path(&self.dir, id));
        }
        Ok(())
    }
}

/// Writes the entries a compaction produces (ascending) straight into a run.
pub(super) struct RunSink {
    writer: RunWriter,
}

impl RunSink {
    /// Completes and syncs the run.
    pub(super) fn finish(self) -> io::Result<()> {
        self.writer.finish()
    }
}

impl Apply for RunSink {
    fn put(&mut self, key: &[u8], loc: Loc) -> io::Result<()> {
        self.writer.add(key, Some(loc))
    }

    fn delete(&mut self, _key: &[u8]) -> io::Result<()> {
        Err(io::Error::other("a compacted log holds puts only"))
    }

    fn delete_range(&mut self, _start: &[u8], _end: &[u8]) -> io::Result<()> {
        Err(io::Error::other("a compacted log holds puts only"))
    }
}

impl Apply for Lsm {
    fn start(&mut self, log: &File, salt: &Salt, log_len: u64) -> io::Result<u64> {
        // Runs that claim more log than the file holds, or log records that did not survive,
        // do not index this file: rebuild from the whole log.
        let valid = self.load(salt)
            && self.covers <= log_len
            && (self.synced >= self.covers
                || super::log::verify(log, salt, self.synced, self.covers)?);
        if !valid {
            self.runs.clear();
            self.checkpoint = super::log::HEADER_LEN;
            self.covers = super::log::HEADER_LEN;
            self.synced = super::log::HEADER_LEN;
            self.garbage = 0;
        }
        self.salt = *salt;
        self.mem.clear();
        self.remove_strays()?;
        Ok(self.checkpoint)
    }

    fn put(&mut self, key: &[u8], loc: Loc) -> io::Result<()> {
        if let Some(Some(old)) = self.mem.insert(key, Some(loc)) {
            self.garbage += u64::from(old.len);
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> io::Result<()> {
        if let Some(Some(old)) = self.mem.insert(key, None) {
            self.garbage += u64::from(old.len);
        }
        Ok(())
    }

    fn begin_record(&mut self, at: u64, end: u64) {
        self.record = (at, end);
    }

    /// One deletion entry per live key, found a page at a time; a table that fills up in the
    /// middle is written out (covering the log up to the start of this record), so memory stays
    /// bounded however large the range.
    fn delete_range(&mut self, start: &[u8], end: &[u8]) -> io::Result<()> {
        const PAGE: usize = 4096;
        let mut from = start.to_vec();
        loop {
            let page = self.range(&from, end, PAGE)?;
            for (key, loc) in &page {
                self.garbage += u64::from(loc.len);
                self.mem.insert(key, None);
            }
            if self.is_full() {
                let ((at, end), synced) = (self.record, self.synced);
                self.spill_at(at, end, synced)?;
            }
            let Some((last, _)) = page.last().filter(|_| page.len() == PAGE) else {
                return Ok(());
            };
            from.clone_from(last);
            from.push(0);
        }
    }

    fn replayed(&mut self, _log: &File, end: u64) -> io::Result<()> {
        if self.is_full() {
            // What replay reads need not be durable yet: keep the durable length as it was.
            let synced = self.synced;
            self.spill(end, synced)?;
        }
        Ok(())
    }
}

/// Merges the table `mem` (newest) and `runs` (newest first) through `writer`, dropping
/// deletions when `drop_deletes`; returns the bytes of values shadowed. A run's block whose keys
/// all sort before every other source's next key is copied whole, unparsed (for appended data,
/// where runs hardly overlap, that is nearly every block).
fn merge_into(
    mem: Option<&Memtable>,
    runs: &[Arc<Run>],
    writer: &mut RunWriter,
    drop_deletes: bool,
) -> io::Result<u64> {
    let mut mem = mem.map(|m| m.iter_from(&[]).peekable());
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        cursors.push(run.cursor(&[], false)?);
    }
    let (mut key, mut mem_key) = (Vec::new(), Vec::new());
    let mut garbage = 0;
    loop {
        for cursor in &mut cursors {
            cursor.fill()?;
        }
        let mem_head = mem.as_mut().and_then(|m| m.peek().map(|(k, slot)| (*k, **slot)));
        mem_key.clear();
        if let Some((k, _)) = mem_head {
            k.extend_into(&mut mem_key);
        }
        // The table alone below every run's next key (new keys: the common case) is written
        // straight out.
        if let Some((_, slot)) = mem_head {
            let below =
                cursors.iter().all(|c| c.head().is_none_or(|(k, _)| mem_key.as_slice() < k));
            if below {
                if slot.is_some() || !drop_deletes {
                    writer.add(&mem_key, slot)?;
                }
                if let Some(m) = mem.as_mut() {
                    m.next();
                }
                continue;
            }
        }
        // The smallest key, and how many sources hold it.
        let mut best: Option<&[u8]> = mem_head.map(|_| mem_key.as_slice());
        let mut holders = usize::from(best.is_some());
        let mut only = None;
        for (n, cursor) in cursors.iter().enumerate() {
            let Some((k, _)) = cursor.head() else { continue };
            match best.map(|b| k.cmp(b)) {
                None | Some(std::cmp::Ordering::Less) => {
                    (best, holders, only) = (Some(k), 1, Some(n));
                }
                Some(std::cmp::Ordering::Equal) => holders += 1,
                Some(std::cmp::Ordering::Greater) => {}
            }
        }
        let Some(best) = best else { return Ok(garbage) };
        key.clear();
        key.extend_from_slice(best);
        // A run alone at the smallest key, at the start of a block that ends before every
        // other source's next key: copy the block.
        if let (1, Some(n)) = (holders, only) {
            if let Some((block, deletes)) =
                cursors.get(n).map(Cursor::whole_block).transpose()?.flatten()
            {
                let last = block.last();
                let before_others = mem_head.is_none_or(|(k, _)| last < k)
                    && cursors.iter().enumerate().all(|(m, c)| {
                        m == n || c.head().is_none_or(|(k, _)| *last < IndexKey::new(k))
                    });
                if before_others && !(deletes && drop_deletes) {
                    writer.add_block(&block)?;
                    if let Some(cursor) = cursors.get_mut(n) {
                        cursor.skip_block();
                    }
                    continue;
                }
            }
        }
        // The newest source holding the key wins; the others are shadowed.
        let mut winner = None;
        if mem_head.is_some_and(|_| mem_key == key) {
            winner = mem_head.map(|(_, slot)| slot);
            if let Some(m) = mem.as_mut() {
                m.next();
            }
        }
        for cursor in &mut cursors {
            let Some((k, slot)) = cursor.head() else { continue };
            if k != key.as_slice() {
                continue;
            }
            if winner.is_none() {
                winner = Some(slot);
            } else if let Some(shadowed) = slot {
                garbage += u64::from(shadowed.len);
            }
            cursor.advance();
        }
        if let Some(slot) = winner {
            if slot.is_some() || !drop_deletes {
                writer.add(&key, slot)?;
            }
        }
    }
}

type MemIter<'a> = std::iter::Peekable<Box<dyn Iterator<Item = Entry> + 'a>>;

/// A k-way merge of the in-memory table (newest) and runs (newest first): on equal keys the
/// newest entry wins and the others count as garbage.
struct Merge<'a> {
    mem: MemIter<'a>,
    cursors: Vec<Cursor<'a>>,
    garbage: u64,
    key: Vec<u8>,
}

impl<'a> Merge<'a> {
    fn new(mem: MemIter<'a>, cursors: Vec<Cursor<'a>>) -> Self {
        Self { mem, cursors, garbage: 0, key: Vec::new() }
    }

    /// The next key in order with its newest entry (the key is valid until the next call).
    fn next_entry(&mut self) -> io::Result<Option<(&[u8], Option<Loc>)>> {
        for cursor in &mut self.cursors {
            cursor.fill()?;
        }
        // The smallest key among the sources; on a tie the newest source (first) wins.
        let mut best: Option<&[u8]> = self.mem.peek().map(|(k, _)| k.as_slice());
        for cursor in &self.cursors {
            if let Some((key, _)) = cursor.head() {
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        let Some(best) = best else { return Ok(None) };
        self.key.clear();
        self.key.extend_from_slice(best);
        let mut winner: Option<Option<Loc>> = None;
        if self.mem.peek().is_some_and(|(k, _)| *k == self.key) {
            winner = self.mem.next().map(|(_, loc)| loc);
        }
        for cursor in &mut self.cursors {
            let Some((k, loc)) = cursor.head() else { continue };
            if k != self.key.as_slice() {
                continue;
            }
            cursor.advance();
            if winner.is_none() {
                winner = Some(loc);
            } else if let Some(shadowed) = loc {
                self.garbage += u64::from(shadowed.len);
            }
        }
        Ok(winner.map(|loc| (self.key.as_slice(), loc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Model = BTreeMap<Vec<u8>, Option<Loc>>;

    fn write_run(dir: &Path, id: u64, entries: &Model, cache: &Arc<BlockCache>) -> Run {
        let path = run_path(dir, id);
        let mut writer = RunWriter::create(&path).unwrap();
        for (key, loc) in entries {
            writer.add(key, *loc).unwrap();
        }
        writer.finish().unwrap();
        Run::open(&path, id, cache).unwrap()
    }

    /// Keys in two sections, in stretches that one run or both hold, so both block copies and
    /// entry-wise merging happen.
    fn run_entries() -> impl Strategy<Value = Model> {
        proptest::collection::vec(
            (0u8..2, 0u32..3000, proptest::option::weighted(0.9, 0u32..99)),
            0..600,
        )
        .prop_map(|entries| {
            entries
                .into_iter()
                .map(|(section, n, loc)| {
                    let mut key = vec![3, 0, 0, 0, 0, 0, 0, 0, 1, section];
                    key.extend_from_slice(&u64::from(n).to_be_bytes());
                    (key, loc.map(|len| Loc { offset: u64::from(n), len }))
                })
                .collect()
        })
    }

    proptest! {
        // Each case writes and syncs three run files.
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn merging_a_table_and_runs_matches_the_model(
            table in run_entries(),
            newer in run_entries(),
            older in run_entries(),
            with_table in any::<bool>(),
            drop_deletes in any::<bool>(),
            // Off, or a few blocks, so that lookups both hit and evict.
            cache_bytes in prop_oneof![Just(0usize), Just(6 << 10), Just(1 << 20)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let cache = Arc::new(BlockCache::new(cache_bytes));
            let a = write_run(dir.path(), 1, &newer, &cache);
            let b = write_run(dir.path(), 2, &older, &cache);
            // Lookups cache some of the inputs' blocks before the merge reads them.
            for key in newer.keys().chain(older.keys()).step_by(7) {
                a.get(key).unwrap();
                b.get(key).unwrap();
            }
            let mut mem = Memtable::default();
            for (key, loc) in &table {
                mem.insert(key, *loc);
            }
            let path = run_path(dir.path(), 3);
            let mut writer = RunWriter::create(&path).unwrap();
            let runs = [Arc::new(a), Arc::new(b)];
            let garbage =
                merge_into(with_table.then_some(&mem), &runs, &mut writer, drop_deletes).unwrap();
            writer.finish().unwrap();
            let merged = Run::open(&path, 3, &cache).unwrap();

            let mut want = older.clone();
            let mut want_garbage = 0;
            let newest = if with_table { vec![&newer, &table] } else { vec![&newer] };
            for source in newest {
                for (key, loc) in source {
                    if let Some(Some(old)) = want.insert(key.clone(), *loc) {
                        want_garbage += u64::from(old.len);
                    }
                }
            }
            if drop_deletes {
                want.retain(|_, loc| loc.is_some());
            }
            let mut got = Model::new();
            let mut cursor = merged.cursor(&[], true).unwrap();
            loop {
                cursor.fill().unwrap();
                let Some((key, loc)) = cursor.head() else { break };
                got.insert(key.to_vec(), loc);
                cursor.advance();
            }
            prop_assert_eq!(merged.entries, want.len() as u64);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(garbage, want_garbage);
            for (key, loc) in &want {
                prop_assert_eq!(merged.get(key).unwrap(), Some(*loc));
                // Again: a hit when cached.
                prop_assert_eq!(merged.get(key).unwrap(), Some(*loc));
            }
            prop_assert!(cache.stats().bytes <= cache_bytes);
        }
    }
}
