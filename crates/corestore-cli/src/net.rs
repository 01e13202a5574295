//! The network commands: `serve` (replicate the whole store with every TCP connection) and
//! `fetch` (download one core's range from a peer, verify it, exit).

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corestore::{Core, CoreEvent, CoreRef, Corestore, Download};
use futures::StreamExt;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use crate::local::{range, with_store};
use crate::print_json;
use crate::store::Open;

/// How long `fetch` waits for the peer to offer the core, and for any progress once
/// downloading, before it gives up. `CORESTORE_FETCH_TIMEOUT_MS` overrides it.
const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(15);

/// The peer timeout in force.
fn peer_timeout() -> Duration {
    std::env::var("CORESTORE_FETCH_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(DEFAULT_PEER_TIMEOUT, Duration::from_millis)
}

/// The JSON line `serve` prints once it listens.
#[derive(Debug, Serialize)]
struct ListeningLine {
    listening: String,
}

/// `corestore serve`: accepts connections until killed (or interrupted), replicating the store
/// with each; cores are loaded from storage when a peer asks for them.
pub(crate) fn serve(rt: &Runtime, dir: &Path, listen: &str) -> anyhow::Result<()> {
    with_store(rt, dir, Open::OrCreate, None, async |store| {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr().context("cannot read the listening address")?;
        print_json(&ListeningLine { listening: local.to_string() })?;
        tracing::info!(%local, "serving");
        let stop = stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => serve_connection(store, socket, peer)?,
                    // A failed accept (a peer gone before it, too many open files) does not
                    // stop the server.
                    Err(e) => tracing::warn!("accept failed: {e}"),
                },
                () = &mut stop => break,
            }
        }
        tracing::info!("stopping");
        Ok(())
    })
}

/// Replicates the store with one accepted connection, in its own task.
fn serve_connection(
    store: &Corestore,
    socket: TcpStream,
    peer: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let _ = socket.set_nodelay(true);
    let replication = store.replicate(socket, false).context("the store is closed")?;
    tracing::info!(%peer, "connection");
    tokio::spawn(async move {
        match replication.finished().await {
            Ok(()) => tracing::info!(%peer, "connection ended"),
            Err(e) => tracing::info!(%peer, "connection ended: {e}"),
        }
    });
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, so the store is closed cleanly.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling: run until killed.
        std::future::pending::<()>().await;
    }
}

/// The JSON line of `fetch`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FetchLine {
    key: String,
    length: u64,
    byte_length: u64,
    ms: u64,
}

