//! flat-tree index math (spec `wire.md` §2, npm `flat-tree` 1.13.0).
//!
//! The Merkle tree is an in-order array: block `i` is tree index `2i`, parents are odd. Every
//! function uses wrapping arithmetic so that hostile indexes (from a peer) can never panic; for
//! the indexes a real tree has (below 2^60) the results are exact.

/// Depth of a node: the number of trailing 1-bits of its index (0 for leaves).
pub fn depth(index: u64) -> u32 {
    index.trailing_ones()
}

/// Offset of a node among the nodes of its depth.
pub fn offset(index: u64) -> u64 {
    index.wrapping_add(1).checked_shr(depth(index) + 1).unwrap_or(0)
}

/// The index of the node at `depth` and `offset`: `(1 + 2·offset)·2^depth − 1`.
pub fn index(depth: u32, offset: u64) -> u64 {
    offset.wrapping_mul(2).wrapping_add(1).checked_shl(depth).unwrap_or(0).wrapping_sub(1)
}

/// The parent of a node.
pub fn parent(index_: u64) -> u64 {
    index(depth(index_) + 1, offset(index_) >> 1)
}

/// The sibling of a node.
pub fn sibling(index_: u64) -> u64 {
    index(depth(index_), offset(index_) ^ 1)
}

/// The left child of a parent node; `None` for a leaf.
pub fn left_child(index_: u64) -> Option<u64> {
    let d = depth(index_);
    (d > 0).then(|| index(d - 1, offset(index_).wrapping_mul(2)))
}

/// The right child of a parent node; `None` for a leaf.
pub fn right_child(index_: u64) -> Option<u64> {
    let d = depth(index_);
    (d > 0).then(|| index(d - 1, offset(index_).wrapping_mul(2).wrapping_add(1)))
}

/// The leftmost leaf (tree index) under a node.
pub fn left_span(index: u64) -> u64 {
    let d = depth(index);
    if d == 0 {
        index
    } else {
        offset(index).checked_shl(d + 1).unwrap_or(0)
    }
}

/// The rightmost leaf (tree index) under a node.
pub fn right_span(index: u64) -> u64 {
    let d = depth(index);
    if d == 0 {
        index
    } else {
        offset(index).wrapping_add(1).checked_shl(d + 1).unwrap_or(0).wrapping_sub(2)
    }
}

/// Number of nodes in the subtree of a node, itself included: `2^(depth+1) − 1`.
pub fn count(index: u64) -> u64 {
    1u64.checked_shl(depth(index) + 1).unwrap_or(0).wrapping_sub(1)
}

/// Number of leaves under a node: `2^depth`.
pub fn count_leaves(index: u64) -> u64 {
    1u64.checked_shl(depth(index)).unwrap_or(0)
}

/// The full roots of a tree whose head is `head = 2·length`, ascending.
///
/// An odd `head` is treated as `head − 1` (JavaScript throws; callers always pass even heads).
pub fn full_roots(head: u64) -> Vec<u64> {
    let mut roots = Vec::with_capacity(head.count_ones() as usize);
    let mut n = head / 2;
    let mut offset = 0u64;
    while n > 0 {
        let factor = 1u64 << n.ilog2();
        roots.push(offset + factor - 1);
        offset += 2 * factor;
        n -= factor;
    }
    roots
}

/// A cursor over the tree, the `flat-tree` iterator the proof code is written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iter {
    /// Current tree index.
    pub index: u64,
    /// Offset of the current node at its depth.
    pub offset: u64,
    /// `2^(depth+1)`: twice the number of leaves under the current node.
    pub factor: u64,
}

impl Iter {
    /// A cursor at `index`.
    pub fn new(index: u64) -> Self {
        let mut it = Self { index: 0, offset: 0, factor: 2 };
        it.seek(index);
        it
    }

    /// Moves to `index`.
    pub fn seek(&mut self, index: u64) {
        self.index = index;
        if index & 1 == 1 {
            self.offset = offset(index);
            self.factor = 1u64.checked_shl(depth(index) + 1).unwrap_or(0);
        } else {
            self.offset = index / 2;
            self.factor = 2;
        }
    }

