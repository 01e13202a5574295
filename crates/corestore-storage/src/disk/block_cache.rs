//! [`BlockCache`]: a bounded cache of verified index run blocks ([`super::runs`]), shared by every
//! run of one [`super::DiskStorage`], so that the lookups of neighbouring keys (a block and the
//! tree nodes of its proof, say) read each 4 KiB run block once instead of once per key.
//!
//! - **Keys** are a run's cache id (drawn from a process-wide counter when the run is opened,
//!   never reused: a run merged away or replaced by one with the same file name can never have
//!   its blocks returned for another) and the block's number in that run. Blocks of dropped runs
//!   are not looked for again and age out.
//! - **Only verified blocks enter**: a block is cached after its checksum matched its fence, so
//!   damage is still reported on every read of a damaged block. Run blocks are never rewritten,
//!   so a hit holds exactly the bytes a read would.
//! - **Memory** is bounded: every block is charged its length, its entry offsets (4 bytes per
//!   entry, so that a lookup binary-searches the block) and [`ENTRY_OVERHEAD`], and the
//!   charged total never exceeds the capacity. Eviction is CLOCK (a second chance for blocks read
//!   since the hand last passed them), O(1) amortized.
//! - **Concurrency**: a few shards, each a `Mutex` held for a map lookup or an insert only, never
//!   across I/O.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A verified run block and where each of its entries starts (so that a lookup binary-searches
/// it instead of parsing it from the start).
pub(super) struct CachedBlock {
    /// The block's bytes.
    pub(super) raw: Box<[u8]>,
    /// The offset of each entry in `raw`, ascending (as their keys are).
    pub(super) starts: Vec<u32>,
}

impl CachedBlock {
    /// Bytes this block is charged in the cache.
    fn charge(&self) -> usize {
        self.raw.len() + self.starts.capacity() * std::mem::size_of::<u32>() + ENTRY_OVERHEAD
    }
}

/// A cached block, shared by the cache and its readers.
pub(super) type Block = Arc<CachedBlock>;

/// Bytes charged per cached block on top of its bytes and entry offsets: its slot, its map
/// entry, the `Arc` and the block's two boxes, and allocator slack (slot 32, map entry about 30
/// at 7/8 load, `Arc` header and boxes 48, allocation rounding up to 16).
pub(super) const ENTRY_OVERHEAD: usize = 128;

/// A shard holds at least this many bytes (so that small caches are one shard and still hold
/// whole blocks).
const MIN_SHARD: usize = 512 << 10;
const MAX_SHARDS: usize = 8;

/// Ids of opened runs, unique for the life of the process.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// A fresh cache id for a run being opened.
pub(super) fn run_id() -> u64 {
    NEXT_RUN.fetch_add(1, Ordering::Relaxed)
}

/// How a [`super::DiskStorage`]'s cache of index run blocks is doing (see
/// [`super::DiskOptions::block_cache_bytes`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockCacheStats {
    /// The configured capacity in bytes (0: off).
    pub capacity: usize,
    /// Bytes charged for the blocks held now (each block's length plus a fixed overhead for its
    /// bookkeeping); never above `capacity`.
    pub bytes: usize,
    /// Blocks held now.
    pub blocks: usize,
    /// Block lookups answered from the cache since the store was opened.
    pub hits: u64,
    /// Block lookups that had to read the run file.
    pub misses: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    run: u64,
    block: usize,
}

