//! The hypercore replication protocol (spec `wire.md` §5), sans-IO: the ten channel
//! [`Message`]s and the per-core [`Replicator`].

mod action;
#[cfg(test)]
mod attack_tests;
#[cfg(test)]
mod clear_tests;
mod message;
mod peer;
mod remote;
mod replicator;
#[cfg(test)]
mod tests;
mod view;

pub use action::{Action, PeerError, ReplicatorEvent};
pub use message::{
    BitfieldSlice, Extension, Handshake, Message, MessageError, NoData, Range, Sync, Want,
    MAX_BITFIELD_WORDS, MESSAGE_TYPES, PROTOCOL, PROTOCOL_ALIAS, REASON_INVALID_REQUEST,
    REASON_NOT_AVAILABLE, REASON_UNSPECIFIED,
};
pub use peer::PeerId;
pub use replicator::{RangeId, Replicator, MAX_INVALID_REQUESTS, MAX_REMOTE_REQUESTS};
pub use view::{CoreView, ReplicatorConfig};
