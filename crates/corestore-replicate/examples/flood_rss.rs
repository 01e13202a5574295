//! Long mode of the flood tests (issue 13 §2): peak RSS of ONE victim process serving four
//! flooding connections over TCP loopback at once, while a fifth, honest connection keeps
//! exchanging messages and its round-trip latency is measured.
//!
//! `cargo run --release -p corestore-replicate --example flood_rss` spawns a fresh victim
//! process (this binary with `victim`) per scenario, reads its `VmRSS`/`VmHWM` from
//! `/proc/<pid>/status` before and after the flood, and prints one row a scenario. The attackers
//! and the honest peer run here, in this process. `FLOOD_SECS` (default 15) is how long each
//! scenario floods; `FLOOD_VICTIM_THREADS` (default 2) the victim runtime's worker threads
//! (`1`: a current-thread runtime serving all five connections); `FLOOD_ONLY` runs only the
//! scenarios whose name contains it.

#[path = "../tests/flood_attack/mod.rs"]
mod flood_attack;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corestore_replicate::{ChannelSpec, Connection, Driver, Event, MuxEvent, Role, StreamConfig};
use flood_attack::{id0_opens, open_batch, sized_batch, Flooder, FRAME, FULL_BATCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The victim's idle timeout: a peer that stalls it (or that it stalls) is dropped after this.
const IDLE: Duration = Duration::from_secs(10);
/// Opens in one batch of the open floods.
const OPENS: u64 = 1_000_000;

fn main() -> Result<(), Error> {
    let threads: usize =
        std::env::var("FLOOD_VICTIM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    if std::env::args().nth(1).as_deref() == Some("victim") {
        let rt = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?
        };
        return rt.block_on(victim());
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(orchestrate(threads))
}

// ---------------------------------------------------------------------------------------------
// The victim process.

async fn victim() -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    let mut n = 0u32;
    loop {
        let (stream, _) = listener.accept().await?;
        n += 1;
        tokio::spawn(serve(stream, n));
    }
}

