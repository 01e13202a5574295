//! The sans-IO secret-stream connection (spec `wire.md` §3): the framed Noise handshake, the id
//! header, secretstream-encrypted frames, keep-alive and the idle timeout.
//!
//! Call order (as quinn-proto's `Connection`): feed received bytes with
//! [`SecretStream::handle_input`] (and [`SecretStream::handle_eof`] at the end), fire timers with
//! [`SecretStream::handle_timeout`] when [`SecretStream::poll_timeout`] says so, then drain
//! [`SecretStream::poll_transmit`] to the socket and [`SecretStream::poll_event`] to the
//! application. Time is always passed in; nothing here reads a clock or touches a socket.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use corestore_keys::hash::{blake2b_256_keyed64, namespace};
use corestore_keys::KeyPair;
use rand_core::OsRng;
use tokio_util::codec::Decoder as _;

use crate::framing::{FrameCodec, FrameError, HEADER_LEN, MAX_FRAME_LEN};
use crate::noise::{Handshake, HandshakeError, HandshakeResult, Role, MAX_MESSAGE_LEN};
use crate::secretstream::{DecryptError, Decryptor, Encryptor, ABYTES, HEADERBYTES};

/// Length of the post-handshake id frame: stream id (32) + secretstream header (24).
pub const ID_HEADER_LEN: usize = 32 + HEADERBYTES;
/// Largest plaintext one frame can carry.
pub const MAX_PLAINTEXT_LEN: usize = MAX_FRAME_LEN - ABYTES;
/// The keep-alive interval hypercore and corestore use.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Why the stream failed. Every variant is terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The Noise handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// A bad frame (too large, or cut off at end of stream).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The first post-handshake frame had the wrong size.
    #[error("invalid id header: {len} bytes, expected {ID_HEADER_LEN}")]
    InvalidHeaderLength {
        /// Its length.
        len: usize,
    },
    /// The id header carried a stream id other than the one the handshake implies.
    #[error("invalid id header: stream id mismatch")]
    StreamIdMismatch,
    /// An encrypted frame failed to authenticate.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// The remote ended the stream before the handshake finished.
    #[error("stream ended during the handshake")]
    EndedDuringHandshake,
    /// Nothing was received within the idle timeout.
    #[error("stream timed out after {timeout:?} without input")]
    TimedOut {
        /// The configured timeout.
        timeout: Duration,
    },
    /// Input after the stream failed or ended.
    #[error("stream is closed")]
    Closed,
}

/// Why a message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A message larger than one frame (`MAX_ATOMIC_WRITE`).
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// Its length.
        len: usize,
        /// The maximum plaintext length.
        max: usize,
    },
    /// The stream was ended or failed.
    #[error("stream is closed")]
    Closed,
}

/// Settings of a [`SecretStream`].
#[derive(Debug, Clone, Default)]
pub struct StreamConfig {
    key_pair: Option<KeyPair>,
    keep_alive: Option<Duration>,
    timeout: Option<Duration>,
    max_frame_len: Option<usize>,
}

impl StreamConfig {
    /// Defaults: a random static key pair, no keep-alive, no idle timeout, 16 MiB frames.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use this static key pair (the Noise `s` key, our identity).
    #[must_use]
    pub fn key_pair(mut self, key_pair: KeyPair) -> Self {
        self.key_pair = Some(key_pair);
        self
    }

    /// Send an empty frame when nothing was written for `interval` (and drop received empty
    /// frames), as `setKeepAlive(ms)`.
    #[must_use]
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = Some(interval);
        self
    }

    /// Fail with [`StreamError::TimedOut`] when nothing was received for `timeout`.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Refuse received frames larger than `max` bytes (before allocating them).
    #[must_use]
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = Some(max);
        self
    }
}

/// What the stream tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// The handshake finished (see [`SecretStream::handshake_hash`]).
    Connected {
        /// The remote's static public key.
        remote_public_key: [u8; 32],
        /// The 64-byte handshake hash.
        handshake_hash: [u8; 64],
    },
    /// One decrypted message.
    Message(Bytes),
    /// The remote ended the stream cleanly.
    Ended,
}

enum Phase {
    Handshake(Box<Handshake>),
    AwaitingHeader { expected_id: [u8; 32], rx: [u8; 32] },
    Open(Decryptor),
    Closed,
}