    /// Number of leaves under the current node.
    pub fn count_leaves(&self) -> u64 {
        if self.index & 1 == 0 {
            1
        } else {
            self.factor / 2
        }
    }

    /// True when the current node is a left child.
    pub fn is_left(&self) -> bool {
        self.offset & 1 == 0
    }

    /// True when `index` lies in the subtree of the current node.
    pub fn contains(&self, index: u64) -> bool {
        let half = self.factor / 2;
        if index >= self.index {
            index - self.index < half || index == self.index
        } else {
            self.index - index < half
        }
    }

    /// Moves to the previous node at the same depth (stays at offset 0).
    pub fn prev_node(&mut self) -> u64 {
        if self.offset == 0 {
            return self.index;
        }
        self.offset -= 1;
        self.index = self.index.wrapping_sub(self.factor);
        self.index
    }

    /// Moves to the next node at the same depth.
    pub fn next_node(&mut self) -> u64 {
        self.offset = self.offset.wrapping_add(1);
        self.index = self.index.wrapping_add(self.factor);
        self.index
    }

    /// Moves to the sibling.
    pub fn sibling(&mut self) -> u64 {
        if self.is_left() {
            self.next_node()
        } else {
            self.prev_node()
        }
    }

    /// Moves to the parent.
    pub fn parent(&mut self) -> u64 {
        let half = self.factor / 2;
        if self.offset & 1 == 1 {
            self.index = self.index.wrapping_sub(half);
            self.offset = (self.offset - 1) / 2;
        } else {
            self.index = self.index.wrapping_add(half);
            self.offset /= 2;
        }
        self.factor = self.factor.wrapping_mul(2);
        self.index
    }

    /// Moves to the left child (stays at a leaf).
    pub fn left_child(&mut self) -> u64 {
        if self.factor <= 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index = self.index.wrapping_sub(self.factor / 2);
        self.offset = self.offset.wrapping_mul(2);
        self.index
    }

    /// Moves to the right child (stays at a leaf).
    pub fn right_child(&mut self) -> u64 {
        if self.factor <= 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index = self.index.wrapping_add(self.factor / 2);
        self.offset = self.offset.wrapping_mul(2).wrapping_add(1);
        self.index
    }

    /// Moves to the leftmost leaf under the current node.
    pub fn left_span(&mut self) -> u64 {
        self.index = self.index.wrapping_sub(self.factor / 2).wrapping_add(1);
        self.offset = self.index / 2;
        self.factor = 2;
        self.index
    }

    /// Moves to the rightmost leaf under the current node.
    pub fn right_span(&mut self) -> u64 {
        self.index = self.index.wrapping_add(self.factor / 2).wrapping_sub(1);
        self.offset = self.index / 2;
        self.factor = 2;
        self.index
    }

    /// Moves to the first leaf after the current subtree.
    pub fn next_tree(&mut self) -> u64 {
        self.index = self.index.wrapping_add(self.factor / 2).wrapping_add(1);
        self.offset = self.index / 2;
        self.factor = 2;
        self.index
    }

