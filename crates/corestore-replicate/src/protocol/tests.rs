//! Replicators paired in memory with their cores and a virtual clock: no sockets, no mux, no
//! sleeps. Every message crosses as bytes (encoded and decoded again).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corestore_hypercore::{Hypercore, Request};
use corestore_keys::{KeyPair, Role};
use corestore_storage::{MemoryStorage, Storage};

use super::*;

const HH: [u8; 64] = [7; 64];

/// Rewrites a `data` message on its way out.
pub(super) type Tamper = fn(&mut corestore_hypercore::Data);

pub(super) struct Node {
    pub(super) core: Hypercore,
    pub(super) repl: Replicator,
    pub(super) events: Vec<ReplicatorEvent>,
    pub(super) errors: Vec<PeerError>,
}

/// A network of nodes; `links[(node, peer)] = (node, peer)` on the other side.
pub(super) struct Net {
    pub(super) nodes: Vec<Node>,
    links: HashMap<(usize, PeerId), (usize, PeerId)>,
    queue: VecDeque<(usize, PeerId, u64, Bytes)>,
    pub(super) now: Instant,
    /// Messages from this node are dropped (a peer that never answers).
    pub(super) mute: Option<usize>,
    /// Every `data` this node sends passes through the function (a hostile peer).
    pub(super) tamper: Option<(usize, Tamper)>,
    pub(super) sent: usize,
    /// Every request sent, by sender.
    pub(super) requests: Vec<(usize, Request)>,
}

pub(super) async fn writer(blocks: usize) -> Hypercore {
    let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
    let mut core = Hypercore::create(&storage, KeyPair::generate(), None).await.unwrap();
    let data: Vec<Vec<u8>> = (0..blocks).map(block).collect();
    if !data.is_empty() {
        core.append(&data).await.unwrap();
    }
    core
}

pub(super) fn block(i: usize) -> Vec<u8> {
    format!("block {i} {}", "x".repeat(i % 50)).into_bytes()
}

pub(super) async fn reader(of: &Hypercore) -> Hypercore {
    let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
    Hypercore::open(&storage, *of.key(), None).await.unwrap()
}

impl Net {
    pub(super) fn new(cores: Vec<(Hypercore, ReplicatorConfig)>) -> Self {
        let nodes = cores
            .into_iter()
            .map(|(core, config)| Node {
                core,
                repl: Replicator::new(config),
                events: vec![],
                errors: vec![],
            })
            .collect();
        Self {
            nodes,
            links: HashMap::new(),
            queue: VecDeque::new(),
            now: Instant::now(),
            mute: None,
            tamper: None,
            sent: 0,
            requests: vec![],
        }
    }

    /// Opens the channel between nodes `a` (initiator) and `b`.
    pub(super) fn connect(&mut self, a: usize, b: usize) -> (PeerId, PeerId) {
        let ha = Replicator::handshake(Role::Initiator, self.nodes[a].core.key(), &HH);
        let hb = Replicator::handshake(Role::Responder, self.nodes[b].core.key(), &HH);
        let node = &mut self.nodes[a];
        let pa = node.repl.add_peer(&hb, Role::Initiator, &HH, &node.core).unwrap();
        let node = &mut self.nodes[b];
        let pb = node.repl.add_peer(&ha, Role::Responder, &HH, &node.core).unwrap();
        self.links.insert((a, pa), (b, pb));
        self.links.insert((b, pb), (a, pa));
        (pa, pb)
    }

    fn disconnect(&mut self, node: usize, peer: PeerId) {
        if let Some((other, other_peer)) = self.links.remove(&(node, peer)) {
            self.links.remove(&(other, other_peer));
            let n = &mut self.nodes[other];
            n.repl.remove_peer(other_peer, &n.core, self.now);
            let n = &mut self.nodes[node];
            n.repl.remove_peer(peer, &n.core, self.now);
        }
    }

    /// Drops every link of `node` (a disconnect mid-transfer).
    pub(super) fn disconnect_all(&mut self, node: usize) {
        let peers: Vec<PeerId> =
            self.links.keys().filter(|(n, _)| *n == node).map(|(_, p)| *p).collect();
        for p in peers {
            self.disconnect(node, p);
        }
        self.queue.retain(|(n, ..)| *n != node);
    }

