//! The replica fork path (spec `wire.md` §5.6b; hypercore `MerkleTree.reorg`, `ReorgBatch`,
//! `SessionState.reorg` and the replicator's `_onreorgdata` / `_requestForkRange`).
//!
//! When the writer truncates (fork + 1), a replica follows in three steps, all sans-IO:
//!
//! 1. [`Hypercore::verify_fork_proof`] takes the `data` answering
//!    `request{fork: remoteFork, upgrade{0, remoteLength}}`: the full signed tree of the new fork.
//!    It compares the new roots with the local nodes and returns a [`Reorg`].
//! 2. While [`Reorg::next_request`] gives a `hash` request, the replicator sends it (setting the
//!    id) and hands the answer to [`Reorg::handle`]; each answer bisects one or more tree levels
//!    towards the common ancestor (the first block that differs). Where the local nodes already
//!    decide it, no request is needed.
//! 3. [`Hypercore::apply_reorg`] truncates local data to the common ancestor and adopts the new
//!    fork's head in one atomic storage batch.
//!
//! The ancestor is found from local tree nodes: where a sparse replica lacks the nodes to compare,
//! the new tree is taken to differ there (as in JavaScript), so it may keep fewer blocks than
//! it could, never a block of the old fork.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//!
//! use corestore_hypercore::{Hypercore, NodeRequest, Request, UpgradeRequest};
//! use corestore_keys::KeyPair;
//! use corestore_storage::{MemoryStorage, Storage, StorageBackend};
//!
//! let store = |b: Arc<dyn StorageBackend>| Storage::open(b);
//! let mut writer =
//!     Hypercore::create(&store(Arc::new(MemoryStorage::new())).await?, KeyPair::generate(), None)
//!         .await?;
//! writer.append(&[b"a", b"b", b"c", b"d"]).await?;
//! let mut replica =
//!     Hypercore::open(&store(Arc::new(MemoryStorage::new())).await?, *writer.key(), None).await?;
//! let up = |start, length| Some(UpgradeRequest { start, length });
//! let request = Request { id: 1, upgrade: up(0, 4), manifest: true, ..Request::default() };
//! replica.receive(writer.create_proof(&request).await?).await?;
//! for index in 0..4 {
//!     let nodes = replica.missing_nodes(2 * index).await?;
//!     let block = Some(NodeRequest { index, nodes });
//!     replica.receive(writer.create_proof(&Request { id: 1, block, ..Request::default() }).await?).await?;
//! }
//!
//! writer.truncate(2).await?; // fork 1
//! writer.append(&[b"x"]).await?;
//! let fork_proof = Request { id: 2, fork: writer.fork(), upgrade: up(0, 3), ..Request::default() };
//! let mut reorg = replica.verify_fork_proof(writer.create_proof(&fork_proof).await?).await?;
//! while let Some(mut request) = reorg.next_request() {
//!     request.id = 3;
//!     reorg.handle(&replica, writer.create_proof(&request).await?).await?;
//! }
//! let applied = replica.apply_reorg(reorg).await?;
//! assert_eq!((applied.ancestors, applied.fork, applied.length), (2, 1, 3));
//! assert_eq!(replica.tree_hash(), writer.tree_hash());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::collections::HashMap;

use corestore_keys::{CoreKey, Manifest};
use corestore_storage::{Hints, StorageError};

use crate::core::{delete_past, stored, Hypercore};
use crate::flat;
use crate::hash::Node;
use crate::message::{Data, NodeRequest, Request};
use crate::tree::Tree;
use crate::verify::{self, TrustedTree, UpgradedHead, VerifyError};

