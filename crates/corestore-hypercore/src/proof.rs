//! Proof creation (hypercore `lib/merkle-tree.js` `generateProof`): which tree nodes answer a
//! request, in exactly the order JavaScript sends them.
//!
//! Planning is pure ([`ProofPlan::new`]): the nodes a proof needs follow from the request and
//! the tree length alone. The caller then looks the nodes up (from a cache or storage) and
//! [`ProofPlan::assemble`]s the `data` message.

use corestore_keys::{Manifest, Prologue};

use crate::flat::Iter;
use crate::hash::Node;
use crate::message::{Data, DataBlock, DataHash, DataSeek, DataUpgrade, Request, UpgradeRequest};

/// Why a request cannot be answered with a proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The upgrade is empty or goes beyond the local length.
    #[error("invalid upgrade {start}+{length} for a core of length {local_length}")]
    InvalidUpgrade {
        /// Requested start.
        start: u64,
        /// Requested length.
        length: u64,
        /// Our length.
        local_length: u64,
    },
    /// Climbing `nodes` levels from `index` leaves the tree.
    #[error("{nodes} nodes above tree index {index} are out of bounds")]
    NodesOutOfBounds {
        /// Tree index of the proved node.
        index: u64,
        /// Levels requested.
        nodes: u64,
    },
    /// The block or hash cannot be proved with this upgrade (it lies beyond it).
    #[error("the block or hash request cannot be proved with the requested upgrade")]
    InvalidRequest,
    /// The request has a seek but no resolved seek root was given.
    #[error("the seek of the request was not resolved to a tree node")]
    SeekNotResolved,
    /// The seek's byte offset is not inside the proved subtree.
    #[error("byte offset {bytes} cannot be sought in this tree")]
    InvalidSeek {
        /// The byte offset.
        bytes: u64,
    },
    /// A tree node the proof needs is not stored.
    #[error("tree node {index} is missing")]
    MissingNode {
        /// Its tree index.
        index: u64,
    },
}

/// Where a seek request's byte offset must be looked up before planning (it needs stored node
/// sizes, so the caller resolves it; see [`ProofPlan::seek_target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTarget {
    /// Find the node holding the byte among the full roots of `to` (hypercore `seekFromHead`).
    FromHead {
        /// Head (`2 · length`) of the tree to search.
        to: u64,
    },
    /// Find the node holding the byte inside the subtree `root`, which must contain it
    /// (hypercore `seekUntrustedTree`).
    InTree {
        /// The subtree root.
        root: u64,
    },
}

/// The node indexes answering one request, per section of the `data` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProofPlan {
    fork: u64,
    block: Option<(u64, Vec<u64>)>,
    hash: Option<(u64, Vec<u64>)>,
    seek: Option<(u64, Vec<u64>)>,
    upgrade: Option<(UpgradeRequest, Vec<u64>, Vec<u64>)>,
}

/// Walk state shared by the planning steps (the `pending` object in JavaScript).
#[derive(Default)]
struct Pending {
    node: Option<Vec<u64>>,
    seek: Option<Vec<u64>>,
    upgrade: Option<Vec<u64>>,
    additional: Option<Vec<u64>>,
}

/// The normalized block/hash target.
#[derive(Clone, Copy)]
struct Target {
    has_value: bool,
    index: u64,
    nodes: u64,
    last_block: u64,
}

/// A request with the prologue applied and its ranges checked.
struct Shape {
    head: u64,
    from: u64,
    to: u64,
    upgrade: Option<UpgradeRequest>,
    target: Option<Target>,
}

const MAX_CLIMB: usize = 1024;

