//! protomux 3.12.1, sans-IO (spec `wire.md` §4): many protocol channels over one stream.
//!
//! Feed every received stream message to [`Mux::handle_frame`]; send every frame from
//! [`Mux::poll_transmit`] as one stream message; read [`Mux::poll_event`]. Channels are paired by
//! `(protocol, id)`: whichever side opens first, the channel is open once both `open`s crossed.
//! A remote `open` nobody here asked for is rejected at once, unless [`Mux::pair`] registered
//! interest in its protocol: then [`MuxEvent::RemoteOpen`] asks the application to accept (open
//! the same channel with [`Mux::open_channel`]) or to refuse ([`Mux::reject_remote`]).

mod inbound;
mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use bytes::Bytes;
use corestore_keys::compact::DecodeError;

use inbound::Cursor;
use wire::{encode_batch, encode_frame, encode_id_message, encode_open, TYPE_CLOSE, TYPE_REJECT};

/// Bytes of buffered messages (for remote channels not yet paired) above which the mux asks to
/// stop reading, as protomux pauses the stream.
pub const MAX_BUFFERED: usize = 32 * 1024;
/// Accounted overhead per buffered message.
const BUFFERED_OVERHEAD: usize = 512;
/// A batch grows to about this size before it is split.
pub const MAX_BATCH: usize = 8 * 1024 * 1024;
/// Batches nested deeper than this are refused (protomux would recurse without bound).
const MAX_BATCH_DEPTH: usize = 4;
/// Events the mux queues before it stops decoding input (until the application drains them).
pub const MAX_QUEUED_EVENTS: usize = 256;
/// Bytes of frames (plus 20 bytes of stream overhead each) the mux queues for sending before it
/// stops decoding input.
pub const MAX_QUEUED_OUTPUT: usize = 256 * 1024;
/// Protomux messages one processing step decodes at most.
pub const MAX_STEP_MESSAGES: usize = 16 * 1024;
/// Remote opens that may wait for the application; further opens are rejected at once.
pub const MAX_PENDING_OPENS: usize = 1024;
/// Accounted bytes (512 + protocol + id + handshake each) of remote opens that may wait.
pub const MAX_PENDING_OPEN_BYTES: usize = 1024 * 1024;
/// Stream bytes a frame costs on top of its own (uint24 header + secretstream overhead).
const FRAME_OVERHEAD: usize = 20;

/// Why the mux failed. Every variant is terminal for the stream, as in protomux.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// A frame that does not decode.
    #[error("protomux: malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// An `open` reusing a live remote id or skipping ahead ("Invalid open message").
    #[error("protomux: invalid open message for remote id {remote_id}")]
    InvalidOpen {
        /// The id the remote sent.
        remote_id: u64,
    },
    /// A `reject` for a channel we are not opening ("Invalid reject message").
    #[error("protomux: invalid reject message for local id {local_id}")]
    InvalidReject {
        /// The id the remote sent.
        local_id: u64,
    },
    /// Batches nested inside batches beyond the limit.
    #[error("protomux: batches nested deeper than {MAX_BATCH_DEPTH}")]
    BatchTooDeep,
    /// The remote kept opening channels while [`MAX_PENDING_OPENS`] of its opens waited for the
    /// application (as many again were rejected automatically first).
    #[error("protomux: remote exceeded the open backlog ({pending} opens pending)")]
    OpenBacklog {
        /// Opens waiting for the application.
        pending: usize,
    },
}

/// Why a channel could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The channel `(protocol, id)` is already open here (protomux `unique: true`).
    #[error("channel is already open")]
    AlreadyOpen,
}

/// Why a message could not be sent on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The channel was closed or never existed.
    #[error("channel {channel} is closed")]
    Closed {
        /// The channel.
        channel: ChannelId,
    },
}

/// A handle on one local channel. Handles are never reused, unlike protomux's wire ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(u64);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a channel is: its protocol, optional id and how many message types it understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    protocol: String,
    aliases: Vec<String>,
    id: Option<Vec<u8>>,
    message_types: Option<u64>,
}

impl ChannelSpec {
    /// A channel of `protocol` with no id, accepting every message type.
    pub fn new(protocol: impl Into<String>) -> Self {
        Self { protocol: protocol.into(), aliases: Vec::new(), id: None, message_types: None }
    }

