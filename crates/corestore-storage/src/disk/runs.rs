//! Immutable sorted index runs of the persistent index ([`super::lsm`]): key → value position
//! (or a deletion), in checksummed blocks of about 4 KiB, with the first key of every block
//! kept in memory.
//!
//! ```text
//! run    = block* fences footer
//! block  = entry*                                  (checksum in its fence)
//! entry  = klen:u32le key 00                       deleted
//!        | klen:u32le key 01 offset:u64le len:u32le
//! fences = (klen:u32le first_key llen:u32le last_key offset:u64le len:u32le crc32:u32le)*
//! footer = fences_offset:u64le fences_len:u32le fences_crc32:u32le entries:u64le "CSRUN001"
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use std::sync::Arc;

use super::block_cache::{Block, BlockCache, CachedBlock};
use super::index::Loc;
use super::key::IndexKey;

const BLOCK: usize = 4096;
/// A block never spans two key prefixes of this length (`03 ‖ core id ‖ kind` in the schema),
/// so a lookup that falls between two sections of a run (past the last block of a core, say)
/// is answered from the fences without a read.
const SECTION: usize = 10;
const FOOTER_LEN: usize = 32;
const MAGIC: &[u8; 8] = b"CSRUN001";
/// Refuse fence tables above this size (a damaged footer must not allocate unbounded memory).
const MAX_FENCES: usize = 1 << 30;

