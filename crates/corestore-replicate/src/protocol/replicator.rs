//! The per-core replication state machine, sans-IO (hypercore 11 `lib/replicator.js`).
//!
//! One [`Replicator`] per core, with a peer for every connection that opened the core's
//! channel. Call order: [`Replicator::add_peer`] when a channel opens (it checks the
//! capability), [`Replicator::handle_message`] for every message, the `handle_*` completions
//! for the async work it asked for, [`Replicator::handle_timeout`] at
//! [`Replicator::poll_timeout`], and the local commands (`want_*`, [`Replicator::handle_append`]);
//! after each call drain [`Replicator::poll_action`]. Every call takes a [`CoreView`] of the core
//! as it is now and the current time; nothing here does I/O or reads a clock.
//!
//! The replicator never stores anything itself: it asks for proofs ([`Action::Answer`]) and hands
//! received data to the core for verification ([`Action::Verify`]), so a peer's bytes reach
//! storage only through `corestore-hypercore`'s verifier.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corestore_hypercore::{
    Applied, CreateProofError, Data, Hypercore, NodeRequest, ReceiveError, Request, UpgradeRequest,
};
use corestore_keys::{capability, CoreKey, Manifest, Role};

use super::message::{
    BitfieldSlice, Extension, Handshake, Message, NoData, Range, Sync, Want,
    REASON_INVALID_REQUEST, REASON_NOT_AVAILABLE,
};
use super::peer::{Peer, PeerId, WANT_BATCH};

/// Invalid requests a peer may send before its connection is ended (JavaScript's
/// `MAX_INVALID_REQUESTS`).
pub const MAX_INVALID_REQUESTS: u32 = 64;
/// Requests of one peer waiting for an answer; more means the peer floods.
pub const MAX_REMOTE_REQUESTS: usize = 2048;
/// Blocks looked at per range and peer in one scheduling pass (bounds the work per input).
const SCAN_LIMIT: u64 = 4096;

/// What a replicator needs to know of its core (implemented by [`Hypercore`]).
pub trait CoreView {
    /// The core key.
    fn key(&self) -> &CoreKey;
    /// The current fork.
    fn fork(&self) -> u64;
    /// The current length.
    fn length(&self) -> u64;
    /// Every block below this is stored locally.
    fn contiguous_length(&self) -> u64;
    /// True when block `index` is stored locally.
    fn has(&self, index: u64) -> bool;
    /// The manifest, when known.
    fn manifest(&self) -> Option<&Manifest>;
}

impl CoreView for Hypercore {
    fn key(&self) -> &CoreKey {
        Hypercore::key(self)
    }
    fn fork(&self) -> u64 {
        Hypercore::fork(self)
    }
    fn length(&self) -> u64 {
        Hypercore::length(self)
    }
    fn contiguous_length(&self) -> u64 {
        Hypercore::contiguous_length(self)
    }
    fn has(&self, index: u64) -> bool {
        Hypercore::has(self, index)
    }
    fn manifest(&self) -> Option<&Manifest> {
        Hypercore::manifest(self)
    }
}

fn has_manifest(core: &impl CoreView) -> bool {
    core.manifest().is_some_and(|m| !m.is_compat(core.key()))
}

/// Tuning of a replicator.
#[derive(Debug, Clone)]
pub struct ReplicatorConfig {
    /// A request unanswered for this long is cancelled and retried on another peer.
    pub request_timeout: Duration,
    /// Requests in flight per peer at first and at least.
    pub min_window: u32,
    /// Requests in flight per peer at most.
    pub max_window: u32,
    /// Download every block (eager), not only the ones asked for (sparse).
    pub eager: bool,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(20),
            min_window: 16,
            max_window: 512,
            eager: false,
        }
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Block(u64),
    Upgrade,
}

#[derive(Debug)]
struct Inflight {
    peer: PeerId,
    what: Wanted,
    request: Request,
    deadline: Instant,
    /// Size of the block in the answer being verified.
    block_bytes: u64,
}

/// A range the application downloads.
#[derive(Debug, Clone, Copy)]
struct RangeWant {
    start: u64,
    /// `None`: live, up to whatever length the core reaches.
    end: Option<u64>,
}