    /// Sets the channel id (an empty id is the same as none, as on the wire).
    #[must_use]
    pub fn id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.id = Some(id.into()).filter(|id: &Vec<u8>| !id.is_empty());
        self
    }

    /// Also answers remote opens of `protocol` (with the same id), as protomux `aliases` do:
    /// hypercore opens `"hypercore/alpha"` with the alias `"hypercore"`.
    #[must_use]
    pub fn alias(mut self, protocol: impl Into<String>) -> Self {
        self.aliases.push(protocol.into());
        self
    }

    /// Declares `count` message types: received types `>= count` are silently dropped, as
    /// protomux drops types beyond a channel's `messages` list.
    #[must_use]
    pub fn message_types(mut self, count: u64) -> Self {
        self.message_types = Some(count);
        self
    }

    /// The protocol name.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The channel id.
    pub fn channel_id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }
}

/// What the mux tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxEvent {
    /// Both sides opened the channel; `handshake` is the remote's handshake bytes.
    ChannelOpened {
        /// The channel.
        channel: ChannelId,
        /// The remote's handshake (rest of its `open`).
        handshake: Bytes,
    },
    /// A message on an open channel.
    Message {
        /// The channel.
        channel: ChannelId,
        /// The message type.
        message_type: u64,
        /// The payload.
        payload: Bytes,
    },
    /// The channel closed, by us (`remote: false`) or by the remote.
    ChannelClosed {
        /// The channel.
        channel: ChannelId,
        /// True when the remote closed it.
        remote: bool,
    },
    /// The remote refused our `open`.
    ChannelRejected {
        /// The channel.
        channel: ChannelId,
    },
    /// The remote opened a channel we have not (the hook corestore needs): accept with
    /// [`Mux::open_channel`], refuse with [`Mux::reject_remote`].
    RemoteOpen {
        /// The protocol.
        protocol: String,
        /// The channel id.
        id: Option<Bytes>,
    },
}

/// What a connection holds on behalf of its remote: the figures its bounds apply to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceUsage {
    /// Received bytes not yet processed (undecoded input, decrypted frames not yet demuxed).
    pub input_bytes: usize,
    /// Bytes waiting to be written (encrypted output and mux frames not yet encrypted).
    pub output_bytes: usize,
    /// Events queued for the application.
    pub events: usize,
    /// Accounted bytes of messages buffered for remote channels not yet accepted.
    pub buffered_bytes: usize,
    /// Remote opens waiting for the application to accept or reject them.
    pub pending_opens: usize,
    /// Remote channel ids the mux keeps state for.
    pub remote_ids: usize,
    /// Protomux messages decoded in the last processing step (the work, and the transient
    /// memory, of one call).
    pub step_messages: usize,
}

impl ResourceUsage {
    /// The field-wise maximum of `self` and `other` (for high-water marks).
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        Self {
            input_bytes: self.input_bytes.max(other.input_bytes),
            output_bytes: self.output_bytes.max(other.output_bytes),
            events: self.events.max(other.events),
            buffered_bytes: self.buffered_bytes.max(other.buffered_bytes),
            pending_opens: self.pending_opens.max(other.pending_opens),
            remote_ids: self.remote_ids.max(other.remote_ids),
            step_messages: self.step_messages.max(other.step_messages),
        }
    }
}

type Key = (String, Option<Vec<u8>>);

#[derive(Debug, Default)]
struct Info {
    opened: u32,
    incoming: VecDeque<u64>,
    outgoing: VecDeque<u64>,
    /// Alias keys resolving to this one.
    aliases: Vec<Key>,
}

#[derive(Debug)]
struct Local {
    key: Key,
    id: u64,
    remote_id: u64,
    message_types: Option<u64>,
}

#[derive(Debug)]
struct Remote {
    handshake: Bytes,
    /// Messages buffered (copied) until the application accepts; `None` once paired.
    pending: Option<Vec<(u64, Bytes)>>,
    session: Option<ChannelId>,
    /// Accounted bytes while the open waits for the application.
    cost: usize,
}

