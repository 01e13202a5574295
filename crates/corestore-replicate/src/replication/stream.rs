//! [`Replication`]: one connection task replicating any number of [`SharedCore`]s over one
//! `AsyncRead + AsyncWrite`, one `hypercore/alpha` channel per core.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use corestore_hypercore::{Data, Reorg, Request};
use corestore_keys::DiscoveryKey;
use corestore_storage::StorageError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::core::{now, Link, SharedCore};
use crate::connection::{Connection, Event};
use crate::driver::{Driver, DriverError};
use crate::mux::{ChannelId, ChannelSpec, MuxEvent};
use crate::noise::Role;
use crate::protocol::{
    Message, PeerError, PeerId, Replicator, MESSAGE_TYPES, PROTOCOL, PROTOCOL_ALIAS,
};
use crate::stream::StreamConfig;

/// Commands handled per turn before the socket gets its turn again.
const COMMANDS_PER_TURN: usize = 64;
/// How often request timeouts are checked.
const TICK: Duration = Duration::from_millis(500);

/// Asked for a core the remote opened a channel for that is not attached here: return the core
/// to replicate it (corestore loads it from storage), or `None` to refuse the channel.
pub type RemoteOpenHook = Arc<
    dyn Fn(DiscoveryKey) -> Pin<Box<dyn Future<Output = Option<SharedCore>> + Send>> + Send + Sync,
>;

/// Why a replication connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The transport failed or the remote broke the framing or mux protocol.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The remote broke the replication protocol in a way that ends the connection.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Local storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Options of a [`Replication`].
#[derive(Clone, Default)]
pub struct ReplicationOptions {
    /// The secret-stream settings (key pair, keep-alive, timeouts).
    pub stream: StreamConfig,
    /// Cores the remote asks for that are not attached (see [`RemoteOpenHook`]).
    pub on_remote_open: Option<RemoteOpenHook>,
}

impl std::fmt::Debug for ReplicationOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationOptions")
            .field("stream", &self.stream)
            .field("on_remote_open", &self.on_remote_open.is_some())
            .finish()
    }
}

/// What a connection task is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Attach(SharedCore),
    Detach(DiscoveryKey),
    Close,
    RemoteOpened {
        discovery_key: DiscoveryKey,
        core: Option<SharedCore>,
    },
    /// Work of `core`'s replicator for its peer on `channel`.
    Channel {
        channel: ChannelId,
        core: SharedCore,
        command: Box<Command>,
    },
    Send {
        message: Message,
    },
    Request {
        request: Request,
    },
    Answer {
        peer: PeerId,
        ticket: u64,
        request: Request,
    },
    Verify {
        peer: PeerId,
        data: Data,
    },
    VerifyForkProof {
        peer: PeerId,
        request: u64,
        data: Data,
    },
    ReorgAnswer {
        peer: PeerId,
        request: u64,
        data: Data,
        reorg: Box<Reorg>,
    },
    ApplyReorg {
        reorg: Box<Reorg>,
    },
    CheckConflict {
        peer: PeerId,
        data: Data,
    },
    CloseChannel {
        error: Option<PeerError>,
    },
    End {
        error: PeerError,
    },
}

/// Answers to verify, gathered from the queue for one core.
struct Verifies {
    core: SharedCore,
    items: Vec<(PeerId, Data)>,
}

/// A replication connection running in its own task. Dropping the handle does not stop it;
/// [`Replication::close`] does, and so does the remote or an error.
#[derive(Debug)]
pub struct Replication {
    handle: ReplicationHandle,
    task: JoinHandle<Result<(), ReplicationError>>,
}

/// A cloneable handle on a running [`Replication`]: attach and detach cores, close it.
#[derive(Debug, Clone)]
pub struct ReplicationHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl ReplicationHandle {
    /// Replicates `core` on this connection (a no-op when it already is).
    pub fn attach(&self, core: &SharedCore) {
        count_pending(core);
        if let Err(mpsc::error::SendError(Command::Attach(core))) =
            self.tx.send(Command::Attach(core.clone()))
        {
            Attached::new(core).settle();
        }
    }

    /// Stops replicating `core` here.
    pub fn detach(&self, core: &SharedCore) {
        let _ = self.tx.send(Command::Detach(*core.discovery_key()));
    }