fn bad(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn dword(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// One entry: a key and its value position, or `None` for a deletion.
pub(super) type Entry = (Vec<u8>, Option<Loc>);

fn section(key: &[u8]) -> &[u8] {
    key.get(..SECTION.min(key.len())).unwrap_or_default()
}

/// Writes a run from entries in strictly ascending key order.
pub(super) struct RunWriter {
    file: File,
    block: Vec<u8>,
    first: Option<Vec<u8>>,
    last: Vec<u8>,
    fences: Vec<u8>,
    /// Where the next block goes in the file.
    offset: u64,
    /// Finished blocks not yet written, from `written` on (written out about 1 MiB at a time).
    out: Vec<u8>,
    written: u64,
    entries: u64,
}

/// Finished blocks are written out once this many bytes are pending.
const WRITE_CHUNK: usize = 1 << 20;

impl RunWriter {
    /// Creates (truncating) the run file at `path`.
    pub(super) fn create(path: &Path) -> io::Result<Self> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        Ok(Self {
            file,
            block: Vec::with_capacity(BLOCK + 256),
            first: None,
            last: Vec::new(),
            fences: Vec::new(),
            offset: 0,
            out: Vec::new(),
            written: 0,
            entries: 0,
        })
    }

    /// Adds a whole block of another run, unchanged: its `entries` entries all sort after every
    /// entry added so far and before every entry added next.
    pub(super) fn add_block(&mut self, block: &RawBlock<'_>) -> io::Result<()> {
        self.end_block()?;
        let len = u32::try_from(block.raw.len()).map_err(|_| bad("index block too long"))?;
        self.push_fence(
            &block.fence.first.to_vec(),
            &block.fence.last.to_vec(),
            len,
            block.fence.crc,
        )?;
        self.out.extend_from_slice(block.raw);
        self.offset += u64::from(len);
        self.entries += block.entries;
        self.write_out(false)
    }

    fn push_fence(&mut self, first: &[u8], last: &[u8], len: u32, crc: u32) -> io::Result<()> {
        for key in [first, last] {
            let klen = u32::try_from(key.len()).map_err(|_| bad("index key too long"))?;
            self.fences.extend_from_slice(&klen.to_le_bytes());
            self.fences.extend_from_slice(key);
        }
        self.fences.extend_from_slice(&self.offset.to_le_bytes());
        self.fences.extend_from_slice(&len.to_le_bytes());
        self.fences.extend_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Writes the pending blocks once there are enough of them (or all, with `all`).
    fn write_out(&mut self, all: bool) -> io::Result<()> {
        if self.out.len() >= WRITE_CHUNK || (all && !self.out.is_empty()) {
            self.file.write_all_at(&self.out, self.written)?;
            self.written += self.out.len() as u64;
            self.out.clear();
            super::lsm::crash_point("run partly written");
        }
        Ok(())
    }

    /// Adds the next entry (keys must ascend).
    pub(super) fn add(&mut self, key: &[u8], loc: Option<Loc>) -> io::Result<()> {
        let klen = u32::try_from(key.len()).map_err(|_| bad("index key too long"))?;
        if self.first.as_deref().is_some_and(|first| section(first) != section(key)) {
            self.end_block()?;
        }
        if self.first.is_none() {
            self.first = Some(key.to_vec());
        }
        self.last.clear();
        self.last.extend_from_slice(key);
        self.block.extend_from_slice(&klen.to_le_bytes());
        self.block.extend_from_slice(key);
        match loc {
            None => self.block.push(0),
            Some(loc) => {
                self.block.push(1);
                self.block.extend_from_slice(&loc.offset.to_le_bytes());
                self.block.extend_from_slice(&loc.len.to_le_bytes());
            }
        }
        self.entries += 1;
        if self.block.len() >= BLOCK {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> io::Result<()> {
        let Some(first) = self.first.take() else { return Ok(()) };
        let len = u32::try_from(self.block.len()).map_err(|_| bad("index block too long"))?;
        let last = std::mem::take(&mut self.last);
        self.push_fence(&first, &last, len, crc32fast::hash(&self.block))?;
        self.last = last;
        self.out.extend_from_slice(&self.block);
        self.offset += u64::from(len);
        self.block.clear();
        self.write_out(false)
    }

    /// Writes the fences and footer and syncs the file.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.end_block()?;
        self.write_out(true)?;
        let fences_len = u32::try_from(self.fences.len()).map_err(|_| bad("fences too long"))?;
        self.file.write_all_at(&self.fences, self.offset)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&self.offset.to_le_bytes());
        footer.extend_from_slice(&fences_len.to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&self.fences).to_le_bytes());
        footer.extend_from_slice(&self.entries.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        self.file.write_all_at(&footer, self.offset + u64::from(fences_len))?;
        self.file.sync_all()
    }
}

struct Fence {
    first: IndexKey,
    last: IndexKey,
    offset: u64,
    len: u32,
    crc: u32,
}

/// An open run: the file and the first key of each block.
pub(super) struct Run {
    pub(super) id: u64,
    /// This run's id in `cache` (unique in the process, unlike `id`, which names the file).
    cache_id: u64,
    file: File,
    fences: Vec<Fence>,
    pub(super) entries: u64,
    cache: Arc<BlockCache>,
}

/// A run block being read: shared with the cache, or read for one pass only (a merge, or
/// with the cache off).
enum Raw {
    Cached(Block),
    Read(Vec<u8>),
}

impl std::ops::Deref for Raw {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Cached(block) => &block.raw,
            Self::Read(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.id)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl Run {
    /// Opens the run file at `path`, checking its footer and fences; its blocks are cached in
    /// `cache`.
    pub(super) fn open(path: &Path, id: u64, cache: &Arc<BlockCache>) -> io::Result<Self> {
        let file = File::open(path)?;
        let bytes = file.metadata()?.len();
        let footer_at =
            bytes.checked_sub(FOOTER_LEN as u64).ok_or_else(|| bad("index run too short"))?;
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, footer_at)?;
        if &footer[24..] != MAGIC {
            return Err(bad("not an index run"));
        }
        let fences_at = dword(&footer, 0).ok_or_else(|| bad("index run footer"))?;
        let fences_len = word(&footer, 8).ok_or_else(|| bad("index run footer"))? as usize;
        let crc = word(&footer, 12).ok_or_else(|| bad("index run footer"))?;
        let entries = dword(&footer, 16).ok_or_else(|| bad("index run footer"))?;
        if fences_len > MAX_FENCES || fences_at + fences_len as u64 != footer_at {
            return Err(bad("index run fences out of bounds"));
        }
        let mut raw = vec![0u8; fences_len];
        file.read_exact_at(&mut raw, fences_at)?;
        if crc32fast::hash(&raw) != crc {
            return Err(bad("index run fences damaged"));
        }
        let mut fences = Vec::new();
        let mut at = 0;
        while at < raw.len() {
            let klen = word(&raw, at).ok_or_else(|| bad("index run fence"))? as usize;
            let key = raw.get(at + 4..at + 4 + klen).ok_or_else(|| bad("index run fence"))?;
            let mid = at + 4 + klen;
            let last_klen = word(&raw, mid).ok_or_else(|| bad("index run fence"))? as usize;
            let last =
                raw.get(mid + 4..mid + 4 + last_klen).ok_or_else(|| bad("index run fence"))?;
            let tail = mid + 4 + last_klen;
            let offset = dword(&raw, tail).ok_or_else(|| bad("index run fence"))?;
            let len = word(&raw, tail + 8).ok_or_else(|| bad("index run fence"))?;
            let crc = word(&raw, tail + 12).ok_or_else(|| bad("index run fence"))?;
            if offset + u64::from(len) > fences_at {
                return Err(bad("index run block out of bounds"));
            }
            fences.push(Fence {
                first: IndexKey::new(key),
                last: IndexKey::new(last),
                offset,
                len,
                crc,
            });
            at = tail + 16;
        }
        let cache_id = super::block_cache::run_id();
        Ok(Self { id, cache_id, file, fences, entries, cache: cache.clone() })
    }

    /// Block `n`, verified: from the cache, or read (and cached when `fill`; a merge reads each
    /// block once and would only push the blocks that lookups reuse out).
    fn raw_block(&self, n: usize, fill: bool) -> io::Result<Raw> {
        let Some(fence) = self.fences.get(n) else { return Ok(Raw::Read(Vec::new())) };
        if let Some(block) = self.cache.get(self.cache_id, n) {
            return Ok(Raw::Cached(block));
        }
        let mut raw = vec![0u8; fence.len as usize];
        self.file.read_exact_at(&mut raw, fence.offset)?;
        if crc32fast::hash(&raw) != fence.crc {
            return Err(bad("index run block damaged"));
        }
        if !fill || self.cache.is_off() {
            return Ok(Raw::Read(raw));
        }
        let starts = entry_starts(&raw)?;
        let block = Arc::new(CachedBlock { raw: raw.into_boxed_slice(), starts });
        self.cache.insert(self.cache_id, n, block.clone());
        Ok(Raw::Cached(block))
    }

    /// The block that may hold `key`: the last one whose first key is not above it.
    fn block_for(&self, key: &IndexKey) -> usize {
        self.fences.partition_point(|f| f.first <= *key).saturating_sub(1)
    }

    /// The entry for `key`: `Some(None)` when this run records its deletion.
    // Three cases on purpose: not in this run (look in older runs), deleted here, live here.
    #[allow(clippy::option_option)]
    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<Option<Loc>>> {
        let k = IndexKey::new(key);
        let n = self.block_for(&k);
        // Outside every block's key range: not in this run, and no read.
        match self.fences.get(n) {
            Some(f) if f.first <= k && k <= f.last => {}
            _ => return Ok(None),
        }
        let raw = match self.raw_block(n, true)? {
            Raw::Cached(block) => return find(&block, key),
            Raw::Read(raw) => raw,
        };
        let mut at = 0;
        while at < raw.len() {
            let (entry, loc, next) = parse_entry(&raw, at)?;
            match entry.cmp(key) {
                std::cmp::Ordering::Less => at = next,
                std::cmp::Ordering::Equal => return Ok(Some(loc)),
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }

    /// A cursor at the first entry with a key at or above `start`; the blocks it reads are
    /// cached when `fill` (range reads; not merges, which read every block once).
    pub(super) fn cursor(&self, start: &[u8], fill: bool) -> io::Result<Cursor<'_>> {
        let n = self.block_for(&IndexKey::new(start));
        let raw = self.raw_block(n, fill)?;
        let mut cursor = Cursor { run: self, block: n, raw, at: 0, head: None, fill };
        cursor.fill()?;
        while cursor.head().is_some_and(|(k, _)| k < start) {
            cursor.advance();
            cursor.fill()?;
        }
        Ok(cursor)
    }
}

/// Where each entry of a block starts; every entry must be whole (a block that is not is
/// refused, and not cached). Only the lengths are read: this runs on every block that enters the
/// cache, which for random reads of a large store is every lookup.
fn entry_starts(raw: &[u8]) -> io::Result<Vec<u32>> {
    // Entries are at least 6 bytes; most schema entries about 36.
    let mut starts = Vec::with_capacity(raw.len() / 24);
    let mut at = 0;
    while at < raw.len() {
        starts.push(u32::try_from(at).map_err(|_| bad("index block too long"))?);
        let klen = word(raw, at).ok_or_else(|| bad("index entry"))? as usize;
        let tag = at + 4 + klen;
        at = match raw.get(tag) {
            Some(0) => tag + 1,
            Some(1) => tag + 13,
            _ => return Err(bad("index entry")),
        };
        if at > raw.len() {
            return Err(bad("index entry"));
        }
    }
    Ok(starts)
}

/// The entry for `key` in a cached block (a binary search over its entries, in place).
// As `Run::get`.
#[allow(clippy::option_option)]
fn find(block: &CachedBlock, key: &[u8]) -> io::Result<Option<Option<Loc>>> {
    let raw = &*block.raw;
    // Every entry parsed when the block was cached: a key that does not parse is not there.
    let key_at = |at: u32| {
        let at = at as usize;
        let klen = word(raw, at).unwrap_or_default() as usize;
        raw.get(at + 4..at + 4 + klen).unwrap_or_default()
    };
    match block.starts.binary_search_by(|&at| key_at(at).cmp(key)) {
        Ok(n) => {
            let at = block.starts.get(n).map_or(usize::MAX, |&at| at as usize);
            Ok(Some(parse_entry(raw, at)?.1))
        }
        Err(_) => Ok(None),
    }
}

/// The entry at `at` of a block: its key, value position (or deletion), and the next entry's
/// offset.
fn parse_entry(raw: &[u8], at: usize) -> io::Result<(&[u8], Option<Loc>, usize)> {
    let klen = word(raw, at).ok_or_else(|| bad("index entry"))? as usize;
    let start = at + 4;
    let key = raw.get(start..start + klen).ok_or_else(|| bad("index entry"))?;
    let at = start + klen;
    match raw.get(at) {
        Some(0) => Ok((key, None, at + 1)),
        Some(1) => {
            let offset = dword(raw, at + 1).ok_or_else(|| bad("index entry"))?;
            let len = word(raw, at + 9).ok_or_else(|| bad("index entry"))?;
            Ok((key, Some(Loc { offset, len }), at + 13))
        }
        _ => Err(bad("index entry")),
    }
}

/// Reads a run in key order, one block in memory at a time.
pub(super) struct Cursor<'a> {
    run: &'a Run,
    block: usize,
    raw: Raw,
    at: usize,
    /// The parsed entry at `at`: key range in `raw`, value position, next entry's offset.
    head: Option<(usize, usize, Option<Loc>, usize)>,
    /// Cache the blocks read.
    fill: bool,
}

impl Cursor<'_> {
    /// Parses the entry under the cursor (loading the next block when this one is done).
    pub(super) fn fill(&mut self) -> io::Result<()> {
        if self.head.is_some() {
            return Ok(());
        }
        while self.at >= self.raw.len() {
            if self.block + 1 >= self.run.fences.len() {
                return Ok(());
            }
            self.block += 1;
            self.raw = self.run.raw_block(self.block, self.fill)?;
            self.at = 0;
        }
        let (key, loc, next) = parse_entry(&self.raw, self.at)?;
        let start = self.at + 4;
        self.head = Some((start, start + key.len(), loc, next));
        Ok(())
    }

    /// The entry under the cursor, once [`Cursor::fill`] has run.
    pub(super) fn head(&self) -> Option<(&[u8], Option<Loc>)> {
        let (start, end, loc, _) = self.head?;
        Some((self.raw.get(start..end)?, loc))
    }

    /// Moves past the entry under the cursor.
    pub(super) fn advance(&mut self) {
        if let Some((_, _, _, next)) = self.head.take() {
            self.at = next;
        }
    }

    /// When the cursor (filled) is at the start of a block: that whole block, to be copied
    /// as it is, and whether it holds a deletion.
    pub(super) fn whole_block(&self) -> io::Result<Option<(RawBlock<'_>, bool)>> {
        if self.at != 0 || self.head.is_none() {
            return Ok(None);
        }
        let Some(fence) = self.run.fences.get(self.block) else { return Ok(None) };
        let (mut at, mut entries, mut deletes) = (0, 0, false);
        while at < self.raw.len() {
            let (_, loc, next) = parse_entry(&self.raw, at)?;
            deletes |= loc.is_none();
            entries += 1;
            at = next;
        }
        Ok(Some((RawBlock { raw: &self.raw, fence, entries }, deletes)))
    }

    /// Moves past the rest of the current block.
    pub(super) fn skip_block(&mut self) {
        self.head = None;
        self.at = self.raw.len();
    }
}

/// A whole block of a run, with its fence.
pub(super) struct RawBlock<'a> {
    raw: &'a [u8],
    fence: &'a Fence,
    entries: u64,
}