/// One protomux instance, sans-IO.
///
/// Input is processed in bounded steps: [`Mux::handle_frame`] queues a frame and decodes at most
/// [`MAX_STEP_MESSAGES`] messages of it, stopping early once [`MAX_QUEUED_EVENTS`] events or
/// [`MAX_QUEUED_OUTPUT`] bytes of replies are queued or [`MAX_BUFFERED`] bytes wait for channels
/// not yet accepted; [`Mux::resume`] continues. Feed frames only while [`Mux::wants_input`].
#[derive(Debug, Default)]
pub struct Mux {
    slots: Vec<Option<ChannelId>>,
    free: Vec<usize>,
    /// Live remote ids only: closed and rejected ids are dropped (reclaimed).
    remote: HashMap<u64, Remote>,
    /// The highest remote id seen: the remote may reuse a free id up to it, or grow it by one.
    remote_high: u64,
    channels: HashMap<ChannelId, Local>,
    infos: HashMap<Key, Info>,
    aliases: HashMap<Key, Key>,
    notify: HashSet<Key>,
    next_handle: u64,
    corked: u32,
    batch: Vec<(u64, Vec<u8>)>,
    batch_size: usize,
    buffered: usize,
    pending_opens: usize,
    pending_open_bytes: usize,
    /// Opens rejected automatically since the application last answered one.
    overflow: usize,
    frames: VecDeque<Bytes>,
    cursors: Vec<Cursor>,
    step_messages: usize,
    out: VecDeque<Bytes>,
    out_bytes: usize,
    events: VecDeque<MuxEvent>,
}

fn key_of(protocol: &str, id: Option<&[u8]>) -> Key {
    (protocol.to_owned(), id.filter(|id| !id.is_empty()).map(<[u8]>::to_vec))
}

impl Mux {
    /// An idle mux.
    pub fn new() -> Self {
        Self::default()
    }

    /// Announce remote opens of `protocol` (with this `id`, or any id when `None`) as
    /// [`MuxEvent::RemoteOpen`] instead of rejecting them.
    pub fn pair(&mut self, protocol: &str, id: Option<&[u8]>) {
        self.notify.insert(key_of(protocol, id));
    }

    /// Undoes [`Mux::pair`].
    pub fn unpair(&mut self, protocol: &str, id: Option<&[u8]>) {
        self.notify.remove(&key_of(protocol, id));
    }

    fn resolve(&self, key: Key) -> Key {
        self.aliases.get(&key).cloned().unwrap_or(key)
    }

    /// True when a channel `(protocol, id)` (or one it is an alias of) is open or opening here.
    pub fn is_opened(&self, protocol: &str, id: Option<&[u8]>) -> bool {
        let key = self.resolve(key_of(protocol, id));
        self.infos.get(&key).is_some_and(|info| info.opened > 0)
    }

    /// True when no channel holds a local id.
    pub fn is_idle(&self) -> bool {
        self.slots.len() == self.free.len()
    }

    /// True while more than [`MAX_BUFFERED`] bytes wait for unpaired channels: stop reading.
    pub fn is_backlogged(&self) -> bool {
        self.buffered > MAX_BUFFERED
    }

    /// True while a queue is at its bound: input waits until events or frames are drained or
    /// the application answers its remote opens.
    pub fn is_full(&self) -> bool {
        self.events.len() >= MAX_QUEUED_EVENTS
            || self.out_bytes + self.batch_size >= MAX_QUEUED_OUTPUT
            || self.is_backlogged()
    }

    /// True while received input waits here (parked by a bound or the step limit).
    pub fn has_parked_input(&self) -> bool {
        !self.frames.is_empty() || !self.cursors.is_empty()
    }

    /// True when the mux takes another frame: nothing is parked and no queue is full.
    pub fn wants_input(&self) -> bool {
        !self.has_parked_input() && !self.is_full()
    }

    /// What this mux holds for the remote right now (see [`ResourceUsage`]).
    pub fn usage(&self) -> ResourceUsage {
        ResourceUsage {
            input_bytes: self.frames.iter().map(Bytes::len).sum::<usize>()
                + self.cursors.first().map_or(0, Cursor::held),
            output_bytes: self.out_bytes + self.batch_size,
            events: self.events.len(),
            buffered_bytes: self.buffered,
            pending_opens: self.pending_opens,
            remote_ids: self.remote.len(),
            step_messages: self.step_messages,
        }
    }

