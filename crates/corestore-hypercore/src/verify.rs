//! Proof verification (spec `wire.md` §5.6, hypercore `lib/merkle-tree.js` `verifyTree` /
//! `verifyUpgrade` and `lib/core.js` `verify`).
//!
//! Pure and sync: [`verify`] checks every hash, the upgrade and the signature against the
//! trusted tree state, and returns a [`PendingProof`] naming the few stored (trusted) nodes the
//! proof must still match; [`PendingProof::complete`] compares them. Nothing is stored here.

use corestore_keys::{CoreKey, Manifest, Prologue, PublicKey};

use crate::flat::Iter;
use crate::hash::{self, Node};
use crate::message::{Data, DataUpgrade};
use crate::signature::{SignedTree, Verifier};
use crate::tree::Tree;

/// Upper bound for `nodes` / `additionalNodes` of an upgrade (twice what a 2^64-block tree needs).
const MAX_UPGRADE_NODES: usize = 256;

/// Why a proof was rejected. Nothing is changed by a rejected proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The proof is for another fork.
    #[error("proof is for fork {remote}, the core is at fork {local}")]
    ForkMismatch {
        /// Our fork.
        local: u64,
        /// The proof's fork.
        remote: u64,
    },
    /// A proof node is not the one the tree walk expects.
    #[error("expected tree node {expected}, got {got:?}")]
    UnexpectedNode {
        /// The index the walk needed.
        expected: u64,
        /// The index found (`None`: the list ended).
        got: Option<u64>,
    },
    /// The upgrade range is empty or overflows.
    #[error("invalid upgrade {start}+{length}")]
    InvalidUpgrade {
        /// Upgrade start.
        start: u64,
        /// Upgrade length.
        length: u64,
    },
    /// The upgrade does not respect the manifest's prologue.
    #[error("upgrade does not satisfy the prologue")]
    PrologueViolation,
    /// The upgrade carries no signature.
    #[error("upgrade proof carries no signature")]
    MissingSignature,
    /// The signature does not verify for the rebuilt tree.
    #[error("invalid signature for length {length} at fork {fork}")]
    InvalidSignature {
        /// The signed length.
        length: u64,
        /// The signed fork.
        fork: u64,
    },
    /// The manifest in the proof does not hash to the core key.
    #[error("the proof's manifest does not match the core key")]
    ManifestMismatch,
    /// A proved node differs from the trusted stored node.
    #[error("checksum mismatch at tree node {index}")]
    ChecksumMismatch {
        /// Tree index.
        index: u64,
    },
    /// A proved node has the hash of the trusted node at its index but another size.
    #[error("tree node {index} has size {trusted}, the proof claims {proof}")]
    SizeMismatch {
        /// Tree index.
        index: u64,
        /// The trusted size.
        trusted: u64,
        /// The size in the proof.
        proof: u64,
    },
    /// The trusted node the proof ends at is not stored locally.
    #[error("no trusted tree node {index} to check the proof against")]
    MissingTrustedNode {
        /// Tree index.
        index: u64,
    },
    /// A validly signed tree no longer than ours whose roots differ from ours.
    #[error("signed tree of length {length} conflicts with the local tree")]
    Conflict {
        /// The signed length.
        length: u64,
    },
}

/// The trusted local state a proof is verified against.
#[derive(Debug, Clone, Copy)]
pub struct TrustedTree<'a> {
    /// The core key.
    pub key: &'a CoreKey,
    /// The manifest, when known locally.
    pub manifest: Option<&'a Manifest>,
    /// Current fork.
    pub fork: u64,
    /// Current length.
    pub length: u64,
    /// Current full roots.
    pub roots: &'a [Node],
}

/// A new signed head learned from an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradedHead {
    /// Fork id.
    pub fork: u64,
    /// New length.
    pub length: u64,
    /// New byte length.
    pub byte_length: u64,
    /// New full roots.
    pub roots: Vec<Node>,
    /// Tree hash of the roots.
    pub tree_hash: [u8; 32],
    /// The signature (wire form).
    pub signature: Vec<u8>,
}

