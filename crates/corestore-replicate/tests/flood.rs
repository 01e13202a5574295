//! Hostile peers that complete a real handshake and then flood: 16 MiB batches of millions of
//! tiny messages (for an open channel, an unopened one and a paired one nobody accepted),
//! millions of opens, opens with id 0 while never reading, and a duplicate open the application
//! cannot accept. Each test asserts the bounds the connection tracks ([`ResourceUsage`]), the
//! typed error where a bound is exceeded, and that a well-behaved connection on the same
//! runtime keeps working meanwhile; one counts that a flooded victim gives the thread back every
//! few steps.
//!
//! `CORESTORE_FLOOD_LONG=1` runs the same tests at full size (8M messages a batch, a million
//! opens). The peak RSS of one victim process under four such connections at once, over TCP,
//! is measured by `examples/flood_rss.rs` (release mode; figures in `benches/README.md`), which
//! shares the attack code in `flood_attack/`.

mod flood_attack;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corestore_replicate::{
    ChannelSpec, Connection, ConnectionError, Driver, DriverError, Event, MuxError, MuxEvent,
    ResourceUsage, Role, StreamConfig, MAX_BUFFERED,
};
use flood_attack::{open, open_batch, sized_batch, FRAME, FULL_BATCH};
use tokio::io::DuplexStream;

/// The bounds every test holds the victim to (a few hundred KiB above one frame).
const MAX_EVENTS: usize = 1024;
const MAX_OUTPUT: usize = 1 << 20;
const MAX_INPUT: usize = FRAME + (1 << 20);
const MAX_PENDING: usize = 4096;
const MAX_STEP_MESSAGES: usize = 1 << 16;

/// `CORESTORE_FLOOD_LONG=1`: full-size floods (8M messages a batch, millions of opens).
fn long() -> bool {
    std::env::var("CORESTORE_FLOOD_LONG").is_ok_and(|v| v == "1")
}

/// Tiny messages in one batch: all a 16 MiB frame holds in long mode, 500k (with the rest of the
/// frame filled by one large message) in the short mode CI runs in debug.
fn batch_messages() -> usize {
    if long() {
        FULL_BATCH
    } else {
        500_000
    }
}

type D = Driver<DuplexStream>;

fn check_bounds(peak: ResourceUsage) {
    assert!(peak.events <= MAX_EVENTS, "{peak:?}");
    assert!(peak.output_bytes <= MAX_OUTPUT, "{peak:?}");
    assert!(peak.input_bytes <= MAX_INPUT, "{peak:?}");
    assert!(peak.buffered_bytes <= MAX_BUFFERED + FRAME, "{peak:?}");
    assert!(peak.pending_opens <= MAX_PENDING, "{peak:?}");
    assert!(peak.remote_ids <= MAX_PENDING + 16, "{peak:?}");
    assert!(peak.step_messages <= MAX_STEP_MESSAGES, "{peak:?}");
}

async fn next(d: &mut D) -> Result<Option<Event>, DriverError> {
    d.next_event().await
}

/// A connected attacker (initiator) and victim (responder) over a duplex of `buffer` bytes.
async fn connect(buffer: usize, victim_config: StreamConfig) -> (D, D) {
    let (a, b) = tokio::io::duplex(buffer);
    let mut attacker =
        Driver::new(a, Connection::new(Role::Initiator, StreamConfig::new(), Instant::now()));
    let mut victim =
        Driver::new(b, Connection::new(Role::Responder, victim_config, Instant::now()));
    let (ea, ev) = tokio::join!(next(&mut attacker), next(&mut victim));
    assert!(matches!(ea.unwrap(), Some(Event::Connected { .. })));
    assert!(matches!(ev.unwrap(), Some(Event::Connected { .. })));
    (attacker, victim)
}