    /// Grows the current leaf into the largest full root that fits below `head`; false when the
    /// cursor is not a leaf below `head`. `while it.full_root(head) { …; it.next_tree(); }`
    /// enumerates [`full_roots`]`(head)`.
    pub fn full_root(&mut self, head: u64) -> bool {
        if head <= self.index || self.index & 1 == 1 {
            return false;
        }
        while self.factor < (1 << 62)
            && head > self.index.saturating_add(self.factor).saturating_add(self.factor / 2)
        {
            self.index += self.factor / 2;
            self.factor *= 2;
            self.offset /= 2;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute force: walk a tree built level by level.
    fn brute_depth(i: u64) -> u32 {
        let mut d = 0;
        while (i >> d) & 1 == 1 {
            d += 1;
        }
        d
    }

    fn brute_span(i: u64) -> (u64, u64) {
        let d = brute_depth(i);
        let half = (1u64 << d) - 1;
        (i - half, i + half)
    }

    fn brute_roots(length: u64) -> Vec<u64> {
        let mut roots = Vec::new();
        let mut start = 0;
        let mut left = length;
        while left > 0 {
            let mut d = 0;
            while (1u64 << (d + 1)) <= left {
                d += 1;
            }
            roots.push(start * 2 + (1u64 << d) - 1);
            start += 1 << d;
            left -= 1 << d;
        }
        roots
    }

    #[test]
    fn spec_examples() {
        assert_eq!(full_roots(6), [1, 4]);
        assert_eq!(full_roots(10), [3, 8]);
        assert_eq!(full_roots(16), [7]);
        assert_eq!(full_roots(0), Vec::<u64>::new());
        assert_eq!(parent(0), 1);
        assert_eq!(parent(2), 1);
        assert_eq!(parent(1), 3);
        assert_eq!(parent(5), 3);
        assert_eq!(sibling(1), 5);
        assert_eq!(left_child(3), Some(1));
        assert_eq!(right_child(3), Some(5));
        assert_eq!(left_child(4), None);
        assert_eq!((left_span(3), right_span(3)), (0, 6));
        assert_eq!(index(2, 1), 11);
        assert_eq!(count(3), 7);
        assert_eq!(count_leaves(7), 8);
    }

    proptest! {
        #[test]
        fn functions_match_brute_force(i in 0u64..(1 << 53)) {
            let d = brute_depth(i);
            prop_assert_eq!(depth(i), d);
            let (l, r) = brute_span(i);
            prop_assert_eq!(left_span(i), l);
            prop_assert_eq!(right_span(i), r);
            prop_assert_eq!(index(depth(i), offset(i)), i);
            // The parent covers exactly this node and its sibling.
            let p = parent(i);
            let (pl, pr) = brute_span(p);
            let s = sibling(i);
            let (sl, sr) = brute_span(s);
            prop_assert_eq!(brute_depth(p), d + 1);
            prop_assert_eq!(brute_depth(s), d);
            prop_assert_eq!((pl.min(sl), pr.max(sr)), (pl, pr));
            prop_assert_eq!((l.min(sl), r.max(sr)), (pl, pr));
            prop_assert_ne!(s, i);
            prop_assert_eq!(left_child(p).unwrap().min(right_child(p).unwrap()), i.min(s));
            prop_assert_eq!(count(i), r - l + 1);
            prop_assert_eq!(count_leaves(i), (r - l) / 2 + 1);
        }

        #[test]
        fn roots_match_brute_force(length in 0u64..100_000) {
            prop_assert_eq!(full_roots(2 * length), brute_roots(length));
            let mut it = Iter::new(0);
            let mut seen = Vec::new();
            while it.full_root(2 * length) {
                seen.push(it.index);
                it.next_tree();
            }
            prop_assert_eq!(seen, brute_roots(length));
        }

        #[test]
        fn iterator_matches_functions(i in 0u64..(1 << 50)) {
            let mut it = Iter::new(i);
            prop_assert_eq!(it.index, i);
            prop_assert_eq!(it.offset, offset(i));
            prop_assert_eq!(it.is_left(), offset(i).is_multiple_of(2));
            let (l, r) = brute_span(i);
            prop_assert!(it.contains(l) && it.contains(r) && it.contains(i));
            prop_assert!(!it.contains(r + 1));
            prop_assert!(l == 0 || !it.contains(l - 1));
            prop_assert_eq!(it.sibling(), sibling(i));
            it.seek(i);
            prop_assert_eq!(it.parent(), parent(i));
            prop_assert_eq!(it.left_child(), left_child(parent(i)).unwrap());
            it.seek(i);
            prop_assert_eq!(it.right_child(), right_child(i).unwrap_or(i));
            it.seek(i);
            prop_assert_eq!(it.left_span(), l);
            it.seek(i);
            prop_assert_eq!(it.right_span(), r);
            it.seek(i);
            prop_assert_eq!(it.next_tree(), r + 2);
        }
    }
}