/// Why a fork proof, a reorg answer or applying a reorg was refused (nothing changed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReorgError {
    /// The proof does not verify.
    #[error(transparent)]
    Invalid(#[from] VerifyError),
    /// A fork proof must be for a higher fork than the local one.
    #[error("fork proof for fork {remote}, the core is at fork {local}")]
    ForkNotHigher {
        /// Our fork.
        local: u64,
        /// The proof's fork.
        remote: u64,
    },
    /// A fork proof must carry an upgrade from 0 (the full tree of the new fork).
    #[error("a fork proof needs an upgrade from length 0")]
    NotAForkProof,
    /// An answer is for another fork than the reorg's.
    #[error("reorg answer for fork {remote}, the reorg is to fork {fork}")]
    WrongFork {
        /// The reorg's fork.
        fork: u64,
        /// The answer's fork.
        remote: u64,
    },
    /// An answer does not prove the node the bisection is at.
    #[error("the answer does not prove tree node {expected}")]
    UnexpectedAnswer {
        /// The tree index the bisection needs proved.
        expected: u64,
    },
    /// The reorg still needs answers ([`Reorg::next_request`]).
    #[error("the common ancestor is not found yet")]
    Unfinished,
    /// The reorg was verified by another core (or another instance of this one).
    #[error("the reorg was not verified by this core")]
    ForeignReorg,
    /// The core's fork or length changed since the fork proof was verified.
    #[error("the core changed since the fork proof was verified")]
    Stale,
    /// The core is frozen (two valid signed trees conflicted).
    #[error("the core is frozen: it takes no more upgrades")]
    Frozen,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The block range the bisection is in and the `hash` request that narrows it: prove the leaf of
/// any block in `start..end` the peer has, with `nodes` levels above it (hypercore
/// `ReorgBatch.want`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorgWant {
    /// First block of the range.
    pub start: u64,
    /// End of the range (exclusive).
    pub end: u64,
    /// The `nodes` of the `hash` request.
    pub nodes: u64,
}

/// What [`Hypercore::apply_reorg`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorgApplied {
    /// The common ancestor: blocks `0..ancestors` are kept, the rest was removed.
    pub ancestors: u64,
    /// The number of local blocks past the ancestor that were dropped (present or not).
    pub truncated: u64,
    /// The new fork.
    pub fork: u64,
    /// The new length.
    pub length: u64,
}

/// A verified fork proof on its way to the common ancestor (see the [module docs](self)).
///
/// Bound to the core that verified it and to its fork and length at that time.
#[derive(Debug, Clone)]
pub struct Reorg {
    key: CoreKey,
    instance: u64,
    base_fork: u64,
    base_length: u64,
    head: UpgradedHead,
    manifest: Option<Manifest>,
    /// Every node of the new tree seen so far, by index (for the bisection, by hash).
    seen: HashMap<u64, Node>,
    /// Nodes of the new tree whose size is established (stored when applied).
    sized: HashMap<u64, Node>,
    /// The highest new-tree node known to differ from the local tree.
    diff: Option<Node>,
    want: Option<ReorgWant>,
    ancestors: u64,
}

impl Reorg {
    /// The new fork.
    pub fn fork(&self) -> u64 {
        self.head.fork
    }

    /// The new fork's signed length.
    pub fn length(&self) -> u64 {
        self.head.length
    }

    /// The new fork's signed head.
    pub fn head(&self) -> &UpgradedHead {
        &self.head
    }

    /// The common ancestor as far as known: final once [`Reorg::is_finished`].
    pub fn ancestors(&self) -> u64 {
        self.ancestors
    }

    /// True when the common ancestor is found and [`Hypercore::apply_reorg`] can run.
    pub fn is_finished(&self) -> bool {
        self.want.is_none()
    }

    /// The range still being bisected, if any.
    pub fn want(&self) -> Option<ReorgWant> {
        self.want
    }

    /// The `hash` request (id 0: the caller sets it) for block `index` of [`Reorg::want`]; the
    /// replicator picks a block the peer has, as JavaScript does.
    pub fn request_for(&self, index: u64) -> Option<Request> {
        let want = self.want.filter(|w| (w.start..w.end).contains(&index))?;
        Some(Request {
            fork: self.head.fork,
            hash: Some(NodeRequest { index: 2 * index, nodes: want.nodes }),
            ..Request::default()
        })
    }

    /// The next `hash` request (for the first block of [`Reorg::want`]), `None` when finished.
    pub fn next_request(&self) -> Option<Request> {
        self.request_for(self.want?.start)
    }

