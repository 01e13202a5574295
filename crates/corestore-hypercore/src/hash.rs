//! Merkle tree hashing (spec `wire.md` §1.4–1.5): leaf, parent and tree hashes, and the
//! messages a writer signs.

use std::sync::OnceLock;

use corestore_keys::compact::{DecodeError, Decoder, Encoder};
use corestore_keys::constants;

use crate::flat;

const LEAF_TYPE: [u8; 1] = [0];
const PARENT_TYPE: [u8; 1] = [1];
const ROOT_TYPE: [u8; 1] = [2];

/// Smallest encoded node: `uint index, uint size, fixed32 hash`.
pub(crate) const MIN_NODE_LEN: usize = 34;

/// A Merkle tree node: its flat-tree index, the bytes it covers and its hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Node {
    /// Flat-tree index (block `i` is `2i`).
    pub index: u64,
    /// Total byte length of the blocks under the node.
    pub size: u64,
    /// The node hash.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({}, {}, {})", self.index, self.size, corestore_keys::to_hex(&self.hash))
    }
}

impl Node {
    /// The leaf of block `block` holding `data`.
    pub fn leaf(block: u64, data: &[u8]) -> Self {
        Self { index: 2 * block, size: data.len() as u64, hash: leaf_hash(data) }
    }

    /// The parent of two sibling nodes (in either order).
    pub fn parent(a: &Self, b: &Self) -> Self {
        let (left, right) = if a.index <= b.index { (a, b) } else { (b, a) };
        Self {
            index: flat::parent(left.index),
            size: left.size.saturating_add(right.size),
            hash: parent_hash(left, right),
        }
    }

    /// Appends the wire form `uint index, uint size, fixed32 hash`.
    pub fn encode_into(&self, e: &mut Encoder) {
        e.uint(self.index).uint(self.size).raw(&self.hash);
    }

    /// Reads the wire form.
    pub fn decode_from(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self { index: d.uint()?, size: d.uint()?, hash: d.fixed()? })
    }
}

/// Encodes `uint count` then the nodes.
pub(crate) fn encode_nodes(e: &mut Encoder, nodes: &[Node]) {
    e.uint(nodes.len() as u64);
    for n in nodes {
        n.encode_into(e);
    }
}

/// Decodes `uint count` then the nodes, bounded by the input length.
pub(crate) fn decode_nodes(d: &mut Decoder<'_>) -> Result<Vec<Node>, DecodeError> {
    let n = d.array_len(MIN_NODE_LEN)?;
    (0..n).map(|_| Node::decode_from(d)).collect()
}

/// Unkeyed BLAKE2b-256 (`blake2b_simd`: AVX2 when the CPU has it, 4-way parallel in
/// [`leaf_hashes`]; byte-identical to libsodium's `crypto_generichash`, as the spec vectors
/// below check).
fn params() -> &'static blake2b_simd::Params {
    static PARAMS: OnceLock<blake2b_simd::Params> = OnceLock::new();
    PARAMS.get_or_init(|| {
        let mut params = blake2b_simd::Params::new();
        params.hash_length(32);
        params
    })
}

fn digest(hash: &blake2b_simd::Hash) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(hash.as_bytes()) {
        *o = *b;
    }
    out
}

/// BLAKE2b-256 of the concatenation of `parts`.
fn blake2b_256(parts: &[&[u8]]) -> [u8; 32] {
    let mut state = params().to_state();
    for part in parts {
        state.update(part);
    }
    digest(&state.finalize())
}

/// `BLAKE2b-256(0x00 || u64le(len) || data)`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    blake2b_256(&[&LEAF_TYPE, &(data.len() as u64).to_le_bytes(), data])
}

