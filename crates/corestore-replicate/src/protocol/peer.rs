//! One remote peer of a core: what it told us (sync, ranges, bitfields, wants) and what is in
//! flight with it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Instant;

use super::message::Sync;
use super::remote::RemoteBitfield;

/// A peer of one core's replicator (one channel on one connection). Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(crate) u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Blocks per `want` batch, as hypercore 11 sends them (spec §5.3, "COMPAT mode").
pub(crate) const WANT_BATCH: u64 = 1 << 21;
/// Distinct want batches remembered per peer; past this the peer is answered as if it wanted
/// everything (JavaScript's `RemoteWants.all`).
pub(crate) const MAX_REMOTE_WANTS: usize = 1024;

#[derive(Debug)]
pub(crate) struct Peer {
    /// A `sync` arrived.
    pub(crate) synced: bool,
    pub(crate) remote: Sync,
    /// Our length as the remote last acknowledged it.
    pub(crate) length_acked: u64,
    pub(crate) has: RemoteBitfield,
    /// Requests in flight with this peer, and how many it may have.
    pub(crate) inflight: u32,
    pub(crate) window: u32,
    /// No new requests go to this peer before this instant (it let one time out).
    pub(crate) stalled_until: Option<Instant>,
    /// The remote length an upgrade from this peer last failed at (no retry until it changes).
    pub(crate) upgrade_failed_at: Option<u64>,
    /// The peer's requests waiting for an answer: id → ticket of the latest request with it.
    pub(crate) remote_requests: HashMap<u64, u64>,
    pub(crate) next_ticket: u64,
    pub(crate) invalid_requests: u32,
    /// Want batches we sent to this peer.
    pub(crate) wants_sent: BTreeSet<u64>,
    /// Want batches the peer sent us (`None`: it wants everything).
    pub(crate) remote_wants: Option<BTreeSet<u64>>,
    /// The length we last told the peer we have contiguously (`range {0, n}`).
    pub(crate) announced_contiguous: u64,
    pub(crate) last_extension_sent: String,
    pub(crate) last_extension_received: String,
}

impl Peer {
    pub(crate) fn new(window: u32) -> Self {
        Self {
            synced: false,
            remote: Sync { uploading: true, downloading: true, ..Sync::default() },
            length_acked: 0,
            has: RemoteBitfield::default(),
            inflight: 0,
            window,
            stalled_until: None,
            upgrade_failed_at: None,
            remote_requests: HashMap::new(),
            next_ticket: 0,
            invalid_requests: 0,
            wants_sent: BTreeSet::new(),
            remote_wants: Some(BTreeSet::new()),
            announced_contiguous: 0,
            last_extension_sent: String::new(),
            last_extension_received: String::new(),
        }
    }

    /// True when the remote has told us it has block `index`.
    pub(crate) fn has_block(&self, index: u64) -> bool {
        self.has.get(index)
    }

    /// True when another request may go to this peer now.
    pub(crate) fn has_room(&self, now: Instant) -> bool {
        self.synced
            && self.remote.uploading
            && self.inflight < self.window
            && self.stalled_until.is_none_or(|t| now >= t)
    }

    /// Records a want batch of the remote; false when it was already known.
    pub(crate) fn add_remote_want(&mut self, batch: u64) -> bool {
        let Some(wants) = &mut self.remote_wants else { return false };
        if wants.len() >= MAX_REMOTE_WANTS {
            self.remote_wants = None;
            return true;
        }
        wants.insert(batch)
    }

    /// True when the remote asked about the batch holding `index`.
    pub(crate) fn remote_wants(&self, index: u64) -> bool {
        self.remote_wants.as_ref().is_none_or(|w| w.contains(&(index / WANT_BATCH)))
    }
}
