//! A secret-stream carrying a protomux: the replication connection, sans-IO.
//!
//! Call order: [`Connection::handle_input`] / [`Connection::handle_eof`] /
//! [`Connection::handle_timeout`] in; [`Connection::poll_transmit`] (bytes for the socket),
//! [`Connection::poll_event`] and [`Connection::poll_timeout`] out. Commands go to the mux
//! through [`Connection::mux`]; their frames are encrypted on the next `poll_transmit`.
//!
//! Input is processed lazily, in bounded steps: each `handle_*`, `poll_transmit` and each
//! `poll_event` that finds the queue empty runs at most one step ([`MAX_STEP_MESSAGES`]
//! messages), and no step runs while [`MAX_QUEUED_EVENTS`] events or [`MAX_PENDING_OUTPUT`]
//! bytes of output wait, or the mux waits for the application ([`Mux::is_full`]). Feed input only
//! while [`Connection::wants_input`]; keep polling while [`Connection::can_progress`]. A step's
//! error met inside `poll_event` is returned by the next `handle_*` or `poll_transmit`.

use std::time::Instant;

use bytes::Bytes;

use crate::mux::{
    ChannelError, ChannelId, Mux, MuxError, MuxEvent, ResourceUsage, MAX_QUEUED_EVENTS,
    MAX_STEP_MESSAGES,
};
use crate::noise::{Handshake, Role};
use crate::stream::{SecretStream, SendError, StreamConfig, StreamError, StreamEvent};

/// Encrypted bytes waiting for the socket at which the connection stops processing input (its
/// replies would pile up behind a peer that does not read).
pub const MAX_PENDING_OUTPUT: usize = 512 * 1024;

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
    /// The latest time passed in (a step run from `poll_event` sends with it).
    now: Instant,
    /// True until a step found no complete frame in the stream's input.
    input_pending: bool,
    /// The socket's end was seen and not yet passed to the stream.
    eof: bool,
    /// An error met by a step inside `poll_event`, returned by the next call that can fail.
    error: Option<ConnectionError>,
}

impl Connection {
    /// A new connection in `role`.
    pub fn new(role: Role, config: StreamConfig, now: Instant) -> Self {
        Self::from_stream(SecretStream::new(role, config, now), now)
    }

    /// A connection over a prepared handshake (fixed test keys).
    pub fn from_handshake(handshake: Handshake, config: &StreamConfig, now: Instant) -> Self {
        Self::from_stream(SecretStream::from_handshake(handshake, config, now), now)
    }