/// A well-behaved pair on the same runtime: `rounds` request/response round trips.
async fn well_behaved(rounds: u32) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut i =
        Driver::new(a, Connection::new(Role::Initiator, StreamConfig::new(), Instant::now()));
    let mut r =
        Driver::new(b, Connection::new(Role::Responder, StreamConfig::new(), Instant::now()));
    let spec = ChannelSpec::new("good");
    let ci = i.connection().mux().open_channel(&spec, b"").unwrap();
    let cr = r.connection().mux().open_channel(&spec, b"").unwrap();
    let server = tokio::spawn(async move {
        while let Some(ev) = r.next_event().await.unwrap() {
            if let Event::Mux(MuxEvent::Message { payload, .. }) = ev {
                r.connection().mux().send(cr, 1, &payload).unwrap();
            }
        }
    });
    let mut done = 0u32;
    i.connection().mux().send(ci, 0, &done.to_le_bytes()).unwrap();
    while done < rounds {
        if let Some(Event::Mux(MuxEvent::Message { payload, .. })) = i.next_event().await.unwrap() {
            assert_eq!(payload[..], done.to_le_bytes());
            done += 1;
            i.connection().mux().send(ci, 0, &done.to_le_bytes()).unwrap();
        }
    }
    i.connection().end(Instant::now()).unwrap();
    drop(i);
    let _ = server.await;
}

/// `00 00 uint(channel) (01 00)* [uint(len) 00 filler]`: a full 16 MiB batch of
/// [`batch_messages`] 2-byte messages (type 0, no payload) to `channel`, padded with one large
/// message.
fn message_batch(channel: u64) -> Vec<u8> {
    sized_batch(channel, FRAME, batch_messages())
}

/// Like [`message_batch`] in a frame of `size` bytes: 4 MiB in the short mode where the
/// flood repeats (debug-mode encryption of 16 MiB frames dominates the test time otherwise).
fn repeated_batch(channel: u64) -> Vec<u8> {
    sized_batch(channel, if long() { FRAME } else { 4 << 20 }, batch_messages())
}

/// Opens a remote sends in one flood: a million in long mode, 100k in the short mode.
fn opens() -> u64 {
    if long() {
        1_000_000
    } else {
        100_000
    }
}

type Flooder = flood_attack::Flooder<tokio::io::WriteHalf<DuplexStream>>;

/// Takes the attacker apart; with `read`, a task reads and drops everything the victim sends.
fn flooder(attacker: D, read: bool) -> (Flooder, Option<tokio::task::JoinHandle<()>>) {
    let (io, conn) = attacker.into_parts();
    let (mut reader, writer) = tokio::io::split(io);
    let sink = read.then(|| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
        })
    });
    (Flooder::new(writer, conn), sink)
}

/// Sends raw mux frames from the attacker (round after round) until `stop`, then ends its side.
fn flood(attacker: D, frames: Vec<Vec<u8>>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut flooder, sink) = flooder(attacker, true);
        'outer: loop {
            for frame in &frames {
                if stop.load(Ordering::Relaxed) || flooder.send(frame).await.is_err() {
                    break 'outer;
                }
            }
        }
        flooder.end().await;
        if let Some(sink) = sink {
            let _ = sink.await;
        }
    })
}

/// Sends `frames` once, then ends the attacker's side.
fn send_all(attacker: D, frames: Vec<Vec<u8>>) -> tokio::task::JoinHandle<()> {
    flood_once(attacker, frames)
}

fn flood_once(attacker: D, frames: Vec<Vec<u8>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut flooder, sink) = flooder(attacker, true);
        for frame in &frames {
            if flooder.send(frame).await.is_err() {
                break;
            }
        }
        flooder.end().await;
        if let Some(sink) = sink {
            let _ = sink.await;
        }
    })
}

