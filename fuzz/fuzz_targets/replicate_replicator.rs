//! Two `Replicator`s (a writer core of a few blocks and a reader of it, both real in-memory
//! `Hypercore`s) linked in memory, with a hostile remote in the middle: an arbitrary sequence of
//! operations delivers, drops or corrupts the honest messages, injects arbitrary messages (built
//! from fields, or arbitrary bytes through `Message::decode`), advances time, wants and unwants
//! blocks and ranges, appends, and removes and re-adds peers. Every action a replicator asks for
//! is carried out against its core (`create_proof`, `receive`), as the in-memory harness does.
//!
//! Invariants: no panic; draining a replicator's actions ends (bounded work per input); the
//! requests a replicator has in flight to one peer never exceed `max_window`; the reader never
//! grows past the writer nor stores a block that differs from the writer's.
#![no_main]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corestore_hypercore::{
    Data, DataBlock, DataUpgrade, Hypercore, Node, NodeRequest, Request, SeekRequest,
    UpgradeRequest,
};
use corestore_keys::{KeyPair, Role};
use corestore_replicate::protocol::{
    Action, BitfieldSlice, Extension, Message, NoData, PeerId, Range, Replicator, ReplicatorConfig,
    Sync, Want,
};
use corestore_storage::{MemoryStorage, Storage};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const HH: [u8; 64] = [7; 64];
/// Blocks the writer may reach (appends beyond are ignored).
const MAX_BLOCKS: u64 = 40;
/// Actions one drain may produce before it is called a livelock.
const MAX_ACTIONS_PER_DRAIN: usize = 100_000;
/// Honest messages queued between the two at most.
const MAX_QUEUED: usize = 100_000;
/// Known bug, reported (not fixed here): `RemoteBitfield::set_bits` walks every 32,768-block
/// page of a claimed range, so one `range` message with a huge length costs O(length / 32768)
/// work (a 12-byte message with length 2^53 never finishes). Set `CORESTORE_FUZZ_RANGE_CAP`
/// to a block count to clamp the length of every `range` delivered and fuzz past it; unset, nothing is
/// clamped and the fuzzer finds the bug again as slow units and timeouts.
static RANGE_CAP: LazyLock<Option<u64>> =
    LazyLock::new(|| std::env::var("CORESTORE_FUZZ_RANGE_CAP").ok().and_then(|v| v.parse().ok()));

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"));

fn config() -> ReplicatorConfig {
    ReplicatorConfig {
        request_timeout: Duration::from_secs(20),
        min_window: 2,
        max_window: 6,
        eager: false,
    }
}

/// A number: mostly small (to reach real states), sometimes anything (to reach the edges).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Num {
    Small(u8),
    Any(u64),
}