    /// Opens channel `spec` with our `handshake` bytes, pairing with a waiting remote open.
    pub fn open_channel(
        &mut self,
        spec: &ChannelSpec,
        handshake: &[u8],
    ) -> Result<ChannelId, OpenError> {
        let key = self.resolve(key_of(&spec.protocol, spec.id.as_deref()));
        self.register_aliases(&key, spec);
        let info = self.infos.entry(key.clone()).or_default();
        if info.opened > 0 {
            return Err(OpenError::AlreadyOpen);
        }
        info.opened += 1;
        let remote_id = loop {
            match info.incoming.pop_front() {
                Some(rid) if self.remote.get(&rid).is_some_and(|r| r.pending.is_some()) => {
                    break rid;
                }
                Some(_) => {}
                None => break 0,
            }
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let local_id = slot as u64 + 1;
        if remote_id == 0 {
            info.outgoing.push_back(local_id);
        }
        let handle = ChannelId(self.next_handle);
        self.next_handle += 1;
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(handle);
        }
        let local = Local { key, id: local_id, remote_id, message_types: spec.message_types };
        self.channels.insert(handle, local);
        self.write_control(encode_open(local_id, &spec.protocol, spec.id.as_deref(), handshake));
        if remote_id > 0 {
            self.fully_open(handle, remote_id);
        }
        Ok(handle)
    }

    /// Makes `spec`'s aliases resolve to `key`; remote opens of an alias already waiting move
    /// over, so they pair with this channel.
    fn register_aliases(&mut self, key: &Key, spec: &ChannelSpec) {
        for alias in &spec.aliases {
            let alias = key_of(alias, spec.id.as_deref());
            if alias == *key || self.aliases.contains_key(&alias) {
                continue;
            }
            let waiting = self.infos.get(&alias).map(|i| (i.opened, i.outgoing.is_empty()));
            let moved = match waiting {
                Some((0, true)) => self.infos.remove(&alias).map(|i| i.incoming),
                Some(_) => continue, // a channel of that name is open here itself
                None => None,
            };
            self.aliases.insert(alias.clone(), key.clone());
            let info = self.infos.entry(key.clone()).or_default();
            info.aliases.push(alias);
            info.incoming.extend(moved.into_iter().flatten());
        }
    }

    /// Refuses every still-unpaired remote open of `(protocol, id)` (after a
    /// [`MuxEvent::RemoteOpen`] the application will not accept).
    pub fn reject_remote(&mut self, protocol: &str, id: Option<&[u8]>) {
        let key = self.resolve(key_of(protocol, id));
        self.reject_incoming(&key);
    }

    /// Sends message `message_type` with `payload` on `channel`.
    pub fn send(
        &mut self,
        channel: ChannelId,
        message_type: u64,
        payload: &[u8],
    ) -> Result<(), ChannelError> {
        let local_id = self.channels.get(&channel).ok_or(ChannelError::Closed { channel })?.id;
        if self.corked > 0 {
            let mut bytes = Vec::with_capacity(payload.len() + 9);
            let mut e = corestore_keys::compact::Encoder::new();
            e.uint(message_type);
            bytes.extend_from_slice(e.as_slice());
            bytes.extend_from_slice(payload);
            self.push_batch(local_id, bytes);
        } else {
            self.push_out(encode_frame(local_id, message_type, payload));
        }
        Ok(())
    }

    /// The `uint(channel) || uint(type)` header of a message on `channel`, for callers that
    /// encrypt header and payload straight into the stream; `None` while corked or while frames
    /// are queued (use [`Mux::send`] then, so ordering and batching hold).
    pub fn frame_header(
        &mut self,
        channel: ChannelId,
        message_type: u64,
    ) -> Result<Option<Vec<u8>>, ChannelError> {
        let local_id = self.channels.get(&channel).ok_or(ChannelError::Closed { channel })?.id;
        if self.corked > 0 || !self.out.is_empty() {
            return Ok(None);
        }
        Ok(Some(encode_frame(local_id, message_type, &[])))
    }

    /// Closes `channel` and tells the remote.
    pub fn close_channel(&mut self, channel: ChannelId) -> Result<(), ChannelError> {
        let local_id = self.channels.get(&channel).ok_or(ChannelError::Closed { channel })?.id;
        self.write_control(encode_id_message(TYPE_CLOSE, local_id));
        self.close(channel, false);
        Ok(())
    }

    /// Starts batching: everything sent until the matching [`Mux::uncork`] leaves as one frame
    /// (or as several of about [`MAX_BATCH`] bytes each).
    pub fn cork(&mut self) {
        self.corked += 1;
    }

