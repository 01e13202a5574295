//! Local clears (hypercore 11 `clear` → `onhave(start, length, drop = true)`): every peer hears
//! `range { drop: true }`, so it stops asking us for those blocks.

use super::{Action, CoreView, Instant, Message, PeerId, Range, Replicator};

impl Replicator {
    /// Blocks `[start, end)` were cleared from the core (`Hypercore::clear`): every peer gets
    /// `range { drop: true, start, length }`, as JavaScript's `broadcastRange` sends it, and
    /// what we announce as contiguous starts again from `start`. A download range still running
    /// over those blocks fetches them again (drop its handle first to keep them cleared).
    pub fn handle_clear(&mut self, start: u64, end: u64, core: &impl CoreView, now: Instant) {
        if start >= end {
            return;
        }
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            peer.announced_contiguous = peer.announced_contiguous.min(start);
            let message = Message::Range(Range { drop: true, start, length: end - start });
            self.actions.push_back(Action::Send { peer: id, message });
        }
        for range in self.ranges.values_mut() {
            range.cursor = range.cursor.min(start);
        }
        self.schedule(core, now);
    }
}
