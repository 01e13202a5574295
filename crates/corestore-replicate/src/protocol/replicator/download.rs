//! The download side: what to ask whom, and what came back.

use super::{
    Action, Applied, CoreView, Data, Inflight, Instant, Message, NoData, NodeRequest, Peer,
    PeerError, PeerId, RangeId, RangeWant, ReceiveError, Replicator, ReplicatorEvent, Request,
    UpgradeRequest, Want, Wanted, SCAN_LIMIT, WANT_BATCH,
};

impl Replicator {
    pub(super) fn on_data(&mut self, id: PeerId, data: Data) {
        if data.request == 0 && data.upgrade.as_ref().is_some_and(|u| u.start == 0) {
            // Always heard: a possible conflict proof (two signed trees at one fork).
            self.actions.push_back(Action::CheckConflict { peer: id, data });
            return;
        }
        let Some(inflight) = self.inflight.get_mut(&data.request) else { return };
        if inflight.peer != id || !matches(&inflight.request, &data) {
            return; // not an answer to a request of ours (JavaScript's `_matchingRequest`)
        }
        inflight.block_bytes = data.block.as_ref().map_or(0, |b| b.value.len() as u64);
        let request = data.request;
        match inflight.what {
            Wanted::Block(_) | Wanted::Upgrade => {
                self.actions.push_back(Action::Verify { peer: id, data });
            }
            Wanted::ForkProof => {
                self.actions.push_back(Action::VerifyForkProof { peer: id, request, data });
            }
            Wanted::ReorgHash => {
                if let Some(reorg) = self.reorg.as_mut().and_then(|r| r.pending.take()) {
                    self.actions.push_back(Action::ReorgAnswer { peer: id, request, data, reorg });
                }
            }
        }
    }