/// A fully verified proof, ready to be applied to the core it was verified against.
///
/// Opaque: only [`PendingProof::complete`] makes one, and [`crate::Hypercore::apply`] takes only
/// those made by [`crate::Hypercore::verify`] on the same core instance, in the same fork (and,
/// for an upgrade, at the same length). Nothing but verified data can be stored through it.
///
/// Code outside this crate can neither build one nor change what it holds:
///
/// ```compile_fail,E0616
/// fn forge(proof: &mut corestore_hypercore::VerifiedProof) {
///     proof.nodes.clear();
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    pub(crate) key: CoreKey,
    pub(crate) fork: u64,
    pub(crate) base_length: u64,
    pub(crate) block: Option<(u64, Vec<u8>)>,
    /// The new tree nodes the proof establishes (none of them was stored or trusted).
    pub(crate) nodes: Vec<Node>,
    pub(crate) upgrade: Option<UpgradedHead>,
    pub(crate) manifest: Option<Manifest>,
    /// `(core instance, generation)` of the core that verified it.
    pub(crate) binding: Option<(u64, u64)>,
}

impl VerifiedProof {
    /// The key of the core it was verified for.
    pub fn key(&self) -> &CoreKey {
        &self.key
    }

    /// The fork it was verified at.
    pub fn fork(&self) -> u64 {
        self.fork
    }

    /// The length of the tree it was verified against.
    pub fn base_length(&self) -> u64 {
        self.base_length
    }

    /// The proved block, `(index, value)`.
    pub fn block(&self) -> Option<(u64, &[u8])> {
        self.block.as_ref().map(|(i, v)| (*i, v.as_slice()))
    }

    /// The tree nodes applying it stores: those the proof establishes that were not trusted yet
    /// (nodes whose size the proof alone does not fix are left out).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The new signed head, when the proof upgrades the length.
    pub fn upgrade(&self) -> Option<&UpgradedHead> {
        self.upgrade.as_ref()
    }

    /// The manifest learned from the proof (only when none was known).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }
}

/// A proof whose hashes and signature verified; it still has to match trusted stored nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a pending proof is not verified until `complete` succeeds"]
pub struct PendingProof {
    pub(crate) proof: VerifiedProof,
    /// Nodes that must equal a trusted node (`true`: a root of a shorter signed tree).
    checks: Vec<(Node, bool)>,
    /// Every node the proof establishes (some may already be trusted).
    pub(crate) nodes: Vec<Node>,
    /// Indexes of proof nodes whose size only the sum with their sibling fixes.
    pub(crate) unproved_sizes: Vec<u64>,
}

fn mismatch(trusted: &Node, node: &Node) -> VerifyError {
    if trusted.hash == node.hash {
        VerifyError::SizeMismatch { index: node.index, trusted: trusted.size, proof: node.size }
    } else {
        VerifyError::ChecksumMismatch { index: node.index }
    }
}

impl PendingProof {
    /// Tree indexes of the trusted nodes [`PendingProof::complete`] will look up: the nodes the
    /// proof must end at, then every node it establishes (a trusted one must be equal).
    pub fn needed(&self) -> impl Iterator<Item = u64> + '_ {
        self.checks.iter().map(|(n, _)| n.index).chain(self.nodes.iter().map(|n| n.index))
    }

    /// Compares the proof with the trusted stored nodes `trusted(index)`: size and hash must be
    /// equal wherever a trusted node exists; trusted nodes are never replaced.
    pub fn complete(
        self,
        mut trusted: impl FnMut(u64) -> Option<Node>,
    ) -> Result<VerifiedProof, VerifyError> {
        for (node, is_root_check) in &self.checks {
            let index = node.index;
            match trusted(index) {
                Some(t) if t == *node => {}
                Some(_) if *is_root_check => {
                    return Err(VerifyError::Conflict {
                        length: self.proof.upgrade.as_ref().map_or(0, |u| u.length),
                    })
                }
                Some(t) => return Err(mismatch(&t, node)),
                None => return Err(VerifyError::MissingTrustedNode { index }),
            }
        }
        let mut proof = self.proof;
        proof.nodes = fresh_nodes(self.nodes, &self.unproved_sizes, trusted)?;
        Ok(proof)
    }
}