fn shape(request: &Request, length: u64, prologue: Option<&Prologue>) -> Result<Shape, ProofError> {
    let mut upgrade = request.upgrade;
    if let (Some(p), Some(u)) = (prologue, upgrade.as_mut()) {
        if u.start < p.length {
            u.start = 0;
            u.length = p.length;
        }
    }
    let head = length.saturating_mul(2);
    let from = upgrade.map_or(0, |u| u.start.saturating_mul(2));
    let to = upgrade.map_or(head, |u| from.saturating_add(u.length.saturating_mul(2)));
    if let Some(u) = upgrade.filter(|_| head > 0) {
        if from >= to || to > head {
            return Err(ProofError::InvalidUpgrade {
                start: u.start,
                length: u.length,
                local_length: length,
            });
        }
    }
    let target = match (request.block, request.hash) {
        (Some(b), _) => Some(Target {
            has_value: true,
            index: b.index.saturating_mul(2),
            nodes: b.nodes,
            last_block: b.index,
        }),
        (None, Some(h)) => Some(Target {
            has_value: false,
            index: h.index,
            nodes: h.nodes,
            last_block: crate::flat::right_span(h.index) / 2,
        }),
        (None, None) => None,
    };
    if request.seek.is_some() && upgrade.is_some() && target.is_some_and(|t| t.index >= from) {
        return Err(ProofError::InvalidRequest);
    }
    Ok(Shape { head, from, to, upgrade, target })
}

impl ProofPlan {
    /// For a request with a seek: where the seek's byte offset must be resolved to a tree node
    /// (the caller's answer goes to [`ProofPlan::new`] as `seek_root`). `None` without a seek.
    pub fn seek_target(
        request: &Request,
        length: u64,
        prologue: Option<&Prologue>,
    ) -> Result<Option<SeekTarget>, ProofError> {
        if request.seek.is_none() || length == 0 {
            return Ok(None);
        }
        let s = shape(request, length, prologue)?;
        match (s.target, s.upgrade) {
            (Some(t), u) if u.is_none_or(|u| t.last_block < u.start) => {
                Ok(Some(SeekTarget::InTree { root: nodes_to_root(t.index, t.nodes, s.to)? }))
            }
            (_, Some(_)) => Ok(Some(SeekTarget::FromHead { to: s.to })),
            (_, None) => Ok(None),
        }
    }

    /// Plans the answer to `request` from a tree of `length` blocks at `fork` (with the
    /// manifest's `prologue`, if any). `seek_root` is the resolved [`ProofPlan::seek_target`]
    /// when the request has a seek.
    pub fn new(
        request: &Request,
        fork: u64,
        length: u64,
        prologue: Option<&Prologue>,
        seek_root: Option<u64>,
    ) -> Result<Self, ProofError> {
        let mut plan = Self { fork, ..Self::default() };
        if length == 0 {
            return Ok(plan);
        }
        let Shape { head, from, to, upgrade, target } = shape(request, length, prologue)?;
        let seek = match (request.seek, seek_root) {
            (Some(_), Some(root)) => Some(root),
            (Some(_), None) if Self::seek_target(request, length, prologue)?.is_some() => {
                return Err(ProofError::SeekNotResolved);
            }
            _ => None,
        };
        let mut p = Pending::default();
        let mut sub_tree = head;
        match target {
            Some(t) if upgrade.is_none_or(|u| t.last_block < u.start) => {
                sub_tree = nodes_to_root(t.index, t.nodes, to)?;
                block_and_seek_proof(Some(t), seek, seek.unwrap_or(head), sub_tree, &mut p)?;
            }
            Some(t) if upgrade.is_some() => sub_tree = seek.unwrap_or(t.index),
            None if upgrade.is_some() => sub_tree = seek.unwrap_or(head),
            _ => {}
        }
        if let Some(u) = upgrade {
            upgrade_proof(target, seek, from, to, sub_tree, &mut p)?;
            if head > to {
                additional_proof(to, head, &mut p)?;
            }
            plan.upgrade =
                Some((u, p.upgrade.take().unwrap_or_default(), p.additional.unwrap_or_default()));
        }
        if let (Some(s), Some(nodes)) = (request.seek, p.seek) {
            plan.seek = Some((s.bytes, nodes));
        }
        match (request.block, request.hash, p.node) {
            (Some(b), _, Some(nodes)) => plan.block = Some((b.index, nodes)),
            (None, Some(h), Some(nodes)) => plan.hash = Some((h.index, nodes)),
            (None, None, _) => {}
            _ => return Err(ProofError::InvalidRequest),
        }
        Ok(plan)
    }

    /// The block number whose value the proof carries, if any.
    pub fn block(&self) -> Option<u64> {
        self.block.as_ref().map(|(i, _)| *i)
    }