impl Key {
    /// A cheap mix of both fields (keys are made by this crate, never by a peer).
    fn mix(self) -> u64 {
        (self.run.rotate_left(32) ^ self.block as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Hashes a [`Key`] with one multiply (the map's default `SipHash` costs more than the rest of
/// a hit).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

struct Slot {
    key: Key,
    block: Block,
    /// Read since the clock hand last passed.
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Key, usize, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    hand: usize,
    bytes: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl Shard {
    fn get(&mut self, key: Key) -> Option<Block> {
        let found = self.map.get(&key).and_then(|&at| self.slots.get_mut(at));
        if let Some(slot) = found {
            slot.referenced = true;
            self.hits += 1;
            Some(slot.block.clone())
        } else {
            self.misses += 1;
            None
        }
    }

    fn insert(&mut self, key: Key, block: Block) {
        let cost = block.charge();
        if cost > self.capacity || self.map.contains_key(&key) {
            return;
        }
        while self.bytes + cost > self.capacity && !self.slots.is_empty() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let Some(slot) = self.slots.get_mut(self.hand) else { break };
            if slot.referenced {
                slot.referenced = false;
                self.hand += 1;
                continue;
            }
            let gone = self.slots.swap_remove(self.hand);
            self.map.remove(&gone.key);
            self.bytes -= gone.block.charge();
            if let Some(moved) = self.slots.get(self.hand) {
                self.map.insert(moved.key, self.hand);
            }
        }
        self.map.insert(key, self.slots.len());
        // A new block gets one pass of the hand before it can go.
        self.slots.push(Slot { key, block, referenced: true });
        self.bytes += cost;
    }
}

/// The cache; see the module docs.
pub(super) struct BlockCache {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stats = self.stats();
        f.debug_struct("BlockCache")
            .field("capacity", &stats.capacity)
            .field("bytes", &stats.bytes)
            .field("blocks", &stats.blocks)
            .finish_non_exhaustive()
    }
}

impl BlockCache {
    /// A cache holding up to `capacity` bytes (0: nothing is cached).
    pub(super) fn new(capacity: usize) -> Self {
        let count = (capacity / MIN_SHARD).clamp(1, MAX_SHARDS);
        let shards = (0..count)
            .map(|n| {
                // The shards' capacities add up to the whole.
                let share = capacity / count + usize::from(n < capacity % count);
                Mutex::new(Shard { capacity: share, ..Shard::default() })
            })
            .collect();
        Self { shards, capacity }
    }

    /// True when nothing is cached (capacity 0).
    pub(super) fn is_off(&self) -> bool {
        self.capacity == 0
    }

    fn shard(&self, key: Key) -> Option<std::sync::MutexGuard<'_, Shard>> {
        if self.capacity == 0 {
            return None;
        }
        // The high bits of the mix: the map hashes the same key differently.
        let at = usize::try_from(key.mix() >> 40).unwrap_or_default() % self.shards.len();
        Some(self.shards.get(at)?.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Block `block` of the run with cache id `run`, if cached.
    pub(super) fn get(&self, run: u64, block: usize) -> Option<Block> {
        self.shard(Key { run, block })?.get(Key { run, block })
    }

    /// Caches block `block` of run `run` (already verified), evicting others as needed; a block
    /// larger than a shard is not cached.
    pub(super) fn insert(&self, run: u64, block: usize, bytes: Block) {
        if let Some(mut shard) = self.shard(Key { run, block }) {
            shard.insert(Key { run, block }, bytes);
        }
    }

    /// Current figures.
    pub(super) fn stats(&self) -> BlockCacheStats {
        let mut stats = BlockCacheStats { capacity: self.capacity, ..BlockCacheStats::default() };
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            stats.bytes += shard.bytes;
            stats.blocks += shard.slots.len();
            stats.hits += shard.hits;
            stats.misses += shard.misses;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(len: usize, fill: u8) -> Block {
        Arc::new(CachedBlock { raw: vec![fill; len].into(), starts: vec![0, 1] })
    }

    #[test]
    fn a_cache_of_zero_bytes_holds_nothing() {
        let cache = BlockCache::new(0);
        cache.insert(1, 0, block(10, 1));
        assert!(cache.get(1, 0).is_none());
        assert_eq!(cache.stats(), BlockCacheStats::default());
    }

    #[test]
    fn a_block_read_again_survives_the_clock_and_one_never_read_goes() {
        // Room for three blocks of 100 bytes.
        let cache = BlockCache::new(3 * block(100, 0).charge());
        for n in 0..3 {
            cache.insert(7, n, block(100, 0));
        }
        // One pass of the hand clears every new block's bit; block 1 is read again after it.
        cache.insert(7, 3, block(100, 0));
        assert!(cache.get(7, 1).is_some());
        cache.insert(7, 4, block(100, 0));
        assert!(cache.get(7, 1).is_some(), "a block read since the hand passed was evicted");
        assert_eq!(cache.stats().blocks, 3);
    }

    proptest! {
        /// Whatever is inserted and read, the cache never holds more than its capacity, and a
        /// hit returns exactly the block inserted under that key.
        #[test]
        fn the_byte_bound_holds_and_hits_are_what_was_inserted(
            capacity in 0usize..(3 << 20),
            ops in proptest::collection::vec((any::<bool>(), 0u64..4, 0usize..300, 1usize..5000), 1..400),
        ) {
            let cache = BlockCache::new(capacity);
            for (read, run, n, len) in ops {
                // A block's content is a function of its key, as for immutable run blocks.
                let fill = u8::try_from((run * 31 + n as u64) % 251).unwrap();
                if read {
                    if let Some(got) = cache.get(run, n) {
                        prop_assert!(got.raw.iter().all(|&b| b == fill));
                    }
                } else {
                    cache.insert(run, n, block(len, fill));
                }
                let stats = cache.stats();
                prop_assert!(stats.bytes <= capacity, "{} > {}", stats.bytes, capacity);
                prop_assert!(stats.blocks * ENTRY_OVERHEAD <= stats.bytes);
            }
        }
    }
}