    fn send(&mut self, from: usize, peer: PeerId, message: &Message) {
        if self.mute == Some(from) {
            return;
        }
        if let (Some((node, tamper)), Message::Data(data)) = (self.tamper, message) {
            if node == from {
                let mut data = data.clone();
                tamper(&mut data);
                return self.send_raw(from, peer, &Message::Data(data));
            }
        }
        self.send_raw(from, peer, message);
    }

    fn send_raw(&mut self, from: usize, peer: PeerId, message: &Message) {
        if let Message::Request(r) = message {
            self.requests.push((from, r.clone()));
        }
        if let Some(&(to, to_peer)) = self.links.get(&(from, peer)) {
            self.sent += 1;
            self.queue.push_back((
                to,
                to_peer,
                message.message_type(),
                Bytes::from(message.encode()),
            ));
        }
    }

    /// Injects raw message bytes as if `from`'s peer `peer` had sent them.
    pub(super) fn inject(&mut self, to: usize, to_peer: PeerId, message: &Message) {
        self.queue.push_back((to, to_peer, message.message_type(), Bytes::from(message.encode())));
    }

    async fn pump(&mut self, i: usize) -> bool {
        let mut did = false;
        while let Some(action) = self.nodes[i].repl.poll_action() {
            did = true;
            match action {
                Action::Send { peer, message } => self.send(i, peer, &message),
                Action::Request { peer, mut request } => {
                    let core = &self.nodes[i].core;
                    if let Some(b) = request.block.as_mut() {
                        b.nodes = core.missing_nodes(2 * b.index).await.unwrap();
                    }
                    self.send(i, peer, &Message::Request(request));
                }
                Action::Answer { peer, ticket, request } => {
                    let n = &mut self.nodes[i];
                    let result = n.core.create_proof(&request).await;
                    n.repl.handle_answer(peer, ticket, &request, result, &n.core);
                }
                Action::Verify { peer, data } => {
                    let n = &mut self.nodes[i];
                    let request = data.request;
                    let result = n.core.receive(data).await;
                    n.repl.handle_received(peer, request, result, &n.core, self.now);
                }
                Action::VerifyForkProof { peer, request, data } => {
                    let n = &mut self.nodes[i];
                    let result = n.core.verify_fork_proof(data).await;
                    n.repl.handle_reorg(peer, request, result, &n.core, self.now);
                }
                Action::ReorgAnswer { peer, request, data, mut reorg } => {
                    let n = &mut self.nodes[i];
                    let result = reorg.handle(&n.core, data).await.map(|()| *reorg);
                    n.repl.handle_reorg(peer, request, result, &n.core, self.now);
                }
                Action::ApplyReorg { reorg, .. } => {
                    let n = &mut self.nodes[i];
                    let result = n.core.apply_reorg(*reorg).await;
                    n.repl.handle_reorg_applied(result, &n.core, self.now);
                }
                Action::CheckConflict { peer, data } => {
                    let n = &mut self.nodes[i];
                    let result = n.core.check_conflict(&data).await;
                    n.repl.handle_conflict(peer, result);
                }
                Action::Close { peer, error } => {
                    self.nodes[i].errors.extend(error);
                    self.disconnect(i, peer);
                }
                Action::EndConnection { peer, error } => {
                    self.nodes[i].errors.push(error);
                    self.disconnect(i, peer);
                }
                Action::Event(e) => self.nodes[i].events.push(e),
            }
        }
        did
    }

    /// Runs every node's actions, then delivers one message; false when nothing moved.
    pub(super) async fn step(&mut self) -> bool {
        let mut did = false;
        for i in 0..self.nodes.len() {
            did |= self.pump(i).await;
        }
        if let Some((to, peer, t, bytes)) = self.queue.pop_front() {
            did = true;
            let n = &mut self.nodes[to];
            match Message::decode(t, &bytes) {
                Ok(Some(m)) => n.repl.handle_message(peer, m, &n.core, self.now),
                Ok(None) => {}
                Err(_) => n.repl.handle_bad_message(peer, t),
            }
        }
        did
    }

    /// Runs until nothing moves (a livelock fails the test).
    pub(super) async fn drive(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step().await {
                return;
            }
        }
        panic!("livelock: the network never went idle");
    }

    /// Jumps the clock to the next timer of any node and fires it.
    pub(super) async fn advance(&mut self, by: Duration) {
        self.now += by;
        for n in &mut self.nodes {
            n.repl.handle_timeout(&n.core, self.now);
        }
        self.drive().await;
    }
}

pub(super) fn eager() -> ReplicatorConfig {
    ReplicatorConfig { eager: true, ..ReplicatorConfig::default() }
}

