//! Replication for the Rust Corestore, wire-compatible with JavaScript: the Noise secret-stream
//! transport, protomux channels and the hypercore/alpha protocol, as sans-IO state machines with
//! a thin tokio driver.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod connection;
mod driver;
mod framing;
mod mux;
mod noise;
mod secretstream;
mod stream;
#[cfg(any(test, feature = "__testing"))]
pub mod testing;

pub use connection::{Connection, ConnectionError, Event};
pub use driver::{Driver, DriverError};
pub use framing::{FrameCodec, FrameError, HEADER_LEN, MAX_FRAME_LEN};
pub use mux::{
    ChannelError, ChannelId, ChannelSpec, Mux, MuxError, MuxEvent, OpenError, MAX_BATCH,
    MAX_BUFFERED,
};
pub use noise::{
    dh, Handshake, HandshakeError, HandshakeResult, Role, MAX_MESSAGE_LEN, PROTOCOL_NAME,
};
pub use secretstream::{DecryptError, Decryptor, Encryptor, FixedRng, ABYTES, HEADERBYTES};
pub use stream::{
    stream_id, SecretStream, SendError, StreamConfig, StreamError, StreamEvent, DEFAULT_KEEP_ALIVE,
    ID_HEADER_LEN, MAX_PLAINTEXT_LEN,
};
