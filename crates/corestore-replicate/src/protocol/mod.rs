//! The hypercore replication protocol (spec `wire.md` §5), sans-IO: the ten channel
//! [`Message`]s and the per-core [`Replicator`].

mod message;
mod peer;
mod remote;
mod replicator;
#[cfg(test)]
mod tests;

pub use message::{
    BitfieldSlice, Extension, Handshake, Message, MessageError, NoData, Range, Sync, Want,
    MAX_BITFIELD_WORDS, MESSAGE_TYPES, PROTOCOL, PROTOCOL_ALIAS, REASON_INVALID_REQUEST,
    REASON_NOT_AVAILABLE, REASON_UNSPECIFIED,
};
pub use peer::PeerId;
pub use replicator::{
    Action, CoreView, PeerError, RangeId, Replicator, ReplicatorConfig, ReplicatorEvent,
    MAX_INVALID_REQUESTS, MAX_REMOTE_REQUESTS,
};