pub(super) async fn assert_same_blocks(a: &Hypercore, b: &Hypercore) {
    assert_eq!(a.length(), b.length());
    for i in 0..a.length() {
        assert_eq!(a.get(i).await.unwrap(), b.get(i).await.unwrap(), "block {i}");
    }
}

#[tokio::test]
async fn eager_reader_downloads_everything_and_verifies_it() {
    let w = writer(300).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r, eager())]);
    net.connect(0, 1);
    net.drive().await;
    assert_eq!(net.nodes[1].core.contiguous_length(), 300);
    assert_same_blocks(&net.nodes[0].core, &net.nodes[1].core).await;
    let downloaded = net.nodes[1]
        .events
        .iter()
        .filter(|e| matches!(e, ReplicatorEvent::Downloaded { .. }))
        .count();
    assert_eq!(downloaded, 300);
    let uploaded = net.nodes[0]
        .events
        .iter()
        .filter(|e| matches!(e, ReplicatorEvent::Uploaded { .. }))
        .count();
    assert_eq!(uploaded, 300);
}

#[tokio::test]
async fn sparse_reader_gets_exactly_the_blocks_it_asks_for() {
    let w = writer(1000).await;
    let r = reader(&w).await;
    let mut net =
        Net::new(vec![(w, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    net.connect(1, 0);
    net.drive().await;
    assert_eq!(net.nodes[1].core.length(), 1000, "the upgrade comes first");
    for i in [3, 999, 500, 17] {
        let n = &mut net.nodes[1];
        n.repl.want_block(i, &n.core, net.now);
    }
    net.drive().await;
    let r = &net.nodes[1].core;
    for i in 0..1000 {
        assert_eq!(r.has(i), [3, 999, 500, 17].contains(&i), "block {i}");
    }
    assert_eq!(r.get(999).await.unwrap(), Some(block(999)));
}

#[tokio::test]
async fn live_appends_reach_the_reader() {
    let w = writer(5).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r, eager())]);
    net.connect(0, 1);
    net.drive().await;
    for round in 0..3 {
        let blocks: Vec<Vec<u8>> = (0..10).map(|i| block(100 * round + i)).collect();
        net.nodes[0].core.append(&blocks).await.unwrap();
        let n = &mut net.nodes[0];
        n.repl.handle_append(&n.core);
        net.drive().await;
        assert_eq!(net.nodes[1].core.contiguous_length(), 5 + 10 * (round as u64 + 1));
    }
    assert_same_blocks(&net.nodes[0].core, &net.nodes[1].core).await;
}

#[tokio::test]
async fn downloads_spread_over_peers_and_a_replica_serves_a_third_peer() {
    let w = writer(400).await;
    let r1 = reader(&w).await;
    let r2 = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r1, eager()), (r2, eager())]);
    net.connect(0, 1);
    net.drive().await;
    assert_eq!(net.nodes[1].core.contiguous_length(), 400);
    // r2 is connected to both the writer and the full replica: both serve it.
    net.connect(2, 0);
    net.connect(2, 1);
    net.drive().await;
    assert_same_blocks(&net.nodes[0].core, &net.nodes[2].core).await;
    let from = |peer_filter: usize| {
        net.nodes[peer_filter]
            .events
            .iter()
            .filter(|e| matches!(e, ReplicatorEvent::Uploaded { .. }))
            .count()
    };
    assert!(from(1) > 0, "the replica served blocks too");
    assert_eq!(from(0) + from(1), 800);
}

#[tokio::test]
async fn a_wrong_capability_is_refused() {
    let w = writer(3).await;
    let other = writer(0).await;
    let mut repl = Replicator::new(ReplicatorConfig::default());
    // A peer that knows another key (or none) cannot produce the capability.
    let forged = Replicator::handshake(Role::Responder, other.key(), &HH);
    assert_eq!(
        repl.add_peer(&forged, Role::Initiator, &HH, &w).unwrap_err(),
        PeerError::InvalidCapability
    );
    // Same key, wrong role (a replayed capability of our own side).
    let mirrored = Replicator::handshake(Role::Initiator, w.key(), &HH);
    assert_eq!(
        repl.add_peer(&mirrored, Role::Initiator, &HH, &w).unwrap_err(),
        PeerError::InvalidCapability
    );
    assert_eq!(
        repl.add_peer(&[1, 2], Role::Initiator, &HH, &w).unwrap_err(),
        PeerError::BadHandshake
    );
    assert!(repl.poll_action().is_none(), "nothing is sent to a peer that failed the check");
}