/// A download range handle of [`Replicator::want_range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeId(u64);

/// The per-core replication state machine. See the module docs for the call order.
#[derive(Debug)]
pub struct Replicator {
    config: ReplicatorConfig,
    peers: BTreeMap<PeerId, Peer>,
    next_peer: u64,
    inflight: HashMap<u64, Inflight>,
    next_request: u64,
    inflight_blocks: HashMap<u64, u64>,
    upgrade_inflight: Option<u64>,
    /// Blocks asked for by `get`, with how many callers wait for each.
    blocks: BTreeMap<u64, u32>,
    ranges: BTreeMap<RangeId, RangeWant>,
    next_range: u64,
    downloading: bool,
    extensions: Vec<String>,
    actions: VecDeque<Action>,
}

impl Replicator {
    /// A replicator with no peers.
    pub fn new(config: ReplicatorConfig) -> Self {
        let mut ranges = BTreeMap::new();
        if config.eager {
            ranges.insert(RangeId(0), RangeWant { start: 0, end: None });
        }
        Self {
            config,
            peers: BTreeMap::new(),
            next_peer: 0,
            inflight: HashMap::new(),
            next_request: 0,
            inflight_blocks: HashMap::new(),
            upgrade_inflight: None,
            blocks: BTreeMap::new(),
            ranges,
            next_range: 1,
            downloading: true,
            extensions: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// The next thing to do.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Replicator::handle_timeout`] should run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.inflight.values().map(|r| r.deadline);
        let stalls = self.peers.values().filter_map(|p| p.stalled_until);
        requests.chain(stalls).min()
    }

    /// The peers with an open channel.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }

    /// The length `peer` announced, once it has sent a `sync`.
    pub fn remote_length(&self, peer: PeerId) -> Option<u64> {
        self.peers.get(&peer).filter(|p| p.synced).map(|p| p.remote.length)
    }

    /// True when every peer has sent its `sync` and none can grow the core beyond `length`:
    /// an `update()` has nothing more to wait for.
    pub fn is_settled(&self, core: &impl CoreView) -> bool {
        self.upgrade_inflight.is_none()
            && self.peers.values().all(|p| p.synced && !can_upgrade_from(p, core))
    }

    /// Sets whether this core wants data (sent in `sync`; a channel where neither side wants
    /// data is closed as idle, as in JavaScript).
    pub fn set_downloading(&mut self, downloading: bool, core: &impl CoreView) {
        if self.downloading != downloading {
            self.downloading = downloading;
            let ids: Vec<PeerId> = self.peers.keys().copied().collect();
            for id in ids {
                self.send_sync(id, core);
            }
        }
    }

    /// Registers an extension by name (messages for unregistered names are dropped).
    pub fn register_extension(&mut self, name: &str) {
        if !self.extensions.iter().any(|n| n == name) {
            self.extensions.push(name.to_owned());
        }
    }

    /// Sends an extension message to `peer`, or to every peer.
    pub fn send_extension(&mut self, peer: Option<PeerId>, name: &str, message: &Bytes) {
        let targets: Vec<PeerId> = match peer {
            Some(p) => vec![p],
            None => self.peers.keys().copied().collect(),
        };
        for id in targets {
            let Some(p) = self.peers.get_mut(&id) else { continue };
            let wire_name =
                if p.last_extension_sent == name { String::new() } else { name.to_owned() };
            name.clone_into(&mut p.last_extension_sent);
            let message =
                Message::Extension(Extension { name: wire_name, message: message.clone() });
            self.actions.push_back(Action::Send { peer: id, message });
        }
    }

    /// A channel opened: checks the remote's capability for our `role` on a stream with
    /// `handshake_hash`, then greets the peer (`sync`, and `range` of our contiguous blocks).
    pub fn add_peer(
        &mut self,
        remote_handshake: &[u8],
        role: Role,
        handshake_hash: &[u8; 64],
        core: &impl CoreView,
    ) -> Result<PeerId, PeerError> {
        let handshake = Handshake::decode(remote_handshake).map_err(|_| PeerError::BadHandshake)?;
        let remote_role = match role {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        };
        let expected = capability(remote_role, core.key(), handshake_hash);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &handshake.capability[..])) {
            return Err(PeerError::InvalidCapability);
        }
        let id = PeerId(self.next_peer);
        self.next_peer += 1;
        self.peers.insert(id, Peer::new(self.config.min_window));
        self.send_sync(id, core);
        self.announce_contiguous(id, core);
        self.actions.push_back(Action::Event(ReplicatorEvent::PeerAdded(id)));
        Ok(id)
    }

    /// Our handshake for a channel of this core on a stream where we are `role`.
    pub fn handshake(role: Role, key: &CoreKey, handshake_hash: &[u8; 64]) -> Vec<u8> {
        Handshake { seeks: true, capability: capability(role, key, handshake_hash) }.encode()
    }

    /// The peer's channel closed; its requests go to other peers.
    pub fn remove_peer(&mut self, peer: PeerId, core: &impl CoreView, now: Instant) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        self.forget_peer_requests(peer);
        self.actions.push_back(Action::Event(ReplicatorEvent::PeerRemoved(peer)));
        self.schedule(core, now);
    }

    /// Drops a misbehaving peer at once: its requests are forgotten (they go to other peers at
    /// the next scheduling pass) and its channel, or whole connection, is closed.
    fn drop_peer(&mut self, peer: PeerId, error: PeerError, whole_connection: bool) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        self.forget_peer_requests(peer);
        if whole_connection {
            self.actions.push_back(Action::EndConnection { peer, error });
        } else {
            self.actions.push_back(Action::Close { peer, error: Some(error) });
        }
        self.actions.push_back(Action::Event(ReplicatorEvent::PeerRemoved(peer)));
    }

    fn forget_peer_requests(&mut self, peer: PeerId) {
        let gone: Vec<u64> =
            self.inflight.iter().filter(|(_, r)| r.peer == peer).map(|(id, _)| *id).collect();
        for id in gone {
            self.forget_request(id);
        }
    }

    /// A message from `peer`. A message that does not decode should be reported with
    /// [`Replicator::handle_bad_message`] instead.
    pub fn handle_message(
        &mut self,
        peer: PeerId,
        message: Message,
        core: &impl CoreView,
        now: Instant,
    ) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        match message {
            Message::Sync(sync) => self.on_sync(peer, sync, core, now),
            Message::Request(request) => self.on_request(peer, request),
            Message::Cancel { request } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.remote_requests.remove(&request);
                }
            }
            Message::Data(data) => self.on_data(peer, data),
            Message::NoData(n) => self.on_no_data(peer, n, core, now),
            Message::Want(w) => self.on_want(peer, w, core),
            Message::Unwant(w) => {
                if let Some(wants) = self.peers.get_mut(&peer).and_then(|p| p.remote_wants.as_mut())
                {
                    wants.remove(&(w.start / WANT_BATCH));
                }
            }
            Message::Bitfield(b) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.has.insert_words(b.start - b.start % 32, &b.bitfield);
                }
                self.schedule(core, now);
            }
            Message::Range(r) => self.on_range(peer, r, core, now),
            Message::Extension(x) => self.on_extension(peer, x),
        }
    }

    /// `peer` sent a message of `message_type` that does not decode: it is dropped.
    pub fn handle_bad_message(&mut self, peer: PeerId, message_type: u64) {
        if self.peers.contains_key(&peer) {
            self.drop_peer(peer, PeerError::BadMessage { message_type }, false);
        }
    }

    fn on_sync(&mut self, id: PeerId, sync: Sync, core: &impl CoreView, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let length_changed = sync.length != peer.remote.length || !peer.synced;
        peer.synced = true;
        peer.remote = sync;
        peer.length_acked = if sync.fork == core.fork() { sync.remote_length } else { 0 };
        if length_changed {
            peer.upgrade_failed_at = None;
        }
        if !sync.downloading && !self.downloading {
            self.actions.push_back(Action::Close { peer: id, error: None });
            return;
        }
        if sync.fork == core.fork() && core.length() > sync.length && length_changed {
            self.send_sync(id, core);
        }
        self.schedule(core, now);
    }

    fn on_request(&mut self, id: PeerId, request: Request) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if peer.remote_requests.len() >= MAX_REMOTE_REQUESTS
            && !peer.remote_requests.contains_key(&request.id)
        {
            self.drop_peer(id, PeerError::TooManyRequests, true);
            return;
        }
        peer.next_ticket += 1;
        let ticket = peer.next_ticket;
        peer.remote_requests.insert(request.id, ticket);
        self.actions.push_back(Action::Answer { peer: id, ticket, request });
    }

    /// The proof for an [`Action::Answer`] (or why there is none).
    pub fn handle_answer(
        &mut self,
        id: PeerId,
        ticket: u64,
        request: &Request,
        result: Result<Data, CreateProofError>,
        core: &impl CoreView,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if peer.remote_requests.get(&request.id) != Some(&ticket) {
            return; // cancelled, or replaced by a newer request with the same id
        }
        peer.remote_requests.remove(&request.id);
        let message = match result {
            Ok(data) => {
                if let Some(b) = &data.block {
                    self.actions.push_back(Action::Event(ReplicatorEvent::Uploaded {
                        peer: id,
                        index: b.index,
                        bytes: b.value.len() as u64,
                    }));
                }
                Message::Data(data)
            }
            Err(CreateProofError::Proof(_)) => {
                peer.invalid_requests += 1;
                if peer.invalid_requests >= MAX_INVALID_REQUESTS {
                    self.drop_peer(id, PeerError::TooManyInvalidRequests, true);
                    return;
                }
                Message::NoData(NoData { request: request.id, reason: REASON_INVALID_REQUEST })
            }
            Err(_) => match core.manifest().filter(|_| request.manifest && has_manifest(core)) {
                Some(manifest) => Message::Data(Data {
                    request: request.id,
                    fork: core.fork(),
                    block: None,
                    hash: None,
                    seek: None,
                    upgrade: None,
                    manifest: Some(manifest.clone()),
                }),
                None => {
                    Message::NoData(NoData { request: request.id, reason: REASON_NOT_AVAILABLE })
                }
            },
        };
        self.actions.push_back(Action::Send { peer: id, message });
    }

    fn on_data(&mut self, id: PeerId, data: Data) {
        let Some(inflight) = self.inflight.get_mut(&data.request) else { return };
        if inflight.peer != id || !matches(&inflight.request, &data) {
            return; // not an answer to a request of ours (JavaScript's `_matchingRequest`)
        }
        inflight.block_bytes = data.block.as_ref().map_or(0, |b| b.value.len() as u64);
        self.actions.push_back(Action::Verify { peer: id, data });
    }

    /// The outcome of an [`Action::Verify`] for the answer to `request`.
    pub fn handle_received(
        &mut self,
        id: PeerId,
        request: u64,
        result: Result<Applied, ReceiveError>,
        core: &impl CoreView,
        now: Instant,
    ) {
        let Some(inflight) = self.inflight.get(&request) else { return };
        if inflight.peer != id {
            return;
        }
        let bytes = inflight.block_bytes;
        self.forget_request(request);
        match result {
            Ok(applied) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.window = (p.window + 1).min(self.config.max_window);
                }
                if let Some(index) = applied.block {
                    self.actions.push_back(Action::Event(ReplicatorEvent::Downloaded {
                        peer: id,
                        index,
                        bytes,
                    }));
                    self.announce_block(index, core);
                }
                if applied.upgraded {
                    self.actions.push_back(Action::Event(ReplicatorEvent::Upgraded {
                        length: applied.length,
                    }));
                    let ids: Vec<PeerId> = self.peers.keys().copied().collect();
                    for p in ids {
                        self.send_sync(p, core);
                    }
                }
            }
            Err(ReceiveError::Invalid(_)) => {
                self.drop_peer(id, PeerError::InvalidData { request }, false);
            }
            Err(e) => {
                // Stale (the core moved on: ask again) or a local storage failure.
                tracing::debug!(%id, request, error = %e, "received data not applied");
            }
        }
        self.schedule(core, now);
    }

    fn on_no_data(&mut self, id: PeerId, n: NoData, core: &impl CoreView, now: Instant) {
        let Some(inflight) = self.inflight.get(&n.request) else { return };
        if inflight.peer != id {
            return;
        }
        let what = inflight.what;
        self.forget_request(n.request);
        if let Some(p) = self.peers.get_mut(&id) {
            match what {
                Wanted::Block(index) => p.has.set_range(index, index + 1, false),
                Wanted::Upgrade => p.upgrade_failed_at = Some(p.remote.length),
            }
        }
        self.schedule(core, now);
    }

    fn on_want(&mut self, id: PeerId, want: Want, core: &impl CoreView) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if !peer.add_remote_want(want.start / WANT_BATCH) {
            return;
        }
        let length = core.length();
        let contig = core.contiguous_length().min(length);
        let end = want.start.saturating_add(want.length.min(WANT_BATCH));
        if end < contig || length == contig || (want.any && want.start < contig) {
            let message = Message::Range(Range { drop: false, start: 0, length: contig });
            self.actions.push_back(Action::Send { peer: id, message });
            return;
        }
        let end = end.min(length);
        let start = want.start - want.start % 32;
        if start >= end {
            return;
        }
        let words = (end - start).div_ceil(32);
        let bitfield: Vec<u32> = (0..words)
            .map(|w| {
                (0..32u64).fold(0u32, |acc, b| {
                    let i = start + 32 * w + b;
                    if i < end && core.has(i) {
                        acc | (1 << b)
                    } else {
                        acc
                    }
                })
            })
            .collect();
        let message = Message::Bitfield(BitfieldSlice { start, bitfield });
        self.actions.push_back(Action::Send { peer: id, message });
    }

    fn on_range(&mut self, id: PeerId, r: Range, core: &impl CoreView, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let end = r.start.saturating_add(r.length);
        peer.has.set_range(r.start, end, !r.drop);
        if !r.drop {
            self.schedule(core, now);
        }
    }

    fn on_extension(&mut self, id: PeerId, x: Extension) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let name = if x.name.is_empty() { peer.last_extension_received.clone() } else { x.name };
        if name.len() > 256 {
            return;
        }
        peer.last_extension_received.clone_from(&name);
        if self.extensions.contains(&name) {
            self.actions.push_back(Action::Event(ReplicatorEvent::Extension {
                peer: id,
                name,
                message: x.message,
            }));
        }
    }

    /// Fires due timers: requests past their deadline are cancelled, the peer's window halves
    /// and it gets no new request for one timeout; the work goes to other peers.
    pub fn handle_timeout(&mut self, core: &impl CoreView, now: Instant) {
        let expired: Vec<(u64, PeerId)> = self
            .inflight
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, r)| (*id, r.peer))
            .collect();
        for (request, peer) in expired {
            self.forget_request(request);
            self.actions.push_back(Action::Send { peer, message: Message::Cancel { request } });
            if let Some(p) = self.peers.get_mut(&peer) {
                p.window = (p.window / 2).max(self.config.min_window);
                p.stalled_until = Some(now + self.config.request_timeout);
            }
        }
        for p in self.peers.values_mut() {
            if p.stalled_until.is_some_and(|t| t <= now) {
                p.stalled_until = None;
            }
        }
        self.schedule(core, now);
    }

    /// Asks for block `index` (one more caller waits for it).
    pub fn want_block(&mut self, index: u64, core: &impl CoreView, now: Instant) {
        *self.blocks.entry(index).or_insert(0) += 1;
        self.schedule(core, now);
    }

    /// One caller of [`Replicator::want_block`] gave up; the last one cancels the request.
    pub fn unwant_block(&mut self, index: u64) {
        let Some(count) = self.blocks.get_mut(&index) else { return };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.blocks.remove(&index);
        let in_range =
            self.ranges.values().any(|r| r.start <= index && r.end.is_none_or(|e| index < e));
        if in_range {
            return;
        }
        if let Some(request) = self.inflight_blocks.get(&index).copied() {
            let peer = self.inflight.get(&request).map(|r| r.peer);
            self.forget_request(request);
            if let Some(peer) = peer {
                self.actions.push_back(Action::Send { peer, message: Message::Cancel { request } });
            }
        }
    }

    /// Downloads blocks `[start, end)` (`end = None`: every block, live).
    pub fn want_range(
        &mut self,
        start: u64,
        end: Option<u64>,
        core: &impl CoreView,
        now: Instant,
    ) -> RangeId {
        let id = RangeId(self.next_range);
        self.next_range += 1;
        self.ranges.insert(id, RangeWant { start, end });
        self.schedule(core, now);
        id
    }

    /// Stops a download range.
    pub fn unwant_range(&mut self, id: RangeId) {
        self.ranges.remove(&id);
    }

    /// Asks peers for an upgrade now (the `update()` of a session).
    pub fn want_upgrade(&mut self, core: &impl CoreView, now: Instant) {
        self.schedule(core, now);
    }

    /// The core grew locally (an append): tells every peer.
    pub fn handle_append(&mut self, core: &impl CoreView) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.send_sync(id, core);
            self.announce_contiguous(id, core);
        }
    }

    fn send_sync(&mut self, id: PeerId, core: &impl CoreView) {
        let Some(peer) = self.peers.get(&id) else { return };
        let same_fork = peer.remote.fork == core.fork();
        let remote_length = if same_fork && peer.synced { peer.remote.length } else { 0 };
        let message = Message::Sync(Sync {
            fork: core.fork(),
            length: core.length(),
            remote_length,
            can_upgrade: same_fork && (remote_length == 0 || remote_length < core.length()),
            uploading: true,
            downloading: self.downloading,
            has_manifest: has_manifest(core),
            allow_push: false,
        });
        self.actions.push_back(Action::Send { peer: id, message });
    }

    fn announce_contiguous(&mut self, id: PeerId, core: &impl CoreView) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let contig = core.contiguous_length().min(core.length());
        if contig > peer.announced_contiguous && contig > peer.has.contiguous() {
            peer.announced_contiguous = contig;
            let message = Message::Range(Range { drop: false, start: 0, length: contig });
            self.actions.push_back(Action::Send { peer: id, message });
        }
    }

    /// A block arrived: peers that asked about its batch, or that track our last blocks, hear
    /// of it (JavaScript's `broadcastRange`).
    fn announce_block(&mut self, index: u64, core: &impl CoreView) {
        let length = core.length();
        let fully = core.contiguous_length() >= length;
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            if fully {
                self.announce_contiguous(id, core);
                continue;
            }
            let Some(peer) = self.peers.get(&id) else { continue };
            if peer.has_block(index) || (index + 256 < length && !peer.remote_wants(index)) {
                continue;
            }
            let message = Message::Range(Range { drop: false, start: index, length: 1 });
            self.actions.push_back(Action::Send { peer: id, message });
        }
    }

    fn forget_request(&mut self, id: u64) {
        let Some(r) = self.inflight.remove(&id) else { return };
        match r.what {
            Wanted::Block(index) => {
                if self.inflight_blocks.get(&index) == Some(&id) {
                    self.inflight_blocks.remove(&index);
                }
            }
            Wanted::Upgrade => {
                if self.upgrade_inflight == Some(id) {
                    self.upgrade_inflight = None;
                }
            }
        }
        if let Some(p) = self.peers.get_mut(&r.peer) {
            p.inflight = p.inflight.saturating_sub(1);
        }
    }

    fn send_request(&mut self, peer: PeerId, what: Wanted, mut request: Request, now: Instant) {
        self.next_request += 1;
        request.id = self.next_request;
        let id = request.id;
        match what {
            Wanted::Block(index) => {
                self.inflight_blocks.insert(index, id);
            }
            Wanted::Upgrade => self.upgrade_inflight = Some(id),
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.inflight += 1;
        }
        let deadline = now + self.config.request_timeout;
        let inflight = Inflight { peer, what, request: request.clone(), deadline, block_bytes: 0 };
        self.inflight.insert(id, inflight);
        self.actions.push_back(Action::Request { peer, request });
    }

    /// Sends what can be sent: an upgrade first, then wanted blocks, then range blocks, spread
    /// over the peers that have them, within each peer's window.
    fn schedule(&mut self, core: &impl CoreView, now: Instant) {
        self.schedule_upgrade(core, now);
        let mut order: Vec<PeerId> = self.peers.keys().copied().collect();
        loop {
            order.sort_by_key(|id| self.peers.get(id).map_or(u32::MAX, |p| p.inflight));
            let mut progressed = false;
            for &id in &order {
                if self.peers.get(&id).is_some_and(|p| p.has_room(now)) {
                    if let Some((index, priority)) = self.next_block(id, core) {
                        let request = Request {
                            fork: core.fork(),
                            block: Some(NodeRequest { index, nodes: 0 }),
                            priority,
                            ..Request::default()
                        };
                        self.send_request(id, Wanted::Block(index), request, now);
                        progressed = true;
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn schedule_upgrade(&mut self, core: &impl CoreView, now: Instant) {
        if self.upgrade_inflight.is_some() {
            return;
        }
        let length = core.length();
        let fork = core.fork();
        let best = self
            .peers
            .iter()
            .filter(|(_, p)| p.has_room(now) && can_upgrade_from(p, core))
            .max_by_key(|(_, p)| p.remote.length)
            .map(|(id, p)| (*id, p.remote.length, p.remote.has_manifest));
        if let Some((id, remote_length, remote_has_manifest)) = best {
            let request = Request {
                fork,
                upgrade: Some(UpgradeRequest { start: length, length: remote_length - length }),
                manifest: core.manifest().is_none() && remote_has_manifest,
                ..Request::default()
            };
            self.send_request(id, Wanted::Upgrade, request, now);
        }
    }

    /// The next block to ask `id` for, with its priority; sends `want`s for blocks the peer has
    /// not told us about.
    fn next_block(&mut self, id: PeerId, core: &impl CoreView) -> Option<(u64, u64)> {
        let length = core.length();
        let fork = core.fork();
        let peer = self.peers.get(&id)?;
        if peer.remote.fork != fork {
            return None;
        }
        let mut want = None;
        let mut found = None;
        for &index in self.blocks.keys() {
            if index >= length || core.has(index) || self.inflight_blocks.contains_key(&index) {
                continue;
            }
            if peer.has_block(index) {
                found = Some((index, 1));
                break;
            }
            if want.is_none() {
                want = Some(index);
            }
        }
        if found.is_none() {
            'ranges: for r in self.ranges.values() {
                let end = r.end.unwrap_or(length).min(length);
                let mut index = r.start.max(core.contiguous_length());
                let mut scanned = 0;
                while index < end && scanned < SCAN_LIMIT {
                    if !core.has(index) && !self.inflight_blocks.contains_key(&index) {
                        if peer.has_block(index) {
                            found = Some((index, 0));
                            break 'ranges;
                        }
                        if want.is_none() {
                            want = Some(index);
                        }
                    }
                    index += 1;
                    scanned += 1;
                }
            }
        }
        if found.is_none() {
            if let Some(index) = want {
                self.maybe_want(id, index);
            }
        }
        found
    }

    fn maybe_want(&mut self, id: PeerId, index: u64) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let batch = index / WANT_BATCH;
        if index < peer.has.contiguous() || !peer.wants_sent.insert(batch) {
            return;
        }
        let message =
            Message::Want(Want { start: batch * WANT_BATCH, length: WANT_BATCH, any: false });
        self.actions.push_back(Action::Send { peer: id, message });
    }
}

/// True when `peer` can grow the core: same fork, longer, it acknowledged our length (as
/// JavaScript's `_shouldUpgrade`), it did not fail to prove this length before, and the
/// signature can be checked (we have the manifest or it does).
fn can_upgrade_from(peer: &Peer, core: &impl CoreView) -> bool {
    peer.remote.uploading
        && peer.remote.fork == core.fork()
        && peer.remote.length > core.length()
        && peer.length_acked == core.length()
        && peer.upgrade_failed_at != Some(peer.remote.length)
        && (core.manifest().is_some() || peer.remote.has_manifest)
}

/// True when `data` answers `request` (JavaScript's `_matchingRequest`).
fn matches(request: &Request, data: &Data) -> bool {
    if data.block.as_ref().is_some_and(|b| request.block.is_none_or(|r| r.index != b.index)) {
        return false;
    }
    if data.hash.as_ref().is_some_and(|h| request.hash.is_none_or(|r| r.index != h.index)) {
        return false;
    }
    if data.seek.as_ref().is_some_and(|s| request.seek.is_none_or(|r| r.bytes != s.bytes)) {
        return false;
    }
    if data.upgrade.is_some() && request.upgrade.is_none() {
        return false;
    }
    request.fork == data.fork
}
