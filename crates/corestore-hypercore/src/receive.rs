//! [`Hypercore::receive_many`]: the block proofs of one read from the network, stored in one
//! atomic write.
//!
//! A downloader gets blocks one proof per block. Stored one by one, every block is a storage
//! batch of its own (a log write and a system call each); grouped, the proofs that arrived
//! together share one. The result is the same as [`Hypercore::receive`] on each in order.

use corestore_storage::{Hints, StorageError};

use crate::core::{stored, Applied, Hypercore, ReceiveError};
use crate::hash::Node;
use crate::message::Data;
use crate::verify::VerifiedProof;

/// Proofs stored in one write at most, and new nodes (bounds on the batch and on the nodes
/// held in memory ahead of their write, whatever the caller passes).
const GROUP_PROOFS: usize = 256;
const GROUP_NODES: usize = 4096;

/// Verified block proofs waiting for their shared write.
#[derive(Default)]
struct Group {
    /// `(position in the input, proof)`.
    proofs: Vec<(usize, VerifiedProof)>,
    /// The new nodes of the group: held in the node cache (pinned) until written, so later
    /// proofs of the group verify against them exactly as after a write of each.
    nodes: Vec<Node>,
}

impl Hypercore {
    /// Verifies and stores `data`, in order, as [`Hypercore::receive`] on each would: one
    /// result per message. Block proofs without an upgrade or a manifest are stored together,
    /// in as few atomic writes as possible (one for a whole read of pipelined answers); any
    /// other message is received on its own, after the blocks before it were written. A failed
    /// write fails every proof of its group and changes nothing.
    pub async fn receive_many(&mut self, data: Vec<Data>) -> Vec<Result<Applied, ReceiveError>> {
        let mut out: Vec<Option<Result<Applied, ReceiveError>>> =
            std::iter::repeat_with(|| None).take(data.len()).collect();
        let mut group = Group::default();
        for (at, d) in data.into_iter().enumerate() {
            let groupable = d.block.is_some()
                && d.upgrade.is_none()
                && d.manifest.is_none()
                && d.hash.is_none()
                && d.seek.is_none();
            if !groupable || group.proofs.len() >= GROUP_PROOFS || group.nodes.len() >= GROUP_NODES
            {
                self.write_group(&mut group, &mut out).await;
            }
            if !groupable {
                set(&mut out, at, self.receive(d).await);
                continue;
            }
            match self.verify(d).await {
                Ok(mut proof) => {
                    let nodes = std::mem::take(&mut proof.nodes);
                    self.cache.pin(&nodes);
                    group.nodes.extend(nodes);
                    group.proofs.push((at, proof));
                }
                Err(e) => set(&mut out, at, Err(e)),
            }
        }
        self.write_group(&mut group, &mut out).await;
        out.into_iter().map(|r| r.unwrap_or(Err(ReceiveError::Stale))).collect()
    }

    /// Writes `group` in one batch and applies it in memory; its results go to `out`.
    async fn write_group(
        &mut self,
        group: &mut Group,
        out: &mut [Option<Result<Applied, ReceiveError>>],
    ) {
        let proofs = std::mem::take(&mut group.proofs);
        let nodes = std::mem::take(&mut group.nodes);
        if proofs.is_empty() {
            return;
        }
        // The blocks not stored yet, each once (the first answer for it: the sort is stable).
        let mut blocks: Vec<(u64, &[u8])> = proofs
            .iter()
            .filter_map(|(_, proof)| proof.block.as_ref())
            .map(|(index, value)| (*index, value.as_slice()))
            .filter(|(index, _)| !self.bitfield.get(*index))
            .collect();
        blocks.sort_by_key(|(index, _)| *index);
        blocks.dedup_by_key(|(index, _)| *index);
        let fresh: Vec<u64> = blocks.iter().map(|(index, _)| *index).collect();
        let mut contiguous = self.contiguous_length;
        loop {
            contiguous = self.bitfield.first_unset(contiguous);
            if fresh.binary_search(&contiguous).is_err() {
                break;
            }
            contiguous += 1;
        }
        let contiguous = contiguous.min(self.tree.length);

        let mut batch = self.storage.batch();
        for n in &nodes {
            batch.put_tree_node(n.index, &stored(n));
        }
        for (index, value) in &blocks {
            batch.put_block(*index, value);
        }
        let staged = self.bitfield.stage_set(&fresh);
        // Pages of blocks below the new contiguous length need no write: the hint covers them.
        for (page, bytes) in staged.encoded_if(|page| {
            fresh.iter().any(|i| *i >= contiguous && i / crate::bitfield::PAGE_BITS == page)
        }) {
            batch.put_bitfield_page(page, &bytes);
        }
        if contiguous != self.contiguous_length {
            batch.put_hints(Hints { contiguous_length: contiguous });
        }
        if let Err(e) = self.storage.write(batch).await {
            // The pinned nodes were never stored: nothing of the group may stay trusted.
            self.cache.clear();
            for (at, _) in &proofs {
                set(out, *at, Err(ReceiveError::Storage(copy_error(&e))));
            }
            return;
        }
        self.bitfield.commit(staged);
        self.contiguous_length = contiguous;
        // The pinned nodes are stored now: the cache may evict again, within its bound.
        self.remember(&[]);
        self.generation += 1;
        let length = self.tree.length;
        for (at, proof) in proofs {
            let block = proof.block.map(|(index, _)| index);
            set(out, at, Ok(Applied { block, upgraded: false, length }));
        }
    }
}

fn set<T>(out: &mut [Option<T>], at: usize, value: T) {
    if let Some(slot) = out.get_mut(at) {
        *slot = Some(value);
    }
}

/// The same failure for every proof of a failed write (`StorageError` holds an `io::Error`,
/// which does not clone).
fn copy_error(e: &StorageError) -> StorageError {
    match e {
        StorageError::Io(io) => StorageError::Io(std::io::Error::new(io.kind(), io.to_string())),
        StorageError::UnsupportedFormat { found, supported } => {
            StorageError::UnsupportedFormat { found: *found, supported: *supported }
        }
        StorageError::ForeignStore => StorageError::ForeignStore,
        other => StorageError::Io(std::io::Error::other(other.to_string())),
    }
}

#[cfg(test)]
#[path = "receive_attack_tests.rs"]
mod attack_tests;