/// The nodes of `nodes` not yet trusted, refusing any that disagrees with a trusted node;
/// nodes listed in `unproved_sizes` are dropped unless they or their sibling are trusted (else
/// their size is not established).
pub(crate) fn fresh_nodes(
    nodes: Vec<Node>,
    unproved_sizes: &[u64],
    mut trusted: impl FnMut(u64) -> Option<Node>,
) -> Result<Vec<Node>, VerifyError> {
    let mut fresh: Vec<Node> = Vec::with_capacity(nodes.len());
    for node in nodes {
        match trusted(node.index) {
            Some(t) if t == node => {}
            Some(t) => return Err(mismatch(&t, &node)),
            // A trusted sibling fixes the size (the parent covers the sum).
            None if unproved_sizes.contains(&node.index)
                && trusted(crate::flat::sibling(node.index)).is_none() => {}
            None => match fresh.iter().find(|f| f.index == node.index) {
                Some(f) if *f == node => {}
                Some(f) => return Err(mismatch(f, &node)),
                None => fresh.push(node),
            },
        }
    }
    Ok(fresh)
}

struct NodeQueue<'a> {
    nodes: &'a [Node],
    i: usize,
    /// A node proved by another section, and whether its size is established.
    extra: Option<(Node, bool)>,
}

impl<'a> NodeQueue<'a> {
    fn new(nodes: &'a [Node], extra: Option<(Node, bool)>) -> Self {
        Self { nodes, i: 0, extra }
    }

    fn len(&self) -> usize {
        self.nodes.len().saturating_sub(self.i) + usize::from(self.extra.is_some())
    }

    /// The node at `index`, and whether its size is established on its own (only a node
    /// computed by another section is: a supplied node's size is not covered by its hash).
    fn shift_sized(&mut self, index: u64) -> Result<(Node, bool), VerifyError> {
        if let Some(e) = self.extra.filter(|(e, _)| e.index == index) {
            self.extra = None;
            return Ok(e);
        }
        let node = self.nodes.get(self.i).copied();
        match node {
            Some(n) if n.index == index => {
                self.i += 1;
                Ok((n, false))
            }
            other => {
                Err(VerifyError::UnexpectedNode { expected: index, got: other.map(|n| n.index) })
            }
        }
    }

    fn shift(&mut self, index: u64) -> Result<Node, VerifyError> {
        self.shift_sized(index).map(|(n, _)| n)
    }
}

/// The tree being rebuilt by an upgrade (`MerkleTreeBatch` in JavaScript).
struct Batch {
    tree: Tree,
    upgraded: bool,
}

impl Batch {
    fn append_root(&mut self, node: Node, ite: &mut Iter, nodes: &mut Vec<Node>) {
        self.upgraded = true;
        self.tree.append_root(node, ite, nodes);
    }
}

/// Climbs from `root` through the queue, hashing parents (the loop shared by every section).
///
/// Sizes: a computed node's hash covers its size, so every parent computed here has an
/// established size once the top is verified; a supplied sibling's size is only fixed through the
/// sum its parent covers, i.e. when its partner's size is established. Only the first pair can
/// lack that (a supplied first node and a supplied sibling): their indexes go to `unproved_sizes`.
/// Returns the top and whether its size is established.
///
/// `known` names trusted nodes held in memory: the climb stops at the first node whose index it
/// knows, and the proof is then checked against that node instead of one further up (the proof
/// nodes above it are not needed, and not used). A proof that disagrees with the known node there
/// fails in [`PendingProof::complete`].
fn climb(
    mut root: Node,
    mut root_sized: bool,
    ite: &mut Iter,
    q: &mut NodeQueue<'_>,
    nodes: &mut Vec<Node>,
    unproved_sizes: &mut Vec<u64>,
    known: &dyn Fn(u64) -> bool,
) -> Result<(Node, bool), VerifyError> {
    while q.len() > 0 && !(root_sized && known(root.index)) {
        let (node, node_sized) = q.shift_sized(ite.sibling())?;
        ite.parent();
        if !root_sized && !node_sized {
            unproved_sizes.push(root.index);
            unproved_sizes.push(node.index);
        }
        root = Node::parent(&root, &node);
        root_sized = true;
        nodes.push(node);
        nodes.push(root);
    }
    Ok((root, root_sized))
}

/// Rebuilds the block / hash / seek path; returns its (untrusted) top node, and whether its size
/// is established.
pub(crate) fn verify_tree(
    data: &Data,
    nodes: &mut Vec<Node>,
    unproved_sizes: &mut Vec<u64>,
) -> Result<Option<(Node, bool)>, VerifyError> {
    verify_tree_known(data, nodes, unproved_sizes, &|_| false)
}

