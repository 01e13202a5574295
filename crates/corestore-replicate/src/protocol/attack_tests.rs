//! The replicator attacked by a hostile peer that sends only legal-looking messages (issue 9,
//! "attack your own layer"). Each test that fails documents the hole and the smallest fix.

use std::time::Duration;

use bytes::Bytes;

use corestore_hypercore::{Hypercore, NodeRequest, Request, SeekRequest, UpgradeRequest};
use corestore_keys::Role;

use super::tests::{assert_same_blocks, eager, reader, writer, Net};
use super::*;

const HH: [u8; 64] = [7; 64];
/// The largest integer the wire carries (2^53 - 1, as JavaScript).
const MAX: u64 = corestore_keys::compact::MAX_SAFE_UINT;

/// A writer of `blocks` blocks and a full replica of it (both at fork 0).
async fn writer_and_replica(blocks: usize) -> (Hypercore, Hypercore) {
    let w = writer(blocks).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![(w, ReplicatorConfig::default()), (r, eager())]);
    net.connect(0, 1);
    net.drive().await;
    let mut it = net.nodes.into_iter();
    let w = it.next().unwrap().core;
    let full = it.next().unwrap().core;
    assert_eq!(full.contiguous_length(), blocks as u64);
    (w, full)
}

/// Steps until nothing moves; false when the network is still busy after `limit` steps (a
/// livelock: two peers ping-ponging forever).
async fn goes_idle(net: &mut Net, limit: usize) -> bool {
    for _ in 0..limit {
        if !net.step().await {
            return true;
        }
    }
    false
}

fn lie_fork(fork: u64, length: u64) -> Message {
    Message::Sync(Sync {
        fork,
        length,
        uploading: true,
        downloading: true,
        has_manifest: true,
        ..Sync::default()
    })
}

