//! The receiving half of the mux: frames are decoded incrementally, one bounded step at a time,
//! so a 16 MiB batch of millions of messages never turns into millions of queued items.

use bytes::Bytes;
use corestore_keys::compact::{DecodeError, Decoder};

use super::wire::{
    decode_frame, decode_id_message, decode_open, encode_id_message, Open, TYPE_BATCH, TYPE_CLOSE,
    TYPE_OPEN, TYPE_REJECT,
};
use super::{
    key_of, rid_index, ChannelId, Mux, MuxError, MuxEvent, Remote, BUFFERED_OVERHEAD,
    MAX_BATCH_DEPTH, MAX_PENDING_OPENS, MAX_PENDING_OPEN_BYTES, MAX_STEP_MESSAGES,
};

/// A batch being read: the rest of its payload and the channel its entries go to.
#[derive(Debug)]
pub(super) struct Cursor {
    buf: Bytes,
    pos: usize,
    channel: u64,
    /// True once this batch corked the mux (it has more than one entry), as protomux does so
    /// that the replies to a batch leave as a batch.
    corked: bool,
}

/// One step of a [`Cursor`].
enum Entry {
    /// A message (`uint(type) || payload`) for a channel.
    Message(u64, Bytes),
    /// A channel switch (`00 uint(channel)`).
    Switch,
    /// The batch is over.
    End,
}

impl Cursor {
    /// A cursor over a batch payload: `uint(first channel) { uint(len) bytes | 00 uint(ch) }*`.
    fn new(buf: Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(&buf);
        let channel = d.uint()?;
        let pos = buf.len() - d.remaining().len();
        Ok(Self { buf, pos, channel, corked: false })
    }

    /// Bytes of the frame this cursor keeps alive.
    pub(super) fn held(&self) -> usize {
        self.buf.len()
    }

    fn is_done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next entry, as protomux reads it: a length past the end is cut at the end.
    fn next(&mut self) -> Result<Entry, DecodeError> {
        let Some(rest) = self.buf.get(self.pos..).filter(|r| !r.is_empty()) else {
            return Ok(Entry::End);
        };
        let mut d = Decoder::new(rest);
        let len = d.uint()?;
        if len == 0 {
            self.channel = d.uint()?;
            self.pos += rest.len() - d.remaining().len();
            return Ok(Entry::Switch);
        }
        let start = self.pos + (rest.len() - d.remaining().len());
        let take = usize::try_from(len).unwrap_or(usize::MAX).min(d.remaining().len());
        self.pos = start + take;
        Ok(Entry::Message(self.channel, self.buf.slice(start..start + take)))
    }
}

impl Mux {
    /// Processes one received stream message (empty frames are ignored). The frame is queued
    /// and decoded as far as one step and the bounds allow; an error is terminal.
    pub fn handle_frame(&mut self, frame: &Bytes) -> Result<(), MuxError> {
        if !frame.is_empty() {
            self.frames.push_back(frame.clone());
        }
        self.resume()
    }

    /// Queues a frame without decoding any of it (the connection's step decodes).
    pub(crate) fn queue_frame(&mut self, frame: Bytes) {
        if !frame.is_empty() {
            self.frames.push_back(frame);
        }
    }

    /// Continues decoding parked input for one step (at most [`MAX_STEP_MESSAGES`] messages,
    /// less once a queue is full). Call it after draining events and frames while
    /// [`Mux::has_parked_input`]. An error is terminal.
    pub fn resume(&mut self) -> Result<(), MuxError> {
        self.resume_with_budget(MAX_STEP_MESSAGES).map(|_| ())
    }

    /// [`Mux::resume`] with a budget of `budget` messages; returns how many were decoded.
    pub(crate) fn resume_with_budget(&mut self, budget: usize) -> Result<usize, MuxError> {
        self.step_messages = 0;
        let result = self.process(budget);
        if !self.cursors.is_empty() && !self.batch.is_empty() {
            // Parked inside a batch: the replies so far go out now, not when it ends.
            self.flush_batch();
        }
        result.map(|()| self.step_messages)
    }