/// [`verify_tree`], stopping the block path at a node `known` has (see [`climb`]); only for a
/// proof with neither seek nor upgrade, whose path has to end at a trusted node anyway.
fn verify_tree_known(
    data: &Data,
    nodes: &mut Vec<Node>,
    unproved_sizes: &mut Vec<u64>,
    known: &dyn Fn(u64) -> bool,
) -> Result<Option<(Node, bool)>, VerifyError> {
    let untrusted = match (&data.block, &data.hash) {
        (Some(b), _) => Some((b.index.saturating_mul(2), Some(&b.value), &b.nodes)),
        (None, Some(h)) => Some((h.index, None, &h.nodes)),
        (None, None) => None,
    };
    let mut root = None;
    if let Some(seek) = data.seek.as_ref().filter(|s| !s.nodes.is_empty()) {
        let mut q = NodeQueue::new(&seek.nodes, None);
        let mut ite = Iter::new(seek.nodes[0].index);
        let first = q.shift(ite.index)?;
        nodes.push(first);
        root = Some(climb(first, false, &mut ite, &mut q, nodes, unproved_sizes, &|_| false)?);
    }
    let Some((index, value, list)) = untrusted else { return Ok(root) };
    let mut ite = Iter::new(index);
    let mut q = NodeQueue::new(list, root);
    let (first, sized) = match value {
        Some(v) => (Node { index, size: v.len() as u64, hash: hash::leaf_hash(v) }, true),
        None => q.shift_sized(index)?,
    };
    nodes.push(first);
    climb(first, sized, &mut ite, &mut q, nodes, unproved_sizes, known).map(Some)
}

/// Grows `batch` with the upgrade; true when the block root was consumed by it.
fn verify_upgrade(
    up: &DataUpgrade,
    block_root: Option<(Node, bool)>,
    prologue: Option<&Prologue>,
    batch: &mut Batch,
    nodes: &mut Vec<Node>,
) -> Result<bool, VerifyError> {
    let invalid = VerifyError::InvalidUpgrade { start: up.start, length: up.length };
    // An honest upgrade has at most one climbing path plus the roots (≤ 64 each), so longer
    // lists are refused before hashing them.
    if up.nodes.len() > MAX_UPGRADE_NODES || up.additional_nodes.len() > MAX_UPGRADE_NODES {
        return Err(invalid);
    }
    if let Some(p) = prologue {
        if up.start < p.length && (up.start != 0 || up.length < p.length) {
            return Err(VerifyError::PrologueViolation);
        }
    }
    let to = up
        .start
        .checked_add(up.length)
        .filter(|&end| end <= corestore_keys::compact::MAX_SAFE_UINT)
        .ok_or(invalid.clone())?
        * 2;
    let mut q = NodeQueue::new(&up.nodes, block_root);
    let mut grow = !batch.tree.roots.is_empty();
    let mut i = 0;
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if batch.tree.roots.get(i).is_some_and(|r| r.index == ite.index) {
            i += 1;
            ite.next_tree();
            continue;
        }
        if grow {
            grow = false;
            let root = ite.index;
            if i < batch.tree.roots.len() {
                let last = batch.tree.roots.last().map_or(0, |r| r.index);
                ite.seek(last);
                // Every step consumes a proof node, so this ends with the queue at the latest.
                while ite.index != root {
                    let node = q.shift(ite.sibling())?;
                    batch.append_root(node, &mut ite, nodes);
                }
                ite.next_tree();
                continue;
            }
        }
        let node = q.shift(ite.index)?;
        batch.append_root(node, &mut ite, nodes);
        ite.next_tree();
    }
    if let Some(p) = prologue {
        if batch.tree.length == p.length && hash::tree_hash(&batch.tree.roots) != p.hash {
            return Err(VerifyError::PrologueViolation);
        }
    }
    let Some(last) = batch.tree.roots.last() else { return Err(invalid) };
    ite.seek(last.index);
    let extra = &up.additional_nodes;
    let mut i = 0;
    while let Some(&node) = extra.get(i).filter(|n| n.index == ite.sibling()) {
        batch.append_root(node, &mut ite, nodes);
        i += 1;
    }
    for &node in extra.get(i..).unwrap_or_default() {
        while node.index != ite.index {
            if ite.factor <= 2 {
                return Err(VerifyError::UnexpectedNode {
                    expected: ite.index,
                    got: Some(node.index),
                });
            }
            ite.left_child();
        }
        batch.append_root(node, &mut ite, nodes);
        ite.sibling();
    }
    Ok(q.extra.is_none())
}

