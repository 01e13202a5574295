//! Replication for the Rust Corestore, wire-compatible with JavaScript (`@hyperswarm/secret-stream`
//! 6.9.2 + `protomux` 3.12.1): sans-IO state machines fed bytes and time, polled for bytes and
//! events, plus a thin tokio [`Driver`] for any `AsyncRead + AsyncWrite`.
//!
//! Layers, bottom up (spec `wire.md` §3, §4, §6):
//! * [`Handshake`]: Noise `XX` over Ed25519 points with BLAKE2b and ChaCha20-Poly1305;
//! * [`FrameCodec`]: uint24-LE framing (`tokio_util::codec`), bounded before allocation;
//! * [`Encryptor`]/[`Decryptor`]: libsodium secretstream XChaCha20-Poly1305, one frame each;
//! * [`SecretStream`]: handshake + id header + encrypted frames + keep-alive + idle timeout;
//! * [`Mux`]: protomux channels paired by `(protocol, id)`, batches, reject, close, and the
//!   [`MuxEvent::RemoteOpen`] hook for channels only the remote opened;
//! * [`Connection`]: a secret-stream carrying a mux, the unit a [`Driver`] runs.
//!
//! Every error from the remote's bytes is a typed, terminal error; nothing here panics on input.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod connection;
mod driver;
mod framing;
mod mux;
mod noise;
mod poly1305;
pub mod protocol;
mod replication;
mod secretstream;
mod stream;
#[cfg(any(test, feature = "__testing"))]
pub mod testing;

pub use connection::{Connection, ConnectionError, Event, MAX_PENDING_OUTPUT};
pub use driver::{Driver, DriverError};
pub use framing::{FrameCodec, FrameError, HEADER_LEN, MAX_FRAME_LEN};
pub use mux::{
    ChannelError, ChannelId, ChannelSpec, Mux, MuxError, MuxEvent, OpenError, ResourceUsage,
    MAX_BATCH, MAX_BUFFERED, MAX_PENDING_OPENS, MAX_PENDING_OPEN_BYTES, MAX_QUEUED_EVENTS,
    MAX_QUEUED_OUTPUT, MAX_STEP_MESSAGES,
};
pub use noise::{
    dh, Handshake, HandshakeError, HandshakeResult, Role, MAX_MESSAGE_LEN, PROTOCOL_NAME,
};
pub use replication::{
    CoreHead, CoreWrite, Download, GetError, GetOptions, RemoteOpenHook, Replication,
    ReplicationError, ReplicationHandle, ReplicationOptions, SharedCore,
};
pub use secretstream::{DecryptError, Decryptor, Encryptor, FixedRng, ABYTES, HEADERBYTES};
pub use stream::{
    stream_id, SecretStream, SendError, StreamConfig, StreamError, StreamEvent, DEFAULT_KEEP_ALIVE,
    ID_HEADER_LEN, MAX_PLAINTEXT_LEN,
};
