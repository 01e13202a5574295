//! The ten `hypercore/alpha` channel messages (spec `wire.md` §5.1, §5.3; hypercore 11
//! `lib/messages.js`). `request` and `data` are `corestore-hypercore`'s own types, since the
//! proofs they carry are made and checked there.

use bytes::Bytes;
use corestore_hypercore::{Data, DataDecodeError, Request};
use corestore_keys::compact::{DecodeError, Decoder, Encoder};

/// The protomux protocol name of a replication channel.
pub const PROTOCOL: &str = "hypercore/alpha";
/// The older protocol name, accepted as an alias of [`PROTOCOL`].
pub const PROTOCOL_ALIAS: &str = "hypercore";
/// How many message types a replication channel has.
pub const MESSAGE_TYPES: u64 = 10;

/// `noData` reason: unspecified.
pub const REASON_UNSPECIFIED: u64 = 0;
/// `noData` reason: the responder does not have what was asked for.
pub const REASON_NOT_AVAILABLE: u64 = 1;
/// `noData` reason: the request was invalid.
pub const REASON_INVALID_REQUEST: u64 = 2;

const SYNC_CAN_UPGRADE: u64 = 1;
const SYNC_UPLOADING: u64 = 2;
const SYNC_DOWNLOADING: u64 = 4;
const SYNC_HAS_MANIFEST: u64 = 8;
const SYNC_ALLOW_PUSH: u64 = 16;

/// Bitfield words a single `bitfield` message may carry (one 2^21-bit segment).
pub const MAX_BITFIELD_WORDS: usize = 1 << 16;

/// Why a channel message could not be decoded. The message is dropped and the peer is treated
/// as broken, as a JavaScript decoder throwing inside a channel handler would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Bad compact encoding.
    #[error("invalid replication message: {0}")]
    Decode(#[from] DecodeError),
    /// A `data` message that does not decode.
    #[error(transparent)]
    Data(#[from] DataDecodeError),
    /// A `bitfield` message longer than one segment.
    #[error("bitfield message of {words} words (max {MAX_BITFIELD_WORDS})")]
    BitfieldTooLong {
        /// The word count it claimed.
        words: u64,
    },
}

/// The channel handshake: the rest of the protomux `open` (`wire.handshake`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The sender supports seek requests (always true in hypercore 11).
    pub seeks: bool,
    /// Proof that the sender knows the core key (spec §5.2).
    pub capability: [u8; 32],
}

impl Handshake {
    /// The compact encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(33);
        e.uint(u64::from(self.seeks)).fixed32(&self.capability);
        e.into_vec()
    }

    /// Decodes a handshake; trailing bytes are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let flags = d.uint()?;
        Ok(Self { seeks: flags & 1 != 0, capability: d.fixed32()? })
    }
}

/// `sync` (type 0): the sender's state.
// The flags are the wire's own bits, one field each, as in hypercore's `wire.sync`.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sync {
    /// The sender's fork.
    pub fork: u64,
    /// The sender's length.
    pub length: u64,
    /// The receiver's length as the sender last heard it (0 when forks differ): an ack.
    pub remote_length: u64,
    /// The sender can prove an upgrade from the receiver's length.
    pub can_upgrade: bool,
    /// The sender answers requests.
    pub uploading: bool,
    /// The sender wants data.
    pub downloading: bool,
    /// The sender has a manifest (and the core is not compat).
    pub has_manifest: bool,
    /// The sender accepts pushed data.
    pub allow_push: bool,
}

/// `noData` (type 4): a negative answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoData {
    /// The request id.
    pub request: u64,
    /// One of the `REASON_*` constants (other values are passed through).
    pub reason: u64,
}

/// `want` (type 5) / `unwant` (type 6): ask for (or retract) availability of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
    /// "Any block of the range will do" (never sent by hypercore 11).
    pub any: bool,
}

/// `bitfield` (type 7): which blocks of a slice the sender has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitfieldSlice {
    /// First block (a multiple of 32).
    pub start: u64,
    /// Little-endian words: bit `b` of word `w` is block `start + 32·w + b`.
    pub bitfield: Vec<u32>,
}

/// `range` (type 8): the sender has (or dropped) blocks `[start, start + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The blocks were removed rather than added.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
}

/// `extension` (type 9): an application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension's name; empty means "the same as the previous one on this channel".
    pub name: String,
    /// The payload.
    pub message: Bytes,
}