    /// Takes the answer to a request of [`Reorg::next_request`] / [`Reorg::request_for`]: it must
    /// prove the node the bisection is at (by hash); its nodes then narrow the range. An answer
    /// that proves nothing new is an error and changes nothing.
    pub async fn handle(&mut self, core: &Hypercore, data: Data) -> Result<(), ReorgError> {
        if data.fork != self.head.fork {
            return Err(ReorgError::WrongFork { fork: self.head.fork, remote: data.fork });
        }
        let (Some(diff), Some(_)) = (self.diff, self.want) else {
            return Ok(());
        };
        let unexpected = ReorgError::UnexpectedAnswer { expected: diff.index };
        if data.hash.is_none() || data.upgrade.is_some() {
            return Err(unexpected);
        }
        let mut nodes = Vec::new();
        let mut unproved = Vec::new();
        let top = verify::verify_tree(&data, &mut nodes, &mut unproved)?;
        if top.map(|(n, _)| (n.index, n.hash)) != Some((diff.index, diff.hash)) {
            return Err(unexpected);
        }
        self.learn(nodes, &unproved);
        self.settle(core).await?;
        Ok(())
    }

    fn learn(&mut self, nodes: Vec<Node>, unproved: &[u64]) {
        for n in nodes {
            self.seen.insert(n.index, n);
            let sibling_known = self.sized.contains_key(&flat::sibling(n.index));
            if !unproved.contains(&n.index) || sibling_known {
                self.sized.insert(n.index, n);
            }
        }
    }

    /// Narrows the range from `diff` downwards with the nodes seen and the local nodes.
    async fn settle(&mut self, core: &Hypercore) -> Result<(), StorageError> {
        while let Some(diff) = self.diff {
            let start = flat::left_span(diff.index) / 2;
            let end = (flat::right_span(diff.index) / 2 + 1).min(self.base_length);
            self.ancestors = start;
            if diff.index & 1 == 0 || end <= start {
                self.want = None;
                self.diff = None;
                return Ok(());
            }
            let nodes = u64::from(flat::depth(diff.index));
            self.want = Some(ReorgWant { start, end, nodes });
            let (Some(l), Some(r)) = (flat::left_child(diff.index), flat::right_child(diff.index))
            else {
                return Ok(());
            };
            let Some(left) = self.seen.get(&l).copied() else { return Ok(()) };
            let ours = core.local_node(l, self.base_length).await?;
            if ours.map(|o| o.hash) != Some(left.hash) {
                self.diff = Some(left);
                continue;
            }
            // The left half agrees: the ancestor is at least the right half's start.
            if let Some(right) = self.seen.get(&r).copied() {
                self.diff = Some(right);
            } else {
                let start = flat::left_span(r) / 2;
                self.ancestors = start;
                self.want = (start < end).then_some(ReorgWant { start, end, nodes });
                if self.want.is_none() {
                    self.diff = None;
                }
                return Ok(());
            }
        }
        Ok(())
    }
}

impl Hypercore {
    /// A local tree node within the first `length` blocks (what a reorg compares against).
    async fn local_node(&self, index: u64, length: u64) -> Result<Option<Node>, StorageError> {
        if flat::right_span(index) / 2 >= length {
            return Ok(None);
        }
        self.tree_node(index).await
    }

    /// Verifies a fork proof: `data` at a higher fork with an upgrade from 0 (the full tree of
    /// the new fork, its signature checked against the manifest). Changes nothing; see
    /// [`crate::reorg`](self) for the steps that follow.
    pub async fn verify_fork_proof(&self, data: Data) -> Result<Reorg, ReorgError> {
        if self.frozen {
            return Err(ReorgError::Frozen);
        }
        if data.fork <= self.tree.fork {
            return Err(ReorgError::ForkNotHigher { local: self.tree.fork, remote: data.fork });
        }
        if data.upgrade.as_ref().is_none_or(|u| u.start != 0) {
            return Err(ReorgError::NotAForkProof);
        }
        let trusted = TrustedTree {
            key: &self.key,
            manifest: self.manifest.as_ref(),
            fork: data.fork,
            length: 0,
            roots: &[],
        };
        let pending = verify::verify(data, &trusted)?;
        let (nodes, unproved) = (pending.nodes.clone(), pending.unproved_sizes.clone());
        // Nothing is trusted in a tree rebuilt from 0: every section must be part of it.
        let proof = pending.complete(|_| None)?;
        let head = proof.upgrade.ok_or(ReorgError::NotAForkProof)?;
        let mut reorg = Reorg {
            key: self.key,
            instance: self.instance,
            base_fork: self.tree.fork,
            base_length: self.tree.length,
            manifest: proof.manifest,
            seen: HashMap::new(),
            sized: HashMap::new(),
            diff: None,
            want: None,
            ancestors: head.length.min(self.tree.length),
            head,
        };
        reorg.learn(nodes, &unproved);
        for root in &reorg.head.roots {
            let ours = self.local_node(root.index, self.tree.length).await?;
            if ours.map(|o| o.hash) != Some(root.hash) {
                reorg.diff = Some(*root);
                break;
            }
        }
        reorg.settle(self).await?;
        Ok(reorg)
    }