/// A peer claims a higher fork, is asked for its fork proof, and never answers. The request
/// times out and is cancelled, but `Replicator::reorg` stays `Some` with no request in flight
/// (`handle_timeout` → `forget_request` → `release_request` does nothing for
/// `Wanted::ForkProof` / `Wanted::ReorgHash`), so `is_settled` is false for as long as the liar
/// stays connected: every `update()` of the core hangs.
///
/// Smallest fix: in `release_request` (or `handle_timeout`), for `Wanted::ForkProof |
/// Wanted::ReorgHash` of the peer that drives the reorg, clear `self.reorg` and set that peer's
/// `upgrade_failed_at = Some(remote.length)` (as `on_no_data` already does), so it is not asked
/// again until it announces another length.
#[tokio::test]
async fn attack_unproved_fork_claim_times_out_and_the_core_settles() {
    let w = writer(10).await;
    let r = reader(&w).await;
    let mut net =
        Net::new(vec![(w, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    let (_, at_reader) = net.connect(0, 1);
    net.drive().await;
    assert_eq!(net.nodes[1].core.length(), 10);
    net.mute = Some(0);
    net.inject(1, at_reader, &lie_fork(5, 10));
    net.drive().await;
    assert!(
        net.requests.iter().any(|(from, r)| *from == 1 && r.fork == 5),
        "the reader asked the liar for its fork proof"
    );
    net.advance(Duration::from_secs(21)).await;
    net.advance(Duration::from_secs(21)).await;
    let n = &net.nodes[1];
    assert!(n.repl.is_settled(&n.core), "an update() hangs forever on an unproved fork claim");
}

/// The same stuck reorg (see the test above) also blocks every other reorg: once a silent peer
/// claimed fork 7, `maybe_reorg` returns early for every peer (`self.reorg.is_some()`), so when
/// the real writer truncates and moves to fork 1 the replica never follows it, even with the
/// writer itself connected. A hostile peer that sends one `sync` freezes a replica on a stale
/// fork for as long as it keeps the channel open.
///
/// Smallest fix: as above (a timed-out fork proof or reorg step ends the reorg and marks the
/// peer's length failed); also consider letting a reorg from a peer on a higher proven fork
/// replace a stalled one.
#[tokio::test]
async fn attack_a_silent_fork_claim_does_not_block_following_the_real_writer() {
    let (mut w, full) = writer_and_replica(40).await;
    let r = reader(&w).await;
    // Node 2 (a full replica) turns hostile.
    let mut net = Net::new(vec![
        (writer(0).await, ReplicatorConfig::default()), // placeholder for the writer
        (r, eager()),
        (full, ReplicatorConfig::default()),
    ]);
    let (at_reader, _) = net.connect(1, 2);
    net.drive().await;
    assert_eq!(net.nodes[1].core.contiguous_length(), 40);
    net.mute = Some(2);
    net.inject(1, at_reader, &lie_fork(7, 40));
    net.drive().await;
    net.advance(Duration::from_secs(21)).await;
    net.advance(Duration::from_secs(21)).await;
    // The writer truncates to 25 and appends 5 other blocks (fork 1, length 30).
    w.truncate(25).await.unwrap();
    w.append(&[b"new 25", b"new 26", b"new 27", b"new 28", b"new 29"]).await.unwrap();
    net.nodes[0] = super::tests::Node {
        core: w,
        repl: Replicator::new(ReplicatorConfig::default()),
        events: vec![],
        errors: vec![],
    };
    net.connect(1, 0);
    net.drive().await;
    net.advance(Duration::from_secs(21)).await;
    let r = &net.nodes[1];
    assert_eq!(
        (r.core.fork(), r.core.length()),
        (1, 30),
        "the replica follows the real writer to its new fork"
    );
}

/// Blocks of a range that a hostile peer answered with an empty `data` (right request id and
/// fork, no block, no proof) are never downloaded, even from an honest peer that connects
/// later. The empty answer passes `matches` (it carries nothing that contradicts the request),
/// `Hypercore::receive` accepts it as a no-op (`Ok(Applied { block: None, .. })`), and
/// `handle_received` treats that as success: `release_request(id, false)` does not rewind the
/// range cursor, which already moved past the block, so the range scan never looks at it
/// again. The download stalls forever with holes.
///
/// Smallest fix: in `handle_received`, an `Ok` that does not deliver what the request asked
/// for (`Wanted::Block(i)` and `applied.block != Some(i)`; `Wanted::Upgrade` with no upgrade
/// and no newer length) is a failed request: rewind, and treat the peer as not having the
/// block / as having failed the upgrade at its length (as `on_no_data` does) — or reject such
/// an answer in `matches` (`request.block.is_some() && data.block.is_none()`), which makes
/// the verifier drop it as invalid.
/// JavaScript does the former: in `Peer._handleData` a `core.verify` that applies nothing
/// goes to `_onnodata(this, req, 0)`, exactly like a `noData`.
#[tokio::test]
async fn attack_empty_answers_do_not_leave_holes_in_a_range() {
    let (w, full) = writer_and_replica(64).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![
        (w, ReplicatorConfig::default()),
        (full, ReplicatorConfig::default()),
        (r, ReplicatorConfig::default()),
    ]);
    net.tamper = Some((0, |d| d.block = None));
    net.connect(2, 0);
    net.drive().await;
    assert_eq!(net.nodes[2].core.length(), 64, "the upgrade from the hostile peer is real");
    let n = &mut net.nodes[2];
    n.repl.want_range(0, Some(64), &n.core, net.now);
    assert!(goes_idle(&mut net, 100_000).await, "livelock with the hostile peer");
    net.connect(2, 1);
    net.drive().await;
    net.advance(Duration::from_secs(21)).await;
    assert_eq!(
        net.nodes[2].core.contiguous_length(),
        64,
        "the honest peer was asked for the blocks the hostile one answered empty"
    );
    assert_same_blocks(&net.nodes[1].core, &net.nodes[2].core).await;
}

/// A hostile peer that answers every block request with an empty `data` keeps the replicator
/// busy forever: `handle_received` counts the empty answer as a success (and even grows the
/// peer's window), the block is still wanted, the peer still "has" it, so `schedule` asks the
/// same peer again at once: an endless request/empty-answer loop that the honest peer never
/// breaks into (the `get` never resolves while the liar stays connected).
///
/// Smallest fix: as in `attack_empty_answers_do_not_leave_holes_in_a_range`: an answer that
/// does not deliver the requested block clears the peer's bit for it (`has.set_range(i, i + 1,
/// false)`) or drops the peer.
#[tokio::test]
async fn attack_empty_answers_to_a_get_do_not_livelock() {
    let (w, full) = writer_and_replica(8).await;
    let r = reader(&w).await;
    let mut net = Net::new(vec![
        (w, ReplicatorConfig::default()),
        (full, ReplicatorConfig::default()),
        (r, ReplicatorConfig::default()),
    ]);
    net.tamper = Some((0, |d| d.block = None));
    net.connect(2, 0);
    net.drive().await;
    assert_eq!(net.nodes[2].core.length(), 8);
    net.connect(2, 1);
    net.drive().await;
    let n = &mut net.nodes[2];
    n.repl.want_block(3, &n.core, net.now);
    assert!(goes_idle(&mut net, 100_000).await, "endless request/empty-answer loop");
    assert!(net.nodes[2].core.has(3), "block 3 came from the honest peer");
}

/// A hostile peer that claims a longer core and answers every upgrade request with an empty
/// `data` (no upgrade) is asked again at once, forever: the empty answer is an `Ok` with
/// `upgraded: false`, `release_request` clears `upgrade_inflight` but nothing sets
/// `upgrade_failed_at`, so `schedule_upgrade` picks the same (longest) peer again. The
/// replicator livelocks and never asks the honest peer.
///
/// Smallest fix: in `handle_received`, an answer to `Wanted::Upgrade` that did not upgrade
/// sets the peer's `upgrade_failed_at = Some(remote.length)` (as `on_no_data` does).
#[tokio::test]
async fn attack_empty_answers_to_an_upgrade_do_not_livelock() {
    let (mut w, full) = writer_and_replica(8).await;
    w.append(&[b"more"]).await.unwrap(); // the hostile writer is one block ahead
    let r = reader(&w).await;
    let mut net = Net::new(vec![
        (w, ReplicatorConfig::default()),
        (full, ReplicatorConfig::default()),
        (r, ReplicatorConfig::default()),
    ]);
    net.tamper = Some((0, |d| d.upgrade = None));
    net.connect(2, 1);
    net.connect(2, 0);
    assert!(goes_idle(&mut net, 100_000).await, "endless upgrade/empty-answer loop");
    assert!(net.nodes[2].core.length() >= 8, "the honest peer's length was taken");
}

/// A standalone replicator of a 10-block writer with one peer.
async fn lone_peer() -> (Hypercore, Replicator, PeerId) {
    let w = writer(10).await;
    let mut repl = Replicator::new(ReplicatorConfig::default());
    let hs = Replicator::handshake(Role::Responder, w.key(), &HH);
    let peer = repl.add_peer(&hs, Role::Initiator, &HH, &w).unwrap();
    while repl.poll_action().is_some() {}
    (w, repl, peer)
}

/// Round-trips `message` through the codec, as the wire would.
fn wire(message: &Message) -> Message {
    Message::decode(message.message_type(), &Bytes::from(message.encode())).unwrap().unwrap()
}

/// `bitfield` slices that end at the top of the wire's index space (2^53 - 1): no panic in
/// `RemoteBitfield::insert_words` (its `base + 32` and `index + 1` stay far below `u64::MAX`
/// because the codec refuses integers above 2^53 - 1). Held.
#[tokio::test]
async fn attack_bitfields_at_the_end_of_the_index_space_do_not_panic() {
    let (w, mut repl, peer) = lone_peer().await;
    let now = std::time::Instant::now();
    for (start, words) in [
        (MAX - 31, vec![u32::MAX]),
        (MAX - 63, vec![0, 1 << 31]),
        (MAX - 32 * 4 + 1, vec![u32::MAX; 8]),
    ] {
        let m = wire(&Message::Bitfield(BitfieldSlice { start, bitfield: words }));
        repl.handle_message(peer, m, &w, now);
        while repl.poll_action().is_some() {}
    }
    assert_eq!(repl.peers().count(), 1);
}

/// Ranges, wants and unwants at the edges of the index space (start + length overflowing,
/// drops that shrink a prefix of 2^53 - 1): no panic, the peer stays. Held.
#[tokio::test]
async fn attack_ranges_and_wants_at_the_edges_of_the_index_space_do_not_panic() {
    let (w, mut repl, peer) = lone_peer().await;
    let now = std::time::Instant::now();
    let messages = [
        Message::Range(Range { drop: false, start: MAX, length: MAX }),
        Message::Range(Range { drop: false, start: 0, length: MAX }),
        Message::Range(Range { drop: true, start: MAX - 1, length: MAX }),
        Message::Range(Range { drop: true, start: 5, length: 1 }),
        Message::Range(Range { drop: false, start: MAX - 5, length: 3 }),
        Message::Want(Want { start: MAX, length: MAX, any: false }),
        Message::Want(Want { start: MAX - 31, length: MAX, any: true }),
        Message::Unwant(Want { start: MAX, length: MAX, any: false }),
        Message::Want(Want { start: 3, length: 0, any: false }),
        Message::NoData(NoData { request: MAX, reason: MAX }),
        Message::Cancel { request: MAX },
        Message::Sync(Sync { fork: MAX, length: MAX, ..Sync::default() }),
        Message::Sync(Sync { fork: 0, length: MAX, remote_length: 10, ..Sync::default() }),
    ];
    for m in &messages {
        repl.handle_message(peer, wire(m), &w, now);
        while repl.poll_action().is_some() {}
    }
    repl.handle_timeout(&w, now + Duration::from_secs(60));
    while repl.poll_action().is_some() {}
    assert_eq!(repl.peers().count(), 1);
}

/// Requests with extreme fields (huge `nodes`, indexes, seeks, upgrades overflowing
/// `start + length`, foreign forks): each gets a `noData`, nothing panics, and the peer is
/// dropped only after `MAX_INVALID_REQUESTS`. Held.
#[tokio::test]
async fn attack_extreme_requests_get_no_data_and_do_not_panic() {
    let w = writer(10).await;
    let r = reader(&w).await;
    let mut net =
        Net::new(vec![(w, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    let (at_writer, _) = net.connect(0, 1);
    net.drive().await;
    let node = |index, nodes| Some(NodeRequest { index, nodes });
    let requests = [
        Request { id: 1, block: node(0, MAX), ..Request::default() },
        Request { id: 2, block: node(MAX, 0), ..Request::default() },
        Request { id: 3, hash: node(MAX, MAX), ..Request::default() },
        Request { id: 4, hash: node(MAX / 2, 3), ..Request::default() },
        Request { id: 5, seek: Some(SeekRequest { bytes: MAX, padding: 0 }), ..Request::default() },
        Request {
            id: 6,
            upgrade: Some(UpgradeRequest { start: MAX, length: MAX }),
            ..Request::default()
        },
        Request {
            id: 7,
            upgrade: Some(UpgradeRequest { start: 5, length: MAX - 2 }),
            block: node(9, 64),
            ..Request::default()
        },
        Request { id: 8, fork: MAX, block: node(1, 0), ..Request::default() },
        Request {
            id: 9,
            seek: Some(SeekRequest { bytes: 3, padding: MAX }),
            hash: node(4, MAX),
            ..Request::default()
        },
    ];
    for r in &requests {
        net.inject(0, at_writer, &Message::Request(r.clone()));
    }
    net.drive().await;
    let n = &net.nodes[0];
    assert_eq!(n.repl.peers().count(), 1, "{:?}", n.errors);
}

/// Issue 13 §1: `data` that answers no request of ours never reaches the core, even under the
/// id of a request in flight (JavaScript's `_matchingRequest`): valid proofs of another block,
/// of a tree node (`hash`) or a byte (`seek`) nobody asked for, an upgrade added to the block
/// asked for, and the block asked for at another fork are all dropped before verification, so
/// a hostile peer can make the core neither verify nor store anything it did not ask for. The
/// real answer still gets through afterwards.
#[tokio::test]
async fn data_answering_no_request_of_ours_never_reaches_the_core() {
    let w = writer(40).await;
    let r = reader(&w).await;
    let mut net =
        Net::new(vec![(w, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    let (_, at_reader) = net.connect(0, 1);
    net.drive().await;
    assert_eq!(net.nodes[1].core.length(), 40, "the upgrade comes first");
    // The writer goes silent: the reader's request for block 5 stays in flight.
    net.mute = Some(0);
    let n = &mut net.nodes[1];
    n.repl.want_block(5, &n.core, net.now);
    net.drive().await;
    let (_, asked) = net.requests.iter().rev().find(|(from, _)| *from == 1).cloned().unwrap();
    assert_eq!(asked.block.map(|b| b.index), Some(5));
    let node = |index| Some(NodeRequest { index, nodes: 0 });
    let unasked = [
        Request { block: node(6), ..asked.clone() },
        Request { block: None, hash: node(9), ..asked.clone() },
        Request { seek: Some(SeekRequest { bytes: 100, padding: 0 }), ..asked.clone() },
        Request { upgrade: Some(UpgradeRequest { start: 0, length: 40 }), ..asked.clone() },
    ];
    let mut forged = Vec::new();
    for q in &unasked {
        forged.push(net.nodes[0].core.create_proof(q).await.unwrap());
    }
    // Each carries the section nobody asked for.
    assert_eq!(forged[0].block.as_ref().map(|b| b.index), Some(6));
    assert!(forged[1].hash.is_some() && forged[2].seek.is_some() && forged[3].upgrade.is_some());
    let mut other_fork = net.nodes[0].core.create_proof(&asked).await.unwrap();
    other_fork.fork = 1;
    forged.push(other_fork);
    for mut data in forged {
        data.request = asked.id;
        let n = &mut net.nodes[1];
        n.repl.handle_message(at_reader, Message::Data(data.clone()), &n.core, net.now);
        while let Some(action) = n.repl.poll_action() {
            assert!(
                !matches!(action, Action::Verify { .. } | Action::CheckConflict { .. }),
                "unasked data reached the core: {data:?}"
            );
        }
    }
    let n = &net.nodes[1];
    assert!(!n.core.has(5) && !n.core.has(6));
    assert_eq!(n.repl.peers().count(), 1, "{:?}", n.errors);
    // The answer asked for is still taken.
    let mut answer = net.nodes[0].core.create_proof(&asked).await.unwrap();
    answer.request = asked.id;
    net.inject(1, at_reader, &Message::Data(answer));
    net.drive().await;
    let r = &net.nodes[1].core;
    assert_eq!(r.get(5).await.unwrap(), Some(super::tests::block(5)));
    assert!(!r.has(6));
}