/// One replication channel message.
// `Data` and `Request` are large but every message is decoded, handled and dropped at once;
// boxing them would cost an allocation per block for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 0.
    Sync(Sync),
    /// Type 1.
    Request(Request),
    /// Type 2: cancel the request with this id.
    Cancel {
        /// The request id.
        request: u64,
    },
    /// Type 3.
    Data(Data),
    /// Type 4.
    NoData(NoData),
    /// Type 5.
    Want(Want),
    /// Type 6.
    Unwant(Want),
    /// Type 7.
    Bitfield(BitfieldSlice),
    /// Type 8.
    Range(Range),
    /// Type 9.
    Extension(Extension),
}

impl Message {
    /// The protomux message type.
    pub fn message_type(&self) -> u64 {
        match self {
            Self::Sync(_) => 0,
            Self::Request(_) => 1,
            Self::Cancel { .. } => 2,
            Self::Data(_) => 3,
            Self::NoData(_) => 4,
            Self::Want(_) => 5,
            Self::Unwant(_) => 6,
            Self::Bitfield(_) => 7,
            Self::Range(_) => 8,
            Self::Extension(_) => 9,
        }
    }

    /// The payload (without the protomux header).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(16);
        match self {
            Self::Sync(s) => {
                let flags = flag(s.can_upgrade, SYNC_CAN_UPGRADE)
                    | flag(s.uploading, SYNC_UPLOADING)
                    | flag(s.downloading, SYNC_DOWNLOADING)
                    | flag(s.has_manifest, SYNC_HAS_MANIFEST)
                    | flag(s.allow_push, SYNC_ALLOW_PUSH);
                e.uint(flags).uint(s.fork).uint(s.length).uint(s.remote_length);
            }
            Self::Request(r) => return r.encode(),
            Self::Cancel { request } => {
                e.uint(*request);
            }
            Self::Data(d) => return d.encode(),
            Self::NoData(n) => {
                e.uint(n.request).uint(u64::from(n.reason != 0));
                if n.reason != 0 {
                    e.uint(n.reason);
                }
            }
            Self::Want(w) | Self::Unwant(w) => {
                e.uint(w.start).uint(w.length);
                if w.any {
                    e.uint(1);
                }
            }
            Self::Bitfield(b) => {
                e.uint(b.start).uint32_array(&b.bitfield);
            }
            Self::Range(r) => {
                let one = r.length == 1;
                e.uint(flag(r.drop, 1) | flag(one, 2)).uint(r.start);
                if !one {
                    e.uint(r.length);
                }
            }
            Self::Extension(x) => {
                e.string(&x.name).raw(&x.message);
            }
        }
        e.into_vec()
    }

    /// Decodes a message of `message_type`; `Ok(None)` for a type this protocol does not know
    /// (ignored, as protomux ignores types beyond a channel's message list). Trailing bytes are
    /// ignored, as in JavaScript.
    pub fn decode(message_type: u64, payload: &Bytes) -> Result<Option<Self>, MessageError> {
        let mut d = Decoder::new(payload);
        Ok(Some(match message_type {
            0 => {
                let flags = d.uint()?;
                Self::Sync(Sync {
                    fork: d.uint()?,
                    length: d.uint()?,
                    remote_length: d.uint()?,
                    can_upgrade: flags & SYNC_CAN_UPGRADE != 0,
                    uploading: flags & SYNC_UPLOADING != 0,
                    downloading: flags & SYNC_DOWNLOADING != 0,
                    has_manifest: flags & SYNC_HAS_MANIFEST != 0,
                    allow_push: flags & SYNC_ALLOW_PUSH != 0,
                })
            }
            1 => Self::Request(Request::decode(payload)?),
            2 => Self::Cancel { request: d.uint()? },
            3 => Self::Data(Data::decode(payload)?),
            4 => {
                let request = d.uint()?;
                let flags = if d.is_empty() { 0 } else { d.uint()? };
                let reason = if flags & 1 != 0 { d.uint()? } else { REASON_UNSPECIFIED };
                Self::NoData(NoData { request, reason })
            }
            5 | 6 => {
                let start = d.uint()?;
                let length = d.uint()?;
                let flags = if d.is_empty() { 0 } else { d.uint()? };
                let want = Want { start, length, any: flags & 1 != 0 };
                if message_type == 5 {
                    Self::Want(want)
                } else {
                    Self::Unwant(want)
                }
            }
            7 => {
                let start = d.uint()?;
                let mut peek = Decoder::new(d.remaining());
                let words = peek.uint()?;
                if words > MAX_BITFIELD_WORDS as u64 {
                    return Err(MessageError::BitfieldTooLong { words });
                }
                Self::Bitfield(BitfieldSlice { start, bitfield: d.uint32_array()? })
            }
            8 => {
                let flags = d.uint()?;
                let start = d.uint()?;
                let length = if flags & 2 != 0 { 1 } else { d.uint()? };
                Self::Range(Range { drop: flags & 1 != 0, start, length })
            }
            9 => {
                let name = d.string()?.to_owned();
                let offset = payload.len() - d.remaining().len();
                Self::Extension(Extension { name, message: payload.slice(offset..) })
            }
            _ => return Ok(None),
        }))
    }
}