/// `corestore fetch`: connects, learns the peer's length, downloads `start..end` (default: all
/// of it), checks every block of the range is stored and readable, and exits.
pub(crate) fn fetch(
    rt: &Runtime,
    dir: &Path,
    key: &str,
    connect: &str,
    start: Option<u64>,
    end: Option<u64>,
) -> anyhow::Result<()> {
    let wanted = CoreRef::parse_key(key).context("bad KEY")?;
    let line = with_store(rt, dir, Open::OrCreate, None, async |store| {
        let options = corestore::GetOptions::new().wait(false);
        let core = store.get_with(wanted, options).await.context("cannot open the core")?;
        // Subscribed before replication starts, so the peer's arrival is not missed.
        let mut events: Events = Box::pin(core.events());
        let began = Instant::now();
        let socket = TcpStream::connect(connect)
            .await
            .with_context(|| format!("cannot connect to {connect}"))?;
        let _ = socket.set_nodelay(true);
        let replication = store.replicate(socket, true).context("the store is closed")?;
        let handle = replication.handle();
        let finished = replication.finished();
        tokio::pin!(finished);
        let result = async {
            let timeout = peer_timeout();
            tokio::select! {
                found = tokio::time::timeout(timeout, peer_offers(&mut events)) => {
                    if !found.unwrap_or(false) {
                        bail!(
                            "the peer at {connect} does not have core {key} (it did not offer \
                             it within {:.1} s)",
                            timeout.as_secs_f64()
                        );
                    }
                }
                ended = &mut finished => bail!("{}", ended_early(connect, ended)),
            }
            tracing::debug!(ms = began.elapsed().as_millis(), "the peer offers the core");
            tokio::select! {
                updated = core.update(Some(timeout)) => { updated?; }
                ended = &mut finished => bail!("{}", ended_early(connect, ended)),
            }
            let (start, end) = range(start, end, core.length())?;
            tracing::debug!(ms = began.elapsed().as_millis(), length = core.length(), "updated");
            let download = core.download(start, Some(end)).await?;
            tokio::select! {
                followed = follow(&download, &mut events, end - start, timeout) => followed?,
                ended = &mut finished => bail!("{}", ended_early(connect, ended)),
            }
            tracing::debug!(ms = began.elapsed().as_millis(), start, end, "downloaded");
            verify(&core, start, end).await
        }
        .await;
        handle.close();
        if let Err(e) = finished.await {
            tracing::debug!("connection ended: {e}");
        }
        result?;
        Ok(FetchLine {
            key: core.key().to_hex(),
            length: core.length(),
            byte_length: core.byte_length(),
            ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    })?;
    print_json(&line)
}

/// Core events, as [`Core::events`] gives them.
type Events = std::pin::Pin<Box<dyn futures::Stream<Item = CoreEvent> + Send>>;

/// True once a peer replicates the core (it opened the core's channel); false if the core
/// closed first. A peer that has nothing we lack may close the channel again at once (idle, as
/// JavaScript does), so the arrival is what counts, not the peers still there.
async fn peer_offers(events: &mut Events) -> bool {
    while let Some(event) = events.next().await {
        if matches!(
            event,
            CoreEvent::PeerAdd | CoreEvent::Download { .. } | CoreEvent::Lagged { .. }
        ) {
            return true;
        }
    }
    false
}

/// Why a connection that ended before the fetch was done is an error.
fn ended_early(connect: &str, ended: Result<(), corestore::ReplicationError>) -> String {
    match ended {
        Ok(()) => format!("the peer at {connect} closed the connection before the fetch was done"),
        Err(e) => format!("the connection to {connect} failed: {e}"),
    }
}

/// Waits for `download` (of `total` blocks) to finish, showing a progress bar on stderr when
/// it is a terminal; fails when no block arrives for `timeout`.
async fn follow(
    download: &Download,
    events: &mut Events,
    total: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let bar = progress_bar(total);
    bar.set_position(download.progress().await.0);
    let mut bytes = 0u64;
    let began = Instant::now();
    let done = download.done();
    tokio::pin!(done);
    loop {
        tokio::select! {
            () = &mut done => break,
            event = tokio::time::timeout(timeout, events.next()) => match event {
                Ok(Some(CoreEvent::Download { bytes: size, .. })) => {
                    bytes = bytes.saturating_add(size);
                    bar.inc(1);
                    let per_sec = bytes.saturating_mul(1000)
                        / u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX).max(1);
                    bar.set_message(format!("{} at {}/s", HumanBytes(bytes), HumanBytes(per_sec)));
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("the core closed during the download"),
                Err(_) => {
                    let (have, _) = download.progress().await;
                    bar.abandon();
                    bail!(
                        "no block arrived for {:.1} s ({have} of {total} blocks); the peer may \
                         not have the whole range",
                        timeout.as_secs_f64()
                    );
                }
            },
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// A progress bar on stderr when stderr is a terminal; hidden otherwise.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} blocks, {msg}, ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Every block of `start..end` is stored and reads back (blocks are checked against the
/// signed tree as they arrive).
async fn verify(core: &Core, start: u64, end: u64) -> anyhow::Result<()> {
    for index in start..end {
        if core.get(index).await.with_context(|| format!("block {index}"))?.is_none() {
            bail!("block {index} is missing after the download");
        }
    }
    Ok(())
}