    fn process(&mut self, budget: usize) -> Result<(), MuxError> {
        while self.step_messages < budget && !self.is_full() {
            if let Some(cursor) = self.cursors.last_mut() {
                self.step_messages += 1;
                match cursor.next()? {
                    Entry::Message(channel, entry) => {
                        let cork = !cursor.corked && !cursor.is_done();
                        if cork {
                            cursor.corked = true;
                            self.cork();
                        }
                        let mut d = Decoder::new(&entry);
                        let message_type = d.uint()?;
                        let rest = entry.slice(entry.len() - d.remaining().len()..);
                        self.dispatch(channel, message_type, rest)?;
                    }
                    Entry::Switch => {}
                    Entry::End => {
                        if self.cursors.pop().is_some_and(|c| c.corked) {
                            self.uncork();
                        }
                    }
                }
            } else if let Some(frame) = self.frames.pop_front() {
                self.step_messages += 1;
                let frame = decode_frame(&frame)?;
                self.dispatch(frame.channel, frame.message_type, frame.payload)?;
            } else {
                break;
            }
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        remote_id: u64,
        message_type: u64,
        payload: Bytes,
    ) -> Result<(), MuxError> {
        if remote_id == 0 {
            return self.control(message_type, payload);
        }
        let Some(remote) = self.remote.get_mut(&remote_id) else {
            return Ok(()); // closed or unknown: protomux ignores it
        };
        if let Some(pending) = &mut remote.pending {
            // A copy: a slice would keep the whole (up to 16 MiB) frame alive.
            self.buffered += BUFFERED_OVERHEAD + payload.len();
            pending.push((message_type, Bytes::copy_from_slice(&payload)));
            return Ok(());
        }
        if let Some(channel) = remote.session {
            self.deliver(channel, message_type, payload);
        }
        Ok(())
    }

    pub(super) fn deliver(&mut self, channel: ChannelId, message_type: u64, payload: Bytes) {
        let Some(local) = self.channels.get(&channel) else { return };
        if local.message_types.is_some_and(|n| message_type >= n) {
            return; // unknown type: ignored
        }
        self.events.push_back(MuxEvent::Message { channel, message_type, payload });
    }

    fn control(&mut self, message_type: u64, payload: Bytes) -> Result<(), MuxError> {
        match message_type {
            TYPE_BATCH => {
                if self.cursors.len() >= MAX_BATCH_DEPTH {
                    return Err(MuxError::BatchTooDeep);
                }
                self.cursors.push(Cursor::new(payload)?);
                Ok(())
            }
            TYPE_OPEN => self.on_open(decode_open(&payload)?),
            TYPE_REJECT => self.on_reject(decode_id_message(&payload)?),
            TYPE_CLOSE => {
                self.on_close(decode_id_message(&payload)?);
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
        // The remote may reuse any free id up to the highest it used, or grow it by one.
        if remote_id > self.remote_high.saturating_add(1) || self.remote.contains_key(&remote_id) {
            return Err(MuxError::InvalidOpen { remote_id });
        }
        self.remote_high = self.remote_high.max(remote_id);
        let exact = key_of(&open.protocol, open.id.as_deref());
        let key = self.resolve(exact.clone());
        if let Some(local_id) = self.infos.get_mut(&key).and_then(|i| i.outgoing.pop_front()) {
            let slot = rid_index(local_id);
            let Some(Some(handle)) = self.slots.get(slot).copied() else {
                // We closed it before the remote answered: its local id is free now.
                self.free.push(slot);
                self.gc(&key);
                return Ok(());
            };
            let remote =
                Remote { handshake: open.handshake, pending: None, session: None, cost: 0 };
            self.remote.insert(remote_id, remote);
            if let Some(local) = self.channels.get_mut(&handle) {
                local.remote_id = remote_id;
            }
            self.fully_open(handle, remote_id);
            return Ok(());
        }
        // Channels are unique: one already open here cannot accept a second open.
        let open_here = self.infos.get(&key).is_some_and(|i| i.opened > 0);
        let wanted = self.notify.contains(&exact) || self.notify.contains(&(exact.0, None));
        if open_here || !wanted {
            self.write_control(encode_id_message(TYPE_REJECT, remote_id));
            return Ok(());
        }
        let cost = BUFFERED_OVERHEAD
            + open.protocol.len()
            + open.id.as_ref().map_or(0, Bytes::len)
            + open.handshake.len();
        if self.pending_opens >= MAX_PENDING_OPENS
            || self.pending_open_bytes + cost > MAX_PENDING_OPEN_BYTES
        {
            self.overflow += 1;
            if self.overflow > MAX_PENDING_OPENS {
                return Err(MuxError::OpenBacklog { pending: self.pending_opens });
            }
            self.write_control(encode_id_message(TYPE_REJECT, remote_id));
            return Ok(());
        }
        self.pending_opens += 1;
        self.pending_open_bytes += cost;
        self.remote.insert(
            remote_id,
            Remote {
                handshake: Bytes::copy_from_slice(&open.handshake),
                pending: Some(Vec::new()),
                session: None,
                cost,
            },
        );
        self.infos.entry(key).or_default().incoming.push_back(remote_id);
        let id = open.id.map(|id| Bytes::copy_from_slice(&id));
        self.events.push_back(MuxEvent::RemoteOpen { protocol: open.protocol, id });
        Ok(())
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
        if let Some(Remote { session: Some(channel), .. }) = self.remote.get(&remote_id) {
            let channel = *channel;
            self.close(channel, true);
        }
    }
}