/// One secret-stream connection, sans-IO.
pub struct SecretStream {
    role: Role,
    phase: Phase,
    codec: FrameCodec,
    max_frame_len: usize,
    input: BytesMut,
    output: BytesMut,
    encryptor: Option<Encryptor>,
    queued: VecDeque<Bytes>,
    events: VecDeque<StreamEvent>,
    public_key: [u8; 32],
    remote_public_key: Option<[u8; 32]>,
    handshake_hash: Option<[u8; 64]>,
    keep_alive: Option<Duration>,
    timeout: Option<Duration>,
    last_write: Instant,
    last_read: Instant,
    write_ended: bool,
    /// Decoding stops while this many events are queued (a [`Connection`] decodes lazily).
    ///
    /// [`Connection`]: crate::Connection
    event_limit: usize,
}

impl std::fmt::Debug for SecretStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStream")
            .field("role", &self.role)
            .field("connected", &self.is_connected())
            .field("buffered_in", &self.input.len())
            .field("buffered_out", &self.output.len())
            .finish_non_exhaustive()
    }
}

/// `streamId(hh, isInitiator)` (spec §3.4).
pub fn stream_id(handshake_hash: &[u8; 64], role: Role) -> [u8; 32] {
    let [ns_initiator, ns_responder, _send] = namespace::<3>(b"hyperswarm/secret-stream");
    let ns = match role {
        Role::Initiator => ns_initiator,
        Role::Responder => ns_responder,
    };
    blake2b_256_keyed64(handshake_hash, &[&ns])
}

fn other(role: Role) -> Role {
    match role {
        Role::Initiator => Role::Responder,
        Role::Responder => Role::Initiator,
    }
}

impl SecretStream {
    /// A new stream. The initiator's first handshake message is ready in
    /// [`SecretStream::poll_transmit`] at once.
    pub fn new(role: Role, mut config: StreamConfig, now: Instant) -> Self {
        Self::from_handshake(Handshake::new(role, config.key_pair.take()), &config, now)
    }

    /// A stream over an already built handshake (fixed test keys).
    pub fn from_handshake(handshake: Handshake, config: &StreamConfig, now: Instant) -> Self {
        let max_frame_len = config.max_frame_len.unwrap_or(MAX_FRAME_LEN).min(MAX_FRAME_LEN);
        // Until the handshake is over nothing longer than a Noise message is valid.
        let codec = FrameCodec::with_max_frame_len(max_frame_len.min(MAX_MESSAGE_LEN));
        let mut stream = Self {
            role: handshake.role(),
            public_key: handshake.public_key(),
            phase: Phase::Handshake(Box::new(handshake)),
            codec,
            max_frame_len,
            input: BytesMut::new(),
            output: BytesMut::new(),
            encryptor: None,
            queued: VecDeque::new(),
            events: VecDeque::new(),
            remote_public_key: None,
            handshake_hash: None,
            keep_alive: config.keep_alive,
            timeout: config.timeout,
            last_write: now,
            last_read: now,
            write_ended: false,
            event_limit: usize::MAX,
        };
        if let Err(e) = stream.write_handshake() {
            // Writing message 1 cannot fail; keep the stream closed if it ever does.
            tracing::warn!(error = %e, "secret-stream: cannot start the handshake");
            stream.phase = Phase::Closed;
        }
        stream
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our static public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The remote's static public key, once connected.
    pub fn remote_public_key(&self) -> Option<[u8; 32]> {
        self.remote_public_key
    }

    /// The 64-byte handshake hash, once connected.
    pub fn handshake_hash(&self) -> Option<[u8; 64]> {
        self.handshake_hash
    }

    /// True once the handshake finished (messages may still be queued before that).
    pub fn is_connected(&self) -> bool {
        self.encryptor.is_some()
    }

    /// True after [`SecretStream::end`]: once the output is drained, shut the socket's write side.
    pub fn is_write_ended(&self) -> bool {
        self.write_ended
    }

    /// Bytes received but not yet handed out as events (undecoded input plus decrypted
    /// messages queued in events).
    pub fn queued_input(&self) -> usize {
        let queued: usize = self
            .events
            .iter()
            .map(|e| match e {
                StreamEvent::Message(m) => m.len(),
                _ => 0,
            })
            .sum();
        self.input.len() + queued
    }

    /// Bytes waiting for the socket, plus messages queued until the handshake finishes.
    pub fn queued_output(&self) -> usize {
        self.output.len() + self.queued.iter().map(Bytes::len).sum::<usize>()
    }

    /// True once the stream failed or the remote ended it.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    fn write_handshake(&mut self) -> Result<(), StreamError> {
        let Phase::Handshake(hs) = &mut self.phase else { return Ok(()) };
        if hs.wants_write() {
            let msg = hs.write_message()?;
            self.codec.encode_head(msg.len(), &mut self.output)?;
            self.output.put_slice(&msg);
        }
        if hs.is_finished() {
            let Phase::Handshake(hs) = std::mem::replace(&mut self.phase, Phase::Closed) else {
                return Ok(());
            };
            self.finish_handshake(&hs.into_result()?);
        }
        Ok(())
    }

