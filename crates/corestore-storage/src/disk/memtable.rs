//! The in-memory table of the persistent index ([`super::lsm`]): recent key → value position
//! changes (or deletions), in key order.
//!
//! Keys are grouped by their first [`SECTION`] bytes (`03 ‖ core id ‖ kind` in the schema, so
//! one core's blocks, or its tree nodes, form one section). Appending to a core writes keys in
//! ascending order within each section, so a section is a sorted `Vec` that new keys are pushed
//! onto (a comparison with the last key instead of a tree search per insert); a section that
//! gets keys out of order too often becomes a `BTreeMap`. Cutting keys at a fixed length keeps key order:
//! sections sort as their keys do, and the keys of one section are contiguous.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::index::Loc;
use super::key::IndexKey;

/// Bytes of a key that name its section.
const SECTION: usize = 10;
/// A sorted section takes keys out of order by moving the entries above them, as long as it has
/// moved at most this many entries per entry it holds (plus [`MOVE_SLACK`]); past that it turns
/// into a tree. A hypercore append writes each parent of a `2^k`-leaf subtree below the `~2^k`
/// nodes of the subtree's right half, once per `2^k` leaves: about one move per entry per tree
/// level, well within the budget; keys in random or descending order exhaust it quickly.
const MOVES_PER_ENTRY: usize = 32;
const MOVE_SLACK: usize = 1024;

/// One entry: a value position, or `None` for a deletion.
pub(super) type Slot = Option<Loc>;

fn section(key: &[u8]) -> &[u8] {
    key.get(..SECTION.min(key.len())).unwrap_or_default()
}

enum Section {
    /// Entries in key order, and how many entries inserts have moved so far.
    Sorted(Vec<(IndexKey, Slot)>, usize),
    Tree(BTreeMap<IndexKey, Slot>),
}

impl Section {
    /// Sets `key`; returns the entry it replaced.
    // Three cases on purpose: absent, deleted, live (the caller counts replaced values).
    #[allow(clippy::option_option)]
    fn insert(&mut self, key: IndexKey, slot: Slot) -> Option<Slot> {
        let entries = match self {
            Self::Tree(tree) => return tree.insert(key, slot),
            Self::Sorted(entries, moved) => (entries, moved),
        };
        let (entries, moved) = entries;
        if entries.last().is_none_or(|(last, _)| *last < key) {
            entries.push((key, slot));
            return None;
        }
        match entries.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(at) => entries.get_mut(at).map(|(_, old)| std::mem::replace(old, slot)),
            Err(at)
                if *moved + (entries.len() - at)
                    <= MOVES_PER_ENTRY * entries.len() + MOVE_SLACK =>
            {
                *moved += entries.len() - at;
                entries.insert(at, (key, slot));
                None
            }
            Err(_) => {
                let mut tree: BTreeMap<IndexKey, Slot> =
                    std::mem::take(entries).into_iter().collect();
                tree.insert(key, slot);
                *self = Self::Tree(tree);
                None
            }
        }
    }

    fn get(&self, key: &IndexKey) -> Option<&Slot> {
        match self {
            Self::Sorted(entries, _) => {
                let at = entries.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                entries.get(at).map(|(_, slot)| slot)
            }
            Self::Tree(tree) => tree.get(key),
        }
    }

    /// The entries at or above `start`, ascending.
    fn iter_from<'a>(
        &'a self,
        start: &IndexKey,
    ) -> Box<dyn Iterator<Item = (&'a IndexKey, &'a Slot)> + 'a> {
        match self {
            Self::Sorted(entries, _) => {
                let at = entries.partition_point(|(k, _)| k < start);
                Box::new(entries.get(at..).unwrap_or_default().iter().map(|(k, s)| (k, s)))
            }
            Self::Tree(tree) => Box::new(tree.range(start.clone()..)),
        }
    }
}

/// The table: sections in key order.
#[derive(Default)]
pub(super) struct Memtable {
    sections: BTreeMap<Box<[u8]>, Section>,
    len: usize,
}

impl std::fmt::Debug for Memtable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memtable")
            .field("entries", &self.len)
            .field("sections", &self.sections.len())
            .finish()
    }
}