/// Runs the victim's event loop (with `app` answering events) until the stream ends or fails.
async fn serve(
    victim: &mut D,
    mut app: impl FnMut(&mut Connection, &Event),
) -> Result<(), DriverError> {
    while let Some(ev) = victim.next_event().await? {
        app(victim.connection(), &ev);
        if matches!(ev, Event::Ended) {
            victim.connection().end(Instant::now())?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn flood_batch_on_an_open_channel_is_processed_in_bounded_steps() {
    let (mut attacker, mut victim) = connect(64 * 1024, StreamConfig::new()).await;
    let spec = ChannelSpec::new("flood");
    attacker.connection().mux().open_channel(&spec, b"").unwrap();
    victim.connection().mux().open_channel(&spec, b"").unwrap();
    attacker.flush().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(attacker, vec![repeated_batch(1)], stop.clone());
    let mut received = 0u64;
    let good = tokio::spawn(well_behaved(20));
    let mut good = Some(good);
    let result = serve(&mut victim, |_, ev| {
        if let Event::Mux(MuxEvent::Message { .. }) = ev {
            received += 1;
        }
        // Stop once the well-behaved pair finished and a whole batch went through.
        if received >= batch_messages() as u64
            && good.as_ref().is_some_and(tokio::task::JoinHandle::is_finished)
        {
            stop.store(true, Ordering::Relaxed);
        }
    })
    .await;
    result.unwrap();
    good.take().unwrap().await.unwrap();
    flooder.await.unwrap();
    assert!(received >= batch_messages() as u64, "{received}");
    check_bounds(victim.connection().peak_usage());
}

#[tokio::test(flavor = "current_thread")]
async fn flood_batch_on_an_unopened_channel_is_dropped_in_bounded_steps() {
    let (mut attacker, mut victim) = connect(64 * 1024, StreamConfig::new()).await;
    // The victim never opens "nobody": it rejects the open, the attacker floods the id anyway.
    attacker.connection().mux().open_channel(&ChannelSpec::new("nobody"), b"").unwrap();
    attacker.flush().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(attacker, vec![message_batch(1)], stop.clone());
    let good = well_behaved(20);
    let stopper = async {
        good.await;
        stop.store(true, Ordering::Relaxed);
    };
    let (result, ()) = tokio::join!(serve(&mut victim, |_, _| {}), stopper);
    result.unwrap();
    flooder.await.unwrap();
    let peak = victim.connection().peak_usage();
    check_bounds(peak);
    assert_eq!(peak.events, 1, "only Ended: {peak:?}");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn flood_batch_on_a_paired_unaccepted_channel_holds_only_max_buffered() {
    let (mut attacker, mut victim) = connect(64 * 1024, StreamConfig::new()).await;
    victim.connection().mux().pair("flood", None);
    attacker.connection().mux().open_channel(&ChannelSpec::new("flood"), b"").unwrap();
    attacker.flush().await.unwrap();
    // One batch of messages for the channel: far more than MAX_BUFFERED, and a victim that
    // buffered it all (no backpressure) would read on to the attacker's end instead of stalling.
    let flooder = flood_once(attacker, vec![repeated_batch(1)]);
    // The application does not answer the open: the victim stops reading, holding at most
    // MAX_BUFFERED (plus one frame), while the well-behaved pair completes. With the clock
    // paused, the hour below only passes once every task is idle: the victim is stalled.
    let stalled = async {
        loop {
            match tokio::time::timeout(Duration::from_secs(3600), victim.next_event()).await {
                Err(_idle) => break,
                Ok(Ok(Some(Event::Mux(MuxEvent::RemoteOpen { .. })))) => {}
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::join!(stalled, well_behaved(20));
    let usage = victim.connection().usage();
    assert!(usage.buffered_bytes > MAX_BUFFERED / 2, "{usage:?}");
    assert!(usage.buffered_bytes <= MAX_BUFFERED + 600, "{usage:?}");
    assert!(!victim.connection().wants_input() && !victim.connection().can_progress());
    check_bounds(victim.connection().peak_usage());
    // Now it refuses: the buffered messages go, the rest of the flood is dropped.
    victim.connection().mux().reject_remote("flood", None);
    serve(&mut victim, |_, _| {}).await.unwrap();
    flooder.await.unwrap();
    let peak = victim.connection().peak_usage();
    check_bounds(peak);
    assert!(peak.buffered_bytes <= MAX_BUFFERED + 600, "{peak:?}");
    assert_eq!(victim.connection().usage().buffered_bytes, 0);
}

/// Frames each holding one `open` with id 0, every one answered by its own reject.
fn id0_opens() -> Vec<Vec<u8>> {
    flood_attack::id0_opens(4096)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn never_reading_peer_flooding_id0_opens_is_bounded_and_times_out() {
    let timeout = Duration::from_secs(30);
    let (attacker, mut victim) =
        connect(16 * 1024, StreamConfig::new().idle_timeout(timeout)).await;
    // The attacker writes and never reads: 64 MiB of opens at most (an unbounded victim would
    // take them all, and queue more than that in replies).
    let frames = id0_opens();
    let flooder = tokio::spawn(async move {
        let (mut flooder, _) = flooder(attacker, false);
        'outer: for _ in 0..640 {
            for frame in &frames {
                if flooder.send(frame).await.is_err() {
                    break 'outer;
                }
            }
        }
        flooder
    });
    // The victim stops reading once its replies are stuck; the good pair is served meanwhile.
    let (result, ()) = tokio::join!(serve(&mut victim, |_, _| {}), well_behaved(20));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Connection(ConnectionError::Stream(
                corestore_replicate::StreamError::TimedOut { .. }
            ))
        ),
        "{err:?}"
    );
    check_bounds(victim.connection().peak_usage());
    drop(victim);
    drop(flooder.await.unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn millions_of_opens_unanswered_end_with_a_typed_error() {
    let (attacker, mut victim) = connect(64 * 1024, StreamConfig::new()).await;
    victim.connection().mux().pair("flood", None);
    let flooder = send_all(attacker, vec![open_batch(1, opens(), "flood")]);
    let (result, ()) = tokio::join!(serve(&mut victim, |_, _| {}), well_behaved(20));
    let err = result.unwrap_err();
    assert!(
        matches!(err, DriverError::Connection(ConnectionError::Mux(MuxError::OpenBacklog { .. }))),
        "{err:?}"
    );
    check_bounds(victim.connection().peak_usage());
    drop(victim);
    flooder.await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn millions_of_opens_rejected_one_by_one_reclaim_their_ids() {
    let (attacker, mut victim) = connect(64 * 1024, StreamConfig::new()).await;
    victim.connection().mux().pair("flood", None);
    // Fresh ids every time: a remote may skip ahead by one only, but never reuse a live one.
    let flooder = send_all(attacker, vec![open_batch(1, opens(), "flood")]);
    let mut asked = 0u32;
    let (result, ()) = tokio::join!(
        serve(&mut victim, |conn, ev| {
            if let Event::Mux(MuxEvent::RemoteOpen { protocol, id }) = ev {
                asked += 1;
                conn.mux().reject_remote(protocol, id.as_deref());
            }
        }),
        well_behaved(20)
    );
    result.unwrap();
    flooder.await.unwrap();
    assert_eq!(u64::from(asked), opens());
    check_bounds(victim.connection().peak_usage());
    assert_eq!(victim.connection().usage().remote_ids, 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_duplicate_open_the_application_cannot_accept_never_backlogs_the_mux() {
    let (mut attacker, mut victim) = connect(64 * 1024, StreamConfig::new()).await;
    let spec = ChannelSpec::new("dup").id(*b"k");
    victim.connection().mux().pair("dup", None);
    attacker.connection().mux().open_channel(&spec, b"").unwrap();
    let cv = victim.connection().mux().open_channel(&spec, b"").unwrap();
    attacker.flush().await.unwrap();
    // A second open of the same channel under a new id, then messages for it, then one on the
    // real channel (the attacker's local id 1).
    let mut dup = vec![0];
    dup.extend(open(2, "dup", Some(b"k")));
    let mut frames = vec![dup];
    frames.extend(std::iter::repeat_n(vec![2, 0, 1, 2, 3], 2000));
    frames.push([&[1u8, 5][..], b"still-alive"].concat());
    let flooder = send_all(attacker, frames);
    let mut alive = false;
    // With the clock paused, the hour passes only if every task is idle: a backlogged mux that
    // stopped reading fails here instead of hanging the test.
    let (result, ()) = tokio::join!(
        tokio::time::timeout(
            Duration::from_secs(3600),
            serve(&mut victim, |conn, ev| match ev {
                Event::Mux(MuxEvent::RemoteOpen { .. }) => {
                    // The application tries to accept and gets AlreadyOpen; it does not reject.
                    assert!(conn.mux().open_channel(&spec, b"").is_err());
                }
                Event::Mux(MuxEvent::Message { channel, payload, .. }) if *channel == cv => {
                    alive |= payload[..] == b"still-alive"[..];
                }
                _ => {}
            })
        ),
        well_behaved(20)
    );
    result.expect("the victim stalled: the mux stayed backlogged").unwrap();
    flooder.await.unwrap();
    assert!(alive, "the real channel's message arrived after the duplicate's flood");
    let usage = victim.connection().usage();
    assert_eq!((usage.buffered_bytes, usage.pending_opens), (0, 0), "{usage:?}");
    check_bounds(victim.connection().peak_usage());
}

/// Issue 13 §2 (the process serving a flood stays responsive): a victim working through a flood
/// of messages for a channel nobody opened gives the thread back every few bounded steps, even
/// when the whole flood is already buffered and no step produces an event. Counted, not timed:
/// another task on the same single-threaded runtime gets a turn at least every fourth step (one
/// pass of the driver's loop runs up to three: in `poll_event` and in two `poll_transmit`s; 41
/// turns for 122 steps here). A driver that yields only once tokio's cooperative budget runs out
/// gives it one turn in all; `examples/flood_rss.rs` measures what that means for honest peers'
/// latency.
#[tokio::test(flavor = "current_thread")]
async fn a_flooded_victim_gives_the_thread_back_every_few_steps() {
    let (mut attacker, mut victim) = connect(64 << 20, StreamConfig::new()).await;
    let spec = ChannelSpec::new("flood");
    attacker.connection().mux().open_channel(&spec, b"").unwrap();
    let cv = victim.connection().mux().open_channel(&spec, b"").unwrap();
    attacker.flush().await.unwrap();
    // All of it is written before the victim runs: four 1 MiB frames of 500k messages each for
    // channel 2 (nobody's), then one message on the real channel (the attacker's local id 1).
    let (frames, per_frame) = (4, 500_000);
    let (mut flooder, sink) = flooder(attacker, true);
    for _ in 0..frames {
        flooder.send(&sized_batch(2, 1 << 20, per_frame)).await.unwrap();
    }
    flooder.send(&[&[1u8, 5][..], b"done"].concat()).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let served = {
        let done = done.clone();
        tokio::spawn(async move {
            while let Some(ev) = victim.next_event().await.unwrap() {
                if let Event::Mux(MuxEvent::Message { channel, payload, .. }) = ev {
                    if channel == cv && payload[..] == b"done"[..] {
                        done.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            victim
        })
    };
    let mut turns = 0usize;
    while !done.load(Ordering::Relaxed) && !served.is_finished() {
        turns += 1;
        tokio::task::yield_now().await;
    }
    let victim = served.await.unwrap();
    assert!(done.load(Ordering::Relaxed), "the victim never saw the message after the flood");
    let steps = frames * per_frame / corestore_replicate::MAX_STEP_MESSAGES;
    assert!(turns >= steps / 4, "{turns} turns for the other task during {steps} steps");
    drop(victim);
    flooder.end().await;
    if let Some(sink) = sink {
        sink.await.unwrap();
    }
}
