//! The proof format on the wire: hypercore's `request` and `data` messages (spec `wire.md`
//! §5.3, `lib/messages.js` `wire.request` / `wire.data`).

use corestore_keys::compact::{DecodeError, Decoder, Encoder};
use corestore_keys::{Manifest, ManifestError};

use crate::hash::{decode_nodes, encode_nodes, Node};

const BLOCK: u64 = 1;
const HASH: u64 = 2;
const SEEK: u64 = 4;
const UPGRADE: u64 = 8;
const MANIFEST: u64 = 16;
const PRIORITY: u64 = 32;

/// A node (block or tree node) to prove, and how many tree levels above it the requester lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRequest {
    /// Block number for a block request, tree index for a hash request.
    pub index: u64,
    /// Number of sibling nodes wanted on the way up.
    pub nodes: u64,
}

/// Find the block holding byte `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekRequest {
    /// The byte offset.
    pub bytes: u64,
    /// Per-block padding (0 for plain cores).
    pub padding: u64,
}

/// Grow the requester's tree from `start` by `length` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The requester's length.
    pub start: u64,
    /// How many blocks to grow.
    pub length: u64,
}

/// A `request` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Requester-chosen id (≥ 1).
    pub id: u64,
    /// The fork the requester is on.
    pub fork: u64,
    /// A block with its proof.
    pub block: Option<NodeRequest>,
    /// A tree node with its proof.
    pub hash: Option<NodeRequest>,
    /// A byte seek.
    pub seek: Option<SeekRequest>,
    /// A length upgrade.
    pub upgrade: Option<UpgradeRequest>,
    /// Whether the manifest is wanted.
    pub manifest: bool,
    /// 0 normal, 1 high, 2 very high.
    pub priority: u64,
}

impl Request {
    /// The compact encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        for (on, bit) in [
            (self.block.is_some(), BLOCK),
            (self.hash.is_some(), HASH),
            (self.seek.is_some(), SEEK),
            (self.upgrade.is_some(), UPGRADE),
            (self.manifest, MANIFEST),
            (self.priority != 0, PRIORITY),
        ] {
            if on {
                flags |= bit;
            }
        }
        let mut e = Encoder::with_capacity(16);
        e.uint(flags).uint(self.id).uint(self.fork);
        for r in [&self.block, &self.hash].into_iter().flatten() {
            e.uint(r.index).uint(r.nodes);
        }
        if let Some(s) = &self.seek {
            e.uint(s.bytes).uint(s.padding);
        }
        if let Some(u) = &self.upgrade {
            e.uint(u.start).uint(u.length);
        }
        if self.priority != 0 {
            e.uint(self.priority);
        }
        e.into_vec()
    }

    /// Decodes a request; trailing bytes are ignored, as in JavaScript.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let flags = d.uint()?;
        let id = d.uint()?;
        let fork = d.uint()?;
        let mut node = |on: bool| -> Result<Option<NodeRequest>, DecodeError> {
            Ok(if on { Some(NodeRequest { index: d.uint()?, nodes: d.uint()? }) } else { None })
        };
        let block = node(flags & BLOCK != 0)?;
        let hash = node(flags & HASH != 0)?;
        let seek = if flags & SEEK == 0 {
            None
        } else {
            Some(SeekRequest { bytes: d.uint()?, padding: d.uint()? })
        };
        let upgrade = if flags & UPGRADE == 0 {
            None
        } else {
            Some(UpgradeRequest { start: d.uint()?, length: d.uint()? })
        };
        let manifest = flags & MANIFEST != 0;
        let priority = if flags & PRIORITY == 0 { 0 } else { d.uint()? };
        Ok(Self { id, fork, block, hash, seek, upgrade, manifest, priority })
    }
}

/// A block, its value and the sibling nodes proving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataBlock {
    /// Block number.
    pub index: u64,
    /// The block bytes.
    pub value: Vec<u8>,
    /// Sibling nodes, bottom-up.
    pub nodes: Vec<Node>,
}

