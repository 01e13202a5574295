//! The tree nodes a [`Hypercore`](crate::Hypercore) keeps in memory: every node it wrote,
//! verified or read from storage, up to [`NODE_CACHE_LIMIT`].
//!
//! Proofs for neighbouring blocks share most of their nodes, and the nodes high in the tree are
//! in nearly every proof: without the cache an uploader reads about ten nodes from storage per
//! block it serves. When the cache is full it keeps the higher half of the tree (the nodes of
//! the greatest depths, which cover the most blocks) and forgets the low levels.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::flat;
use crate::hash::Node;

/// Tree nodes kept in memory at most (about 4 MiB).
pub(crate) const NODE_CACHE_LIMIT: usize = 1 << 16;

/// Hasher for tree-index keys: a multiplicative mix (indexes are not attacker-chosen keys here:
/// only verified, locally written or stored nodes are cached).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IndexHasher(u64);

impl std::hash::Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Nodes by tree index.
pub(crate) type NodeMap = HashMap<u64, Node, std::hash::BuildHasherDefault<IndexHasher>>;

/// The trusted nodes held in memory. Shared readers (proofs are created under a read lock) add
/// the nodes they read from storage, hence the mutex; it is never held across an await.
#[derive(Debug, Default)]
pub(crate) struct NodeCache {
    map: Mutex<NodeMap>,
    /// Nodes were pinned and are not written yet: nothing may be evicted (a pinned node is in
    /// no storage, so a proof checked against it after an eviction would find nothing).
    pinned: bool,
}

impl NodeCache {
    fn map(&self) -> MutexGuard<'_, NodeMap> {
        // A panic elsewhere cannot leave a half-inserted node: the map stays usable.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn map_mut(&mut self) -> &mut NodeMap {
        self.map.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, index: u64) -> Option<Node> {
        self.map().get(&index).copied()
    }

    pub(crate) fn contains(&self, index: u64) -> bool {
        self.map().contains_key(&index)
    }

    /// Adds a node read from storage (unless nodes are pinned and the cache is full: the node
    /// is then not kept).
    pub(crate) fn fill(&self, node: Node) {
        let mut map = self.map();
        if self.pinned && map.len() >= NODE_CACHE_LIMIT {
            return;
        }
        make_room(&mut map, 1);
        map.insert(node.index, node);
    }

    /// Adds nodes the core wrote or verified (of a batch over half the limit, its last half
    /// limit: a large append's newest nodes).
    pub(crate) fn remember(&mut self, nodes: &[Node]) {
        let nodes = nodes.get(nodes.len().saturating_sub(NODE_CACHE_LIMIT / 2)..).unwrap_or(nodes);
        self.pinned = false;
        let map = self.map_mut();
        make_room(map, nodes.len());
        map.extend(nodes.iter().map(|n| (n.index, *n)));
    }

    /// Adds nodes verified but not written yet, without evicting; until the next
    /// [`NodeCache::remember`] or [`NodeCache::clear`], nothing is evicted (the caller bounds
    /// how many, writes them, then lets [`NodeCache::remember`] restore the bound, or clears
    /// the cache if the write failed).
    pub(crate) fn pin(&mut self, nodes: &[Node]) {
        self.pinned |= !nodes.is_empty();
        self.map_mut().extend(nodes.iter().map(|n| (n.index, *n)));
    }

    pub(crate) fn clear(&mut self) {
        self.pinned = false;
        let map = self.map_mut();
        map.clear();
        map.shrink_to(0);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

/// Makes room for `more` (at most half the limit) nodes: once the limit would be passed, drops
/// the lowest levels until at most half the limit is left.
fn make_room(map: &mut NodeMap, more: usize) {
    if map.len() + more <= NODE_CACHE_LIMIT {
        return;
    }
    let mut depth = 1;
    while map.len() + more > NODE_CACHE_LIMIT / 2 {
        map.retain(|&i, _| flat::depth(i) >= depth);
        depth += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(index: u64) -> Node {
        Node { index, size: 1, hash: [0; 32] }
    }

    #[test]
    fn a_full_cache_keeps_the_upper_levels_and_stays_bounded() {
        let mut cache = NodeCache::default();
        let root = (1u64 << 20) - 1;
        cache.remember(&[node(root)]);
        for i in 0..(3 * NODE_CACHE_LIMIT as u64) {
            cache.fill(node(i));
            assert!(cache.len() <= NODE_CACHE_LIMIT);
        }
        assert!(cache.contains(root), "the highest node survives every eviction");
        assert!(cache.contains(3 * NODE_CACHE_LIMIT as u64 - 1), "the newest node is kept");
    }

    #[test]
    fn a_batch_larger_than_the_limit_keeps_its_newest_half_limit() {
        let mut cache = NodeCache::default();
        let big: Vec<Node> = (0..2 * NODE_CACHE_LIMIT as u64).map(node).collect();
        cache.remember(&big);
        assert_eq!(cache.len(), NODE_CACHE_LIMIT / 2);
        assert!(cache.contains(2 * NODE_CACHE_LIMIT as u64 - 1));
        assert!(!cache.contains(0));
    }
}
