//! Encrypted, framed protomux throughput over an in-memory duplex on one core: the tokio driver,
//! secretstream (XChaCha20-Poly1305), uint24 framing and protomux, 1 KiB and 64 KiB messages.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use corestore_replicate::{
    ChannelId, ChannelSpec, Connection, Driver, Event, MuxEvent, Role, StreamConfig,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::DuplexStream;

type Side = (Driver<DuplexStream>, ChannelId);

async fn wait_open(d: &mut Driver<DuplexStream>) {
    while let Some(ev) = d.next_event().await.expect("event") {
        if matches!(ev, Event::Mux(MuxEvent::ChannelOpened { .. })) {
            return;
        }
    }
}

async fn connected_pair() -> (Side, Side) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut tx =
        Driver::new(a, Connection::new(Role::Initiator, StreamConfig::new(), Instant::now()));
    let mut rx =
        Driver::new(b, Connection::new(Role::Responder, StreamConfig::new(), Instant::now()));
    let spec = ChannelSpec::new("bench");
    let ctx = tx.connection().mux().open_channel(&spec, b"").expect("open");
    let crx = rx.connection().mux().open_channel(&spec, b"").expect("open");
    tokio::join!(wait_open(&mut tx), wait_open(&mut rx));
    // Each side may still hold output (its open, its id header): send it.
    let (a, b) = tokio::join!(tx.flush(), rx.flush());
    a.expect("flush");
    b.expect("flush");
    ((tx, ctx), (rx, crx))
}

async fn transfer(tx: &mut Side, rx: &mut Side, payload: &[u8], count: u64) -> Duration {
    let start = Instant::now();
    let send = async {
        for i in 0..count {
            tx.0.connection().send(tx.1, 0, payload, Instant::now()).expect("send");
            if i % 32 == 31 {
                tx.0.flush().await.expect("flush");
            }
        }
        tx.0.flush().await.expect("flush");
    };
    let recv = async {
        let mut got = 0;
        while got < count {
            match rx.0.next_event().await.expect("event") {
                Some(Event::Mux(MuxEvent::Message { .. })) => got += 1,
                Some(_) => {}
                None => panic!("stream ended"),
            }
        }
    };
    tokio::join!(send, recv);
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (mut tx, mut rx) = rt.block_on(connected_pair());
    let mut group = c.benchmark_group("transport");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for size in [1024usize, 64 * 1024] {
        let payload = vec![0xa5u8; size];
        if size == 1024 {
            group.throughput(Throughput::Elements(1));
        } else {
            group.throughput(Throughput::Bytes(size as u64));
        }
        group.bench_function(format!("encrypted framed message {} KiB", size / 1024), |b| {
            b.iter_custom(|iters| rt.block_on(transfer(&mut tx, &mut rx, &payload, iters)));
        });
    }
    group.finish();
}

/// The cipher alone (push then pull, no framing or I/O): the ceiling for the numbers above.
fn cipher(c: &mut Criterion) {
    use corestore_replicate::{Decryptor, Encryptor, FixedRng};
    let mut group = c.benchmark_group("secretstream push+pull");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1));
    for size in [1024usize, 64 * 1024] {
        let (mut enc, header) = Encryptor::new(FixedRng([1; 24]), &[2; 32]);
        let mut dec = Decryptor::new(&[2; 32], &header);
        let payload = vec![0x5au8; size];
        let mut buf = bytes::BytesMut::with_capacity(size + 64);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{} KiB", size / 1024), |b| {
            b.iter(|| {
                buf.clear();
                enc.encrypt_into(&payload, &mut buf);
                dec.decrypt_in_place(&mut buf).expect("decrypt");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, throughput, cipher);
criterion_main!(benches);