    /// Every tree index the proof needs, in order.
    pub fn indexes(&self) -> impl Iterator<Item = u64> + '_ {
        let block = self.block.iter().flat_map(|(_, n)| n.iter());
        let hash = self.hash.iter().flat_map(|(_, n)| n.iter());
        let seek = self.seek.iter().flat_map(|(_, n)| n.iter());
        let upgrade = self.upgrade.iter().flat_map(|(_, a, b)| a.iter().chain(b.iter()));
        block.chain(hash).chain(seek).chain(upgrade).copied()
    }

    /// Builds the `data` message: `lookup` gives tree nodes, `value` the block bytes (when
    /// [`ProofPlan::block`] is some), `signature` the current signature and `manifest` the
    /// manifest when it was asked for.
    pub fn assemble(
        self,
        request_id: u64,
        mut lookup: impl FnMut(u64) -> Option<Node>,
        value: Option<Vec<u8>>,
        signature: &[u8],
        manifest: Option<Manifest>,
    ) -> Result<Data, ProofError> {
        let mut nodes = |indexes: Vec<u64>| -> Result<Vec<Node>, ProofError> {
            indexes
                .into_iter()
                .map(|index| lookup(index).ok_or(ProofError::MissingNode { index }))
                .collect()
        };
        let block = match self.block {
            Some((index, n)) => {
                Some(DataBlock { index, value: value.unwrap_or_default(), nodes: nodes(n)? })
            }
            None => None,
        };
        let hash = match self.hash {
            Some((index, n)) => Some(DataHash { index, nodes: nodes(n)? }),
            None => None,
        };
        let seek = match self.seek {
            Some((bytes, n)) => Some(DataSeek { bytes, nodes: nodes(n)? }),
            None => None,
        };
        let upgrade = match self.upgrade {
            Some((u, n, a)) => Some(DataUpgrade {
                start: u.start,
                length: u.length,
                nodes: nodes(n)?,
                additional_nodes: nodes(a)?,
                signature: (!signature.is_empty()).then(|| signature.to_vec()),
            }),
            None => None,
        };
        Ok(Data { request: request_id, fork: self.fork, block, hash, seek, upgrade, manifest })
    }
}

fn nodes_to_root(index: u64, nodes: u64, head: u64) -> Result<u64, ProofError> {
    let mut ite = Iter::new(index);
    for _ in 0..nodes {
        ite.parent();
        if ite.contains(head) || ite.factor == 0 {
            return Err(ProofError::NodesOutOfBounds { index, nodes });
        }
    }
    Ok(ite.index)
}

fn seek_proof(seek_root: u64, root: u64, p: &mut Pending) -> Result<(), ProofError> {
    let mut ite = Iter::new(seek_root);
    let mut out = vec![ite.index];
    let mut steps = 0;
    while ite.index != root {
        steps += 1;
        if steps > MAX_CLIMB {
            return Err(ProofError::InvalidRequest);
        }
        out.push(ite.sibling());
        ite.parent();
    }
    p.seek = Some(out);
    Ok(())
}

fn block_and_seek_proof(
    target: Option<Target>,
    seek: Option<u64>,
    seek_root: u64,
    root: u64,
    p: &mut Pending,
) -> Result<(), ProofError> {
    let Some(t) = target else { return seek_proof(seek_root, root, p) };
    let mut ite = Iter::new(t.index);
    let mut out = Vec::new();
    if !t.has_value {
        out.push(ite.index);
    }
    let mut steps = 0;
    while ite.index != root {
        steps += 1;
        if steps > MAX_CLIMB {
            return Err(ProofError::NodesOutOfBounds { index: t.index, nodes: t.nodes });
        }
        ite.sibling();
        if seek.is_some() && ite.contains(seek_root) && ite.index != seek_root {
            seek_proof(seek_root, ite.index, p)?;
        } else {
            out.push(ite.index);
        }
        ite.parent();
    }
    p.node = Some(out);
    Ok(())
}