/// The manifest a core of `key` may store for `manifest`: itself when it hashes to the key; for a
/// compat key (the signer's public key) only what the key commits to, the default single-signer
/// manifest of that key; `None` when it is not a manifest of this core.
pub(crate) fn trusted_manifest(key: &CoreKey, manifest: &Manifest) -> Option<Manifest> {
    if manifest.hash() == *key {
        Some(manifest.clone())
    } else if manifest.is_compat(key) {
        Some(compat_manifest(key))
    } else {
        None
    }
}

fn compat_manifest(key: &CoreKey) -> Manifest {
    Manifest::single_signer(PublicKey::from_bytes(key.to_bytes()))
}

/// Verifies `data` against the trusted `tree`: hashes, upgrade, manifest and signature.
///
/// The [`VerifiedProof`] it leads to (through [`PendingProof::complete`]) is not bound to a core,
/// so [`crate::Hypercore::apply`] refuses it; use [`crate::Hypercore::verify`] to apply proofs.
pub fn verify(data: Data, tree: &TrustedTree<'_>) -> Result<PendingProof, VerifyError> {
    verify_known(data, tree, &|_| false)
}

/// [`verify`], given the indexes of trusted nodes held in memory (`known`): a block proof
/// without upgrade or seek is checked against the first of them on its path, so only the
/// hashes below it are computed (a sequential download then hashes about one parent per block
/// instead of the whole path to a root). [`PendingProof::complete`] must be given those nodes.
pub fn verify_known(
    data: Data,
    tree: &TrustedTree<'_>,
    known: &dyn Fn(u64) -> bool,
) -> Result<PendingProof, VerifyError> {
    if data.fork != tree.fork {
        return Err(VerifyError::ForkMismatch { local: tree.fork, remote: data.fork });
    }
    let mut nodes = Vec::new();
    let mut unproved_sizes = Vec::new();
    let plain = data.upgrade.is_none() && data.seek.is_none();
    let known: &dyn Fn(u64) -> bool = if plain { known } else { &|_| false };
    let mut untrusted = verify_tree_known(&data, &mut nodes, &mut unproved_sizes, known)?;
    let mut checks = Vec::new();
    let mut upgrade = None;
    let mut learned = None;
    if let Some(up) = &data.upgrade {
        let manifest = if let Some(m) = tree.manifest {
            m.clone()
        } else {
            // Compat default, as hypercore does for a core known only by its key.
            let m = data.manifest.clone().unwrap_or_else(|| compat_manifest(tree.key));
            let m = trusted_manifest(tree.key, &m).ok_or(VerifyError::ManifestMismatch)?;
            learned = Some(m.clone());
            m
        };
        let verifier = Verifier::new(*tree.key, &manifest);
        let mut batch = Batch {
            tree: Tree {
                fork: data.fork,
                length: tree.length,
                byte_length: hash::total_size(tree.roots),
                roots: tree.roots.to_vec(),
                signature: Vec::new(),
            },
            upgraded: false,
        };
        if verify_upgrade(up, untrusted, verifier.prologue(), &mut batch, &mut nodes)? {
            untrusted = None;
        }
        if batch.upgraded {
            let tree_hash = hash::tree_hash(&batch.tree.roots);
            let signed = SignedTree { tree_hash, length: batch.tree.length, fork: data.fork };
            // Within the prologue the tree hash is what is checked, never a signature (as in
            // JavaScript's verifier): none is required, and whatever was sent is not kept.
            let signature = if verifier.prologue_covers(batch.tree.length) {
                Vec::new()
            } else {
                up.signature.clone().ok_or(VerifyError::MissingSignature)?
            };
            if !verifier.verify(&signed, &signature) {
                return Err(VerifyError::InvalidSignature {
                    length: batch.tree.length,
                    fork: data.fork,
                });
            }
            match batch.tree.length.cmp(&tree.length) {
                std::cmp::Ordering::Greater => {
                    upgrade = Some(UpgradedHead {
                        fork: data.fork,
                        length: batch.tree.length,
                        byte_length: batch.tree.byte_length,
                        roots: batch.tree.roots,
                        tree_hash,
                        signature,
                    });
                }
                std::cmp::Ordering::Equal if batch.tree.roots != tree.roots => {
                    return Err(VerifyError::Conflict { length: batch.tree.length });
                }
                std::cmp::Ordering::Equal => {}
                // A shorter signed tree must agree with the trusted stored roots.
                std::cmp::Ordering::Less => {
                    checks.extend(batch.tree.roots.into_iter().map(|r| (r, true)));
                }
            }
        }
    } else if tree.manifest.is_none() {
        if let Some(m) = &data.manifest {
            if m.hash() != *tree.key {
                return Err(VerifyError::ManifestMismatch);
            }
            learned = Some(m.clone());
        }
    }
    if let Some((root, _)) = untrusted {
        checks.push((root, false));
    }
    let block = data.block.map(|b| (b.index, b.value));
    let proof = VerifiedProof {
        key: *tree.key,
        fork: data.fork,
        base_length: tree.length,
        block,
        nodes: Vec::new(),
        upgrade,
        manifest: learned,
        binding: None,
    };
    Ok(PendingProof { proof, checks, nodes, unproved_sizes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::DataUpgrade;
    use corestore_keys::KeyPair;
    use proptest::prelude::*;

    fn fixture() -> (CoreKey, Manifest, Tree, Vec<u8>) {
        let kp = KeyPair::from_seed(&[2; 32]);
        let manifest = Manifest::single_signer(kp.public_key());
        let key = manifest.hash();
        let mut tree = Tree::default();
        for i in 0..11u8 {
            tree.append(&[i; 3], &mut Vec::new());
        }
        let sig = Verifier::new(key, &manifest).sign(&kp, &tree.signed()).unwrap();
        (key, manifest, tree, sig)
    }

    #[test]
    fn oversized_upgrades_are_refused_before_hashing() {
        let (key, manifest, tree, sig) = fixture();
        let node = Node { index: 0, size: 0, hash: [0; 32] };
        let data = Data {
            upgrade: Some(DataUpgrade {
                start: 0,
                length: 11,
                nodes: tree.roots.clone(),
                additional_nodes: vec![node; MAX_UPGRADE_NODES + 1],
                signature: Some(sig),
            }),
            ..Data::default()
        };
        let trusted =
            TrustedTree { key: &key, manifest: Some(&manifest), fork: 0, length: 0, roots: &[] };
        assert_eq!(
            verify(data, &trusted),
            Err(VerifyError::InvalidUpgrade { start: 0, length: 11 })
        );
    }

    proptest! {
        /// The fuzz target's property, in CI: arbitrary data messages never panic, and nothing
        /// but the real tree is ever accepted.
        #[test]
        fn arbitrary_proofs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400),
                                        length in 0u64..12) {
            let (key, manifest, tree, sig) = fixture();
            let mut real = Tree::default();
            let mut nodes = Vec::new();
            let mut roots = Vec::new();
            for i in 0..11u8 {
                if u64::from(i) == length {
                    roots.clone_from(&real.roots);
                }
                real.append(&[i; 3], &mut nodes);
            }
            if length == 11 {
                roots.clone_from(&real.roots);
            }
            let length = length.min(11);
            let trusted = TrustedTree { key: &key, manifest: Some(&manifest), fork: 0, length, roots: &roots };
            let mut candidates = vec![bytes.clone()];
            // Also a real upgrade proof with the random bytes spliced in.
            let good = Data {
                upgrade: Some(DataUpgrade { start: 0, length: 11, nodes: tree.roots.clone(), additional_nodes: Vec::new(), signature: Some(sig) }),
                ..Data::default()
            }.encode();
            let mut spliced = good.clone();
            for (i, b) in bytes.iter().enumerate().take(8) {
                let at = usize::from(*b) % spliced.len();
                spliced[at] ^= u8::try_from(i + 1).unwrap();
            }
            candidates.push(spliced);
            for candidate in candidates {
                let Ok(data) = Data::decode(&candidate) else { continue };
                let Ok(pending) = verify(data, &trusted) else { continue };
                let Ok(proof) = pending.complete(|i| nodes.iter().find(|n| n.index == i && i < 2 * length).copied()) else { continue };
                if let Some(up) = proof.upgrade() {
                    prop_assert_eq!(&up.roots, &tree.roots);
                }
            }
        }
    }
}