/// The leaf hashes of `blocks`, as [`leaf_hash`] gives them, computed several at a time (four
/// 1 KiB blocks hash in about the time of two with AVX2).
pub(crate) fn leaf_hashes<B: AsRef<[u8]>>(blocks: &[B]) -> Vec<[u8; 32]> {
    /// Inputs are copied (prefixed) into a buffer of about this size at most, one group at a
    /// time (a single larger block gets a buffer of its own size).
    const GROUP_BYTES: usize = 1 << 20;
    let params = params();
    let mut out = Vec::with_capacity(blocks.len());
    let mut inputs = Vec::new();
    let mut rest = blocks;
    while !rest.is_empty() {
        // Each input is `0x00 || u64le(len) || data`, laid out one after the other.
        let mut size = 0;
        let count = rest
            .iter()
            .take_while(|b| {
                let take = size == 0 || size + b.as_ref().len() + 9 <= GROUP_BYTES;
                size += b.as_ref().len() + 9;
                take
            })
            .count();
        let (group, tail) = rest.split_at(count);
        rest = tail;
        inputs.clear();
        for b in group {
            let b = b.as_ref();
            inputs.extend_from_slice(&LEAF_TYPE);
            inputs.extend_from_slice(&(b.len() as u64).to_le_bytes());
            inputs.extend_from_slice(b);
        }
        let mut jobs = Vec::with_capacity(group.len());
        let mut left = inputs.as_slice();
        for b in group {
            let (input, tail) = left.split_at(b.as_ref().len() + 9);
            jobs.push(blake2b_simd::many::HashManyJob::new(params, input));
            left = tail;
        }
        blake2b_simd::many::hash_many(jobs.iter_mut());
        out.extend(jobs.iter().map(|job| digest(&job.to_hash())));
    }
    out
}

/// `BLAKE2b-256(0x01 || u64le(left.size + right.size) || left.hash || right.hash)`.
pub fn parent_hash(left: &Node, right: &Node) -> [u8; 32] {
    let size = left.size.saturating_add(right.size);
    let mut input = [0u8; 73];
    input[0] = PARENT_TYPE[0];
    input[1..9].copy_from_slice(&size.to_le_bytes());
    input[9..41].copy_from_slice(&left.hash);
    input[41..].copy_from_slice(&right.hash);
    digest(&params().hash(&input))
}

/// The tree hash of a list of full roots (ascending):
/// `BLAKE2b-256(0x02 || for each root: hash || u64le(index) || u64le(size))`.
pub fn tree_hash(roots: &[Node]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(1 + roots.len() * 48);
    buf.extend_from_slice(&ROOT_TYPE);
    for r in roots {
        buf.extend_from_slice(&r.hash);
        buf.extend_from_slice(&r.index.to_le_bytes());
        buf.extend_from_slice(&r.size.to_le_bytes());
    }
    blake2b_256(&[&buf])
}

/// Total byte length under a list of roots.
pub fn total_size(roots: &[Node]) -> u64 {
    roots.iter().fold(0u64, |acc, r| acc.saturating_add(r.size))
}

/// The 112-byte signable `TREE || ctx || treeHash || u64le(length) || u64le(fork)`, where `ctx`
/// is the manifest hash (version ≥ 1) or the signer namespace (version 0).
pub fn signable(ctx: &[u8; 32], tree_hash: &[u8; 32], length: u64, fork: u64) -> [u8; 112] {
    let mut out = [0u8; 112];
    out[..32].copy_from_slice(constants::tree());
    out[32..64].copy_from_slice(ctx);
    out[64..96].copy_from_slice(tree_hash);
    out[96..104].copy_from_slice(&length.to_le_bytes());
    out[104..].copy_from_slice(&fork.to_le_bytes());
    out
}