/// Climbs from the requester's last root `old_root` up to the root the cursor is on, calling
/// `visit` on every sibling with an index above `old_root` (the nodes the requester lacks). The
/// cursor ends on the root again. Bounded by `MAX_CLIMB` steps.
fn climb_from_old_root(
    ite: &mut Iter,
    old_root: u64,
    mut visit: impl FnMut(&Iter) -> Result<(), ProofError>,
) -> Result<(), ProofError> {
    let root = ite.index;
    ite.seek(old_root);
    let mut steps = 0;
    while ite.index != root {
        steps += 1;
        if steps > MAX_CLIMB {
            return Err(ProofError::InvalidRequest);
        }
        ite.sibling();
        if ite.index > old_root {
            visit(ite)?;
        }
        ite.parent();
    }
    Ok(())
}

fn upgrade_proof(
    target: Option<Target>,
    seek: Option<u64>,
    from: u64,
    to: u64,
    sub_tree: u64,
    p: &mut Pending,
) -> Result<(), ProofError> {
    if from == 0 {
        p.upgrade = Some(Vec::new());
    }
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if ite.index + ite.factor / 2 < from {
            ite.next_tree();
            continue;
        }
        if p.upgrade.is_none() && ite.contains(from - 2) {
            let mut out = Vec::new();
            climb_from_old_root(&mut ite, from - 2, |ite| {
                if (target.is_some() || seek.is_some())
                    && p.node.is_none()
                    && p.seek.is_none()
                    && ite.contains(sub_tree)
                {
                    block_and_seek_proof(target, seek, sub_tree, ite.index, p)?;
                } else {
                    out.push(ite.index);
                }
                Ok(())
            })?;
            p.upgrade = Some(out);
            ite.next_tree();
            continue;
        }
        if (target.is_some() || seek.is_some())
            && p.node.is_none()
            && p.seek.is_none()
            && ite.contains(sub_tree)
        {
            p.upgrade.get_or_insert_with(Vec::new);
            block_and_seek_proof(target, seek, sub_tree, ite.index, p)?;
        } else {
            p.upgrade.get_or_insert_with(Vec::new).push(ite.index);
        }
        ite.next_tree();
    }
    Ok(())
}

fn additional_proof(from: u64, to: u64, p: &mut Pending) -> Result<(), ProofError> {
    let mut out = Vec::new();
    let mut started = from == 0;
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if ite.index + ite.factor / 2 < from {
            ite.next_tree();
            continue;
        }
        if !started && ite.contains(from - 2) {
            started = true;
            climb_from_old_root(&mut ite, from - 2, |ite| {
                out.push(ite.index);
                Ok(())
            })?;
            ite.next_tree();
            continue;
        }
        started = true;
        out.push(ite.index);
        ite.next_tree();
    }
    p.additional = Some(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::NodeRequest;

    fn req(block: Option<(u64, u64)>, upgrade: Option<(u64, u64)>) -> Request {
        Request {
            id: 1,
            block: block.map(|(index, nodes)| NodeRequest { index, nodes }),
            upgrade: upgrade.map(|(start, length)| UpgradeRequest { start, length }),
            ..Request::default()
        }
    }

    fn plan(r: &Request, length: u64) -> ProofPlan {
        ProofPlan::new(r, 0, length, None, None).unwrap()
    }

    /// The node lists of the decoded JavaScript transcripts in spec §5.7 / §5.7b.
    #[test]
    fn spec_transcript_shapes() {
        // §5.7: upgrade{0,3} on a 3-block core → nodes [1, 4], no additional nodes.
        let p = plan(&req(None, Some((0, 3))), 3);
        assert_eq!(p.upgrade.as_ref().unwrap().1, [1, 4]);
        assert!(p.upgrade.as_ref().unwrap().2.is_empty());
        // §5.7: block 2 with nodes 0 → no nodes.
        assert_eq!(plan(&req(Some((2, 0)), None), 3).block, Some((2, vec![])));
        // §5.7b: 8 blocks, upgrade{0,8} → [7].
        assert_eq!(plan(&req(None, Some((0, 8))), 8).upgrade.unwrap().1, [7]);
        // block 5, nodes 3 → [8, 13, 3].
        assert_eq!(plan(&req(Some((5, 3)), None), 8).block, Some((5, vec![8, 13, 3])));
        // block 6, nodes 1 → [14].
        assert_eq!(plan(&req(Some((6, 1)), None), 8).block, Some((6, vec![14])));
        // 10 blocks, upgrade{8,2} → [17] (roots [7, 17]).
        assert_eq!(plan(&req(None, Some((8, 2))), 10).upgrade.unwrap().1, [17]);
        // block 9, nodes 1 → [16].
        assert_eq!(plan(&req(Some((9, 1)), None), 10).block, Some((9, vec![16])));
    }

    #[test]
    fn upgrade_with_block_merges_the_path() {
        // Block 2 of 3 with an upgrade from 0: the block's root (4) is not duplicated.
        let p = plan(&req(Some((2, 0)), Some((0, 3))), 3);
        assert_eq!(p.block, Some((2, vec![])));
        assert_eq!(p.upgrade.unwrap().1, [1]);
        // Additional nodes when the responder is longer than the upgrade.
        let p = plan(&req(None, Some((0, 2))), 3);
        let (_, nodes, additional) = p.upgrade.unwrap();
        assert_eq!((nodes, additional), (vec![1], vec![4]));
    }

    #[test]
    fn bad_requests_are_errors() {
        assert!(matches!(
            ProofPlan::new(&req(None, Some((2, 5))), 0, 3, None, None),
            Err(ProofError::InvalidUpgrade { .. })
        ));
        assert!(matches!(
            ProofPlan::new(&req(Some((0, 60)), None), 0, 3, None, None),
            Err(ProofError::NodesOutOfBounds { .. })
        ));
        assert!(matches!(
            ProofPlan::new(&req(Some((u64::MAX, u64::MAX)), None), 0, 3, None, None),
            Err(ProofError::NodesOutOfBounds { .. })
        ));
        assert_eq!(plan(&req(Some((0, 0)), None), 0), ProofPlan::default());
    }
}