#[tokio::test]
async fn a_silent_peer_times_out_and_the_block_comes_from_another() {
    let w = writer(50).await;
    let r1 = reader(&w).await;
    let mut net0 = Net::new(vec![(w, ReplicatorConfig::default()), (r1, eager())]);
    net0.connect(0, 1);
    net0.drive().await;
    let Net { nodes, .. } = net0;
    let mut it = nodes.into_iter();
    let w = it.next().unwrap().core;
    let full = it.next().unwrap().core;
    let r = reader(&w).await;
    let mut net = Net::new(vec![
        (w, ReplicatorConfig::default()),
        (full, ReplicatorConfig::default()),
        (r, ReplicatorConfig::default()),
    ]);
    net.connect(2, 0);
    net.connect(2, 1);
    net.drive().await;
    // The writer now goes silent; the reader asks for blocks, some of them from the writer.
    net.mute = Some(0);
    for i in 0..50 {
        let n = &mut net.nodes[2];
        n.repl.want_block(i, &n.core, net.now);
    }
    net.drive().await;
    assert!(net.nodes[2].core.contiguous_length() < 50, "the writer held some requests");
    net.advance(Duration::from_secs(21)).await;
    assert_eq!(net.nodes[2].core.contiguous_length(), 50, "retried on the replica");
    assert!(net.nodes[2].repl.poll_timeout().is_none_or(|t| t > net.now));
}

/// A writer (node 0), an honest full replica (node 1) and a reader (node 2) connected to both.
async fn honest_and_hostile(blocks: usize) -> Net {
    let w = writer(blocks).await;
    let r1 = reader(&w).await;
    let mut net0 = Net::new(vec![(w, ReplicatorConfig::default()), (r1, eager())]);
    net0.connect(0, 1);
    net0.drive().await;
    let mut it = net0.nodes.into_iter();
    let w = it.next().unwrap().core;
    let full = it.next().unwrap().core;
    let r = reader(&w).await;
    Net::new(vec![
        (w, ReplicatorConfig::default()),
        (full, ReplicatorConfig::default()),
        (r, ReplicatorConfig::default()),
    ])
}

/// Node 0 (the "writer") turns hostile: every `data` it sends passes through `tamper`.
async fn hostile_data(tamper: fn(&mut corestore_hypercore::Data)) {
    let mut net = honest_and_hostile(64).await;
    net.tamper = Some((0, tamper));
    net.connect(2, 1);
    net.drive().await; // the honest replica gives the upgrade
    assert_eq!(net.nodes[2].core.length(), 64);
    net.connect(2, 0);
    net.drive().await;
    for i in 0..64 {
        let n = &mut net.nodes[2];
        n.repl.want_block(i, &n.core, net.now);
    }
    net.drive().await;
    let n = &net.nodes[2];
    assert!(
        n.errors.iter().any(|e| matches!(e, PeerError::InvalidData { .. })),
        "the hostile peer was dropped: {:?}",
        n.errors
    );
    assert_eq!(n.core.contiguous_length(), 64, "the honest peer delivered everything");
    assert_same_blocks(&net.nodes[1].core, &net.nodes[2].core).await;
    assert_eq!(net.nodes[2].repl.peers().count(), 1, "only the honest peer is left");
}

#[tokio::test]
async fn a_block_with_a_wrong_value_drops_the_peer_and_stores_nothing_of_it() {
    hostile_data(|d| {
        if let Some(b) = d.block.as_mut() {
            b.value.push(b'!');
        }
    })
    .await;
}

#[tokio::test]
async fn a_proof_with_a_wrong_hash_drops_the_peer() {
    hostile_data(|d| {
        if let Some(n) = d.block.as_mut().and_then(|b| b.nodes.first_mut()) {
            n.hash[0] ^= 1;
        }
        if let Some(b) = d.block.as_mut().filter(|b| b.nodes.is_empty()) {
            b.value[0] ^= 1;
        }
    })
    .await;
}

#[tokio::test]
async fn an_upgrade_signed_by_the_wrong_key_is_refused() {
    let w = writer(10).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r, eager())]);
    net.tamper = Some((0, |d| {
        if let Some(u) = d.upgrade.as_mut() {
            let other = KeyPair::generate();
            let len = u.signature.as_ref().map_or(0, Vec::len);
            let forged = other.sign(b"not the tree").unwrap();
            u.signature = Some(forged.iter().copied().cycle().take(len).collect());
        }
    }));
    net.connect(1, 0);
    net.drive().await;
    let n = &net.nodes[1];
    assert_eq!(n.core.length(), 0, "nothing was stored");
    assert!(n.errors.iter().any(|e| matches!(e, PeerError::InvalidData { .. })), "{:?}", n.errors);
}

