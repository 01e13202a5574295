//! protomux 3.12.1, sans-IO (spec `wire.md` §4): many protocol channels over one stream.
//!
//! Feed every received stream message to [`Mux::handle_frame`]; send every frame from
//! [`Mux::poll_transmit`] as one stream message; read [`Mux::poll_event`]. Channels are paired by
//! `(protocol, id)`: whichever side opens first, the channel is open once both `open`s crossed.
//! A remote `open` nobody here asked for is rejected at once, unless [`Mux::pair`] registered
//! interest in its protocol: then [`MuxEvent::RemoteOpen`] asks the application to accept (open
//! the same channel with [`Mux::open_channel`]) or to refuse ([`Mux::reject_remote`]).

mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use bytes::Bytes;
use corestore_keys::compact::DecodeError;

use wire::{
    decode_batch, decode_frame, decode_id_message, decode_open, encode_batch, encode_frame,
    encode_id_message, encode_open, Open, TYPE_BATCH, TYPE_CLOSE, TYPE_OPEN, TYPE_REJECT,
};

/// Bytes of buffered messages (for remote channels not yet paired) above which the mux asks to
/// stop reading, as protomux pauses the stream.
pub const MAX_BUFFERED: usize = 32 * 1024;
/// Accounted overhead per buffered message.
const BUFFERED_OVERHEAD: usize = 512;
/// A batch grows to about this size before it is split.
pub const MAX_BATCH: usize = 8 * 1024 * 1024;
/// Batches nested deeper than this are refused (protomux would recurse without bound).
const MAX_BATCH_DEPTH: u8 = 4;

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
    id: Option<Vec<u8>>,
    message_types: Option<u64>,
}

impl ChannelSpec {
    /// A channel of `protocol` with no id, accepting every message type.
    pub fn new(protocol: impl Into<String>) -> Self {
        Self { protocol: protocol.into(), id: None, message_types: None }
    }

    /// Sets the channel id (an empty id is the same as none, as on the wire).
    #[must_use]
    pub fn id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.id = Some(id.into()).filter(|id: &Vec<u8>| !id.is_empty());
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
    pending: Option<Vec<(u64, Bytes)>>,
    session: Option<ChannelId>,
}

/// One protomux instance, sans-IO.
#[derive(Debug, Default)]
pub struct Mux {
    slots: Vec<Option<ChannelId>>,
    free: Vec<usize>,
    remote: Vec<Option<Remote>>,
    channels: HashMap<ChannelId, Local>,
    infos: HashMap<Key, Info>,
    notify: HashSet<Key>,
    next_handle: u64,
    corked: u32,
    batch: Vec<(u64, Vec<u8>)>,
    batch_size: usize,
    buffered: usize,
    step_messages: usize,
    out: VecDeque<Bytes>,
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

    /// True when a channel `(protocol, id)` is open or opening here.
    pub fn is_opened(&self, protocol: &str, id: Option<&[u8]>) -> bool {
        self.infos.get(&key_of(protocol, id)).is_some_and(|info| info.opened > 0)
    }

    /// True when no channel holds a local id.
    pub fn is_idle(&self) -> bool {
        self.slots.len() == self.free.len()
    }

    /// What this mux holds for the remote right now (see [`ResourceUsage`]).
    pub fn usage(&self) -> ResourceUsage {
        ResourceUsage {
            input_bytes: 0,
            output_bytes: self.out.iter().map(Bytes::len).sum::<usize>() + self.batch_size,
            events: self.events.len(),
            buffered_bytes: self.buffered,
            pending_opens: self.remote.iter().flatten().filter(|r| r.pending.is_some()).count(),
            remote_ids: self.remote.len(),
            step_messages: self.step_messages,
        }
    }

    /// True while more than [`MAX_BUFFERED`] bytes wait for unpaired channels: stop reading.
    pub fn is_backlogged(&self) -> bool {
        self.buffered > MAX_BUFFERED
    }