/// A tree node proof: the node itself first, then its siblings bottom-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataHash {
    /// Tree index of the proved node.
    pub index: u64,
    /// The node, then sibling nodes bottom-up.
    pub nodes: Vec<Node>,
}

/// A seek proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSeek {
    /// The byte offset sought.
    pub bytes: u64,
    /// The nodes proving where it lies.
    pub nodes: Vec<Node>,
}

/// An upgrade: the nodes growing the requester's roots to `start + length`, the nodes up to the
/// responder's own length and the responder's signature over that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUpgrade {
    /// The requester's length.
    pub start: u64,
    /// Blocks grown.
    pub length: u64,
    /// Nodes up to `start + length`.
    pub nodes: Vec<Node>,
    /// Nodes from `start + length` to the signed length.
    pub additional_nodes: Vec<Node>,
    /// The signature (wire form) over the signed length.
    pub signature: Option<Vec<u8>>,
}

impl DataUpgrade {
    /// The length the receiver has after applying this upgrade (hypercore
    /// `MerkleTree.upgradeLength`): past the last additional node, else `start + length`.
    pub fn upgrade_length(&self) -> u64 {
        match self.additional_nodes.last() {
            Some(last) => crate::flat::right_span(last.index) / 2 + 1,
            None => self.start.saturating_add(self.length),
        }
    }
}

/// A `data` message: the answer to a request, a Merkle proof.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    /// The request id answered (0 for an unsolicited push).
    pub request: u64,
    /// The responder's fork.
    pub fork: u64,
    /// A block proof.
    pub block: Option<DataBlock>,
    /// A tree-node proof.
    pub hash: Option<DataHash>,
    /// A seek proof.
    pub seek: Option<DataSeek>,
    /// An upgrade proof.
    pub upgrade: Option<DataUpgrade>,
    /// The manifest, when asked for.
    pub manifest: Option<Manifest>,
}

