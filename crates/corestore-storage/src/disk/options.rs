//! [`DiskOptions`]: the tuning of a [`super::DiskStorage`].

/// Compaction is considered once the log is this large (by default).
const COMPACT_MIN_LEN: u64 = 64 << 20;

/// The default [`DiskOptions::block_cache_bytes`].
const BLOCK_CACHE_BYTES: usize = 8 << 20;

/// Tuning for [`super::DiskStorage::open_with`]. The defaults suit stores of any size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskOptions {
    /// Compaction runs only once the log file is at least this many bytes (default 64 MiB)
    /// and more than twice the live data.
    pub compact_min_len: u64,
    /// Keep the index on disk (sorted runs in the store's `index/` directory, rebuilt from the
    /// log whenever it is missing or stale) instead of every key in memory: memory is bounded
    /// by [`DiskOptions::memtable_entries`] and open replays only the log written since the
    /// last run. On by default. Off, every key lives in memory (about 80 bytes plus the key per
    /// record) and open replays the whole log: a little faster for small stores (a point read
    /// is one `pread` instead of two), but memory and open time grow with the store. Either
    /// opens a store written with the other.
    pub persistent_index: bool,
    /// With [`DiskOptions::persistent_index`], how many recent keys are held in memory before
    /// they are written out as a run (default 131,072; they are also written out when the store
    /// is dropped, so a clean reopen replays nothing).
    pub memtable_entries: usize,
    /// With [`DiskOptions::persistent_index`], how many bytes of index run blocks (about 4 KiB
    /// each, checksum verified) are kept in memory for the lookups that follow, shared by all
    /// runs; 0 turns the cache off. A lookup of a key next to one looked up recently (a block
    /// and the tree nodes of its proof, or the next block) then costs no `pread` of the index.
    /// The default, 8 MiB, is about 2,000 blocks: the neighbourhoods of the read positions of
    /// hundreds of cores at once (a core replicated in order needs a handful of blocks), while
    /// adding little to a store's memory (see [`super::DiskStorage::block_cache_stats`]).
    pub block_cache_bytes: usize,
}

impl Default for DiskOptions {
    fn default() -> Self {
        Self {
            compact_min_len: COMPACT_MIN_LEN,
            persistent_index: true,
            memtable_entries: 1 << 17,
            block_cache_bytes: BLOCK_CACHE_BYTES,
        }
    }
}

impl DiskOptions {
    /// Sets [`DiskOptions::compact_min_len`] (tests use a small one to compact often).
    #[must_use]
    pub fn compact_min_len(mut self, bytes: u64) -> Self {
        self.compact_min_len = bytes;
        self
    }

    /// Sets [`DiskOptions::persistent_index`].
    #[must_use]
    pub fn persistent_index(mut self, on: bool) -> Self {
        self.persistent_index = on;
        self
    }

    /// Sets [`DiskOptions::memtable_entries`] (at least 1).
    #[must_use]
    pub fn memtable_entries(mut self, entries: usize) -> Self {
        self.memtable_entries = entries.max(1);
        self
    }

    /// Sets [`DiskOptions::block_cache_bytes`] (0: no cache).
    #[must_use]
    pub fn block_cache_bytes(mut self, bytes: usize) -> Self {
        self.block_cache_bytes = bytes;
        self
    }
}
