//! The in-memory Merkle tree state of a core: full roots, length, byte length, fork and
//! signature, and appending leaves (hypercore `MerkleTreeBatch.append` / `appendRoot`).

use crate::flat::{self, Iter};
use crate::hash::{self, Node};
use crate::signature::SignedTree;

/// A tree head with its full roots.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Fork id.
    pub fork: u64,
    /// Number of blocks.
    pub length: u64,
    /// Total bytes of the blocks.
    pub byte_length: u64,
    /// Full roots, ascending.
    pub roots: Vec<Node>,
    /// The signature over this head (wire form; empty for an unsigned empty tree).
    pub signature: Vec<u8>,
}

impl Tree {
    /// The tree hash of the roots.
    pub fn hash(&self) -> [u8; 32] {
        hash::tree_hash(&self.roots)
    }

    /// What a signature over this tree covers.
    pub fn signed(&self) -> SignedTree {
        SignedTree { tree_hash: self.hash(), length: self.length, fork: self.fork }
    }

    /// Appends one block, pushing the new leaf and parents onto `nodes`.
    pub fn append(&mut self, data: &[u8], nodes: &mut Vec<Node>) {
        let head = self.length * 2;
        let mut ite = Iter::new(head);
        self.append_root(Node::leaf(self.length, data), &mut ite, nodes);
    }

    /// Appends `blocks` in order, as [`Tree::append`] does one at a time (the leaves are hashed
    /// together, several at once).
    pub fn append_all<B: AsRef<[u8]>>(&mut self, blocks: &[B], nodes: &mut Vec<Node>) {
        for (block, hash) in blocks.iter().zip(hash::leaf_hashes(blocks)) {
            let head = self.length * 2;
            let mut ite = Iter::new(head);
            let leaf = Node { index: head, size: block.as_ref().len() as u64, hash };
            self.append_root(leaf, &mut ite, nodes);
        }
    }

    /// Adds `node` (at the cursor `ite`) as the newest root and merges full pairs upward; the
    /// cursor ends on the newest root.
    pub(crate) fn append_root(&mut self, node: Node, ite: &mut Iter, nodes: &mut Vec<Node>) {
        self.length = self.length.saturating_add(ite.factor / 2);
        self.byte_length = self.byte_length.saturating_add(node.size);
        self.roots.push(node);
        nodes.push(node);
        while let [.., b, a] = self.roots[..] {
            if ite.sibling() != b.index {
                ite.sibling();
                break;
            }
            ite.parent();
            let parent = Node::parent(&b, &a);
            nodes.push(parent);
            self.roots.truncate(self.roots.len() - 2);
            self.roots.push(parent);
        }
    }

    /// True when `index` is a full root index of this tree.
    pub fn is_root(&self, index: u64) -> bool {
        self.roots.iter().any(|r| r.index == index)
    }

    /// The root indexes a tree of `length` blocks has.
    pub fn root_indexes(length: u64) -> Vec<u64> {
        flat::full_roots(length.saturating_mul(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_builds_the_spec_tree() {
        let mut t = Tree::default();
        let mut nodes = Vec::new();
        for b in [&b"hello"[..], b"world", b"!"] {
            t.append(b, &mut nodes);
        }
        assert_eq!(t.length, 3);
        assert_eq!(t.byte_length, 11);
        assert_eq!(t.roots.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(nodes.iter().map(|n| n.index).collect::<Vec<_>>(), [0, 2, 1, 4]);
        assert_eq!(
            hex::encode(t.hash()),
            "8b512f5301c09f0e0e21a0c71c98fce14ddcc51125f4dfd8303fa22c75858aff"
        );
    }

    #[test]
    fn appending_all_at_once_equals_one_at_a_time() {
        let blocks: Vec<Vec<u8>> =
            (0..77u32).map(|i| vec![i as u8; (i as usize * 37) % 1500]).collect();
        let (mut one, mut all) = (Tree::default(), Tree::default());
        let (mut one_nodes, mut all_nodes) = (Vec::new(), Vec::new());
        for chunk in blocks.chunks(10) {
            for b in chunk {
                one.append(b, &mut one_nodes);
            }
            all.append_all(chunk, &mut all_nodes);
        }
        assert_eq!(one, all);
        assert_eq!(one_nodes, all_nodes);
    }

    #[test]
    fn roots_always_match_full_roots() {
        let mut t = Tree::default();
        let mut nodes = Vec::new();
        for i in 0..300u64 {
            t.append(&i.to_le_bytes(), &mut nodes);
            let idx: Vec<u64> = t.roots.iter().map(|r| r.index).collect();
            assert_eq!(idx, Tree::root_indexes(i + 1));
        }
        assert_eq!(nodes.len(), 600 - 300usize.count_ones() as usize);
    }
}