    /// The outcome of an [`Action::Verify`] for the answer to `request`.
    pub fn handle_received(
        &mut self,
        id: PeerId,
        request: u64,
        result: Result<Applied, ReceiveError>,
        core: &impl CoreView,
        now: Instant,
    ) {
        let Some(inflight) = self.inflight.get(&request) else { return };
        if inflight.peer != id {
            return;
        }
        let bytes = inflight.block_bytes;
        let what = inflight.what;
        // An answer that verifies but brings nothing asked for counts as `noData`, as in
        // JavaScript (`verify` false → `_onnodata`): no retry loop on a peer that answers empty.
        let delivered = match (&result, what) {
            (Ok(a), Wanted::Block(index)) => a.block == Some(index),
            (Ok(a), Wanted::Upgrade) => a.upgraded,
            (Ok(_), _) => true,
            (Err(_), _) => false,
        };
        self.release_request(request, !delivered);
        match result {
            Ok(_) if !delivered => {
                if let Some(p) = self.peers.get_mut(&id) {
                    match what {
                        Wanted::Block(index) => p.has.set_range(index, index + 1, false),
                        _ => p.upgrade_failed_at = Some(p.remote.length),
                    }
                }
            }
            Ok(applied) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.window = (p.window + 1).min(self.config.max_window);
                }
                if let Some(index) = applied.block {
                    self.actions.push_back(Action::Event(ReplicatorEvent::Downloaded {
                        peer: id,
                        index,
                        bytes,
                    }));
                    self.announce_block(index, core);
                }
                if applied.upgraded {
                    self.actions.push_back(Action::Event(ReplicatorEvent::Upgraded {
                        length: applied.length,
                    }));
                    let ids: Vec<PeerId> = self.peers.keys().copied().collect();
                    for p in ids {
                        self.send_sync(p, core);
                    }
                }
            }
            Err(ReceiveError::Invalid(_)) => {
                self.drop_peer(id, PeerError::InvalidData { request }, false);
            }
            Err(e) => {
                // Stale (the core moved on: ask again) or a local storage failure.
                tracing::debug!(%id, request, error = %e, "received data not applied");
            }
        }
        self.schedule(core, now);
    }

    pub(super) fn on_no_data(&mut self, id: PeerId, n: NoData, core: &impl CoreView, now: Instant) {
        let Some(inflight) = self.inflight.get(&n.request) else { return };
        if inflight.peer != id {
            return;
        }
        let what = inflight.what;
        self.forget_request(n.request);
        if let Some(p) = self.peers.get_mut(&id) {
            match what {
                Wanted::Block(index) => p.has.set_range(index, index + 1, false),
                // No retry from this peer until it announces another length.
                Wanted::Upgrade | Wanted::ForkProof | Wanted::ReorgHash => {
                    p.upgrade_failed_at = Some(p.remote.length);
                }
            }
        }
        if matches!(what, Wanted::ForkProof | Wanted::ReorgHash) {
            self.reorg = None;
        }
        self.schedule(core, now);
    }

    /// Asks for block `index` (one more caller waits for it).
    pub fn want_block(&mut self, index: u64, core: &impl CoreView, now: Instant) {
        *self.blocks.entry(index).or_insert(0) += 1;
        self.schedule(core, now);
    }

    /// One caller of [`Replicator::want_block`] gave up; the last one cancels the request.
    pub fn unwant_block(&mut self, index: u64) {
        let Some(count) = self.blocks.get_mut(&index) else { return };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.blocks.remove(&index);
        let in_range =
            self.ranges.values().any(|r| r.start <= index && r.end.is_none_or(|e| index < e));
        if in_range {
            return;
        }
        if let Some(request) = self.inflight_blocks.get(&index).copied() {
            let peer = self.inflight.get(&request).map(|r| r.peer);
            self.forget_request(request);
            if let Some(peer) = peer {
                self.actions.push_back(Action::Send { peer, message: Message::Cancel { request } });
            }
        }
    }

    /// Downloads blocks `[start, end)` (`end = None`: every block, live).
    pub fn want_range(
        &mut self,
        start: u64,
        end: Option<u64>,
        core: &impl CoreView,
        now: Instant,
    ) -> RangeId {
        let id = RangeId(self.next_range);
        self.next_range += 1;
        self.ranges.insert(id, RangeWant { start, end, cursor: start });
        self.schedule(core, now);
        id
    }

    /// Stops a download range.
    pub fn unwant_range(&mut self, id: RangeId) {
        self.ranges.remove(&id);
    }

    /// Asks peers for an upgrade now (the `update()` of a session).
    pub fn want_upgrade(&mut self, core: &impl CoreView, now: Instant) {
        self.schedule(core, now);
    }

    /// The core grew locally (an append): tells every peer.
    pub fn handle_append(&mut self, core: &impl CoreView) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.send_sync(id, core);
            self.announce_contiguous(id, core);
        }
    }

    /// A request that will not be answered (failed, cancelled, timed out, peer gone): its block
    /// may be asked for again.
    pub(super) fn forget_request(&mut self, id: u64) {
        self.release_request(id, true);
    }

    /// Drops request `id`; with `rewind`, range scans go back to its block so it is asked for
    /// again (a block that was stored needs no rewind).
    pub(super) fn release_request(&mut self, id: u64, rewind: bool) {
        let Some(r) = self.inflight.remove(&id) else { return };
        match r.what {
            Wanted::Block(index) => {
                if self.inflight_blocks.get(&index) == Some(&id) {
                    self.inflight_blocks.remove(&index);
                }
                if rewind {
                    for range in self.ranges.values_mut() {
                        range.cursor = range.cursor.min(index);
                    }
                }
            }
            Wanted::Upgrade => {
                if self.upgrade_inflight == Some(id) {
                    self.upgrade_inflight = None;
                }
            }
            Wanted::ForkProof | Wanted::ReorgHash => {
                // A fork proof or bisection step that will not come ends the reorg; that peer
                // is not asked again for this length (a silent fork claim blocks nothing).
                if rewind && self.reorg.as_ref().is_some_and(|s| s.peer == r.peer) {
                    self.reorg = None;
                    if let Some(p) = self.peers.get_mut(&r.peer) {
                        p.upgrade_failed_at = Some(p.remote.length);
                    }
                }
            }
        }
        if let Some(p) = self.peers.get_mut(&r.peer) {
            p.inflight = p.inflight.saturating_sub(1);
        }
    }

    pub(super) fn send_request(
        &mut self,
        peer: PeerId,
        what: Wanted,
        mut request: Request,
        now: Instant,
    ) {
        self.next_request += 1;
        request.id = self.next_request;
        let id = request.id;
        match what {
            Wanted::Block(index) => {
                self.inflight_blocks.insert(index, id);
            }
            Wanted::Upgrade => self.upgrade_inflight = Some(id),
            Wanted::ForkProof | Wanted::ReorgHash => {}
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.inflight += 1;
        }
        let deadline = now + self.config.request_timeout;
        let inflight = Inflight { peer, what, request: request.clone(), deadline, block_bytes: 0 };
        self.inflight.insert(id, inflight);
        self.actions.push_back(Action::Request { peer, request });
    }

    /// Sends what can be sent: an upgrade first, then wanted blocks, then range blocks, spread
    /// over the peers that have them, within each peer's window.
    pub(super) fn schedule(&mut self, core: &impl CoreView, now: Instant) {
        self.schedule_upgrade(core, now);
        let mut order: Vec<PeerId> = self.peers.keys().copied().collect();
        loop {
            order.sort_by_key(|id| self.peers.get(id).map_or(u32::MAX, |p| p.inflight));
            let mut progressed = false;
            for &id in &order {
                if self.peers.get(&id).is_some_and(|p| p.has_room(now)) {
                    if let Some((index, priority)) = self.next_block(id, core) {
                        let request = Request {
                            fork: core.fork(),
                            block: Some(NodeRequest { index, nodes: 0 }),
                            priority,
                            ..Request::default()
                        };
                        self.send_request(id, Wanted::Block(index), request, now);
                        progressed = true;
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    pub(super) fn schedule_upgrade(&mut self, core: &impl CoreView, now: Instant) {
        if self.upgrade_inflight.is_some() {
            return;
        }
        let length = core.length();
        let fork = core.fork();
        let best = self
            .peers
            .iter()
            .filter(|(_, p)| p.has_room(now) && can_upgrade_from(p, core))
            .max_by_key(|(_, p)| p.remote.length)
            .map(|(id, p)| (*id, p.remote.length, p.remote.has_manifest));
        if let Some((id, remote_length, remote_has_manifest)) = best {
            let request = Request {
                fork,
                upgrade: Some(UpgradeRequest { start: length, length: remote_length - length }),
                manifest: core.manifest().is_none() && remote_has_manifest,
                ..Request::default()
            };
            self.send_request(id, Wanted::Upgrade, request, now);
        }
    }

    /// The next block to ask `id` for, with its priority; sends `want`s for blocks the peer has
    /// not told us about.
    pub(super) fn next_block(&mut self, id: PeerId, core: &impl CoreView) -> Option<(u64, u64)> {
        let length = core.length();
        let fork = core.fork();
        let peer = self.peers.get(&id)?;
        if peer.remote.fork != fork {
            return None;
        }
        let mut want = None;
        let mut found = None;
        for &index in self.blocks.keys() {
            if index >= length || core.has(index) || self.inflight_blocks.contains_key(&index) {
                continue;
            }
            if peer.has_block(index) {
                found = Some((index, 1));
                break;
            }
            if want.is_none() {
                want = Some(index);
            }
        }
        if found.is_none() {
            let contiguous = core.contiguous_length();
            'ranges: for r in self.ranges.values_mut() {
                let end = r.end.unwrap_or(length).min(length);
                let mut index = r.start.max(contiguous).max(r.cursor);
                // While every block from the cursor on is stored or in flight, the cursor
                // follows: the next scan starts past them (a failed request rewinds it).
                let mut settled = true;
                let mut scanned = 0;
                while index < end && scanned < SCAN_LIMIT {
                    if !core.has(index) && !self.inflight_blocks.contains_key(&index) {
                        if peer.has_block(index) {
                            found = Some((index, 0));
                            if settled {
                                r.cursor = index + 1;
                            }
                            break 'ranges;
                        }
                        settled = false;
                        if want.is_none() {
                            want = Some(index);
                        }
                    }
                    index += 1;
                    scanned += 1;
                    if settled {
                        r.cursor = index;
                    }
                }
            }
        }
        if found.is_none() {
            if let Some(index) = want {
                self.maybe_want(id, index);
            }
        }
        found
    }

    pub(super) fn maybe_want(&mut self, id: PeerId, index: u64) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let batch = index / WANT_BATCH;
        if index < peer.has.contiguous() || !peer.wants_sent.insert(batch) {
            return;
        }
        let message =
            Message::Want(Want { start: batch * WANT_BATCH, length: WANT_BATCH, any: false });
        self.actions.push_back(Action::Send { peer: id, message });
    }
}

/// True when `peer` can grow the core: same fork, longer, it acknowledged our length (as
/// JavaScript's `_shouldUpgrade`), it did not fail to prove this length before, and the
/// signature can be checked (we have the manifest or it does).
pub(super) fn can_upgrade_from(peer: &Peer, core: &impl CoreView) -> bool {
    peer.remote.uploading
        && peer.remote.fork == core.fork()
        && peer.remote.length > core.length()
        && peer.length_acked == core.length()
        && peer.upgrade_failed_at != Some(peer.remote.length)
        && (core.manifest().is_some() || peer.remote.has_manifest)
}

/// True when `data` answers `request` (JavaScript's `_matchingRequest`).
pub(super) fn matches(request: &Request, data: &Data) -> bool {
    if data.block.as_ref().is_some_and(|b| request.block.is_none_or(|r| r.index != b.index)) {
        return false;
    }
    if data.hash.as_ref().is_some_and(|h| request.hash.is_none_or(|r| r.index != h.index)) {
        return false;
    }
    if data.seek.as_ref().is_some_and(|s| request.seek.is_none_or(|r| r.bytes != s.bytes)) {
        return false;
    }
    if data.upgrade.is_some() && request.upgrade.is_none() {
        return false;
    }
    request.fork == data.fork
}