/// Why a `data` message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataDecodeError {
    /// Bad compact encoding.
    #[error("invalid data message: {0}")]
    Decode(#[from] DecodeError),
    /// Bad manifest inside the message.
    #[error("invalid data message: {0}")]
    Manifest(#[from] ManifestError),
}

impl Data {
    /// The compact encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        for (on, bit) in [
            (self.block.is_some(), BLOCK),
            (self.hash.is_some(), HASH),
            (self.seek.is_some(), SEEK),
            (self.upgrade.is_some(), UPGRADE),
            (self.manifest.is_some(), MANIFEST),
        ] {
            if on {
                flags |= bit;
            }
        }
        let value_len = self.block.as_ref().map_or(0, |b| b.value.len());
        let mut e = Encoder::with_capacity(64 + value_len + 42 * 8);
        e.uint(flags).uint(self.request).uint(self.fork);
        if let Some(b) = &self.block {
            e.uint(b.index).buffer(&b.value);
            encode_nodes(&mut e, &b.nodes);
        }
        if let Some(h) = &self.hash {
            e.uint(h.index);
            encode_nodes(&mut e, &h.nodes);
        }
        if let Some(s) = &self.seek {
            e.uint(s.bytes);
            encode_nodes(&mut e, &s.nodes);
        }
        if let Some(u) = &self.upgrade {
            e.uint(u.start).uint(u.length);
            encode_nodes(&mut e, &u.nodes);
            encode_nodes(&mut e, &u.additional_nodes);
            e.optional_buffer(u.signature.as_deref());
        }
        if let Some(m) = &self.manifest {
            m.encode_into(&mut e);
        }
        e.into_vec()
    }

    /// Decodes a data message; trailing bytes are ignored, as in JavaScript.
    pub fn decode(bytes: &[u8]) -> Result<Self, DataDecodeError> {
        let mut d = Decoder::new(bytes);
        let flags = d.uint()?;
        let request = d.uint()?;
        let fork = d.uint()?;
        let block = if flags & BLOCK == 0 {
            None
        } else {
            let index = d.uint()?;
            let value = d.buffer()?.to_vec();
            Some(DataBlock { index, value, nodes: decode_nodes(&mut d)? })
        };
        let hash = if flags & HASH == 0 {
            None
        } else {
            Some(DataHash { index: d.uint()?, nodes: decode_nodes(&mut d)? })
        };
        let seek = if flags & SEEK == 0 {
            None
        } else {
            Some(DataSeek { bytes: d.uint()?, nodes: decode_nodes(&mut d)? })
        };
        let upgrade = if flags & UPGRADE == 0 {
            None
        } else {
            Some(DataUpgrade {
                start: d.uint()?,
                length: d.uint()?,
                nodes: decode_nodes(&mut d)?,
                additional_nodes: decode_nodes(&mut d)?,
                signature: d.optional_buffer()?.map(<[u8]>::to_vec),
            })
        };
        let manifest =
            if flags & MANIFEST == 0 { None } else { Some(Manifest::decode_from(&mut d)?) };
        Ok(Self { request, fork, block, hash, seek, upgrade, manifest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corestore_keys::{KeyPair, Manifest};
    use proptest::prelude::*;

    #[test]
    fn spec_5_8_request_vectors() {
        let r = Request {
            id: 1,
            block: Some(NodeRequest { index: 2, nodes: 0 }),
            upgrade: Some(UpgradeRequest { start: 0, length: 3 }),
            manifest: true,
            ..Request::default()
        };
        assert_eq!(hex::encode(r.encode()), "19010002000003");
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        let r = Request { id: 7, block: Some(NodeRequest { index: 1, nodes: 2 }), ..r };
        let r = Request { upgrade: None, manifest: false, ..r };
        assert_eq!(hex::encode(r.encode()), "0107000102");
        // §5.7: request flags=21(block|priority) id1 fork0 block{2,nodes0} priority1
        let r = Request::decode(&hex::decode("210100020001").unwrap()).unwrap();
        assert_eq!(r.priority, 1);
        assert_eq!(r.block, Some(NodeRequest { index: 2, nodes: 0 }));
    }

    #[test]
    fn spec_5_7_block_data() {
        // data block{index2, value "!", nodes[]}
        let bytes = hex::decode("01010002012100").unwrap();
        let d = Data::decode(&bytes).unwrap();
        assert_eq!(d.request, 1);
        assert_eq!(d.block.as_ref().unwrap().value, b"!");
        assert_eq!(d.encode(), bytes);
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        (0u64..1 << 40, 0u64..1 << 40, any::<[u8; 32]>()).prop_map(|(index, size, hash)| Node {
            index,
            size,
            hash,
        })
    }

    proptest! {
        #[test]
        fn data_round_trip(
            request in 0u64..1000, fork in 0u64..5,
            block in proptest::option::of((0u64..1 << 30, proptest::collection::vec(any::<u8>(), 0..50), proptest::collection::vec(arb_node(), 0..5))),
            hash in proptest::option::of((0u64..1 << 30, proptest::collection::vec(arb_node(), 0..5))),
            upgrade in proptest::option::of((0u64..1 << 30, 0u64..1 << 30, proptest::collection::vec(arb_node(), 0..5), proptest::collection::vec(arb_node(), 0..3), proptest::option::of(proptest::collection::vec(any::<u8>(), 1..70)))),
            manifest in any::<bool>(),
        ) {
            let data = Data {
                request,
                fork,
                block: block.map(|(index, value, nodes)| DataBlock { index, value, nodes }),
                hash: hash.map(|(index, nodes)| DataHash { index, nodes }),
                seek: None,
                upgrade: upgrade.map(|(start, length, nodes, additional_nodes, signature)| DataUpgrade { start, length, nodes, additional_nodes, signature }),
                manifest: manifest.then(|| Manifest::single_signer(KeyPair::from_seed(&[1; 32]).public_key())),
            };
            prop_assert_eq!(Data::decode(&data.encode()).unwrap(), data);
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Data::decode(&bytes);
            let _ = Request::decode(&bytes);
        }
    }
}