    /// Opens channel `spec` with our `handshake` bytes, pairing with a waiting remote open.
    pub fn open_channel(
        &mut self,
        spec: &ChannelSpec,
        handshake: &[u8],
    ) -> Result<ChannelId, OpenError> {
        let key = key_of(&spec.protocol, spec.id.as_deref());
        let info = self.infos.entry(key.clone()).or_default();
        if info.opened > 0 {
            return Err(OpenError::AlreadyOpen);
        }
        info.opened += 1;
        let remote_id = loop {
            match info.incoming.pop_front() {
                Some(rid) if self.remote.get(rid_index(rid)).is_some_and(Option::is_some) => {
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

    /// Refuses every still-unpaired remote open of `(protocol, id)` (after a
    /// [`MuxEvent::RemoteOpen`] the application will not accept).
    pub fn reject_remote(&mut self, protocol: &str, id: Option<&[u8]>) {
        self.reject_incoming(&key_of(protocol, id));
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
            self.out.push_back(Bytes::from(encode_frame(local_id, message_type, payload)));
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

    /// Starts batching: everything sent until the matching [`Mux::uncork`] leaves as one frame.
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
        self.out.pop_front()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// Processes one received stream message. Empty frames are ignored. An error is terminal.
    pub fn handle_frame(&mut self, frame: &Bytes) -> Result<(), MuxError> {
        self.step_messages = 0;
        if frame.is_empty() {
            return Ok(());
        }
        let frame = decode_frame(frame)?;
        self.dispatch(frame.channel, frame.message_type, frame.payload, 0)
    }

    fn dispatch(
        &mut self,
        remote_id: u64,
        message_type: u64,
        payload: Bytes,
        depth: u8,
    ) -> Result<(), MuxError> {
        self.step_messages += 1;
        if remote_id == 0 {
            return self.control(message_type, &payload, depth);
        }
        let Some(Some(remote)) = self.remote.get_mut(rid_index(remote_id)) else {
            return Ok(()); // closed or unknown: protomux ignores it
        };
        if let Some(pending) = &mut remote.pending {
            self.buffered += BUFFERED_OVERHEAD + payload.len();
            pending.push((message_type, payload));
            return Ok(());
        }
        if let Some(channel) = remote.session {
            self.deliver(channel, message_type, payload);
        }
        Ok(())
    }

    fn deliver(&mut self, channel: ChannelId, message_type: u64, payload: Bytes) {
        let Some(local) = self.channels.get(&channel) else { return };
        if local.message_types.is_some_and(|n| message_type >= n) {
            return; // unknown type: ignored
        }
        self.events.push_back(MuxEvent::Message { channel, message_type, payload });
    }

    fn control(&mut self, message_type: u64, payload: &Bytes, depth: u8) -> Result<(), MuxError> {
        match message_type {
            TYPE_BATCH => {
                if depth >= MAX_BATCH_DEPTH {
                    return Err(MuxError::BatchTooDeep);
                }
                for (channel, bytes) in decode_batch(payload)? {
                    let mut d = corestore_keys::compact::Decoder::new(&bytes);
                    let message_type = d.uint()?;
                    let rest = bytes.slice(bytes.len() - d.remaining().len()..);
                    self.dispatch(channel, message_type, rest, depth + 1)?;
                }
                Ok(())
            }
            TYPE_OPEN => self.on_open(decode_open(payload)?),
            TYPE_REJECT => self.on_reject(decode_id_message(payload)?),
            TYPE_CLOSE => {
                self.on_close(decode_id_message(payload)?);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_open(&mut self, open: Open) -> Result<(), MuxError> {
        let remote_id = open.local_id;
        if remote_id == 0 {
            self.write_control(encode_id_message(TYPE_REJECT, 0));
            return Ok(());
        }
        let rid = rid_index(remote_id);
        if self.remote.len() == rid {
            self.remote.push(None);
        }
        if !matches!(self.remote.get(rid), Some(None)) {
            return Err(MuxError::InvalidOpen { remote_id });
        }
        let key = key_of(&open.protocol, open.id.as_deref());
        let info = self.infos.entry(key.clone()).or_default();
        if let Some(local_id) = info.outgoing.pop_front() {
            let slot = rid_index(local_id);
            let Some(Some(handle)) = self.slots.get(slot).copied() else {
                // We closed it before the remote answered: its local id is free now.
                self.free.push(slot);
                self.gc(&key);
                return Ok(());
            };
            if let Some(r) = self.remote.get_mut(rid) {
                *r = Some(Remote { handshake: open.handshake, pending: None, session: None });
            }
            if let Some(local) = self.channels.get_mut(&handle) {
                local.remote_id = remote_id;
            }
            self.fully_open(handle, remote_id);
            return Ok(());
        }
        info.incoming.push_back(remote_id);
        if let Some(r) = self.remote.get_mut(rid) {
            *r = Some(Remote {
                handshake: open.handshake,
                pending: Some(Vec::new()),
                session: None,
            });
        }
        let wanted = self.notify.contains(&key) || self.notify.contains(&(key.0.clone(), None));
        if wanted {
            self.events.push_back(MuxEvent::RemoteOpen { protocol: open.protocol, id: open.id });
        } else {
            self.reject_incoming(&key);
        }
        Ok(())
    }

    fn fully_open(&mut self, channel: ChannelId, remote_id: u64) {
        let Some(Some(remote)) = self.remote.get_mut(rid_index(remote_id)) else { return };
        remote.session = Some(channel);
        let handshake = std::mem::take(&mut remote.handshake);
        let pending = remote.pending.take().unwrap_or_default();
        self.events.push_back(MuxEvent::ChannelOpened { channel, handshake });
        for (message_type, payload) in pending {
            self.buffered = self.buffered.saturating_sub(BUFFERED_OVERHEAD + payload.len());
            self.deliver(channel, message_type, payload);
        }
    }

    fn reject_incoming(&mut self, key: &Key) {
        let Some(info) = self.infos.get_mut(key) else { return };
        let incoming: Vec<u64> = info.incoming.drain(..).collect();
        for remote_id in incoming {
            if let Some(slot) = self.remote.get_mut(rid_index(remote_id)) {
                if let Some(pending) = slot.take().and_then(|r| r.pending) {
                    for (_, payload) in pending {
                        self.buffered =
                            self.buffered.saturating_sub(BUFFERED_OVERHEAD + payload.len());
                    }
                }
            }
            self.write_control(encode_id_message(TYPE_REJECT, remote_id));
        }
        self.gc(key);
    }

    fn on_reject(&mut self, local_id: u64) -> Result<(), MuxError> {
        let found = self.infos.iter_mut().find_map(|(key, info)| {
            let at = info.outgoing.iter().position(|&id| id == local_id)?;
            info.outgoing.remove(at);
            Some(key.clone())
        });
        let Some(key) = found else {
            return Err(MuxError::InvalidReject { local_id });
        };
        let slot = rid_index(local_id);
        self.free.push(slot);
        if let Some(Some(handle)) = self.slots.get(slot).copied() {
            self.close(handle, true);
            if let Some(MuxEvent::ChannelClosed { channel, .. }) = self.events.back().cloned() {
                self.events.pop_back();
                self.events.push_back(MuxEvent::ChannelRejected { channel });
            }
        }
        self.gc(&key);
        Ok(())
    }

    fn on_close(&mut self, remote_id: u64) {
        if remote_id == 0 {
            return;
        }
        if let Some(Some(Remote { session: Some(channel), .. })) =
            self.remote.get(rid_index(remote_id))
        {
            let channel = *channel;
            self.close(channel, true);
        }
    }

    fn close(&mut self, channel: ChannelId, remote: bool) {
        let Some(local) = self.channels.remove(&channel) else { return };
        let slot = rid_index(local.id);
        if let Some(info) = self.infos.get_mut(&local.key) {
            info.opened = info.opened.saturating_sub(1);
        }
        if local.remote_id > 0 {
            if let Some(r) = self.remote.get_mut(rid_index(local.remote_id)) {
                *r = None;
            }
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
            self.infos.remove(key);
        }
    }

    /// Queues a control message (`bytes` start at the type).
    fn write_control(&mut self, bytes: Vec<u8>) {
        if self.corked > 0 {
            self.push_batch(0, bytes);
        } else {
            let mut frame = Vec::with_capacity(bytes.len() + 1);
            frame.push(0);
            frame.extend_from_slice(&bytes);
            self.out.push_back(Bytes::from(frame));
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
            self.out.push_back(Bytes::from(encode_batch(&self.batch)));
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
