//! The per-core replication state machine, sans-IO (hypercore 11 `lib/replicator.js`).
//!
//! One [`Replicator`] per core, with a peer for every connection that opened the core's
//! channel. Call order: [`Replicator::add_peer`] when a channel opens (it checks the
//! capability), [`Replicator::handle_message`] for every message, the `handle_*` completions
//! for the async work it asked for, [`Replicator::handle_timeout`] at
//! [`Replicator::poll_timeout`], and the local commands (`want_*`, [`Replicator::handle_append`],
//! [`Replicator::handle_clear`]);
//! after each call drain [`Replicator::poll_action`]. Every call takes a [`CoreView`] of the core
//! as it is now and the current time; nothing here does I/O or reads a clock.
//!
//! The replicator never stores anything itself: it asks for proofs ([`Action::Answer`]) and hands
//! received data to the core for verification ([`Action::Verify`]), so a peer's bytes reach
//! storage only through `corestore-hypercore`'s verifier.

mod clear;
mod download;
mod fork;
mod upload;

use download::can_upgrade_from;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use corestore_hypercore::{
    Applied, CreateProofError, Data, NodeRequest, ReceiveError, Request, UpgradeRequest,
};
use corestore_keys::{capability, CoreKey, Role};

use super::action::{Action, PeerError, ReplicatorEvent};
use super::message::{
    BitfieldSlice, Extension, Handshake, Message, NoData, Range, Sync, Want,
    REASON_INVALID_REQUEST, REASON_NOT_AVAILABLE,
};
use super::peer::{Peer, PeerId, WANT_BATCH};
use super::view::{has_manifest, CoreView, ReplicatorConfig};

/// Invalid requests a peer may send before its connection is ended (JavaScript's
/// `MAX_INVALID_REQUESTS`).
pub const MAX_INVALID_REQUESTS: u32 = 64;
/// Requests of one peer waiting for an answer; more means the peer floods.
pub const MAX_REMOTE_REQUESTS: usize = 2048;
/// Blocks looked at per range and peer in one scheduling pass (bounds the work per input).
const SCAN_LIMIT: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Block(u64),
    Upgrade,
    /// The full signed tree of a peer's higher fork (spec §5.6b).
    ForkProof,
    /// A bisection step of a reorg towards the common ancestor.
    ReorgHash,
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
    /// Every block of the range below this is stored or in flight.
    cursor: u64,
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
    /// The reorg in progress, with the peer that drives it.
    reorg: Option<Box<fork::ReorgState>>,
    actions: VecDeque<Action>,
}

impl Replicator {
    /// A replicator with no peers.
    pub fn new(config: ReplicatorConfig) -> Self {
        let mut ranges = BTreeMap::new();
        if config.eager {
            ranges.insert(RangeId(0), RangeWant { start: 0, end: None, cursor: 0 });
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
            reorg: None,
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
            && self.reorg.is_none()
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
        if self.reorg.as_ref().is_some_and(|r| r.peer == peer) {
            self.reorg = None;
        }
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
        self.maybe_reorg(id, core, now);
        self.schedule(core, now);
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
}