impl Num {
    fn get(self) -> u64 {
        match self {
            Self::Small(n) => u64::from(n),
            Self::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Writer,
    Reader,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Self::Writer => 0,
            Self::Reader => 1,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct ArbNode {
    index: Num,
    size: Num,
    hash: [u8; 4],
}

impl ArbNode {
    fn node(&self) -> Node {
        let mut hash = [0; 32];
        hash[..4].copy_from_slice(&self.hash);
        Node { index: self.index.get(), size: self.size.get(), hash }
    }
}

#[derive(Arbitrary, Debug)]
enum ArbMessage {
    Sync {
        fork: Num,
        length: Num,
        remote_length: Num,
        flags: u8,
    },
    Request {
        id: Num,
        fork: Num,
        block: Option<(Num, Num)>,
        hash: Option<(Num, Num)>,
        seek: Option<(Num, Num)>,
        upgrade: Option<(Num, Num)>,
        manifest: bool,
    },
    Cancel {
        request: Num,
    },
    Data {
        request: Num,
        fork: Num,
        block: Option<(Num, Vec<u8>, Vec<ArbNode>)>,
        upgrade: Option<(Num, Num, Vec<ArbNode>, Vec<ArbNode>, Option<Vec<u8>>)>,
    },
    NoData {
        request: Num,
        reason: Num,
    },
    Want {
        start: Num,
        length: Num,
        any: bool,
    },
    Unwant {
        start: Num,
        length: Num,
    },
    Bitfield {
        start: Num,
        words: Vec<u32>,
    },
    Range {
        drop: bool,
        start: Num,
        length: Num,
    },
    Extension {
        name: String,
        message: Vec<u8>,
    },
}

impl ArbMessage {
    fn message(&self) -> Message {
        let nodes = |v: &[ArbNode]| v.iter().map(ArbNode::node).collect::<Vec<_>>();
        let nr =
            |x: &Option<(Num, Num)>| x.map(|(i, n)| NodeRequest { index: i.get(), nodes: n.get() });
        match self {
            Self::Sync { fork, length, remote_length, flags } => Message::Sync(Sync {
                fork: fork.get(),
                length: length.get(),
                remote_length: remote_length.get(),
                can_upgrade: flags & 1 != 0,
                uploading: flags & 2 != 0,
                downloading: flags & 4 != 0,
                has_manifest: flags & 8 != 0,
                allow_push: flags & 16 != 0,
            }),
            Self::Request { id, fork, block, hash, seek, upgrade, manifest } => {
                Message::Request(Request {
                    id: id.get(),
                    fork: fork.get(),
                    block: nr(block),
                    hash: nr(hash),
                    seek: seek.map(|(b, p)| SeekRequest { bytes: b.get(), padding: p.get() }),
                    upgrade: upgrade
                        .map(|(s, l)| UpgradeRequest { start: s.get(), length: l.get() }),
                    manifest: *manifest,
                    ..Request::default()
                })
            }
            Self::Cancel { request } => Message::Cancel { request: request.get() },
            Self::Data { request, fork, block, upgrade } => Message::Data(Data {
                request: request.get(),
                fork: fork.get(),
                block: block.as_ref().map(|(i, v, n)| DataBlock {
                    index: i.get(),
                    value: v.clone(),
                    nodes: nodes(n),
                }),
                hash: None,
                seek: None,
                upgrade: upgrade.as_ref().map(|(s, l, n, a, sig)| DataUpgrade {
                    start: s.get(),
                    length: l.get(),
                    nodes: nodes(n),
                    additional_nodes: nodes(a),
                    signature: sig.clone(),
                }),
                manifest: None,
            }),
            Self::NoData { request, reason } => {
                Message::NoData(NoData { request: request.get(), reason: reason.get() })
            }
            Self::Want { start, length, any } => {
                Message::Want(Want { start: start.get(), length: length.get(), any: *any })
            }
            Self::Unwant { start, length } => {
                Message::Unwant(Want { start: start.get(), length: length.get(), any: false })
            }
            Self::Bitfield { start, words } => {
                Message::Bitfield(BitfieldSlice { start: start.get(), bitfield: words.clone() })
            }
            Self::Range { drop, start, length } => {
                Message::Range(Range { drop: *drop, start: start.get(), length: length.get() })
            }
            Self::Extension { name, message } => Message::Extension(Extension {
                name: name.clone(),
                message: Bytes::from(message.clone()),
            }),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Operation {
    /// Deliver the next honest message.
    Deliver,
    /// Deliver up to this many honest messages.
    DeliverMany(u8),
    /// Lose the next honest message.
    DropNext,
    /// Flip bits of one byte of the next honest message (a corrupting middle).
    CorruptNext {
        at: u16,
        xor: u8,
    },
    /// An arbitrary message to `to`, from its peer.
    Inject {
        to: Side,
        message: ArbMessage,
    },
    /// Arbitrary bytes as a message of `message_type` to `to`.
    InjectBytes {
        to: Side,
        message_type: u8,
        bytes: Vec<u8>,
    },
    /// Time passes; due timers fire.
    Timeout {
        advance_ms: u32,
    },
    WantBlock(u8),
    UnwantBlock(u8),
    WantRange {
        start: u8,
        end: Option<u8>,
    },
    UnwantRange(u8),
    WantUpgrade,
    SetDownloading {
        side: Side,
        downloading: bool,
    },
    /// The writer appends a few blocks.
    Append(u8),
    /// The channel closes on both sides.
    Disconnect,
    /// The channel opens again (new peers).
    Connect,
    /// A third party with a made-up capability tries to join `side`.
    Intruder {
        side: Side,
        capability: [u8; 32],
    },
}

struct NodeState {
    core: Hypercore,
    repl: Replicator,
    /// Request ids in flight to the peer, as the actions tell (JavaScript's `inflight`).
    inflight: HashSet<u64>,
    /// Fork proof and reorg requests in flight (outside the window).
    fork_inflight: HashSet<u64>,
}

impl NodeState {
    /// Request `id` is over (answered, refused or cancelled).
    fn forget(&mut self, id: u64) {
        self.inflight.remove(&id);
        self.fork_inflight.remove(&id);
    }
}

struct Harness {
    nodes: [NodeState; 2],
    /// The peer ids of the link: (the reader as the writer's peer, the writer as the reader's).
    link: Option<(PeerId, PeerId)>,
    /// Honest messages: (to, type, bytes).
    queue: VecDeque<(usize, u64, Bytes)>,
    now: Instant,
    wanted_blocks: Vec<u64>,
    ranges: Vec<corestore_replicate::protocol::RangeId>,
    max_window: usize,
}

fn block(i: u64) -> Vec<u8> {
    format!("block {i} {}", "y".repeat((i % 7) as usize)).into_bytes()
}

impl Harness {
    async fn new(blocks: u64) -> Self {
        let storage = Storage::open(Arc::new(MemoryStorage::new())).await.expect("storage");
        let mut writer =
            Hypercore::create(&storage, KeyPair::from_seed(&[9; 32]), None).await.expect("core");
        let data: Vec<Vec<u8>> = (0..blocks).map(block).collect();
        if !data.is_empty() {
            writer.append(&data).await.expect("append");
        }
        let storage = Storage::open(Arc::new(MemoryStorage::new())).await.expect("storage");
        let reader = Hypercore::open(&storage, *writer.key(), None).await.expect("reader");
        let max_window = config().max_window as usize;
        Self {
            nodes: [
                NodeState {
                    core: writer,
                    repl: Replicator::new(config()),
                    inflight: HashSet::new(),
                    fork_inflight: HashSet::new(),
                },
                NodeState {
                    core: reader,
                    repl: Replicator::new(config()),
                    inflight: HashSet::new(),
                    fork_inflight: HashSet::new(),
                },
            ],
            link: None,
            queue: VecDeque::new(),
            now: Instant::now(),
            wanted_blocks: Vec::new(),
            ranges: Vec::new(),
            max_window,
        }
    }

    fn peer_of(&self, side: usize) -> Option<PeerId> {
        self.link.map(|(w, r)| if side == 0 { w } else { r })
    }

    fn connect(&mut self) {
        if self.link.is_some() {
            return;
        }
        let key = *self.nodes[0].core.key();
        let hw = Replicator::handshake(Role::Initiator, &key, &HH);
        let hr = Replicator::handshake(Role::Responder, &key, &HH);
        let [w, r] = &mut self.nodes;
        let pw = w.repl.add_peer(&hr, Role::Initiator, &HH, &w.core).expect("valid capability");
        let pr = r.repl.add_peer(&hw, Role::Responder, &HH, &r.core).expect("valid capability");
        self.link = Some((pw, pr));
    }

    fn disconnect(&mut self) {
        if let Some((pw, pr)) = self.link.take() {
            let now = self.now;
            let [w, r] = &mut self.nodes;
            w.repl.remove_peer(pw, &w.core, now);
            r.repl.remove_peer(pr, &r.core, now);
            for n in [w, r] {
                n.inflight.clear();
                n.fork_inflight.clear();
            }
            self.queue.clear();
        }
    }

    fn send(&mut self, from: usize, message: &Message) {
        if self.link.is_some() {
            self.queue.push_back((1 - from, message.message_type(), Bytes::from(message.encode())));
            assert!(self.queue.len() <= MAX_QUEUED, "unbounded message queue");
        }
    }

    /// Carries out every action of node `i` (and of the work they lead to).
    async fn drain(&mut self, i: usize) {
        let mut actions = 0;
        let mut next = None;
        loop {
            let Some(action) = next.take().or_else(|| self.nodes[i].repl.poll_action()) else {
                break;
            };
            actions += 1;
            assert!(actions <= MAX_ACTIONS_PER_DRAIN, "a replicator keeps producing actions");
            let on_link = |peer: PeerId, h: &Self| h.peer_of(i) == Some(peer);
            match action {
                Action::Send { peer, message } => {
                    if let Message::Cancel { request } = &message {
                        self.nodes[i].forget(*request);
                    }
                    if on_link(peer, self) {
                        self.send(i, &message);
                    }
                }
                Action::Request { peer, mut request } => {
                    if on_link(peer, self) {
                        let n = &mut self.nodes[i];
                        // A fork proof or reorg step (a request for the remote's higher fork)
                        // goes out on top of the window, by design: one at a time, as a reorg
                        // is one at a time. Everything else stays within the window.
                        if request.fork > n.core.fork() {
                            n.fork_inflight.insert(request.id);
                        } else {
                            n.inflight.insert(request.id);
                        }
                        assert!(
                            n.inflight.len() <= self.max_window,
                            "{} requests in flight to one peer (max_window {})",
                            n.inflight.len(),
                            self.max_window
                        );
                        assert!(
                            n.fork_inflight.len() <= 1,
                            "{} fork requests in flight to one peer",
                            n.fork_inflight.len()
                        );
                        if let Some(b) = request.block.as_mut() {
                            if let Ok(nodes) = n.core.missing_nodes(2 * b.index).await {
                                b.nodes = nodes;
                            }
                        }
                        self.send(i, &Message::Request(request));
                    }
                }
                Action::Answer { peer, ticket, request } => {
                    let n = &mut self.nodes[i];
                    let result = n.core.create_proof(&request).await;
                    n.repl.handle_answer(peer, ticket, &request, result, &n.core);
                }
                Action::Verify { peer, data } => {
                    // Consecutive answers are verified and stored as one group, as the
                    // connection task does (`Hypercore::receive_many`).
                    let mut batch = vec![(peer, data)];
                    loop {
                        match self.nodes[i].repl.poll_action() {
                            Some(Action::Verify { peer, data }) => {
                                actions += 1;
                                batch.push((peer, data));
                            }
                            other => {
                                next = other;
                                break;
                            }
                        }
                    }
                    let now = self.now;
                    let n = &mut self.nodes[i];
                    let asked: Vec<(PeerId, u64)> =
                        batch.iter().map(|(p, d)| (*p, d.request)).collect();
                    let results =
                        n.core.receive_many(batch.into_iter().map(|(_, d)| d).collect()).await;
                    for ((peer, request), result) in asked.into_iter().zip(results) {
                        n.forget(request);
                        n.repl.handle_received(peer, request, result, &n.core, now);
                    }
                    if i == 1 {
                        self.check_reader().await;
                    }
                }
                Action::Close { peer, .. } | Action::EndConnection { peer, .. } => {
                    if on_link(peer, self) {
                        self.disconnect();
                    }
                }
                Action::Event(_) => {}
                _ => {}
            }
        }
    }

    async fn drain_all(&mut self) {
        self.drain(0).await;
        self.drain(1).await;
        self.drain(0).await;
        assert!(self.nodes.iter_mut().all(|n| n.repl.poll_action().is_none()));
    }

    /// Hands `message` (as bytes, decoded as the wire would) to node `to` from its peer.
    fn deliver(&mut self, to: usize, message_type: u64, bytes: &Bytes) {
        let Some(peer) = self.peer_of(to) else { return };
        let now = self.now;
        let n = &mut self.nodes[to];
        match Message::decode(message_type, bytes) {
            Ok(Some(mut message)) => {
                if let (Message::Range(r), Some(cap)) = (&mut message, *RANGE_CAP) {
                    r.length = r.length.min(cap);
                }
                if let Message::NoData(no) = &message {
                    n.forget(no.request);
                }
                n.repl.handle_message(peer, message, &n.core, now);
            }
            Ok(None) => {}
            Err(_) => n.repl.handle_bad_message(peer, message_type),
        }
    }

    async fn check_reader(&self) {
        let (w, r) = (&self.nodes[0].core, &self.nodes[1].core);
        assert!(r.length() <= w.length(), "reader length {} > writer {}", r.length(), w.length());
        for i in 0..r.length() {
            if r.has(i) {
                let got = r.get(i).await.expect("reader get");
                let want = w.get(i).await.expect("writer get");
                assert_eq!(got, want, "reader block {i} differs from the writer's");
            }
        }
    }

    async fn apply(&mut self, op: &Operation) {
        match op {
            Operation::Deliver => {
                if let Some((to, t, bytes)) = self.queue.pop_front() {
                    self.deliver(to, t, &bytes);
                }
            }
            Operation::DeliverMany(n) => {
                // One read of several messages: all are handled before the work they lead to.
                for _ in 0..*n {
                    let Some((to, t, bytes)) = self.queue.pop_front() else { break };
                    self.deliver(to, t, &bytes);
                }
                self.drain_all().await;
            }
            Operation::DropNext => {
                self.queue.pop_front();
            }
            Operation::CorruptNext { at, xor } => {
                if let Some((to, t, bytes)) = self.queue.pop_front() {
                    let mut bytes = bytes.to_vec();
                    if !bytes.is_empty() {
                        let at = usize::from(*at) % bytes.len();
                        bytes[at] ^= xor;
                    }
                    self.deliver(to, t, &Bytes::from(bytes));
                }
            }
            Operation::Inject { to, message } => {
                let message = message.message();
                self.deliver(to.index(), message.message_type(), &Bytes::from(message.encode()));
            }
            Operation::InjectBytes { to, message_type, bytes } => {
                self.deliver(
                    to.index(),
                    u64::from(*message_type % 12),
                    &Bytes::from(bytes.clone()),
                );
            }
            Operation::Timeout { advance_ms } => {
                self.now += Duration::from_millis(u64::from(*advance_ms));
                let now = self.now;
                for n in &mut self.nodes {
                    if n.repl.poll_timeout().is_some_and(|t| t <= now) {
                        n.repl.handle_timeout(&n.core, now);
                    }
                }
            }
            Operation::WantBlock(i) => {
                let now = self.now;
                let r = &mut self.nodes[1];
                r.repl.want_block(u64::from(*i), &r.core, now);
                self.wanted_blocks.push(u64::from(*i));
            }
            Operation::UnwantBlock(i) => {
                if let Some(pos) = self.wanted_blocks.iter().position(|b| *b == u64::from(*i)) {
                    self.wanted_blocks.swap_remove(pos);
                    self.nodes[1].repl.unwant_block(u64::from(*i));
                }
            }
            Operation::WantRange { start, end } => {
                let now = self.now;
                let r = &mut self.nodes[1];
                let id = r.repl.want_range(u64::from(*start), end.map(u64::from), &r.core, now);
                self.ranges.push(id);
            }
            Operation::UnwantRange(i) => {
                if !self.ranges.is_empty() {
                    let id = self.ranges.swap_remove(usize::from(*i) % self.ranges.len());
                    self.nodes[1].repl.unwant_range(id);
                }
            }
            Operation::WantUpgrade => {
                let now = self.now;
                let r = &mut self.nodes[1];
                r.repl.want_upgrade(&r.core, now);
            }
            Operation::SetDownloading { side, downloading } => {
                let n = &mut self.nodes[side.index()];
                n.repl.set_downloading(*downloading, &n.core);
            }
            Operation::Append(k) => {
                let w = &mut self.nodes[0];
                let length = w.core.length();
                let k = u64::from(*k % 4 + 1).min(MAX_BLOCKS.saturating_sub(length));
                if k > 0 {
                    let data: Vec<Vec<u8>> = (length..length + k).map(block).collect();
                    w.core.append(&data).await.expect("append");
                    w.repl.handle_append(&w.core);
                }
            }
            Operation::Disconnect => self.disconnect(),
            Operation::Connect => self.connect(),
            Operation::Intruder { side, capability } => {
                let n = &mut self.nodes[side.index()];
                let mut handshake = vec![1];
                handshake.extend_from_slice(capability);
                let key = *n.core.key();
                // The writer's intruder dials in (we respond); the reader's answers our dial.
                let (role, remote) = match side {
                    Side::Writer => (Role::Responder, Role::Initiator),
                    Side::Reader => (Role::Initiator, Role::Responder),
                };
                let real = Replicator::handshake(remote, &key, &HH);
                let result = n.repl.add_peer(&handshake, role, &HH, &n.core);
                if handshake != real {
                    assert!(result.is_err(), "a made-up capability was accepted");
                } else if let Ok(peer) = result {
                    let now = self.now;
                    n.repl.remove_peer(peer, &n.core, now);
                }
            }
        }
        self.drain_all().await;
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    blocks: u8,
    operations: Vec<Operation>,
}

fuzz_target!(|input: Input| {
    RUNTIME.block_on(async {
        let mut h = Harness::new(u64::from(input.blocks % 8 + 1)).await;
        h.connect();
        h.drain_all().await;
        for op in input.operations.iter().take(256) {
            h.apply(op).await;
        }
        h.check_reader().await;
    });
});