/// One server for every connection (it cannot tell attackers from honest peers): it opens
/// "good" (echoed) and "bulk" (counted), pairs "stall" (never answered) and "deny" (every open
/// rejected); anything else is rejected by the mux.
async fn serve(stream: TcpStream, n: u32) {
    let _ = stream.set_nodelay(true);
    let conn =
        Connection::new(Role::Responder, StreamConfig::new().idle_timeout(IDLE), Instant::now());
    let mut d = Driver::new(stream, conn);
    let mut messages = 0u64;
    let result: Result<(), Error> = async {
        let mux = d.connection().mux();
        let good = mux.open_channel(&ChannelSpec::new("good"), b"")?;
        mux.open_channel(&ChannelSpec::new("bulk"), b"")?;
        mux.pair("stall", None);
        mux.pair("deny", None);
        while let Some(ev) = d.next_event().await? {
            match ev {
                Event::Mux(MuxEvent::RemoteOpen { protocol, id }) if protocol == "deny" => {
                    d.connection().mux().reject_remote(&protocol, id.as_deref());
                }
                Event::Mux(MuxEvent::Message { channel, payload, .. }) => {
                    messages += 1;
                    if channel == good {
                        d.connection().mux().send(channel, 1, &payload)?;
                    }
                }
                Event::Ended => d.connection().end(Instant::now())?,
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    let peak = d.connection().peak_usage();
    let outcome = match result {
        Ok(()) => "ended".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    println!("conn {n}: {outcome}; {messages} messages; peak {peak:?}");
}

// ---------------------------------------------------------------------------------------------
// The attackers, the honest peer and the measurement.

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// 16 MiB batches of 8M tiny messages on a channel the victim opened, replies read.
    Open,
    /// The same on a channel the victim never opens (it rejects the open).
    Unopened,
    /// The same on a channel the victim paired but never accepts: it stops reading.
    Paired,
    /// Opens with id 0 (each answered by a reject), the replies never read.
    Id0,
    /// A million opens of a paired protocol the victim never answers.
    OpensUnanswered,
    /// Batches of a million opens, each rejected one by one, fresh ids every batch.
    OpensRejected,
}

struct Frames {
    batch: Arc<Vec<u8>>,
    id0: Arc<Vec<Vec<u8>>>,
}

async fn handshake(addr: std::net::SocketAddr) -> Result<Driver<TcpStream>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut d =
        Driver::new(stream, Connection::new(Role::Initiator, StreamConfig::new(), Instant::now()));
    loop {
        match d.next_event().await? {
            Some(Event::Connected { .. }) => return Ok(d),
            Some(_) => {}
            None => return Err("closed during the handshake".into()),
        }
    }
}

/// One attacker until `deadline` (its socket is dropped then, whatever it was doing).
async fn attack(
    addr: std::net::SocketAddr,
    kind: Kind,
    frames: Arc<Frames>,
    deadline: tokio::time::Instant,
) -> Result<u64, Error> {
    let mut d = handshake(addr).await?;
    let protocol = match kind {
        Kind::Open => Some("bulk"),
        Kind::Unopened => Some("nobody"),
        Kind::Paired => Some("stall"),
        _ => None,
    };
    if let Some(p) = protocol {
        d.connection().mux().open_channel(&ChannelSpec::new(p), b"")?;
        d.flush().await?;
    }
    let (io, conn) = d.into_parts();
    let (mut reader, writer) = io.into_split();
    let read = !matches!(kind, Kind::Id0);
    let sink = read.then(|| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
        })
    });
    let mut flooder = Flooder::new(writer, conn);
    let mut sent = 0u64;
    let run = async {
        match kind {
            Kind::Open | Kind::Unopened | Kind::Paired => loop {
                flooder.send(&frames.batch).await?;
                sent += 1;
            },
            Kind::Id0 => {
                for _ in 0..640 {
                    for f in frames.id0.iter() {
                        flooder.send(f).await?;
                        sent += 1;
                    }
                }
                std::future::pending::<()>().await;
                Ok::<(), std::io::Error>(())
            }
            Kind::OpensUnanswered => {
                flooder.send(&open_batch(1, OPENS, "stall")).await?;
                sent += 1;
                std::future::pending::<()>().await;
                Ok(())
            }
            Kind::OpensRejected => {
                let mut first = 1;
                loop {
                    flooder.send(&open_batch(first, OPENS, "deny")).await?;
                    first += OPENS;
                    sent += 1;
                }
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, run).await;
    // Ends the stream where the socket still takes bytes; a stalled one is just dropped.
    let _ = tokio::time::timeout(Duration::from_secs(1), flooder.end()).await;
    if let Some(sink) = sink {
        sink.abort();
    }
    Ok(sent)
}

/// The honest peer: ping-pong on "good" until `deadline`; every round trip's latency.
async fn honest(
    addr: std::net::SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<Vec<Duration>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut d =
        Driver::new(stream, Connection::new(Role::Initiator, StreamConfig::new(), Instant::now()));
    let ch = d.connection().mux().open_channel(&ChannelSpec::new("good"), b"")?;
    // Wait for the channel to open.
    loop {
        match d.next_event().await? {
            Some(Event::Mux(MuxEvent::ChannelOpened { .. })) => break,
            Some(_) => {}
            None => return Err("closed before the channel opened".into()),
        }
    }
    let mut rtts = Vec::new();
    let mut i = 0u64;
    while tokio::time::Instant::now() < deadline {
        let t = Instant::now();
        d.connection().mux().send(ch, 0, &i.to_le_bytes())?;
        loop {
            match d.next_event().await? {
                Some(Event::Mux(MuxEvent::Message { payload, .. }))
                    if payload[..] == i.to_le_bytes() =>
                {
                    break
                }
                Some(_) => {}
                None => return Err("closed".into()),
            }
        }
        rtts.push(t.elapsed());
        i += 1;
        // Pace the pings (1 ms apart) so the honest peer is a client, not a fifth flood.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(rtts)
}

/// `(VmRSS, VmHWM)` of `pid` in MiB.
fn rss(pid: u32) -> Result<(f64, f64), Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Ok((field("VmRSS:").ok_or("no VmRSS")?, field("VmHWM:").ok_or("no VmHWM")?))
}

async fn orchestrate(threads: usize) -> Result<(), Error> {
    use Kind::{Id0, Open, OpensRejected, OpensUnanswered, Paired, Unopened};

    let secs: u64 = std::env::var("FLOOD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let frames = Arc::new(Frames {
        batch: Arc::new(sized_batch(1, FRAME, FULL_BATCH)),
        id0: Arc::new(id0_opens(4096)),
    });
    let probe = open_batch(1, OPENS, "stall");
    if probe.len() > FRAME {
        return Err(
            format!("an open batch of {OPENS} is {} bytes, over a frame", probe.len()).into()
        );
    }
    let scenarios: [(&str, [Kind; 4]); 7] = [
        ("batches on an open channel", [Open; 4]),
        ("batches on an unopened channel", [Unopened; 4]),
        ("batches on a paired unaccepted channel", [Paired; 4]),
        ("id-0 opens, never reading", [Id0; 4]),
        ("1M opens unanswered", [OpensUnanswered; 4]),
        ("1M-open batches rejected one by one", [OpensRejected; 4]),
        ("mixed", [Open, Paired, Id0, OpensRejected]),
    ];
    println!(
        "victim runtime: {threads} worker thread(s); {secs} s a scenario; idle timeout {IDLE:?}"
    );
    println!("| scenario | baseline RSS | peak RSS (VmHWM) | RSS at end | peak above baseline, per attacker | honest round trips | median | p99 | worst |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let only = std::env::var("FLOOD_ONLY").unwrap_or_default();
    for (name, kinds) in scenarios.into_iter().filter(|(name, _)| name.contains(only.as_str())) {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("victim")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("victim has no pid")?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let first = lines.next_line().await?.ok_or("victim said nothing")?;
        let addr: std::net::SocketAddr = first.trim_start_matches("listening ").parse()?;
        let log = tokio::spawn(async move {
            let mut out = Vec::new();
            while let Ok(Some(l)) = lines.next_line().await {
                out.push(l);
            }
            out
        });
        let (base, _) = rss(pid)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let good = tokio::spawn(honest(addr, deadline));
        let attackers: Vec<_> = kinds
            .iter()
            .map(|&k| tokio::spawn(attack(addr, k, frames.clone(), deadline)))
            .collect();
        let mut sent = Vec::new();
        for a in attackers {
            sent.push(a.await?);
        }
        let rtts = tokio::time::timeout(Duration::from_secs(30), good).await;
        let (now_rss, hwm) = rss(pid)?;
        child.kill().await?;
        let conns = log.await?;
        let mut rtts = match rtts {
            Ok(Ok(Ok(r))) => r,
            other => {
                println!("| {name} | honest peer failed: {other:?} |");
                Vec::new()
            }
        };
        rtts.sort();
        // The round trip at `per_mille` of the sorted list, in ms.
        let pct = |per_mille: usize| {
            rtts.get((rtts.len() * per_mille / 1000).min(rtts.len().saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "| {name} | {base:.1} MiB | {hwm:.1} MiB | {now_rss:.1} MiB | {:.1} MiB | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            (hwm - base) / 4.0,
            rtts.len(),
            pct(500),
            pct(990),
            rtts.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        );
        eprintln!("  {name}: attackers sent {sent:?} frames");
        for c in conns {
            eprintln!("  {c}");
        }
    }
    Ok(())
}