fn flag(on: bool, bit: u64) -> u64 {
    if on {
        bit
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corestore_hypercore::{DataBlock, DataUpgrade, Node, NodeRequest, UpgradeRequest};
    use proptest::prelude::*;

    fn hex(m: &Message) -> String {
        hex::encode(m.encode())
    }

    fn round_trip(m: &Message) -> Message {
        let bytes = Bytes::from(m.encode());
        Message::decode(m.message_type(), &bytes).unwrap().unwrap()
    }

    /// Spec §5.8, isolated encodings produced by hypercore 11.39.5.
    #[test]
    fn spec_5_8_vectors() {
        let sync = Sync {
            length: 3,
            can_upgrade: true,
            uploading: true,
            downloading: true,
            has_manifest: true,
            ..Sync::default()
        };
        let request = |id, block, upgrade, manifest| {
            Message::Request(Request { id, block, upgrade, manifest, ..Request::default() })
        };
        let cases = [
            (Message::Sync(sync), "0f000300"),
            (
                request(
                    1,
                    Some(NodeRequest { index: 2, nodes: 0 }),
                    Some(UpgradeRequest { start: 0, length: 3 }),
                    true,
                ),
                "19010002000003",
            ),
            (request(7, Some(NodeRequest { index: 1, nodes: 2 }), None, false), "0107000102"),
            (Message::Cancel { request: 7 }, "07"),
            (Message::NoData(NoData { request: 7, reason: 0 }), "0700"),
            (Message::Want(Want { start: 0, length: 1024, any: false }), "00fd0004"),
            (Message::Want(Want { start: 0, length: 1024, any: true }), "00fd000401"),
            (
                Message::Bitfield(BitfieldSlice { start: 0, bitfield: vec![7, 0] }),
                "00020700000000000000",
            ),
            (Message::Range(Range { drop: false, start: 0, length: 3 }), "000003"),
            (Message::Range(Range { drop: false, start: 5, length: 1 }), "0205"),
            (Message::Range(Range { drop: true, start: 5, length: 10 }), "01050a"),
            (
                Message::Extension(Extension {
                    name: "foo".into(),
                    message: Bytes::from_static(&[1, 2, 3]),
                }),
                "03666f6f010203",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(hex(&message), expected, "{message:?}");
            assert_eq!(round_trip(&message), message);
        }
    }

    /// Spec §5.7: frames of the real corestore transcript.
    #[test]
    fn spec_5_7_transcript_messages() {
        let decode = |t, h: &str| Message::decode(t, &Bytes::from(hex::decode(h).unwrap()));
        let Some(Message::Sync(s)) = decode(0, "07000000").unwrap() else { panic!() };
        assert!(s.can_upgrade && s.uploading && s.downloading && !s.has_manifest);
        let Some(Message::Request(r)) = decode(1, "1801000003").unwrap() else { panic!() };
        assert_eq!(r.upgrade, Some(UpgradeRequest { start: 0, length: 3 }));
        assert!(r.manifest);
        let Some(Message::Request(r)) = decode(1, "210100020001").unwrap() else { panic!() };
        assert_eq!((r.block, r.priority), (Some(NodeRequest { index: 2, nodes: 0 }), 1));
        let Some(Message::Data(d)) = decode(3, "01010002012100").unwrap() else { panic!() };
        assert_eq!(d.block.unwrap().value, b"!");
        assert_eq!(
            decode(8, "000003").unwrap(),
            Some(Message::Range(Range { drop: false, start: 0, length: 3 }))
        );
    }

    #[test]
    fn short_optional_fields_and_unknown_types() {
        let b = |h: &str| Bytes::from(hex::decode(h).unwrap());
        assert_eq!(
            Message::decode(4, &b("07")).unwrap(),
            Some(Message::NoData(NoData { request: 7, reason: 0 }))
        );
        assert_eq!(
            Message::decode(4, &b("070102")).unwrap(),
            Some(Message::NoData(NoData { request: 7, reason: 2 }))
        );
        assert_eq!(Message::decode(10, &b("00")).unwrap(), None);
        assert_eq!(Message::decode(u64::MAX, &Bytes::new()).unwrap(), None);
        assert!(Message::decode(0, &b("0f00")).is_err());
        assert!(matches!(
            Message::decode(7, &b("00fe00000200")),
            Err(MessageError::BitfieldTooLong { words: 131_072 })
        ));
        // An extension whose name is cut short.
        assert!(Message::decode(9, &b("05666f")).is_err());
    }

    #[test]
    fn handshake_vector() {
        // Spec §4.5: the handshake part of the open frame.
        let cap = "be216759bacfca556dcf8fec5c58f5b67b545540640946ebbd9e6d32dccee287";
        let h =
            Handshake { seeks: true, capability: hex::decode(cap).unwrap().try_into().unwrap() };
        assert_eq!(hex::encode(h.encode()), format!("01{cap}"));
        assert_eq!(Handshake::decode(&h.encode()).unwrap(), h);
        assert!(Handshake::decode(&[1, 2, 3]).is_err());
    }

    fn node() -> impl Strategy<Value = Node> {
        (any::<u64>().prop_map(|i| i % (1 << 53)), 0..(1u64 << 53), any::<[u8; 32]>())
            .prop_map(|(index, size, hash)| Node { index, size, hash })
    }

    fn uint() -> impl Strategy<Value = u64> {
        prop_oneof![0..300u64, 0..(1u64 << 53)]
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (uint(), uint(), uint(), any::<[bool; 5]>()).prop_map(
                |(fork, length, remote_length, f)| {
                    Message::Sync(Sync {
                        fork,
                        length,
                        remote_length,
                        can_upgrade: f[0],
                        uploading: f[1],
                        downloading: f[2],
                        has_manifest: f[3],
                        allow_push: f[4],
                    })
                }
            ),
            (uint(), uint(), proptest::option::of((uint(), uint())), any::<bool>(), 0..3u64)
                .prop_map(|(id, fork, block, manifest, priority)| {
                    Message::Request(Request {
                        id,
                        fork,
                        block: block.map(|(index, nodes)| NodeRequest { index, nodes }),
                        manifest,
                        priority,
                        ..Request::default()
                    })
                }),
            uint().prop_map(|request| Message::Cancel { request }),
            (
                uint(),
                uint(),
                proptest::collection::vec(any::<u8>(), 0..64),
                proptest::collection::vec(node(), 0..4)
            )
                .prop_map(|(request, index, value, nodes)| {
                    Message::Data(Data {
                        request,
                        fork: 0,
                        block: Some(DataBlock { index, value, nodes: nodes.clone() }),
                        hash: None,
                        seek: None,
                        upgrade: Some(DataUpgrade {
                            start: 0,
                            length: index,
                            nodes,
                            additional_nodes: vec![],
                            signature: Some(vec![1; 64]),
                        }),
                        manifest: None,
                    })
                }),
            (uint(), uint())
                .prop_map(|(request, reason)| Message::NoData(NoData { request, reason })),
            (uint(), uint(), any::<bool>()).prop_map(|(start, length, any)| Message::Want(Want {
                start,
                length,
                any
            })),
            (uint(), uint(), any::<bool>())
                .prop_map(|(start, length, any)| Message::Unwant(Want { start, length, any })),
            (uint(), proptest::collection::vec(any::<u32>(), 0..40))
                .prop_map(|(start, bitfield)| Message::Bitfield(BitfieldSlice { start, bitfield })),
            (any::<bool>(), uint(), uint())
                .prop_map(|(drop, start, length)| Message::Range(Range { drop, start, length })),
            (".{0,12}", proptest::collection::vec(any::<u8>(), 0..40)).prop_map(
                |(name, message)| {
                    Message::Extension(Extension { name, message: Bytes::from(message) })
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(m in message()) {
            prop_assert_eq!(round_trip(&m), m);
        }

        #[test]
        fn random_bytes_never_panic(t in 0..12u64, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::decode(t, &Bytes::from(bytes));
        }
    }
}
