//! Forks (spec §5.6b): following a writer that truncated, a local truncate, and conflicts (two
//! valid signed trees at one fork freeze the core). The tree work is `corestore-hypercore`'s
//! [`Reorg`]; this side only picks the peer, sends the requests and passes answers along.

use corestore_hypercore::{
    ConflictError, Data, Reorg, ReorgApplied, ReorgError, Request, UpgradeRequest,
};

use super::{
    Action, CoreView, Instant, Message, PeerError, PeerId, Replicator, ReplicatorEvent, Wanted,
    SCAN_LIMIT,
};

/// A reorg in progress: the peer on the higher fork, and the [`Reorg`] while no answer of it is
/// being verified.
#[derive(Debug)]
pub(super) struct ReorgState {
    pub(super) peer: PeerId,
    /// Boxed: a reorg is rare and large, and every core holds a replicator.
    pub(super) pending: Option<Box<Reorg>>,
}

impl Replicator {
    /// A peer on a higher fork: ask it for the full signed tree of that fork.
    pub(super) fn maybe_reorg(&mut self, id: PeerId, core: &impl CoreView, now: Instant) {
        let Some(peer) = self.peers.get(&id) else { return };
        let remote = peer.remote;
        if self.reorg.is_some()
            || remote.fork <= core.fork()
            || remote.length == 0
            || !remote.uploading
            || peer.upgrade_failed_at == Some(remote.length)
        {
            return;
        }
        let request = Request {
            fork: remote.fork,
            upgrade: Some(UpgradeRequest { start: 0, length: remote.length }),
            manifest: core.manifest().is_none(),
            ..Request::default()
        };
        self.reorg = Some(Box::new(ReorgState { peer: id, pending: None }));
        self.send_request(id, Wanted::ForkProof, request, now);
    }

    /// The outcome of an [`Action::VerifyForkProof`] or [`Action::ReorgAnswer`]: the reorg goes
    /// on with its next bisection request, or is applied once the ancestor is known. A proof or
    /// answer that does not verify drops the peer.
    pub fn handle_reorg(
        &mut self,
        id: PeerId,
        request: u64,
        result: Result<Reorg, ReorgError>,
        core: &impl CoreView,
        now: Instant,
    ) {
        let Some(inflight) = self.inflight.get(&request) else { return };
        if inflight.peer != id || self.reorg.as_ref().is_none_or(|r| r.peer != id) {
            return;
        }
        self.release_request(request, false);
        let reorg = match result {
            Ok(reorg) => reorg,
            Err(error) => {
                tracing::debug!(%id, %error, "fork proof or reorg answer refused");
                self.reorg = None;
                self.drop_peer(id, PeerError::InvalidData { request }, false);
                self.schedule(core, now);
                return;
            }
        };
        if reorg.is_finished() {
            self.actions.push_back(Action::ApplyReorg { peer: id, reorg: Box::new(reorg) });
            return;
        }
        // Ask about a block of the bisected range the peer has, as JavaScript does.
        let pick = reorg.want().and_then(|w| {
            let peer = self.peers.get(&id)?;
            (w.start..w.end.min(w.start.saturating_add(SCAN_LIMIT))).find(|&i| peer.has_block(i))
        });
        let next = pick.and_then(|i| reorg.request_for(i)).or_else(|| reorg.next_request());
        match next {
            Some(next) => {
                if let Some(state) = self.reorg.as_mut() {
                    state.pending = Some(Box::new(reorg));
                }
                self.send_request(id, Wanted::ReorgHash, next, now);
            }
            None => self.actions.push_back(Action::ApplyReorg { peer: id, reorg: Box::new(reorg) }),
        }
    }

    /// The outcome of an [`Action::ApplyReorg`]: the core is on the new fork; every request of
    /// the old one is void, and every peer hears of the new head.
    pub fn handle_reorg_applied(
        &mut self,
        result: Result<ReorgApplied, ReorgError>,
        core: &impl CoreView,
        now: Instant,
    ) {
        self.reorg = None;
        match result {
            Ok(applied) => {
                self.actions.push_back(Action::Event(ReplicatorEvent::Truncated {
                    length: applied.ancestors,
                    fork: applied.fork,
                }));
                self.actions
                    .push_back(Action::Event(ReplicatorEvent::Upgraded { length: applied.length }));
                self.after_truncate(core);
            }
            Err(error) => tracing::debug!(%error, "reorg not applied"),
        }
        self.schedule(core, now);
    }

    /// The core was truncated locally (a new fork): requests of the old fork are void and every
    /// peer hears of the new head.
    pub fn handle_truncate(&mut self, core: &impl CoreView, now: Instant) {
        self.after_truncate(core);
        self.schedule(core, now);
    }

    fn after_truncate(&mut self, core: &impl CoreView) {
        let contiguous = core.contiguous_length();
        for range in self.ranges.values_mut() {
            range.cursor = range.cursor.min(contiguous);
        }
        let requests: Vec<u64> = self.inflight.keys().copied().collect();
        for request in requests {
            if let Some(peer) = self.inflight.get(&request).map(|r| r.peer) {
                self.actions.push_back(Action::Send { peer, message: Message::Cancel { request } });
            }
            self.forget_request(request);
        }
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            if let Some(p) = self.peers.get_mut(&id) {
                p.announced_contiguous = p.announced_contiguous.min(core.contiguous_length());
            }
            self.send_sync(id, core);
        }
    }

    /// The outcome of an [`Action::CheckConflict`]: with a counter-proof the core is frozen (the
    /// writer signed two trees at one fork); the peer gets our tree and the channel closes, as
    /// JavaScript does.
    pub fn handle_conflict(&mut self, id: PeerId, result: Result<Option<Data>, ConflictError>) {
        match result {
            Ok(None) => {}
            Ok(Some(counter)) => {
                self.actions.push_back(Action::Send { peer: id, message: Message::Data(counter) });
                self.actions.push_back(Action::Event(ReplicatorEvent::Frozen));
                self.drop_peer(id, PeerError::Conflict, false);
            }
            Err(ConflictError::Invalid(_)) => {
                self.drop_peer(id, PeerError::InvalidData { request: 0 }, false);
            }
            Err(error) => tracing::debug!(%id, %error, "conflict check failed"),
        }
    }
}
