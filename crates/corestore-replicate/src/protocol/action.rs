//! What a [`Replicator`](super::Replicator) asks its caller to do and tells the application.

use bytes::Bytes;
use corestore_hypercore::{Data, Reorg, Request};

use super::message::Message;
use super::peer::PeerId;
use super::replicator::{MAX_INVALID_REQUESTS, MAX_REMOTE_REQUESTS};

/// Why a peer was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The channel handshake did not decode.
    #[error("the remote's channel handshake is malformed")]
    BadHandshake,
    /// The remote does not know the core key (spec §5.2); ends the whole connection.
    #[error("the remote sent an invalid replication capability")]
    InvalidCapability,
    /// The remote sent a message that does not decode.
    #[error("the remote sent a malformed message of type {message_type}")]
    BadMessage {
        /// The message type.
        message_type: u64,
    },
    /// The remote sent data that does not verify.
    #[error("the remote sent data that does not verify (request {request})")]
    InvalidData {
        /// The request it answered.
        request: u64,
    },
    /// The remote sent [`MAX_INVALID_REQUESTS`] invalid requests; ends the whole connection.
    #[error("the remote sent {MAX_INVALID_REQUESTS} invalid requests")]
    TooManyInvalidRequests,
    /// The writer signed two different trees at one fork (the core is now frozen).
    #[error("the remote proved the writer signed two different trees at one fork")]
    Conflict,
    /// The remote has more than [`MAX_REMOTE_REQUESTS`] requests waiting; ends the connection.
    #[error("the remote has more than {MAX_REMOTE_REQUESTS} requests waiting")]
    TooManyRequests,
}

/// What the replicator tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicatorEvent {
    /// A peer's channel opened with a valid capability.
    PeerAdded(PeerId),
    /// A peer left (its channel closed, or it was dropped).
    PeerRemoved(PeerId),
    /// A block was verified and stored.
    Downloaded {
        /// From whom.
        peer: PeerId,
        /// The block.
        index: u64,
        /// Its size.
        bytes: u64,
    },
    /// A block was sent to a peer.
    Uploaded {
        /// To whom.
        peer: PeerId,
        /// The block.
        index: u64,
        /// Its size.
        bytes: u64,
    },
    /// The core was truncated (locally, or by following the writer to a new fork): blocks
    /// from `length` on are gone, the core is on `fork`.
    Truncated {
        /// The length kept (the common ancestor after a reorg).
        length: u64,
        /// The new fork.
        fork: u64,
    },
    /// The core grew by a local append.
    Appended {
        /// The new length.
        length: u64,
        /// The new byte length.
        byte_length: u64,
    },
    /// Two valid signed trees at one fork were seen: the core is frozen.
    Frozen,
    /// A verified upgrade grew the core.
    Upgraded {
        /// The new length.
        length: u64,
    },
    /// An extension message for a registered extension.
    Extension {
        /// From whom.
        peer: PeerId,
        /// The extension name.
        name: String,
        /// The payload.
        message: Bytes,
    },
}

/// What the replicator asks the caller to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Send `message` to `peer`.
    Send {
        /// The peer.
        peer: PeerId,
        /// The message.
        message: Message,
    },
    /// Send `request` to `peer`, after setting the `nodes` of its block or hash part to what
    /// the core lacks (`Hypercore::missing_nodes`).
    Request {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: Request,
    },
    /// Create the proof answering `request` (`Hypercore::create_proof`) and hand the result to
    /// [`Replicator::handle_answer`] with `ticket`.
    Answer {
        /// The peer.
        peer: PeerId,
        /// Identifies this request among replaced and cancelled ones.
        ticket: u64,
        /// The request.
        request: Request,
    },
    /// Verify and store `data` (`Hypercore::receive`) and hand the result to
    /// [`Replicator::handle_received`].
    Verify {
        /// The peer.
        peer: PeerId,
        /// The data.
        data: Data,
    },
    /// Verify `data` as a fork proof (`Hypercore::verify_fork_proof`) and hand the result to
    /// [`Replicator::handle_reorg`].
    VerifyForkProof {
        /// The peer.
        peer: PeerId,
        /// The request it answers.
        request: u64,
        /// The data.
        data: Data,
    },
    /// Feed `data` to the reorg (`Reorg::handle`) and hand it back to
    /// [`Replicator::handle_reorg`].
    ReorgAnswer {
        /// The peer.
        peer: PeerId,
        /// The request it answers.
        request: u64,
        /// The data.
        data: Data,
        /// The reorg in progress.
        reorg: Box<Reorg>,
    },
    /// Apply the finished reorg (`Hypercore::apply_reorg`) and hand the result to
    /// [`Replicator::handle_reorg_applied`].
    ApplyReorg {
        /// The peer that drove it.
        peer: PeerId,
        /// The reorg.
        reorg: Box<Reorg>,
    },
    /// Check unsolicited `data` for a conflict (`Hypercore::check_conflict`) and hand the
    /// result to [`Replicator::handle_conflict`].
    CheckConflict {
        /// The peer.
        peer: PeerId,
        /// The data.
        data: Data,
    },
    /// Close this peer's channel: it misbehaved (`error`), or neither side wants data.
    Close {
        /// The peer.
        peer: PeerId,
        /// Why, unless the channel is merely idle.
        error: Option<PeerError>,
    },
    /// End the whole connection this peer is on (JavaScript destroys the stream).
    EndConnection {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: PeerError,
    },
    /// Tell the application.
    Event(ReplicatorEvent),
}