#[tokio::test]
async fn a_peer_claiming_a_length_it_cannot_prove_is_not_asked_forever() {
    let w = writer(10).await;
    let r = reader(&w).await;
    let mut net =
        Net::new(vec![(w, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    let (_, at_reader) = net.connect(0, 1);
    net.drive().await;
    assert_eq!(net.nodes[1].core.length(), 10);
    // The writer's peer lies: it claims 1,000 blocks.
    let lie = Sync {
        length: 1000,
        remote_length: 10,
        uploading: true,
        downloading: true,
        has_manifest: true,
        ..Sync::default()
    };
    net.inject(1, at_reader, &Message::Sync(lie));
    let before = net.sent;
    net.drive().await;
    assert!(net.sent - before < 10, "one upgrade request and its answer, no loop");
    assert_eq!(net.nodes[1].core.length(), 10);
    assert!(net.nodes[1].repl.is_settled(&net.nodes[1].core), "an update() would not hang");
}

#[tokio::test]
async fn requests_beyond_the_length_get_no_data_and_64_invalid_ones_end_the_connection() {
    let w = writer(10).await;
    let mut repl = Replicator::new(ReplicatorConfig::default());
    let hs = Replicator::handshake(Role::Responder, w.key(), &HH);
    let peer = repl.add_peer(&hs, Role::Initiator, &HH, &w).unwrap();
    while repl.poll_action().is_some() {}
    let mut no_data = vec![];
    let mut ended = false;
    for id in 1..=100u64 {
        let request = if id == 1 {
            Request {
                id,
                block: Some(corestore_hypercore::NodeRequest { index: 1 << 40, nodes: 0 }),
                ..Request::default()
            }
        } else {
            Request {
                id,
                upgrade: Some(corestore_hypercore::UpgradeRequest { start: 0, length: 1 << 30 }),
                ..Request::default()
            }
        };
        repl.handle_message(peer, Message::Request(request), &w, Instant::now());
        while let Some(action) = repl.poll_action() {
            match action {
                Action::Answer { peer, ticket, request } => {
                    let result = w.create_proof(&request).await;
                    repl.handle_answer(peer, ticket, &request, result, &w);
                }
                Action::Send { message: Message::NoData(n), .. } => no_data.push(n),
                Action::EndConnection { error, .. } => {
                    assert_eq!(error, PeerError::TooManyInvalidRequests);
                    ended = true;
                }
                Action::Event(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        if ended {
            assert_eq!(id, 1 + u64::from(MAX_INVALID_REQUESTS));
            break;
        }
    }
    assert!(ended);
    assert_eq!(no_data[0], NoData { request: 1, reason: REASON_NOT_AVAILABLE });
    assert!(no_data[1..].iter().all(|n| n.reason == REASON_INVALID_REQUEST));
    // The peer is gone: nothing more is answered.
    repl.handle_message(
        peer,
        Message::Request(Request { id: 500, ..Request::default() }),
        &w,
        Instant::now(),
    );
    assert!(repl.poll_action().is_none());
}

#[tokio::test]
async fn a_flood_of_requests_is_bounded() {
    let w = writer(10).await;
    let mut repl = Replicator::new(ReplicatorConfig::default());
    let hs = Replicator::handshake(Role::Responder, w.key(), &HH);
    let peer = repl.add_peer(&hs, Role::Initiator, &HH, &w).unwrap();
    while repl.poll_action().is_some() {}
    let mut answers = 0;
    let mut ended = None;
    // The flood arrives faster than answers are made: nothing is answered in between.
    for id in 1..=1_000_000u64 {
        let block = Some(corestore_hypercore::NodeRequest { index: id % 10, nodes: 0 });
        repl.handle_message(
            peer,
            Message::Request(Request { id, block, ..Request::default() }),
            &w,
            Instant::now(),
        );
        if !repl.peers().any(|p| p == peer) {
            ended = Some(id);
            break;
        }
    }
    while let Some(action) = repl.poll_action() {
        match action {
            Action::Answer { .. } => answers += 1,
            Action::EndConnection { error, .. } => assert_eq!(error, PeerError::TooManyRequests),
            _ => {}
        }
    }
    assert_eq!(ended, Some(MAX_REMOTE_REQUESTS as u64 + 1));
    assert_eq!(answers, MAX_REMOTE_REQUESTS);
}

#[tokio::test]
async fn a_peer_without_the_key_gets_nothing() {
    let w = writer(10).await;
    let mut repl = Replicator::new(ReplicatorConfig::default());
    // It knows the discovery key only (that is what travels in the open): any capability it
    // can make is wrong, and nothing at all is queued for it.
    for guess in [[0u8; 32], *w.discovery_key().as_bytes()] {
        let hs = Handshake { seeks: true, capability: guess }.encode();
        assert_eq!(repl.add_peer(&hs, Role::Initiator, &HH, &w), Err(PeerError::InvalidCapability));
        assert!(repl.poll_action().is_none());
    }
}

#[tokio::test]
async fn a_disconnect_mid_transfer_resumes_on_a_new_connection() {
    let w = writer(500).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r, eager())]);
    net.connect(1, 0);
    // Run a bounded number of steps, then cut.
    for _ in 0..400 {
        net.step().await;
    }
    let have = net.nodes[1].core.contiguous_length();
    assert!(have > 0 && have < 500, "cut mid-way at {have}");
    net.disconnect_all(1);
    assert_eq!(net.nodes[1].repl.peers().count(), 0);
    assert!(net.nodes[1].repl.poll_timeout().is_none(), "no request is left in flight");
    net.connect(1, 0);
    net.drive().await;
    assert_same_blocks(&net.nodes[0].core, &net.nodes[1].core).await;
}

#[tokio::test]
async fn a_replica_follows_the_writer_to_a_new_fork() {
    let w = writer(40).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r, eager())]);
    net.connect(0, 1);
    net.drive().await;
    assert_eq!(net.nodes[1].core.contiguous_length(), 40);
    // The writer truncates to 25 and appends 5 different blocks: fork 1, length 30.
    let n = &mut net.nodes[0];
    n.core.truncate(25).await.unwrap();
    n.repl.handle_truncate(&n.core, net.now);
    n.core.append(&[b"new 25", b"new 26", b"new 27", b"new 28", b"new 29"]).await.unwrap();
    n.repl.handle_append(&n.core);
    net.drive().await;
    let r = &net.nodes[1];
    assert_eq!((r.core.fork(), r.core.length()), (1, 30));
    assert_eq!(r.core.tree_hash(), net.nodes[0].core.tree_hash());
    assert_eq!(r.core.contiguous_length(), 30, "the new blocks were downloaded");
    assert_eq!(r.core.get(25).await.unwrap().as_deref(), Some(&b"new 25"[..]));
    assert_eq!(r.core.get(24).await.unwrap(), Some(block(24)), "blocks before the ancestor stay");
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, ReplicatorEvent::Truncated { length: 25, fork: 1 })));
    assert!(r.repl.is_settled(&r.core));
}

