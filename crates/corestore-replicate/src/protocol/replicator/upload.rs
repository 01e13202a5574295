//! The upload side: answering requests and wants.

use super::{
    has_manifest, Action, BitfieldSlice, CoreView, CreateProofError, Data, Message, NoData,
    PeerError, PeerId, Range, Replicator, ReplicatorEvent, Request, Want, MAX_INVALID_REQUESTS,
    MAX_REMOTE_REQUESTS, REASON_INVALID_REQUEST, REASON_NOT_AVAILABLE, WANT_BATCH,
};

impl Replicator {
    pub(super) fn on_request(&mut self, id: PeerId, request: Request) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if peer.remote_requests.len() >= MAX_REMOTE_REQUESTS
            && !peer.remote_requests.contains_key(&request.id)
        {
            self.drop_peer(id, PeerError::TooManyRequests, true);
            return;
        }
        peer.next_ticket += 1;
        let ticket = peer.next_ticket;
        peer.remote_requests.insert(request.id, ticket);
        self.actions.push_back(Action::Answer { peer: id, ticket, request });
    }

    /// The proof for an [`Action::Answer`] (or why there is none).
    pub fn handle_answer(
        &mut self,
        id: PeerId,
        ticket: u64,
        request: &Request,
        result: Result<Data, CreateProofError>,
        core: &impl CoreView,
    ) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if peer.remote_requests.get(&request.id) != Some(&ticket) {
            return; // cancelled, or replaced by a newer request with the same id
        }
        peer.remote_requests.remove(&request.id);
        let message = match result {
            Ok(data) => {
                if let Some(b) = &data.block {
                    self.actions.push_back(Action::Event(ReplicatorEvent::Uploaded {
                        peer: id,
                        index: b.index,
                        bytes: b.value.len() as u64,
                    }));
                }
                Message::Data(data)
            }
            Err(CreateProofError::Proof(_)) => {
                peer.invalid_requests += 1;
                if peer.invalid_requests >= MAX_INVALID_REQUESTS {
                    self.drop_peer(id, PeerError::TooManyInvalidRequests, true);
                    return;
                }
                Message::NoData(NoData { request: request.id, reason: REASON_INVALID_REQUEST })
            }
            Err(_) => match core.manifest().filter(|_| request.manifest && has_manifest(core)) {
                Some(manifest) => Message::Data(Data {
                    request: request.id,
                    fork: core.fork(),
                    block: None,
                    hash: None,
                    seek: None,
                    upgrade: None,
                    manifest: Some(manifest.clone()),
                }),
                None => {
                    Message::NoData(NoData { request: request.id, reason: REASON_NOT_AVAILABLE })
                }
            },
        };
        self.actions.push_back(Action::Send { peer: id, message });
    }

    pub(super) fn on_want(&mut self, id: PeerId, want: Want, core: &impl CoreView) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if !peer.add_remote_want(want.start / WANT_BATCH) {
            return;
        }
        let length = core.length();
        let contig = core.contiguous_length().min(length);
        let end = want.start.saturating_add(want.length.min(WANT_BATCH));
        if end < contig || length == contig || (want.any && want.start < contig) {
            let message = Message::Range(Range { drop: false, start: 0, length: contig });
            self.actions.push_back(Action::Send { peer: id, message });
            return;
        }
        let end = end.min(length);
        let start = want.start - want.start % 32;
        if start >= end {
            return;
        }
        let words = (end - start).div_ceil(32);
        let bitfield: Vec<u32> = (0..words)
            .map(|w| {
                (0..32u64).fold(0u32, |acc, b| {
                    let i = start + 32 * w + b;
                    if i < end && core.has(i) {
                        acc | (1 << b)
                    } else {
                        acc
                    }
                })
            })
            .collect();
        let message = Message::Bitfield(BitfieldSlice { start, bitfield });
        self.actions.push_back(Action::Send { peer: id, message });
    }
}