    /// Ends a [`Mux::cork`]; the outermost one emits the batch.
    pub fn uncork(&mut self) {
        self.corked = self.corked.saturating_sub(1);
        if self.corked == 0 {
            self.flush_batch();
        }
    }

    /// The next frame to send (one secret-stream message each).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let frame = self.out.pop_front()?;
        self.out_bytes = self.out_bytes.saturating_sub(frame.len() + FRAME_OVERHEAD);
        Some(frame)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    fn fully_open(&mut self, channel: ChannelId, remote_id: u64) {
        let Some(remote) = self.remote.get_mut(&remote_id) else { return };
        remote.session = Some(channel);
        let handshake = std::mem::take(&mut remote.handshake);
        let cost = std::mem::take(&mut remote.cost);
        let pending = remote.pending.take();
        if pending.is_some() {
            self.answered(cost);
        }
        self.events.push_back(MuxEvent::ChannelOpened { channel, handshake });
        for (message_type, payload) in pending.unwrap_or_default() {
            self.buffered = self.buffered.saturating_sub(BUFFERED_OVERHEAD + payload.len());
            self.deliver(channel, message_type, payload);
        }
    }

    /// The application answered a waiting remote open that cost `cost`.
    fn answered(&mut self, cost: usize) {
        self.pending_opens = self.pending_opens.saturating_sub(1);
        self.pending_open_bytes = self.pending_open_bytes.saturating_sub(cost);
        self.overflow = 0;
    }

    fn reject_incoming(&mut self, key: &Key) {
        let Some(info) = self.infos.get_mut(key) else { return };
        let incoming: Vec<u64> = info.incoming.drain(..).collect();
        for remote_id in incoming {
            if let Some(remote) = self.remote.remove(&remote_id) {
                if let Some(pending) = remote.pending {
                    for (_, payload) in pending {
                        self.buffered =
                            self.buffered.saturating_sub(BUFFERED_OVERHEAD + payload.len());
                    }
                    self.answered(remote.cost);
                }
            }
            self.write_control(encode_id_message(TYPE_REJECT, remote_id));
        }
        self.gc(key);
    }

    fn close(&mut self, channel: ChannelId, remote: bool) {
        let Some(local) = self.channels.remove(&channel) else { return };
        let slot = rid_index(local.id);
        if let Some(info) = self.infos.get_mut(&local.key) {
            info.opened = info.opened.saturating_sub(1);
        }
        if local.remote_id > 0 {
            self.remote.remove(&local.remote_id);
            self.free.push(slot);
        }
        if let Some(s) = self.slots.get_mut(slot) {
            *s = None;
        }
        self.gc(&local.key);
        self.events.push_back(MuxEvent::ChannelClosed { channel, remote });
    }

    fn gc(&mut self, key: &Key) {
        if self
            .infos
            .get(key)
            .is_some_and(|i| i.opened == 0 && i.incoming.is_empty() && i.outgoing.is_empty())
        {
            if let Some(info) = self.infos.remove(key) {
                for alias in info.aliases {
                    self.aliases.remove(&alias);
                }
            }
        }
    }

    fn push_out(&mut self, frame: Vec<u8>) {
        self.out_bytes += frame.len() + FRAME_OVERHEAD;
        self.out.push_back(Bytes::from(frame));
    }

    /// Queues a control message (`bytes` start at the type).
    fn write_control(&mut self, bytes: Vec<u8>) {
        if self.corked > 0 {
            self.push_batch(0, bytes);
        } else {
            let mut frame = Vec::with_capacity(bytes.len() + 1);
            frame.push(0);
            frame.extend_from_slice(&bytes);
            self.push_out(frame);
        }
    }

    fn push_batch(&mut self, local_id: u64, bytes: Vec<u8>) {
        if self.batch_size >= MAX_BATCH {
            self.flush_batch();
        }
        self.batch_size += bytes.len() + 10;
        self.batch.push((local_id, bytes));
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            let frame = encode_batch(&self.batch);
            self.push_out(frame);
        }
        self.batch.clear();
        self.batch_size = 0;
    }
}

/// Index of a 1-based wire id (0 maps past every table).
fn rid_index(id: u64) -> usize {
    usize::try_from(id).map_or(usize::MAX, |id| id.wrapping_sub(1))
}

#[cfg(test)]
mod tests;