    fn from_stream(mut stream: SecretStream, now: Instant) -> Self {
        stream.set_event_limit(1);
        Self {
            stream,
            mux: Mux::new(),
            pending: std::collections::VecDeque::new(),
            peak: ResourceUsage::default(),
            now,
            input_pending: false,
            eof: false,
            error: None,
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

    /// The high-water mark of [`Connection::usage`], sampled after every processing step.
    pub fn peak_usage(&self) -> ResourceUsage {
        self.peak
    }

    fn sample(&mut self) {
        self.peak = self.peak.max(self.usage());
    }

    fn has_work(&self) -> bool {
        self.input_pending || self.mux.has_parked_input() || self.eof
    }

    fn is_blocked(&self) -> bool {
        self.pending.len() >= MAX_QUEUED_EVENTS
            || self.stream.queued_output() >= MAX_PENDING_OUTPUT
            || self.mux.is_full()
    }

    /// True when received input waits and a step can process some of it now: keep polling
    /// ([`Connection::poll_event`] / [`Connection::poll_transmit`]) before waiting for I/O.
    pub fn can_progress(&self) -> bool {
        self.error.is_none() && self.has_work() && !self.is_blocked()
    }

    /// True when the connection takes more input: everything received was processed and no
    /// queue is at its bound. A driver stops reading otherwise (backpressure).
    pub fn wants_input(&self) -> bool {
        self.error.is_none() && !self.has_work() && !self.is_blocked()
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

    fn check(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.now = self.now.max(now);
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Like [`Connection::handle_input`], moving the bytes out of `data` without a copy when
    /// possible (`data` is left empty).
    pub fn handle_input_buf(
        &mut self,
        data: &mut bytes::BytesMut,
        now: Instant,
    ) -> Result<(), ConnectionError> {
        self.check(now)?;
        self.stream.handle_input_buf(data, now)?;
        self.input_pending = true;
        self.step()
    }

    /// The input buffer: a driver may read socket bytes straight into it, then call
    /// [`Connection::handle_buffered`] (see [`SecretStream::input_buf`]).
    pub fn input_buf(&mut self) -> &mut bytes::BytesMut {
        self.stream.input_buf()
    }

    /// Processes bytes a driver appended to [`Connection::input_buf`]. An error is terminal.
    pub fn handle_buffered(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.check(now)?;
        self.stream.handle_buffered(now)?;
        self.input_pending = true;
        self.step()
    }

    /// Bytes received from the socket. An error is terminal.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), ConnectionError> {
        self.check(now)?;
        self.stream.handle_input(data, now)?;
        self.input_pending = true;
        self.step()
    }

    /// The socket reached end of stream ([`Event::Ended`] follows the input still queued).
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.check(now)?;
        self.eof = true;
        self.step()
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.check(now)?;
        Ok(self.stream.handle_timeout(now)?)
    }

    /// Replies the mux queued while processing input go to the stream (and are dropped once
    /// our side is ended or the stream is closed: nobody will read them).
    fn flush_replies(&mut self) -> Result<(), ConnectionError> {
        while let Some(frame) = self.mux.poll_transmit() {
            if !self.stream.is_write_ended() && !self.stream.is_closed() {
                self.stream.send(&frame, self.now)?;
            }
        }
        while self.pending.len() < MAX_QUEUED_EVENTS {
            let Some(event) = self.mux.poll_event() else { break };
            self.pending.push_back(Event::Mux(event));
        }
        Ok(())
    }

    /// One bounded processing step (see the module docs). An error is terminal.
    fn step(&mut self) -> Result<(), ConnectionError> {
        let result = self.step_inner();
        if let Err(ConnectionError::Mux(_)) = &result {
            self.stream.end();
        }
        if result.is_err() {
            self.input_pending = false;
            self.eof = false;
        }
        self.sample();
        result
    }

    fn step_inner(&mut self) -> Result<(), ConnectionError> {
        let mut budget = MAX_STEP_MESSAGES;
        loop {
            self.flush_replies()?;
            if budget == 0 || self.is_blocked() {
                return Ok(());
            }
            if self.mux.has_parked_input() {
                let used = self.mux.resume_with_budget(budget)?;
                budget = budget.saturating_sub(used.max(1));
                continue;
            }
            match self.stream.poll_event() {
                Some(StreamEvent::Connected { remote_public_key, handshake_hash }) => {
                    self.pending.push_back(Event::Connected { remote_public_key, handshake_hash });
                }
                Some(StreamEvent::Message(frame)) => self.mux.queue_frame(frame),
                Some(StreamEvent::Ended) => self.pending.push_back(Event::Ended),
                None if self.input_pending => {
                    self.stream.resume_input()?;
                    self.input_pending = self.stream.has_events();
                }
                None if self.eof => {
                    self.eof = false;
                    self.stream.handle_eof(self.now)?;
                }
                None => return Ok(()),
            }
        }
    }

    /// Encrypts queued mux frames and returns the next bytes for the socket.
    pub fn poll_transmit(&mut self, now: Instant) -> Result<Option<Bytes>, ConnectionError> {
        self.check(now)?;
        if self.can_progress() {
            self.step()?;
        }
        self.sample();
        while let Some(frame) = self.mux.poll_transmit() {
            self.stream.send(&frame, now)?;
        }
        Ok(self.stream.poll_transmit())
    }

    /// The next event. When none is queued and input waits, runs one processing step first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.pending.is_empty() && self.can_progress() {
            if let Err(e) = self.step() {
                self.error = Some(e);
            }
        }
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