    /// Ends the connection cleanly.
    pub fn close(&self) {
        let _ = self.tx.send(Command::Close);
    }

    /// True once the connection is over.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Replication {
    /// Starts replicating over `io` as `role`. Cores attach with [`Replication::attach`] at any
    /// time; channels open once the handshake is done.
    pub fn spawn<T>(io: T, role: Role, options: ReplicationOptions) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Connection::new(role, options.stream.clone(), now());
        let task = Task {
            // The task polls the driver again right after every event (its loop), so the
            // answers to a burst of requests can leave in one write.
            driver: Driver::new(io, conn).batch_writes(),
            role,
            tx: tx.clone(),
            rx,
            hook: options.on_remote_open,
            handshake_hash: None,
            cores: HashMap::new(),
            channels: HashMap::new(),
        };
        Self { handle: ReplicationHandle { tx }, task: tokio::spawn(task.run()) }
    }

    /// A cloneable handle on this connection.
    pub fn handle(&self) -> ReplicationHandle {
        self.handle.clone()
    }

    /// Replicates `core` on this connection (a no-op when it already is).
    pub fn attach(&self, core: &SharedCore) {
        self.handle.attach(core);
    }

    /// Stops replicating `core` here.
    pub fn detach(&self, core: &SharedCore) {
        self.handle.detach(core);
    }

    /// Ends the connection cleanly.
    pub fn close(&self) {
        self.handle.close();
    }

    /// True once the connection is over.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the connection to end; why it ended.
    pub async fn finished(self) -> Result<(), ReplicationError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Attached {
    core: SharedCore,
    channel: Option<ChannelId>,
    peer: Option<PeerId>,
    /// Counted in the core's `pending` until its channel opens or goes away.
    pending: bool,
}

impl Attached {
    /// Takes over one count of the core's `pending` (see [`count_pending`]).
    fn new(core: SharedCore) -> Self {
        Self { core, channel: None, peer: None, pending: true }
    }

    /// This connection stops replicating the core: its peer (if the channel opened) leaves the
    /// replicator, and its requests go to other peers.
    async fn leave(mut self) {
        self.settle();
        let Some(peer) = self.peer else { return };
        let core = self.core;
        let view = core.read().await;
        let mut state = core.lock();
        state.links.remove(&peer);
        state.replicator.remove_peer(peer, &*view, now());
        core.route(&mut state);
        drop(state);
        drop(view);
        core.notify();
    }

    fn settle(&mut self) {
        if std::mem::take(&mut self.pending) {
            let mut state = self.core.lock();
            state.pending = state.pending.saturating_sub(1);
            drop(state);
            self.core.notify();
        }
    }
}

struct Task<T> {
    driver: Driver<T>,
    role: Role,
    tx: mpsc::UnboundedSender<Command>,
    rx: mpsc::UnboundedReceiver<Command>,
    hook: Option<RemoteOpenHook>,
    handshake_hash: Option<[u8; 64]>,
    cores: HashMap<DiscoveryKey, Attached>,
    channels: HashMap<ChannelId, DiscoveryKey>,
}

/// Counts one more connection on its way to `core`, at once, so that an `update()` right after
/// `attach` already waits for it.
fn count_pending(core: &SharedCore) {
    core.lock().pending += 1;
}

fn keys_role(role: Role) -> corestore_keys::Role {
    match role {
        Role::Initiator => corestore_keys::Role::Initiator,
        Role::Responder => corestore_keys::Role::Responder,
    }
}