    /// Truncates local data to the reorg's common ancestor and adopts the new fork's head, in
    /// one atomic storage batch (a failed write changes nothing). Kept nodes that the new tree
    /// also proves must be equal; nodes and blocks past the ancestor are deleted first, then the
    /// new tree's nodes are written, then its head.
    pub async fn apply_reorg(&mut self, reorg: Reorg) -> Result<ReorgApplied, ReorgError> {
        if reorg.instance != self.instance || reorg.key != self.key {
            return Err(ReorgError::ForeignReorg);
        }
        if self.frozen {
            return Err(ReorgError::Frozen);
        }
        if reorg.base_fork != self.tree.fork || reorg.base_length != self.tree.length {
            return Err(ReorgError::Stale);
        }
        if !reorg.is_finished() {
            return Err(ReorgError::Unfinished);
        }
        let old = self.tree.length;
        let ancestors = reorg.ancestors.min(old).min(reorg.head.length);
        let mut write = Vec::new();
        for node in reorg.sized.values() {
            if flat::right_span(node.index) / 2 < ancestors {
                match self.tree_node(node.index).await? {
                    Some(ours) if ours == *node => continue,
                    Some(ours) if ours.hash == node.hash => {
                        return Err(VerifyError::SizeMismatch {
                            index: node.index,
                            trusted: ours.size,
                            proof: node.size,
                        }
                        .into())
                    }
                    Some(_) => {
                        return Err(VerifyError::ChecksumMismatch { index: node.index }.into())
                    }
                    None => {}
                }
            }
            write.push(*node);
        }
        write.sort_unstable_by_key(|n| n.index);
        let head = reorg.head;
        let tree = Tree {
            fork: head.fork,
            length: head.length,
            byte_length: head.byte_length,
            roots: head.roots,
            signature: head.signature,
        };

        let mut batch = self.storage.batch();
        let mut manifest = None;
        if let Some(m) = reorg.manifest.filter(|_| self.manifest.is_none()) {
            let mut auth = self.storage.auth().await?;
            auth.manifest = Some(m.clone());
            batch.put_auth(&auth);
            manifest = Some(m);
        }
        let contiguous = self.contiguous_length.min(ancestors);
        batch.put_hints(Hints { contiguous_length: contiguous });
        let staged = self.bitfield.stage(ancestors, old.max(ancestors), false);
        for (page, bytes) in staged.encoded() {
            batch.put_bitfield_page(page, &bytes);
        }
        delete_past(&mut batch, ancestors, old);
        for n in &write {
            batch.put_tree_node(n.index, &stored(n));
        }
        Self::put_head(&mut batch, &tree, head.tree_hash);
        self.storage.write(batch).await?;

        self.bitfield.commit(staged);
        self.contiguous_length = contiguous;
        if let Some(m) = manifest {
            self.verifier = Some(crate::signature::Verifier::new(self.key, &m));
            self.manifest = Some(m);
        }
        self.tree = tree;
        self.tree_hash = head.tree_hash;
        self.cache.clear();
        self.remember(&write);
        self.generation += 1;
        Ok(ReorgApplied {
            ancestors,
            truncated: old - ancestors,
            fork: self.tree.fork,
            length: self.tree.length,
        })
    }
}
