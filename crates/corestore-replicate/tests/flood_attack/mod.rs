//! The attack code shared by `tests/flood.rs` (short mode, in-memory duplex) and
//! `examples/flood_rss.rs` (long mode, four attackers over TCP loopback): the hostile frames and
//! a raw sender that bypasses the attacker's own mux.

use std::time::Instant;

use corestore_keys::compact::Encoder;
use corestore_replicate::Connection;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Largest plaintext of one secret-stream frame.
pub(crate) const FRAME: usize = (1 << 24) - 1 - 17;

/// Tiny messages a full 16 MiB frame holds.
pub(crate) const FULL_BATCH: usize = (FRAME - 8) / 2;

/// `00 00 uint(channel) (01 00)* [uint(len) 00 filler]`: a batch of `size` bytes holding at most
/// `messages` 2-byte messages (type 0, no payload) to `channel`, padded with one large message.
pub(crate) fn sized_batch(channel: u64, size: usize, messages: usize) -> Vec<u8> {
    let mut frame = vec![0, 0];
    let mut e = Encoder::new();
    e.uint(channel);
    frame.extend_from_slice(e.as_slice());
    let n = messages.min((size - 16) / 2);
    frame.reserve(size);
    for _ in 0..n {
        frame.extend_from_slice(&[1, 0]);
    }
    let filler = size - frame.len() - 5;
    if filler > 0 {
        let mut e = Encoder::new();
        e.uint(filler as u64);
        frame.extend_from_slice(e.as_slice());
        frame.resize(frame.len() + filler, 0);
    }
    frame.truncate(size);
    frame
}

/// The bytes of an `open` control message (after the channel byte).
pub(crate) fn open(local_id: u64, protocol: &str, id: Option<&[u8]>) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(1).uint(local_id).string(protocol).optional_buffer(id);
    e.into_vec()
}

/// A batch of `count` opens of `protocol` with fresh ids `first..`.
pub(crate) fn open_batch(first: u64, count: u64, protocol: &str) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(0).uint(0).uint(0);
    for id in first..first + count {
        e.buffer(&open(id, protocol, None));
    }
    e.into_vec()
}

/// `frames` frames each holding one `open` with id 0 (every one answered by its own reject).
pub(crate) fn id0_opens(frames: usize) -> Vec<Vec<u8>> {
    let mut frame = vec![0];
    frame.extend(open(0, "x", None));
    vec![frame; frames]
}

/// An attacker after its handshake: raw mux frames encrypted straight to the socket.
#[derive(Debug)]
pub(crate) struct Flooder<W> {
    writer: W,
    conn: Connection,
}

impl<W: AsyncWrite + Unpin> Flooder<W> {
    /// Sends through `conn` (handshake done) to `writer`.
    pub(crate) fn new(writer: W, conn: Connection) -> Self {
        Self { writer, conn }
    }

    /// Encrypts and writes one raw mux frame.
    pub(crate) async fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.conn.stream_mut().send(frame, Instant::now()).map_err(std::io::Error::other)?;
        self.write_out().await
    }

    async fn write_out(&mut self) -> std::io::Result<()> {
        while let Some(bytes) =
            self.conn.poll_transmit(Instant::now()).map_err(std::io::Error::other)?
        {
            self.writer.write_all(&bytes).await?;
        }
        Ok(())
    }

    /// Ends the stream and shuts the socket's write side.
    pub(crate) async fn end(mut self) {
        self.conn.stream_mut().end();
        let _ = self.write_out().await;
        let _ = self.writer.shutdown().await;
    }
}