#[cfg(test)]
mod exhaustive {
    use std::collections::HashMap;

    use corestore_keys::{KeyPair, Manifest};

    use super::*;
    use crate::message::NodeRequest;
    use crate::signature::Verifier;
    use crate::tree::Tree;
    use crate::verify::{verify, TrustedTree};

    /// Every upgrade (and upgrade + block) on every small tree verifies from every start.
    #[test]
    fn every_small_upgrade_verifies() {
        let kp = KeyPair::from_seed(&[1; 32]);
        let manifest = Manifest::single_signer(kp.public_key());
        let key = manifest.hash();
        let verifier = Verifier::new(key, &manifest);
        let mut tree = Tree::default();
        let mut nodes = HashMap::new();
        let mut roots_at = vec![Vec::new()];
        for length in 1..=13u64 {
            let mut new = Vec::new();
            tree.append(&length.to_le_bytes(), &mut new);
            nodes.extend(new.iter().map(|n| (n.index, *n)));
            roots_at.push(tree.roots.clone());
            let signature = verifier.sign(&kp, &tree.signed()).unwrap();
            for start in 0..length {
                for end in start + 1..=length {
                    for block in [None, Some(start), Some(end - 1)] {
                        let request = Request {
                            upgrade: Some(UpgradeRequest { start, length: end - start }),
                            block: block.map(|index| NodeRequest { index, nodes: 0 }),
                            ..Request::default()
                        };
                        let plan = ProofPlan::new(&request, 0, length, None, None)
                            .unwrap_or_else(|e| panic!("{length} {start} {end} {block:?}: {e}"));
                        let data = plan
                            .assemble(
                                1,
                                |i| nodes.get(&i).copied(),
                                block.map(|b| (b + 1).to_le_bytes().to_vec()),
                                &signature,
                                None,
                            )
                            .unwrap();
                        let trusted = TrustedTree {
                            key: &key,
                            manifest: Some(&manifest),
                            fork: 0,
                            length: start,
                            roots: &roots_at[start as usize],
                        };
                        // Nothing but the roots is needed: it completes with no stored node,
                        // and with every real node trusted.
                        let pending = verify(data, &trusted)
                            .unwrap_or_else(|e| panic!("{length} {start} {end} {block:?}: {e}"));
                        let real = |i: u64| nodes.get(&i).copied().filter(|_| i < 2 * start);
                        let with_real = pending.clone().complete(real);
                        let with_none = pending.complete(|_| None);
                        assert!(with_none.is_ok(), "{length} {start} {end} {block:?}");
                        assert!(with_real.is_ok(), "{length} {start} {end} {block:?}");
                    }
                }
            }
        }
    }
}