impl<T: AsyncRead + AsyncWrite + Send + 'static> Task<T> {
    async fn run(mut self) -> Result<(), ReplicationError> {
        let result = self.run_loop().await;
        if let Err(e) = &result {
            tracing::debug!(error = %e, "replication connection failed");
        }
        // Every peer of this connection leaves its core, whatever ended the connection.
        for (_, attached) in self.cores.drain() {
            attached.leave().await;
        }
        // Attaches that never ran stop counting as on their way.
        self.rx.close();
        while let Ok(command) = self.rx.try_recv() {
            if let Command::Attach(core) = command {
                Attached::new(core).settle();
            }
        }
        let _ = self.driver.flush().await;
        result
    }

    async fn run_loop(&mut self) -> Result<(), ReplicationError> {
        self.driver.connection().mux().pair(PROTOCOL, None);
        self.driver.connection().mux().pair(PROTOCOL_ALIAS, None);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut verifies = None;
        loop {
            for _ in 0..COMMANDS_PER_TURN {
                match self.rx.try_recv() {
                    Ok(command) => {
                        if !self.take_command(command, &mut verifies).await? {
                            return Ok(());
                        }
                    }
                    Err(_) => break,
                }
            }
            self.receive_verifies(&mut verifies).await;
            tokio::select! {
                command = self.rx.recv() => {
                    // The task holds a sender itself, so the queue never closes.
                    if let Some(command) = command {
                        if !self.take_command(command, &mut verifies).await? {
                            return Ok(());
                        }
                        self.receive_verifies(&mut verifies).await;
                    }
                }
                event = self.driver.next_event() => match event? {
                    Some(event) => {
                        self.handle_event(event).await?;
                        // The events already read are handled together, so the answers among
                        // them reach the queue back to back and are stored as one group.
                        for _ in 0..COMMANDS_PER_TURN {
                            let Some(event) = self.driver.buffered_event() else { break };
                            self.handle_event(event).await?;
                        }
                    }
                    None => return Ok(()),
                },
                _ = tick.tick() => self.handle_tick().await,
            }
        }
    }

    /// [`Task::handle_command`], except that consecutive answers to verify for one core are
    /// gathered in `verifies` (to be stored with one write by [`Task::receive_verifies`]);
    /// any other command stores the gathered ones first, so the order stays the queue's.
    async fn take_command(
        &mut self,
        command: Command,
        verifies: &mut Option<Verifies>,
    ) -> Result<bool, ReplicationError> {
        let command = match command {
            Command::Channel { channel, core, command } if self.channels.contains_key(&channel) => {
                match *command {
                    Command::Verify { peer, data } => {
                        match verifies {
                            Some(v) if v.core.ptr_eq(&core) => v.items.push((peer, data)),
                            _ => {
                                self.receive_verifies(verifies).await;
                                *verifies = Some(Verifies { core, items: vec![(peer, data)] });
                            }
                        }
                        return Ok(true);
                    }
                    command => Command::Channel { channel, core, command: Box::new(command) },
                }
            }
            command => command,
        };
        self.receive_verifies(verifies).await;
        self.handle_command(command).await
    }

    /// Verifies and stores the gathered answers of one core in one write
    /// (`Hypercore::receive_many`), then hands each verdict to the replicator.
    async fn receive_verifies(&mut self, verifies: &mut Option<Verifies>) {
        let Some(Verifies { core, items }) = verifies.take() else { return };
        let (asked, data): (Vec<(PeerId, u64)>, Vec<Data>) =
            items.into_iter().map(|(peer, d)| ((peer, d.request), d)).unzip();
        let mut view = core.write().await;
        let results = view.receive_many(data).await;
        let mut state = core.lock();
        let now = now();
        for ((peer, request), result) in asked.into_iter().zip(results) {
            state.replicator.handle_received(peer, request, result, &*view, now);
        }
        // The new head is published (dropping the write guard) before the events are:
        // whoever reacts to a `Downloaded` event by reading the head sees the block.
        drop(view);
        core.route(&mut state);
    }

    /// False when the connection should end.
    async fn handle_command(&mut self, command: Command) -> Result<bool, ReplicationError> {
        match command {
            Command::Attach(core) => self.attach(core),
            Command::Detach(dk) => {
                if let Some(channel) = self.cores.get(&dk).and_then(|a| a.channel) {
                    let _ = self.driver.connection().mux().close_channel(channel);
                    self.detach_channel(channel).await;
                }
                if let Some(mut attached) = self.cores.remove(&dk) {
                    attached.settle();
                }
            }
            Command::Close => {
                self.driver.connection().end(now()).map_err(DriverError::from)?;
                self.driver.flush().await?;
                return Ok(false);
            }
            Command::RemoteOpened { discovery_key, core } => match core {
                Some(core) if core.discovery_key() == &discovery_key => {
                    count_pending(&core);
                    self.attach(core);
                }
                _ => {
                    let mux = self.driver.connection().mux();
                    mux.reject_remote(PROTOCOL, Some(discovery_key.as_bytes()));
                    mux.reject_remote(PROTOCOL_ALIAS, Some(discovery_key.as_bytes()));
                }
            },
            Command::Channel { channel, core, command } if self.channels.contains_key(&channel) => {
                return self.handle_channel_command(channel, &core, *command).await;
            }
            // Only ever sent wrapped in `Command::Channel`.
            _ => {}
        }
        Ok(true)
    }

    async fn handle_channel_command(
        &mut self,
        channel: ChannelId,
        core: &SharedCore,
        command: Command,
    ) -> Result<bool, ReplicationError> {
        match command {
            Command::Send { message } => self.send(channel, &message),
            Command::Request { mut request } => {
                // Ask only for the tree nodes we lack, as JavaScript does: only on our own fork
                // (a reorg's hash requests are about another tree; its `nodes` are the
                // bisection's), and a hash request only when it left `nodes` to us.
                let view = core.read().await;
                if request.fork == view.fork() {
                    if let Some(b) = request.block.as_mut() {
                        b.nodes = view.missing_nodes_hint(2 * b.index);
                    }
                    if let Some(h) = request.hash.as_mut().filter(|h| h.nodes == 0) {
                        h.nodes = view.missing_nodes_hint(h.index);
                    }
                }
                drop(view);
                self.send(channel, &Message::Request(request));
            }
            Command::Answer { peer, ticket, request } => {
                let view = core.read().await;
                let result = view.create_proof(&request).await;
                let mut state = core.lock();
                state.replicator.handle_answer(peer, ticket, &request, result, &*view);
                core.route(&mut state);
            }
            Command::VerifyForkProof { peer, request, data } => {
                let view = core.read().await;
                let result = view.verify_fork_proof(data).await;
                let mut state = core.lock();
                state.replicator.handle_reorg(peer, request, result, &*view, now());
                core.route(&mut state);
            }
            Command::ReorgAnswer { peer, request, data, mut reorg } => {
                let view = core.read().await;
                let result = reorg.handle(&view, data).await.map(|()| *reorg);
                let mut state = core.lock();
                state.replicator.handle_reorg(peer, request, result, &*view, now());
                core.route(&mut state);
            }
            Command::ApplyReorg { reorg } => {
                let mut view = core.write().await;
                let result = view.apply_reorg(*reorg).await;
                let mut state = core.lock();
                state.replicator.handle_reorg_applied(result, &*view, now());
                drop(view);
                core.route(&mut state);
            }
            Command::CheckConflict { peer, data } => {
                let mut view = core.write().await;
                let result = view.check_conflict(&data).await;
                let mut state = core.lock();
                state.replicator.handle_conflict(peer, result);
                drop(view);
                core.route(&mut state);
            }
            Command::CloseChannel { error } => {
                if let Some(error) = error {
                    tracing::debug!(%error, %channel, "closing a replication channel");
                }
                let _ = self.driver.connection().mux().close_channel(channel);
                self.detach_channel(channel).await;
            }
            Command::End { error } => return Err(error.into()),
            _ => {}
        }
        Ok(true)
    }

    fn send(&mut self, channel: ChannelId, message: &Message) {
        // A channel that closed meanwhile drops the message, as protomux does.
        let _ = self.driver.connection().send(
            channel,
            message.message_type(),
            &message.encode(),
            now(),
        );
    }

    fn attach(&mut self, core: SharedCore) {
        let dk = *core.discovery_key();
        let attached = Attached::new(core);
        if self.cores.contains_key(&dk) {
            let mut attached = attached;
            attached.settle();
            return;
        }
        self.cores.insert(dk, attached);
        self.open_channel(dk);
    }

    fn open_channel(&mut self, dk: DiscoveryKey) {
        let Some(hh) = self.handshake_hash else { return };
        let Some(attached) = self.cores.get_mut(&dk) else { return };
        if attached.channel.is_some() {
            return;
        }
        let handshake = Replicator::handshake(keys_role(self.role), attached.core.key(), &hh);
        let spec = ChannelSpec::new(PROTOCOL)
            .alias(PROTOCOL_ALIAS)
            .id(*dk.as_bytes())
            .message_types(MESSAGE_TYPES);
        match self.driver.connection().mux().open_channel(&spec, &handshake) {
            Ok(channel) => {
                attached.channel = Some(channel);
                self.channels.insert(channel, dk);
            }
            Err(e) => tracing::debug!(error = %e, "replication channel not opened"),
        }
    }

    async fn detach_channel(&mut self, channel: ChannelId) {
        let Some(dk) = self.channels.remove(&channel) else { return };
        let Some(attached) = self.cores.remove(&dk) else { return };
        attached.leave().await;
    }

    async fn handle_event(&mut self, event: Event) -> Result<(), ReplicationError> {
        match event {
            Event::Connected { handshake_hash, .. } => {
                self.handshake_hash = Some(handshake_hash);
                let keys: Vec<DiscoveryKey> = self.cores.keys().copied().collect();
                for dk in keys {
                    self.open_channel(dk);
                }
            }
            Event::Mux(MuxEvent::ChannelOpened { channel, handshake }) => {
                let Some(hh) = self.handshake_hash else { return Ok(()) };
                let Some(dk) = self.channels.get(&channel) else { return Ok(()) };
                let Some(attached) = self.cores.get_mut(dk) else { return Ok(()) };
                let core = attached.core.clone();
                let added = {
                    let view = core.read().await;
                    let mut state = core.lock();
                    let added =
                        state.replicator.add_peer(&handshake, keys_role(self.role), &hh, &*view);
                    if let Ok(peer) = added {
                        attached.peer = Some(peer);
                        if std::mem::take(&mut attached.pending) {
                            state.pending = state.pending.saturating_sub(1);
                        }
                        state.links.insert(peer, Link { tx: self.tx.clone(), channel });
                        core.route(&mut state);
                    }
                    added
                };
                match added {
                    Ok(_) => core.notify(),
                    Err(PeerError::InvalidCapability) => {
                        return Err(PeerError::InvalidCapability.into());
                    }
                    Err(error) => {
                        tracing::debug!(%error, "replication channel refused");
                        let _ = self.driver.connection().mux().close_channel(channel);
                        self.detach_channel(channel).await;
                    }
                }
            }
            Event::Mux(MuxEvent::Message { channel, message_type, payload }) => {
                let Some(attached) = self.channels.get(&channel).and_then(|dk| self.cores.get(dk))
                else {
                    return Ok(());
                };
                let Some(peer) = attached.peer else { return Ok(()) };
                let core = attached.core.clone();
                let decoded = Message::decode(message_type, &payload);
                let view = core.read().await;
                let mut state = core.lock();
                match decoded {
                    Ok(Some(message)) => {
                        state.replicator.handle_message(peer, message, &*view, now());
                    }
                    Ok(None) => {}
                    Err(_) => state.replicator.handle_bad_message(peer, message_type),
                }
                core.route(&mut state);
            }
            Event::Mux(
                MuxEvent::ChannelClosed { channel, .. } | MuxEvent::ChannelRejected { channel },
            ) => self.detach_channel(channel).await,
            Event::Mux(MuxEvent::RemoteOpen { protocol, id }) => {
                self.remote_open(&protocol, id.as_deref());
            }
            Event::Ended => {
                self.driver.connection().end(now()).map_err(DriverError::from)?;
            }
        }
        Ok(())
    }

    fn remote_open(&mut self, protocol: &str, id: Option<&[u8]>) {
        let dk = id.and_then(|id| <[u8; 32]>::try_from(id).ok()).map(DiscoveryKey::from_bytes);
        let Some(dk) = dk else {
            self.driver.connection().mux().reject_remote(protocol, id);
            return;
        };
        // Without a hook the open waits in the mux (bounded there) for a core attached later:
        // the remote may well open first, since this task runs as soon as it is spawned.
        let Some(hook) = self.hook.clone() else { return };
        if self.cores.contains_key(&dk) {
            return;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let core = hook(dk).await;
            let _ = tx.send(Command::RemoteOpened { discovery_key: dk, core });
        });
    }

    async fn handle_tick(&mut self) {
        let at = now();
        let due: Vec<SharedCore> =
            self.cores.values().filter(|a| a.peer.is_some()).map(|a| a.core.clone()).collect();
        for core in due {
            if core.lock().replicator.poll_timeout().is_none_or(|t| t > at) {
                continue;
            }
            let view = core.read().await;
            let mut state = core.lock();
            state.replicator.handle_timeout(&*view, at);
            core.route(&mut state);
        }
    }
}