    fn finish_handshake(&mut self, result: &HandshakeResult) {
        let (encryptor, header) = Encryptor::new(OsRng, &result.tx);
        self.output.reserve(HEADER_LEN + ID_HEADER_LEN);
        self.output.put_slice(&[ID_HEADER_LEN as u8, 0, 0]);
        self.output.put_slice(&stream_id(&result.hash, self.role));
        self.output.put_slice(&header);
        self.encryptor = Some(encryptor);
        self.phase = Phase::AwaitingHeader {
            expected_id: stream_id(&result.hash, other(self.role)),
            rx: result.rx,
        };
        self.remote_public_key = Some(result.remote_public_key);
        self.handshake_hash = Some(result.hash);
        self.events.push_back(StreamEvent::Connected {
            remote_public_key: result.remote_public_key,
            handshake_hash: result.hash,
        });
        while let Some(plain) = self.queued.pop_front() {
            self.encrypt(&[&plain]);
        }
    }

    /// Feeds bytes received from the socket. An error is terminal: drop the connection.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), StreamError> {
        if self.is_closed() {
            return Err(StreamError::Closed);
        }
        self.last_read = now;
        self.input.extend_from_slice(data);
        self.process_buffered()
    }

    /// Like [`SecretStream::handle_input`], taking the bytes out of `data` without copying them
    /// when nothing is buffered (drivers pass their read buffer; it is left empty).
    pub fn handle_input_buf(
        &mut self,
        data: &mut BytesMut,
        now: Instant,
    ) -> Result<(), StreamError> {
        if self.is_closed() {
            return Err(StreamError::Closed);
        }
        self.last_read = now;
        if self.input.is_empty() {
            self.input = data.split();
        } else {
            self.input.extend_from_slice(data);
            data.clear();
        }
        self.process_buffered()
    }

    /// The input buffer itself: a driver may read socket bytes straight into it (no copy even
    /// when a frame spans reads), then call [`SecretStream::handle_buffered`].
    pub fn input_buf(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Processes bytes a driver appended to [`SecretStream::input_buf`]. An error is terminal.
    pub fn handle_buffered(&mut self, now: Instant) -> Result<(), StreamError> {
        if self.is_closed() {
            return Err(StreamError::Closed);
        }
        self.last_read = now;
        self.process_buffered()
    }

    fn process_buffered(&mut self) -> Result<(), StreamError> {
        let result = self.process_input();
        if result.is_err() {
            self.fail();
        }
        result
    }

    fn fail(&mut self) {
        self.phase = Phase::Closed;
        self.input = BytesMut::new();
        self.queued.clear();
    }

    /// Decode no further while `limit` events are queued; [`SecretStream::resume_input`] goes on.
    pub(crate) fn set_event_limit(&mut self, limit: usize) {
        self.event_limit = limit.max(1);
    }

    /// Decodes more buffered frames (up to the event limit). An error is terminal.
    pub(crate) fn resume_input(&mut self) -> Result<(), StreamError> {
        if self.is_closed() {
            return Ok(());
        }
        self.process_buffered()
    }

    /// True while decoded events wait in the queue.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    fn process_input(&mut self) -> Result<(), StreamError> {
        while self.events.len() < self.event_limit {
            let Some(mut frame) = self.codec.decode(&mut self.input)? else { break };
            match &mut self.phase {
                Phase::Handshake(hs) => {
                    hs.read_message(&frame)?;
                    self.write_handshake()?;
                }
                Phase::AwaitingHeader { expected_id, rx } => {
                    let Some((id, header)) = frame.split_first_chunk::<32>() else {
                        return Err(StreamError::InvalidHeaderLength { len: frame.len() });
                    };
                    let Ok(header) = <&[u8; HEADERBYTES]>::try_from(header) else {
                        return Err(StreamError::InvalidHeaderLength { len: frame.len() });
                    };
                    if id != expected_id {
                        return Err(StreamError::StreamIdMismatch);
                    }
                    self.phase = Phase::Open(Decryptor::new(rx, header));
                    self.codec = FrameCodec::with_max_frame_len(self.max_frame_len);
                }
                Phase::Open(decryptor) => {
                    decryptor.decrypt_in_place(&mut frame)?;
                    if frame.is_empty() && self.keep_alive.is_some() {
                        continue; // a keep-alive
                    }
                    self.events.push_back(StreamEvent::Message(frame.freeze()));
                }
                Phase::Closed => return Err(StreamError::Closed),
            }
        }
        Ok(())
    }

    /// The remote closed its write side. Cut-off frames or an unfinished handshake are errors.
    pub fn handle_eof(&mut self, _now: Instant) -> Result<(), StreamError> {
        if self.is_closed() {
            return Ok(());
        }
        let result = match (&self.phase, self.codec.decode_eof(&mut self.input)) {
            (_, Err(e)) => Err(e.into()),
            (Phase::Open(_), Ok(_)) => Ok(()),
            _ => Err(StreamError::EndedDuringHandshake),
        };
        self.fail();
        if result.is_ok() {
            self.events.push_back(StreamEvent::Ended);
        }
        result
    }

    /// Queues one message (a protomux frame). Before the handshake finishes it waits in memory.
    pub fn send(&mut self, plaintext: &[u8], now: Instant) -> Result<(), SendError> {
        self.send_parts(&[plaintext], now)
    }

    /// Queues one message made of the concatenation of `parts`.
    pub fn send_parts(&mut self, parts: &[&[u8]], now: Instant) -> Result<(), SendError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_PLAINTEXT_LEN {
            return Err(SendError::MessageTooLarge { len, max: MAX_PLAINTEXT_LEN });
        }
        if self.write_ended || self.is_closed() {
            return Err(SendError::Closed);
        }
        self.last_write = now;
        if self.encryptor.is_some() {
            self.encrypt(parts);
        } else {
            self.queued.push_back(Bytes::from(parts.concat()));
        }
        Ok(())
    }

    fn encrypt(&mut self, parts: &[&[u8]]) {
        if let Some(encryptor) = &mut self.encryptor {
            let len = parts.iter().map(|p| p.len()).sum::<usize>() + ABYTES;
            self.output.reserve(HEADER_LEN + len);
            self.output.put_slice(&(len as u32).to_le_bytes()[..HEADER_LEN]);
            encryptor.encrypt_parts_into(parts, &mut self.output);
        }
    }

    /// Ends our side once the queued output is sent (`stream.end()`).
    pub fn end(&mut self) {
        self.write_ended = true;
    }

    /// The next bytes to write to the socket.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.output.is_empty()).then(|| self.output.split().freeze())
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// When [`SecretStream::handle_timeout`] should run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let keep_alive = self
            .keep_alive
            .filter(|_| self.is_connected() && !self.write_ended)
            .map(|d| self.last_write + d);
        let idle = self.timeout.map(|d| self.last_read + d);
        keep_alive.into_iter().chain(idle).min()
    }

    /// Fires due timers: sends a keep-alive, or fails with [`StreamError::TimedOut`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), StreamError> {
        if self.is_closed() {
            return Ok(());
        }
        if let Some(timeout) = self.timeout.filter(|d| now >= self.last_read + *d) {
            self.fail();
            return Err(StreamError::TimedOut { timeout });
        }
        if let Some(interval) = self.keep_alive {
            if self.is_connected() && !self.write_ended && now >= self.last_write + interval {
                self.last_write = now;
                self.encrypt(&[&[]]);
            }
        }
        Ok(())
    }
}
