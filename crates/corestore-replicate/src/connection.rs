//! A secret-stream carrying a protomux: the replication connection, sans-IO.
//!
//! Call order: [`Connection::handle_input`] / [`Connection::handle_eof`] /
//! [`Connection::handle_timeout`] in; [`Connection::poll_transmit`] (bytes for the socket),
//! [`Connection::poll_event`] and [`Connection::poll_timeout`] out. Commands go to the mux
//! through [`Connection::mux`]; their frames are encrypted on the next `poll_transmit`.

use std::time::Instant;

use bytes::Bytes;

use crate::mux::{ChannelError, ChannelId, Mux, MuxError, MuxEvent, ResourceUsage};
use crate::noise::{Handshake, Role};
use crate::stream::{SecretStream, SendError, StreamConfig, StreamError, StreamEvent};

/// Why the connection failed. Terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The transport failed (handshake, framing, decryption, timeout).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The remote broke the protomux protocol.
    #[error(transparent)]
    Mux(#[from] MuxError),
    /// The channel is closed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A mux frame could not be sent (the stream was closed).
    #[error(transparent)]
    Send(#[from] SendError),
}

/// What the connection tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake finished.
    Connected {
        /// The remote's static public key.
        remote_public_key: [u8; 32],
        /// The 64-byte handshake hash.
        handshake_hash: [u8; 64],
    },
    /// A protomux event.
    Mux(MuxEvent),
    /// The remote ended the stream cleanly.
    Ended,
}

/// A secret-stream plus its protomux.
#[derive(Debug)]
pub struct Connection {
    stream: SecretStream,
    mux: Mux,
    pending: std::collections::VecDeque<Event>,
    peak: ResourceUsage,
}

impl Connection {
    /// A new connection in `role`.
    pub fn new(role: Role, config: StreamConfig, now: Instant) -> Self {
        Self::from_stream(SecretStream::new(role, config, now))
    }

    /// A connection over a prepared handshake (fixed test keys).
    pub fn from_handshake(handshake: Handshake, config: &StreamConfig, now: Instant) -> Self {
        Self::from_stream(SecretStream::from_handshake(handshake, config, now))
    }

    fn from_stream(stream: SecretStream) -> Self {
        Self {
            stream,
            mux: Mux::new(),
            pending: std::collections::VecDeque::new(),
            peak: ResourceUsage::default(),
        }
    }

    /// The protomux: open channels, send, cork, close.
    pub fn mux(&mut self) -> &mut Mux {
        &mut self.mux
    }

    /// What the connection holds for its remote right now: the figures its bounds apply to.
    pub fn usage(&self) -> ResourceUsage {
        let mut usage = self.mux.usage();
        usage.input_bytes += self.stream.queued_input();
        usage.output_bytes += self.stream.queued_output();
        usage.events += self.pending.len();
        usage
    }

    /// The high-water mark of [`Connection::usage`], sampled after every input and output step.
    pub fn peak_usage(&self) -> ResourceUsage {
        self.peak
    }

    fn sample(&mut self) {
        self.peak = self.peak.max(self.usage());
    }

    /// True when the connection wants more input (a driver stops reading otherwise).
    pub fn wants_input(&self) -> bool {
        !self.mux.is_backlogged()
    }

    /// The secret-stream (keys, handshake hash, raw messages).
    pub fn stream(&self) -> &SecretStream {
        &self.stream
    }

    /// Mutable access to the secret-stream (to end it).
    pub fn stream_mut(&mut self) -> &mut SecretStream {
        &mut self.stream
    }

    /// Sends message `message_type` on `channel`, encrypting header and payload straight into
    /// the output (the fast path; the same bytes as `mux().send`).
    pub fn send(
        &mut self,
        channel: ChannelId,
        message_type: u64,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), ConnectionError> {
        while let Some(frame) = self.mux.poll_transmit() {
            self.stream.send(&frame, now)?;
        }
        match self.mux.frame_header(channel, message_type)? {
            Some(header) => self.stream.send_parts(&[&header, payload], now)?,
            None => self.mux.send(channel, message_type, payload)?,
        }
        Ok(())
    }

    /// Ends our side cleanly: frames already queued in the mux still go out first.
    pub fn end(&mut self, now: Instant) -> Result<(), ConnectionError> {
        while let Some(frame) = self.mux.poll_transmit() {
            self.stream.send(&frame, now)?;
        }
        self.stream.end();
        Ok(())
    }

    /// Like [`Connection::handle_input`], moving the bytes out of `data` without a copy when
    /// possible (`data` is left empty).
    pub fn handle_input_buf(
        &mut self,
        data: &mut bytes::BytesMut,
        now: Instant,
    ) -> Result<(), ConnectionError> {
        self.stream.handle_input_buf(data, now)?;
        self.process_stream_events()
    }

    /// The input buffer: a driver may read socket bytes straight into it, then call
    /// [`Connection::handle_buffered`] (see [`SecretStream::input_buf`]).
    pub fn input_buf(&mut self) -> &mut bytes::BytesMut {
        self.stream.input_buf()
    }

    /// Processes bytes a driver appended to [`Connection::input_buf`]. An error is terminal.
    pub fn handle_buffered(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.stream.handle_buffered(now)?;
        self.process_stream_events()
    }

    /// Bytes received from the socket. An error is terminal.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), ConnectionError> {
        self.stream.handle_input(data, now)?;
        self.process_stream_events()
    }

    /// The socket reached end of stream.
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.stream.handle_eof(now)?;
        self.process_stream_events()
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnectionError> {
        Ok(self.stream.handle_timeout(now)?)
    }

    fn process_stream_events(&mut self) -> Result<(), ConnectionError> {
        let result = self.process_stream_events_inner();
        self.sample();
        result
    }

    fn process_stream_events_inner(&mut self) -> Result<(), ConnectionError> {
        while let Some(event) = self.stream.poll_event() {
            match event {
                StreamEvent::Connected { remote_public_key, handshake_hash } => {
                    self.pending.push_back(Event::Connected { remote_public_key, handshake_hash });
                }
                StreamEvent::Message(frame) => {
                    if let Err(e) = self.mux.handle_frame(&frame) {
                        self.stream.end();
                        return Err(e.into());
                    }
                    while let Some(ev) = self.mux.poll_event() {
                        self.pending.push_back(Event::Mux(ev));
                    }
                }
                StreamEvent::Ended => self.pending.push_back(Event::Ended),
            }
        }
        Ok(())
    }

    /// Encrypts queued mux frames and returns the next bytes for the socket.
    pub fn poll_transmit(&mut self, now: Instant) -> Result<Option<Bytes>, ConnectionError> {
        self.sample();
        while let Some(frame) = self.mux.poll_transmit() {
            self.stream.send(&frame, now)?;
        }
        Ok(self.stream.poll_transmit())
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(ev) = self.pending.pop_front() {
            return Some(ev);
        }
        self.mux.poll_event().map(Event::Mux)
    }

    /// When [`Connection::handle_timeout`] should run.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.stream.poll_timeout()
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
