//! The replication protocol without I/O: `data` message encode + decode (1 KiB and 64 KiB blocks
//! with a 17-node proof, as a block of a 100k-block core carries), and one replicator step per
//! downloaded block: the `data` arrives, its verification succeeds, the replicator schedules the
//! next request (the window is full: 512 requests in flight to one peer).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use corestore_hypercore::{Applied, Data, DataBlock, Node};
use corestore_keys::{CoreKey, KeyPair, Manifest, Role};
use corestore_replicate::protocol::{
    Action, CoreView, Message, PeerId, Range, Replicator, ReplicatorConfig, Sync,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const HH: [u8; 64] = [7; 64];
const BLOCKS: u64 = 1 << 40;

fn data(request: u64, index: u64, size: usize) -> Data {
    let nodes = (0..17).map(|i| Node { index: 2 * index + i, size: 1024, hash: [i as u8; 32] });
    Data {
        request,
        fork: 0,
        block: Some(DataBlock { index, value: vec![7; size], nodes: nodes.collect() }),
        hash: None,
        seek: None,
        upgrade: None,
        manifest: None,
    }
}

fn messages(c: &mut Criterion) {
    let mut g = c.benchmark_group("data message");
    for size in [1024, 65536] {
        let message = Message::Data(data(12, 54_321, size));
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("encode {} KiB", size / 1024), |b| b.iter(|| message.encode()));
        let bytes = Bytes::from(message.encode());
        g.bench_function(format!("decode {} KiB", size / 1024), |b| {
            b.iter(|| Message::decode(3, &bytes).expect("decodes"));
        });
    }
    g.finish();
}

/// A core that knows its length and which blocks it has, nothing more.
struct View {
    key: CoreKey,
    manifest: Manifest,
    contiguous: u64,
    has: HashSet<u64>,
}

impl CoreView for View {
    fn key(&self) -> &CoreKey {
        &self.key
    }
    fn fork(&self) -> u64 {
        0
    }
    fn length(&self) -> u64 {
        BLOCKS
    }
    fn contiguous_length(&self) -> u64 {
        self.contiguous
    }
    fn has(&self, index: u64) -> bool {
        index < self.contiguous || self.has.contains(&index)
    }
    fn manifest(&self) -> Option<&Manifest> {
        Some(&self.manifest)
    }
}

impl View {
    fn store(&mut self, index: u64) {
        self.has.insert(index);
        while self.has.remove(&self.contiguous) {
            self.contiguous += 1;
        }
    }
}

struct Downloader {
    repl: Replicator,
    view: View,
    peer: PeerId,
    /// Requests sent and not answered yet: (id, block), oldest first.
    inflight: VecDeque<(u64, u64)>,
    now: Instant,
}

impl Downloader {
    fn new() -> Self {
        let manifest = Manifest::single_signer(KeyPair::from_seed(&[3; 32]).public_key());
        let view = View { key: manifest.hash(), manifest, contiguous: 0, has: HashSet::new() };
        let mut repl = Replicator::new(ReplicatorConfig::default());
        let remote = Replicator::handshake(Role::Responder, &view.key, &HH);
        let peer = repl.add_peer(&remote, Role::Initiator, &HH, &view).expect("capability");
        let now = Instant::now();
        let sync = Sync {
            fork: 0,
            length: BLOCKS,
            remote_length: BLOCKS,
            can_upgrade: false,
            uploading: true,
            downloading: true,
            has_manifest: true,
            allow_push: false,
        };
        repl.handle_message(peer, Message::Sync(sync), &view, now);
        let range = Range { drop: false, start: 0, length: BLOCKS };
        repl.handle_message(peer, Message::Range(range), &view, now);
        let _ = repl.want_range(0, Some(BLOCKS), &view, now);
        let mut d = Self { repl, view, peer, inflight: VecDeque::new(), now };
        d.drain();
        d
    }

    fn drain(&mut self) -> Option<Data> {
        let mut verify = None;
        while let Some(action) = self.repl.poll_action() {
            match action {
                Action::Request { request, .. } => {
                    let index = request.block.map_or(0, |b| b.index);
                    self.inflight.push_back((request.id, index));
                }
                Action::Verify { data, .. } => verify = Some(data),
                _ => {}
            }
        }
        verify
    }

    /// The oldest request is answered and verifies: one downloaded block.
    fn step(&mut self) {
        let Some((request, index)) = self.inflight.pop_front() else { return };
        let message = Message::Data(data(request, index, 0));
        self.repl.handle_message(self.peer, message, &self.view, self.now);
        let Some(data) = self.drain() else { return };
        self.view.store(index);
        let applied = Applied { block: Some(index), upgraded: false, length: BLOCKS };
        self.repl.handle_received(self.peer, data.request, Ok(applied), &self.view, self.now);
        self.drain();
    }
}

fn replicator_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("replicator");
    let mut d = Downloader::new();
    // Grow the window to its maximum (one more per verified block).
    for _ in 0..2000 {
        d.step();
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("one downloaded block, window full", |b| b.iter(|| d.step()));
    g.finish();
}

criterion_group!(benches, messages, replicator_step);
criterion_main!(benches);