/// The 80-byte signable of compat cores: `TREE || treeHash || u64le(length) || u64le(fork)`.
pub fn signable_compat(tree_hash: &[u8; 32], length: u64, fork: u64) -> [u8; 80] {
    let mut out = [0u8; 80];
    out[..32].copy_from_slice(constants::tree());
    out[32..64].copy_from_slice(tree_hash);
    out[64..72].copy_from_slice(&length.to_le_bytes());
    out[72..].copy_from_slice(&fork.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        hex::encode(b)
    }

    #[test]
    fn spec_1_8_vectors() {
        let hello = Node::leaf(0, b"hello");
        let world = Node::leaf(1, b"world");
        let bang = Node::leaf(2, b"!");
        assert_eq!(
            hex(&hello.hash),
            "f2391083cfaa8043205fed76cdff843902146ca92aebcd7a196814ec45d8c8f8"
        );
        assert_eq!(
            hex(&world.hash),
            "993ec5ef8bbc7f1d174f00e650b8d51599124a9bf93885f33cec5b9060b75c1c"
        );
        assert_eq!(
            hex(&bang.hash),
            "b36033c7b2681d1472886ca6716b628f44b608bd6486174487e02615533dfaad"
        );
        assert_eq!(
            hex(&leaf_hash(b"")),
            "5187b7a8021bf4f2c004ea3a54cfece1754f11c7624d2363c7f4cf4fddd1441e"
        );
        let parent = Node::parent(&world, &hello);
        assert_eq!((parent.index, parent.size), (1, 10));
        assert_eq!(
            hex(&parent.hash),
            "56826d33f98cbe1757d804b3ad818a97b61d7ae83d505ba5ca4fb619646355f9"
        );
        assert_eq!(
            hex(&tree_hash(&[parent, bang])),
            "8b512f5301c09f0e0e21a0c71c98fce14ddcc51125f4dfd8303fa22c75858aff"
        );
        assert_eq!(
            hex(&tree_hash(&[parent])),
            "28ac717e6b6a3fe16b4363f16cf1a308edceccf4a05ec501bd05fdbe5b42215b"
        );
        assert_eq!(
            hex(&tree_hash(&[])),
            "bb30a42c1e62f0afda5f0a4e8a562f7a13a24cea00ee81917b86b89e801314aa"
        );
        let key: [u8; 32] =
            hex::decode("d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72")
                .unwrap()
                .try_into()
                .unwrap();
        let s = signable(&key, &tree_hash(&[parent, bang]), 3, 0);
        assert_eq!(
            hex(&s),
            "9fac70b50ca14efc4e91c833b204e75b8b5aad8b5881bfc0adb5ef38a3275b9c\
             d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72\
             8b512f5301c09f0e0e21a0c71c98fce14ddcc51125f4dfd8303fa22c75858aff\
             03000000000000000000000000000000"
        );
    }

    proptest::proptest! {
        #[test]
        fn batched_leaf_hashes_match_one_at_a_time(
            blocks in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..600), 0..12),
        ) {
            let one: Vec<[u8; 32]> = blocks.iter().map(|b| leaf_hash(b)).collect();
            proptest::prop_assert_eq!(leaf_hashes(&blocks), one);
            // And both match the hash libsodium (the keys crate's BLAKE2b) computes.
            for (b, h) in blocks.iter().zip(leaf_hashes(&blocks)) {
                let len = (b.len() as u64).to_le_bytes();
                proptest::prop_assert_eq!(
                    corestore_keys::hash::blake2b_256(&[&LEAF_TYPE, &len, b]), h);
            }
        }
    }

    #[test]
    fn blocks_beyond_one_group_hash_like_one_at_a_time() {
        // 3 MiB in all, with a block larger than a group on its own.
        let mut blocks: Vec<Vec<u8>> = (0..40u32).map(|i| vec![i as u8; 65_536]).collect();
        blocks.insert(7, vec![9; 1_500_000]);
        let one: Vec<[u8; 32]> = blocks.iter().map(|b| leaf_hash(b)).collect();
        assert_eq!(leaf_hashes(&blocks), one);
    }

    #[test]
    fn equal_sized_blocks_hash_in_parallel_like_one_at_a_time() {
        let blocks: Vec<Vec<u8>> = (0..103u32).map(|i| vec![i as u8; 1024]).collect();
        let one: Vec<[u8; 32]> = blocks.iter().map(|b| leaf_hash(b)).collect();
        assert_eq!(leaf_hashes(&blocks), one);
        let n = Node::leaf(3, &blocks[3]);
        let m = Node::leaf(2, &blocks[2]);
        let size = (2048u64).to_le_bytes();
        assert_eq!(
            Node::parent(&n, &m).hash,
            corestore_keys::hash::blake2b_256(&[&PARENT_TYPE, &size, &m.hash, &n.hash])
        );
    }

    #[test]
    fn compat_signable_layout() {
        let s = signable_compat(&[7; 32], 3, 1);
        assert_eq!(&s[32..64], &[7; 32]);
        assert_eq!(&s[64..72], &3u64.to_le_bytes());
        assert_eq!(&s[72..], &1u64.to_le_bytes());
    }

    #[test]
    fn node_wire_round_trip() {
        let n = Node { index: 300, size: 70_000, hash: [9; 32] };
        let mut e = Encoder::new();
        encode_nodes(&mut e, &[n, n]);
        let bytes = e.into_vec();
        assert_eq!(decode_nodes(&mut Decoder::new(&bytes)).unwrap(), [n, n]);
        assert!(decode_nodes(&mut Decoder::new(&bytes[..40])).is_err());
    }
}
