//! Clearing blocks while replicating (hypercore 11 `clear` → `range { drop: true }`), on the
//! in-memory [`Net`] of `tests.rs`: no sockets, no sleeps.

use corestore_hypercore::Hypercore;

use super::tests::{block, eager, reader, writer, Net, Node};
use super::*;

/// A writer of `blocks` blocks and a full replica of it.
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

/// Clears `[start, end)` on node `i` and tells its replicator.
async fn clear(net: &mut Net, i: usize, start: u64, end: u64) {
    let n = &mut net.nodes[i];
    let report = n.core.clear(start, end).await.unwrap();
    n.repl.handle_clear(report.start, report.end, &n.core, net.now);
}

fn want(net: &mut Net, i: usize, index: u64) {
    let n = &mut net.nodes[i];
    n.repl.want_block(index, &n.core, net.now);
}

/// Block requests node `from` sent for `index`.
fn requests_for(net: &Net, from: usize, index: u64) -> usize {
    net.requests
        .iter()
        .filter(|(n, r)| *n == from && r.block.is_some_and(|b| b.index == index))
        .count()
}

fn node(core: Hypercore, config: ReplicatorConfig) -> Node {
    Node { core, repl: Replicator::new(config), events: vec![], errors: vec![] }
}

#[tokio::test]
async fn a_local_clear_tells_every_peer_and_they_stop_asking_for_those_blocks() {
    let (w, full) = writer_and_replica(100).await;
    let r = reader(&w).await;
    let mut net =
        Net::new(vec![(full, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    net.connect(1, 0);
    net.drive().await;
    assert_eq!(net.nodes[1].core.length(), 100);

    clear(&mut net, 0, 20, 40).await;
    net.drive().await;
    want(&mut net, 1, 25);
    want(&mut net, 1, 50);
    net.drive().await;
    assert!(net.nodes[1].core.has(50), "the replica still serves what it kept");
    assert!(!net.nodes[1].core.has(25));
    assert_eq!(requests_for(&net, 1, 25), 0, "nobody asks a peer for a block it dropped");
    assert!(net.nodes.iter().all(|n| n.errors.is_empty()));

    // The replica fetches block 25 again from the writer; its peer hears of it and gets it.
    net.nodes.push(node(w, ReplicatorConfig::default()));
    net.connect(0, 2);
    net.drive().await;
    want(&mut net, 0, 25);
    net.drive().await;
    assert!(net.nodes[0].core.has(25), "downloaded again, verified against the kept tree");
    assert_eq!(net.nodes[1].core.get(25).await.unwrap(), Some(block(25)));
    assert_eq!(requests_for(&net, 1, 25), 1);
}

#[tokio::test]
async fn a_remote_range_drop_clears_our_view_of_that_peer() {
    let (_, full) = writer_and_replica(100).await;
    let r = reader(&full).await;
    let mut net =
        Net::new(vec![(full, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    let (_, to_full) = net.connect(0, 1);
    net.drive().await;
    let drop = Message::Range(Range { drop: true, start: 20, length: 20 });
    net.inject(1, to_full, &drop);
    net.drive().await;
    // The peer goes quiet (it would answer our `want` with what it really has).
    net.mute = Some(0);
    want(&mut net, 1, 39);
    want(&mut net, 1, 40);
    net.drive().await;
    assert_eq!(requests_for(&net, 1, 39), 0, "the peer said it dropped 20..40");
    assert_eq!(requests_for(&net, 1, 40), 1, "but not 40");
    // A later range of the peer brings the blocks back into our view of it.
    net.mute = None;
    let has = Message::Range(Range { drop: false, start: 39, length: 1 });
    net.inject(1, to_full, &has);
    net.drive().await;
    assert_eq!(requests_for(&net, 1, 39), 1);
    assert!(net.nodes[1].core.has(39));
}

#[tokio::test]
async fn a_request_for_a_cleared_block_gets_no_data() {
    let (_, full) = writer_and_replica(60).await;
    let r = reader(&full).await;
    let mut net =
        Net::new(vec![(full, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    net.connect(1, 0);
    net.drive().await;
    // Cleared while the peer still believes we have it (its request crossed our `range`).
    net.nodes[0].core.clear(10, 20).await.unwrap();
    want(&mut net, 1, 15);
    net.drive().await;
    assert_eq!(requests_for(&net, 1, 15), 1);
    assert!(!net.nodes[1].core.has(15), "answered with noData, not with data");
    assert!(!net.nodes[0].events.iter().any(|e| matches!(e, ReplicatorEvent::Uploaded { .. })));
    assert!(net.nodes.iter().all(|n| n.errors.is_empty()), "nobody is dropped for it");
    want(&mut net, 1, 30);
    net.drive().await;
    assert!(net.nodes[1].core.has(30));
}

#[tokio::test]
async fn a_running_download_range_fetches_cleared_blocks_again() {
    let w = writer(100).await;
    let r = reader(&w).await;
    let mut net =
        Net::new(vec![(w, ReplicatorConfig::default()), (r, ReplicatorConfig::default())]);
    net.connect(1, 0);
    net.drive().await;
    let n = &mut net.nodes[1];
    n.repl.want_range(0, Some(100), &n.core, net.now);
    net.drive().await;
    assert_eq!(net.nodes[1].core.contiguous_length(), 100);
    clear(&mut net, 1, 20, 40).await;
    net.drive().await;
    assert_eq!(net.nodes[1].core.contiguous_length(), 100, "the range still wants them");
}