#[tokio::test]
async fn a_fork_proof_by_the_wrong_key_drops_the_peer_and_changes_nothing() {
    let w = writer(10).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r, eager())]);
    let (_, at_reader) = net.connect(0, 1);
    net.drive().await;
    let before = net.nodes[1].core.tree_hash();
    // The writer's peer claims fork 5 and answers the fork proof request with a forgery: the
    // real tree, relabelled fork 5, with a signature nobody made.
    let lie = Sync {
        fork: 5,
        length: 10,
        uploading: true,
        downloading: true,
        has_manifest: true,
        ..Sync::default()
    };
    net.mute = Some(0);
    net.inject(1, at_reader, &Message::Sync(lie));
    net.drive().await;
    let (_, asked) = net.requests.iter().rev().find(|(from, _)| *from == 1).cloned().unwrap();
    assert_eq!((asked.fork, asked.upgrade.map(|u| (u.start, u.length))), (5, Some((0, 10))));
    let mut real = asked.clone();
    real.fork = 0;
    let mut forged = net.nodes[0].core.create_proof(&real).await.unwrap();
    forged.fork = 5;
    forged.request = asked.id;
    net.inject(1, at_reader, &Message::Data(forged));
    net.drive().await;
    let r = &net.nodes[1];
    assert_eq!((r.core.fork(), r.core.length(), r.core.tree_hash()), (0, 10, before));
    assert!(r.errors.iter().any(|e| matches!(e, PeerError::InvalidData { .. })), "{:?}", r.errors);
}