impl Memtable {
    /// Sets `key` to `slot`; returns the entry it replaced.
    // Three cases on purpose: absent, deleted, live.
    #[allow(clippy::option_option)]
    pub(super) fn insert(&mut self, key: &[u8], slot: Slot) -> Option<Slot> {
        let indexed = IndexKey::new(key);
        let old = if let Some(section) = self.sections.get_mut(section(key)) {
            section.insert(indexed, slot)
        } else {
            self.sections
                .insert(Box::from(section(key)), Section::Sorted(vec![(indexed, slot)], 0));
            None
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The entry of `key`, if the table has one.
    pub(super) fn get(&self, key: &[u8]) -> Option<&Slot> {
        self.sections.get(section(key))?.get(&IndexKey::new(key))
    }

    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// True without entries.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every entry.
    pub(super) fn clear(&mut self) {
        self.sections.clear();
        self.len = 0;
    }

    /// The entries with keys at or above `start`, ascending.
    pub(super) fn iter_from<'a>(
        &'a self,
        start: &[u8],
    ) -> impl Iterator<Item = (&'a IndexKey, &'a Slot)> + 'a {
        let from = IndexKey::new(start);
        self.sections
            .range::<[u8], _>((Bound::Included(section(start)), Bound::Unbounded))
            .flat_map(move |(_, section)| section.iter_from(&from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Short keys (whole-key sections) and keys of two sections, mostly ascending.
        prop_oneof![
            proptest::collection::vec(0u8..3, 0..12),
            (0u8..2, 0u16..200).prop_map(|(s, n)| {
                let mut k = vec![3, 0, 0, 0, 0, 0, 0, 0, 1, s];
                k.extend_from_slice(&n.to_be_bytes());
                k
            }),
        ]
    }

    fn keyed(n: u64) -> Vec<u8> {
        let mut k = vec![3, 0, 0, 0, 0, 0, 0, 0, 1, 4];
        k.extend_from_slice(&n.to_be_bytes());
        k
    }

    fn is_sorted_vec(table: &Memtable) -> bool {
        table.sections.values().all(|s| matches!(s, Section::Sorted(..)))
    }

    #[test]
    fn tree_nodes_of_appends_stay_a_sorted_vec_and_descending_keys_do_not() {
        // The flat-tree indexes an append of 20,000 blocks writes, in the order it writes them.
        let mut table = Memtable::default();
        let mut roots: Vec<(u64, u64)> = Vec::new();
        let mut parents = 0;
        for leaf in 0u64..20_000 {
            table.insert(&keyed(2 * leaf), None);
            let (mut node, mut width) = (2 * leaf, 1);
            // Sibling roots (equal widths) merge; the parent sits between them.
            while let Some(&(left, w)) = roots.last().filter(|(_, w)| *w == width) {
                roots.pop();
                node = left + w;
                width *= 2;
                table.insert(&keyed(node), None);
                parents += 1;
            }
            roots.push((node, width));
        }
        assert_eq!(parents, 20_000 - 20_000u64.count_ones());
        assert_eq!(table.len(), 40_000 - 20_000usize.count_ones() as usize);
        assert!(is_sorted_vec(&table), "appended tree nodes turned the section into a tree");
        let mut table = Memtable::default();
        for n in (0u64..5_000).rev() {
            table.insert(&keyed(n), None);
        }
        assert!(!is_sorted_vec(&table), "descending keys kept moving the whole section");
        let got: Vec<Vec<u8>> = table.iter_from(&[]).map(|(k, _)| k.to_vec()).collect();
        assert_eq!(got, (0u64..5_000).map(keyed).collect::<Vec<_>>());
    }

    proptest! {
        #[test]
        fn matches_a_btreemap(
            ops in proptest::collection::vec((key(), proptest::option::of(0u32..9)), 0..300),
            probes in proptest::collection::vec(key(), 0..20),
        ) {
            let mut table = Memtable::default();
            let mut model = BTreeMap::new();
            for (k, len) in &ops {
                let slot = len.map(|len| Loc { offset: 7, len });
                prop_assert_eq!(table.insert(k, slot), model.insert(k.clone(), slot));
            }
            prop_assert_eq!(table.len(), model.len());
            for p in probes.iter().chain(ops.iter().map(|(k, _)| k)) {
                prop_assert_eq!(table.get(p), model.get(p));
                let got: Vec<_> = table.iter_from(p).map(|(k, s)| (k.to_vec(), *s)).collect();
                let want: Vec<_> = model.range(p.clone()..).map(|(k, s)| (k.clone(), *s)).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