impl RawBlock<'_> {
    /// The block's last key.
    pub(super) fn last(&self) -> &IndexKey {
        &self.fence.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, value_len: u32, keys: u16) {
        let mut writer = RunWriter::create(path).unwrap();
        for n in 0..keys {
            let mut key = vec![3, 0, 0, 0, 0, 0, 0, 0, 1, 2];
            key.extend_from_slice(&n.to_be_bytes());
            writer.add(&key, Some(Loc { offset: u64::from(n), len: value_len })).unwrap();
        }
        writer.finish().unwrap();
    }

    fn key(n: u16) -> Vec<u8> {
        let mut key = vec![3, 0, 0, 0, 0, 0, 0, 0, 1, 2];
        key.extend_from_slice(&n.to_be_bytes());
        key
    }

    /// A compaction that fails after writing its run leaves the file name to the next run
    /// written; blocks cached for the first must never answer for the second.
    #[test]
    fn a_run_reusing_a_file_name_never_gets_the_blocks_cached_for_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-0000000000000005.idx");
        let cache = Arc::new(BlockCache::new(1 << 20));
        write(&path, 7, 500);
        let old = Run::open(&path, 5, &cache).unwrap();
        for n in 0..500 {
            assert_eq!(old.get(&key(n)).unwrap(), Some(Some(Loc { offset: u64::from(n), len: 7 })));
        }
        assert!(cache.stats().blocks > 1);
        drop(old);
        write(&path, 9, 500);
        let new = Run::open(&path, 5, &cache).unwrap();
        for n in 0..500 {
            assert_eq!(new.get(&key(n)).unwrap(), Some(Some(Loc { offset: u64::from(n), len: 9 })));
        }
    }

    /// A block with a valid checksum but a cut or malformed entry is refused (and so never
    /// cached), whatever its lengths claim.
    #[test]
    fn a_malformed_block_has_no_entry_starts() {
        let mut good = Vec::new();
        for (key, tag) in [(&b"ab"[..], 0u8), (b"abc", 1)] {
            good.extend_from_slice(&u32::try_from(key.len()).unwrap().to_le_bytes());
            good.extend_from_slice(key);
            good.push(tag);
            if tag == 1 {
                good.extend_from_slice(&[7; 12]);
            }
        }
        assert_eq!(entry_starts(&good).unwrap(), vec![0, 7]);
        // Cut anywhere but between the two entries.
        for cut in (1..good.len()).filter(|&cut| cut != 7) {
            assert!(entry_starts(good.get(..cut).unwrap()).is_err(), "cut at {cut}");
        }
        let mut bad_tag = good.clone();
        bad_tag[6] = 2;
        assert!(entry_starts(&bad_tag).is_err());
        let mut huge = good;
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(entry_starts(&huge).is_err());
    }

    /// A lookup that hits the cache returns what a read does, and reads the file no more.
    #[test]
    fn a_cached_block_answers_hits_and_misses_like_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        write(&path, 7, 1000);
        let cached = Run::open(&path, 1, &Arc::new(BlockCache::new(1 << 20))).unwrap();
        let read = Run::open(&path, 1, &Arc::new(BlockCache::new(0))).unwrap();
        for round in 0..2 {
            // Every key, and keys between and past them (misses inside and outside the fences).
            for n in 0..2100 {
                let mut probe = key(n / 2);
                if n % 2 == 1 {
                    probe.push(0);
                }
                assert_eq!(cached.get(&probe).unwrap(), read.get(&probe).unwrap(), "{n}");
            }
            let stats = cached.cache.stats();
            assert_eq!(stats.misses, stats.blocks as u64, "round {round}: a block read twice");
        }
        assert_eq!(read.cache.stats().blocks, 0);
    }
}
