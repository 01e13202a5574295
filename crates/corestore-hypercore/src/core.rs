//! [`Hypercore`]: the signed append-only log on a [`CoreStorage`].
//!
//! Every mutation (append, truncate, applying a verified proof) is one atomic storage batch,
//! written before the in-memory state changes, so a failed write changes nothing and a crash
//! leaves the last written, verifiable head.
//!
//! Persisted bitfield = the stored pages plus the blocks `[0, hints.contiguous_length)`; so a
//! writer appending contiguously never rewrites 4 KiB pages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use corestore_keys::{CoreKey, DiscoveryKey, KeyPair, Manifest};
use corestore_storage::{
    CoreAuth, CoreBatch, CoreStorage, Hints, Storage, StorageError, StoredKeyPair, StoredNode,
    TreeHead,
};

use crate::bitfield::Bitfield;
use crate::flat::Iter;
use crate::hash::{self, Node};
use crate::message::{Data, Request};
use crate::nodes::{NodeCache, NodeMap};
use crate::proof::{ProofError, ProofPlan};
use crate::signature::{SignError, Verifier};
use crate::tree::Tree;
use crate::verify::{self, TrustedTree, VerifiedProof, VerifyError};

/// Source of [`Hypercore`] instance ids, which bind a [`VerifiedProof`] to the core that
/// verified it.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

fn next_instance() -> u64 {
    NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed)
}

/// Why a core could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The manifest does not hash to the key (and is not a compat manifest for it).
    #[error("the manifest does not match the core key")]
    ManifestMismatch,
    /// The key pair is not a signer of the manifest.
    #[error("the key pair is not a signer of the manifest")]
    NotASigner,
    /// A root of the stored head is missing.
    #[error("stored tree root {index} is missing")]
    MissingRoot {
        /// Its tree index.
        index: u64,
    },
    /// The stored head does not verify (tree hash or signature).
    #[error("the stored head (length {length}) does not verify")]
    CorruptHead {
        /// Its length.
        length: u64,
    },
}

/// Why an append failed (nothing was appended).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The core has no secret key or no manifest.
    #[error("the core is not writable")]
    NotWritable,
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a truncate failed (nothing changed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TruncateError {
    /// The core has no secret key or no manifest.
    #[error("the core is not writable")]
    NotWritable,
    /// Truncating cannot grow the core.
    #[error("cannot truncate a core of length {length} to {requested}")]
    BeyondLength {
        /// Current length.
        length: u64,
        /// Requested length.
        requested: u64,
    },
    /// A root of the shorter tree is not stored.
    #[error("tree node {index} is missing")]
    MissingNode {
        /// Tree index.
        index: u64,
    },
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a proof could not be created for a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateProofError {
    /// The request is for another fork.
    #[error("request is for fork {remote}, the core is at fork {local}")]
    ForkMismatch {
        /// Our fork.
        local: u64,
        /// The request's fork.
        remote: u64,
    },
    /// The requested block is not stored here.
    #[error("block {index} is not available")]
    BlockNotAvailable {
        /// Block number.
        index: u64,
    },
    /// The request cannot be proved.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why received data was not verified or applied (nothing changed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The proof does not verify.
    #[error(transparent)]
    Invalid(#[from] VerifyError),
    /// The proof was not verified by this core (another core, another instance of it, or the
    /// pure [`crate::verify()`]).
    #[error("the proof was not verified by this core")]
    ForeignProof,
    /// The core is frozen (two valid signed trees conflicted): it takes no more upgrades.
    #[error("the core is frozen: it takes no more upgrades")]
    Frozen,
    /// The core changed since the proof was verified (verify it again).
    #[error("the core changed since the proof was verified")]
    Stale,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What applying a proof changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The block stored, if any.
    pub block: Option<u64>,
    /// True when the length grew.
    pub upgraded: bool,
    /// The length after applying.
    pub length: u64,
}

/// A signed append-only log.
#[derive(Debug)]
pub struct Hypercore {
    pub(crate) storage: CoreStorage,
    pub(crate) key: CoreKey,
    pub(crate) discovery_key: DiscoveryKey,
    pub(crate) manifest: Option<Manifest>,
    pub(crate) verifier: Option<Verifier>,
    pub(crate) key_pair: Option<KeyPair>,
    pub(crate) tree: Tree,
    pub(crate) tree_hash: [u8; 32],
    pub(crate) bitfield: Bitfield,
    pub(crate) contiguous_length: u64,
    pub(crate) cache: NodeCache,
    /// Unique per instance: proofs verified here are applied only here.
    pub(crate) instance: u64,
    /// Bumped by every change of the tree or of the stored nodes.
    pub(crate) generation: u64,
    /// Two valid signed trees conflicted: no more upgrades (persisted).
    pub(crate) frozen: bool,
}

/// Deletes the blocks and tree nodes of a tree of `old` blocks past `length`, including the
/// parents left of the new head whose subtree reaches past it (they are stale).
pub(crate) fn delete_past(batch: &mut CoreBatch, length: u64, old: u64) {
    batch.delete_blocks(length, old).delete_tree_nodes(2 * length, 2 * old);
    if length > 0 {
        let head = 2 * length;
        let mut ite = Iter::new(head - 2);
        while ite.factor / 2 <= 2 * old && ite.factor < (1 << 62) {
            if ite.contains(head) && ite.index < head {
                batch.delete_tree_nodes(ite.index, ite.index + 1);
            }
            ite.parent();
        }
    }
}

pub(crate) fn stored(n: &Node) -> StoredNode {
    StoredNode { size: n.size, hash: n.hash }
}

impl Hypercore {
    /// Creates (or reopens) the writable core of `key_pair` with `manifest` (default: the
    /// single-signer version 1 manifest corestore 7 uses).
    pub async fn create(
        storage: &Arc<Storage>,
        key_pair: KeyPair,
        manifest: Option<Manifest>,
    ) -> Result<Self, OpenError> {
        let manifest = manifest.unwrap_or_else(|| Manifest::single_signer(key_pair.public_key()));
        if !manifest.signers.iter().any(|s| s.public_key == key_pair.public_key()) {
            return Err(OpenError::NotASigner);
        }
        let key = manifest.hash();
        Self::open_or_create(storage, key, Some(manifest), Some(key_pair)).await
    }

    /// Opens (or creates empty) the read-only replica of `key`; `manifest` when known.
    pub async fn open(
        storage: &Arc<Storage>,
        key: CoreKey,
        manifest: Option<Manifest>,
    ) -> Result<Self, OpenError> {
        let manifest = match &manifest {
            Some(m) => Some(verify::trusted_manifest(&key, m).ok_or(OpenError::ManifestMismatch)?),
            None => None,
        };
        Self::open_or_create(storage, key, manifest, None).await
    }

    /// Opens a stored core by discovery key; `None` when it is not stored.
    pub async fn open_existing(
        storage: &Arc<Storage>,
        discovery_key: &DiscoveryKey,
    ) -> Result<Option<Self>, OpenError> {
        match storage.open_core(discovery_key).await? {
            Some(core) => Ok(Some(Self::load(core, None, None).await?)),
            None => Ok(None),
        }
    }

    async fn open_or_create(
        storage: &Arc<Storage>,
        key: CoreKey,
        manifest: Option<Manifest>,
        key_pair: Option<KeyPair>,
    ) -> Result<Self, OpenError> {
        let discovery_key = key.discovery_key();
        if let Some(core) = storage.open_core(&discovery_key).await? {
            return Self::load(core, manifest, key_pair).await;
        }
        let auth = CoreAuth {
            key,
            discovery_key,
            manifest: manifest.clone(),
            key_pair: key_pair.as_ref().map(|kp| StoredKeyPair {
                public_key: kp.public_key(),
                secret_key: Some(kp.secret_key()),
            }),
            frozen: false,
        };
        let core = storage.create_core(&auth, None).await?;
        let verifier = manifest.as_ref().map(|m| Verifier::new(key, m));
        Ok(Self {
            storage: core,
            key,
            discovery_key,
            manifest,
            verifier,
            key_pair,
            tree: Tree::default(),
            tree_hash: hash::tree_hash(&[]),
            bitfield: Bitfield::new(),
            contiguous_length: 0,
            cache: NodeCache::default(),
            instance: next_instance(),
            generation: 0,
            frozen: false,
        })
    }

    async fn load(
        core: CoreStorage,
        manifest: Option<Manifest>,
        key_pair: Option<KeyPair>,
    ) -> Result<Self, OpenError> {
        let mut auth = core.auth().await?;
        // A compat manifest stored by an older version exposes only what the key commits to.
        if let Some(m) = auth.manifest.as_ref().and_then(|m| verify::trusted_manifest(&auth.key, m))
        {
            auth.manifest = Some(m);
        }
        let mut auth_changed = false;
        if auth.manifest.is_none() && manifest.is_some() {
            auth.manifest = manifest;
            auth_changed = true;
        }
        let secret = auth.key_pair.as_ref().and_then(|kp| kp.secret_key.clone());
        let key_pair = match (key_pair, secret) {
            (Some(kp), None) => {
                auth.key_pair = Some(StoredKeyPair {
                    public_key: kp.public_key(),
                    secret_key: Some(kp.secret_key()),
                });
                auth_changed = true;
                Some(kp)
            }
            (Some(kp), Some(_)) => Some(kp),
            // Our own record: its public half is checked when the pair first signs.
            (None, Some(sk)) => KeyPair::from_stored_secret_key(&sk[..]).ok(),
            (None, None) => None,
        };
        if auth_changed {
            let mut batch = core.batch();
            batch.put_auth(&auth);
            core.write(batch).await?;
        }
        let head = core.head().await?.unwrap_or_default();
        let mut roots = Vec::new();
        for index in Tree::root_indexes(head.length) {
            let n = core.tree_node(index).await?.ok_or(OpenError::MissingRoot { index })?;
            roots.push(Node { index, size: n.size, hash: n.hash });
        }
        let tree = Tree {
            fork: head.fork,
            length: head.length,
            byte_length: hash::total_size(&roots),
            roots,
            signature: head.signature,
        };
        let tree_hash = tree.hash();
        let verifier = auth.manifest.as_ref().map(|m| Verifier::new(auth.key, m));
        if tree.length > 0 {
            let ok = tree_hash == head.tree_hash
                && verifier.as_ref().is_some_and(|v| v.verify(&tree.signed(), &tree.signature));
            if !ok {
                return Err(OpenError::CorruptHead { length: tree.length });
            }
        }
        let mut bitfield = Bitfield::from_pages(core.bitfield_pages().await?);
        let hint = core.hints().await?.contiguous_length.min(tree.length);
        bitfield.set_range(0, hint, true);
        let contiguous_length = bitfield.first_unset(hint).min(tree.length);
        Ok(Self {
            storage: core,
            key: auth.key,
            discovery_key: auth.discovery_key,
            manifest: auth.manifest,
            verifier,
            key_pair,
            tree,
            tree_hash,
            bitfield,
            contiguous_length,
            cache: NodeCache::default(),
            instance: next_instance(),
            generation: 0,
            frozen: auth.frozen,
        })
    }

    /// The core key.
    pub fn key(&self) -> &CoreKey {
        &self.key
    }

    /// The discovery key.
    pub fn discovery_key(&self) -> &DiscoveryKey {
        &self.discovery_key
    }

    /// The manifest, once known.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// True when two valid signed trees conflicted (the writer equivocated): the core takes no
    /// more upgrades or reorgs. Persisted.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// True when this core can append (it holds a signer's secret key).
    pub fn is_writable(&self) -> bool {
        self.key_pair.is_some() && self.verifier.is_some()
    }

    /// Number of blocks in the (signed) log.
    pub fn length(&self) -> u64 {
        self.tree.length
    }

    /// Total bytes of all blocks.
    pub fn byte_length(&self) -> u64 {
        self.tree.byte_length
    }

    /// Number of blocks present locally from block 0 without a gap.
    pub fn contiguous_length(&self) -> u64 {
        self.contiguous_length
    }

    /// The fork id (bumped by every truncate).
    pub fn fork(&self) -> u64 {
        self.tree.fork
    }

    /// The tree hash of the current roots.
    pub fn tree_hash(&self) -> [u8; 32] {
        self.tree_hash
    }

    /// The signature over the current head (wire form).
    pub fn signature(&self) -> &[u8] {
        &self.tree.signature
    }

    /// The current full roots.
    pub fn roots(&self) -> &[Node] {
        &self.tree.roots
    }

    /// True when block `index` is stored locally.
    pub fn has(&self, index: u64) -> bool {
        index < self.tree.length && self.bitfield.get(index)
    }

    /// Block `index`, or `None` when it is not stored locally.
    pub async fn get(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError> {
        if !self.has(index) {
            return Ok(None);
        }
        self.storage.block(index).await
    }

    /// A tree node from the roots (authoritative), the cache or storage.
    pub async fn tree_node(&self, index: u64) -> Result<Option<Node>, StorageError> {
        if let Some(r) = self.tree.roots.iter().find(|r| r.index == index) {
            return Ok(Some(*r));
        }
        if let Some(n) = self.cache.get(index) {
            return Ok(Some(n));
        }
        let node = self.storage.tree_node(index).await?.map(|n| Node {
            index,
            size: n.size,
            hash: n.hash,
        });
        if let Some(n) = node {
            self.cache.fill(n);
        }
        Ok(node)
    }

    /// True when tree node `index` is held in memory (a root or cached), so trusted.
    fn holds_node(&self, index: u64) -> bool {
        self.cache.contains(index) || self.tree.roots.iter().any(|r| r.index == index)
    }

    /// How many tree levels above tree node `index` this core lacks: the `nodes` value of a
    /// block or hash request for it (hypercore `MerkleTree.missingNodes`; 0 when unknown).
    pub async fn missing_nodes(&self, index: u64) -> Result<u64, StorageError> {
        let head = 2 * self.tree.length;
        let mut ite = Iter::new(index);
        if ite.index.saturating_add(ite.factor / 2).saturating_sub(1) >= head {
            return Ok(0);
        }
        let mut count = 0;
        while !ite.contains(head) && self.tree_node(ite.index).await?.is_none() {
            count += 1;
            if count >= 64 {
                return Ok(0);
            }
            ite.parent();
        }
        Ok(count)
    }

    /// [`Hypercore::missing_nodes`] from memory only, for requests sent while others are in
    /// flight: only the roots and cached nodes count as present, so no storage is read. A node
    /// stored but not cached counts as missing, which asks the remote for a few more proof nodes
    /// than needed (the proof is then checked further up); never for fewer.
    pub fn missing_nodes_hint(&self, index: u64) -> u64 {
        let head = 2 * self.tree.length;
        let mut ite = Iter::new(index);
        if ite.index.saturating_add(ite.factor / 2).saturating_sub(1) >= head {
            return 0;
        }
        let mut count = 0;
        while !ite.contains(head) && !self.holds_node(ite.index) {
            count += 1;
            if count >= 64 {
                return 0;
            }
            ite.parent();
        }
        count
    }

    pub(crate) fn remember(&mut self, nodes: &[Node]) {
        self.cache.remember(nodes);
    }

    fn writer(&self) -> Option<(&KeyPair, &Verifier)> {
        Some((self.key_pair.as_ref()?, self.verifier.as_ref()?))
    }

    pub(crate) fn put_head(batch: &mut CoreBatch, tree: &Tree, tree_hash: [u8; 32]) {
        batch.put_head(&TreeHead {
            fork: tree.fork,
            length: tree.length,
            tree_hash,
            signature: tree.signature.clone(),
        });
    }

    /// Appends `blocks` as one signed batch (one signature, one atomic write); returns the new
    /// length.
    pub async fn append<B: AsRef<[u8]>>(&mut self, blocks: &[B]) -> Result<u64, AppendError> {
        let (key_pair, verifier) = self.writer().ok_or(AppendError::NotWritable)?;
        if blocks.is_empty() {
            return Ok(self.tree.length);
        }
        let start = self.tree.length;
        let mut tree = self.tree.clone();
        let mut nodes = Vec::with_capacity(blocks.len() * 2);
        tree.append_all(blocks, &mut nodes);
        let tree_hash = tree.hash();
        let signed =
            crate::signature::SignedTree { tree_hash, length: tree.length, fork: tree.fork };
        tree.signature = verifier.sign(key_pair, &signed)?;

        let mut batch = self.storage.batch();
        for (i, b) in blocks.iter().enumerate() {
            batch.put_block(start + i as u64, b.as_ref());
        }
        for n in &nodes {
            batch.put_tree_node(n.index, &stored(n));
        }
        Self::put_head(&mut batch, &tree, tree_hash);
        let contiguous =
            if self.contiguous_length == start { tree.length } else { self.contiguous_length };
        let staged = self.bitfield.stage(start, tree.length, true);
        if contiguous < tree.length {
            for (page, bytes) in staged.encoded() {
                batch.put_bitfield_page(page, &bytes);
            }
        }
        if contiguous != self.contiguous_length {
            batch.put_hints(Hints { contiguous_length: contiguous });
        }
        self.storage.write(batch).await?;

        self.bitfield.commit(staged);
        self.contiguous_length = contiguous;
        self.tree = tree;
        self.tree_hash = tree_hash;
        self.remember(&nodes);
        self.generation += 1;
        Ok(self.tree.length)
    }

    /// Truncates to `length` blocks and bumps the fork (signed, one atomic write).
    pub async fn truncate(&mut self, length: u64) -> Result<(), TruncateError> {
        if self.writer().is_none() {
            return Err(TruncateError::NotWritable);
        }
        let old = self.tree.length;
        if length > old {
            return Err(TruncateError::BeyondLength { length: old, requested: length });
        }
        let mut roots = Vec::new();
        for index in Tree::root_indexes(length) {
            roots.push(self.tree_node(index).await?.ok_or(TruncateError::MissingNode { index })?);
        }
        let mut tree = Tree {
            fork: self.tree.fork + 1,
            length,
            byte_length: hash::total_size(&roots),
            roots,
            signature: Vec::new(),
        };
        let tree_hash = tree.hash();
        let (key_pair, verifier) = self.writer().ok_or(TruncateError::NotWritable)?;
        tree.signature = verifier.sign(key_pair, &tree.signed())?;

        // The head goes first: a backend that tore this batch would still leave a verifiable
        // core (the new roots are below the new head and never deleted).
        let mut batch = self.storage.batch();
        Self::put_head(&mut batch, &tree, tree_hash);
        delete_past(&mut batch, length, old);
        let staged = self.bitfield.stage(length, old, false);
        for (page, bytes) in staged.encoded() {
            batch.put_bitfield_page(page, &bytes);
        }
        let contiguous = self.contiguous_length.min(length);
        batch.put_hints(Hints { contiguous_length: contiguous });
        self.storage.write(batch).await?;

        self.bitfield.commit(staged);
        self.contiguous_length = contiguous;
        self.tree = tree;
        self.tree_hash = tree_hash;
        self.cache.clear();
        self.generation += 1;
        Ok(())
    }

    /// Answers a `request` with a proof (`data` message), exactly as hypercore 11 would.
    pub async fn create_proof(&self, request: &Request) -> Result<Data, CreateProofError> {
        if request.fork != self.tree.fork {
            return Err(CreateProofError::ForkMismatch {
                local: self.tree.fork,
                remote: request.fork,
            });
        }
        if let Some(b) = request.block {
            if !self.has(b.index) {
                return Err(CreateProofError::BlockNotAvailable { index: b.index });
            }
        }
        let prologue = self.verifier.as_ref().and_then(Verifier::prologue);
        let seek_root =
            match (ProofPlan::seek_target(request, self.tree.length, prologue)?, request.seek) {
                (Some(target), Some(seek)) => {
                    Some(self.resolve_seek(target, seek.bytes, seek.padding).await?)
                }
                _ => None,
            };
        let plan = ProofPlan::new(request, self.tree.fork, self.tree.length, prologue, seek_root)?;
        let mut nodes = Vec::new();
        for index in plan.indexes() {
            if let Some(n) = self.tree_node(index).await? {
                nodes.push(n);
            }
        }
        nodes.sort_unstable_by_key(|n| n.index);
        let value = match plan.block() {
            Some(index) => Some(
                self.storage
                    .block(index)
                    .await?
                    .ok_or(CreateProofError::BlockNotAvailable { index })?,
            ),
            None => None,
        };
        let compat = self.verifier.as_ref().is_some_and(Verifier::is_compat);
        let manifest = if request.manifest && !compat { self.manifest.clone() } else { None };
        Ok(plan.assemble(
            request.id,
            |i| {
                nodes.binary_search_by_key(&i, |n| n.index).ok().and_then(|k| nodes.get(k)).copied()
            },
            value,
            &self.tree.signature,
            manifest,
        )?)
    }

    /// Verifies received `data` against this core (no storage writes).
    pub async fn verify(&self, data: Data) -> Result<VerifiedProof, ReceiveError> {
        if self.frozen && data.upgrade.is_some() {
            return Err(ReceiveError::Frozen);
        }
        let trusted = TrustedTree {
            key: &self.key,
            manifest: self.manifest.as_ref(),
            fork: self.tree.fork,
            length: self.tree.length,
            roots: &self.tree.roots,
        };
        let pending = verify::verify_known(data, &trusted, &|i| self.holds_node(i))?;
        let mut found = NodeMap::default();
        for index in pending.needed() {
            if let std::collections::hash_map::Entry::Vacant(e) = found.entry(index) {
                if let Some(node) = self.tree_node(index).await? {
                    e.insert(node);
                }
            }
        }
        let mut proof = pending.complete(|i| found.get(&i).copied())?;
        proof.binding = Some((self.instance, self.generation));
        Ok(proof)
    }

    /// Stores a proof verified by [`Hypercore::verify`] on this core: the block, the nodes and
    /// the new signed head, in one atomic write.
    ///
    /// Only proofs verified by this very instance are taken ([`ReceiveError::ForeignProof`]
    /// otherwise), in the same fork and, for an upgrade, at the same length
    /// ([`ReceiveError::Stale`]). When the core stored other nodes since, the proof's nodes are
    /// checked again: a stored node is never replaced.
    pub async fn apply(&mut self, mut proof: VerifiedProof) -> Result<Applied, ReceiveError> {
        let Some((instance, generation)) = proof.binding else {
            return Err(ReceiveError::ForeignProof);
        };
        if instance != self.instance || proof.key != self.key {
            return Err(ReceiveError::ForeignProof);
        }
        if proof.fork != self.tree.fork
            || (proof.upgrade.is_some() && proof.base_length != self.tree.length)
        {
            return Err(ReceiveError::Stale);
        }
        if generation != self.generation {
            let mut found = HashMap::new();
            for n in &proof.nodes {
                found.insert(n.index, self.tree_node(n.index).await?);
            }
            let nodes = std::mem::take(&mut proof.nodes);
            proof.nodes = verify::fresh_nodes(nodes, &[], |i| found.get(&i).copied().flatten())?;
        }
        let mut batch = self.storage.batch();
        let mut tree = self.tree.clone();
        let mut tree_hash = self.tree_hash;
        if let Some(up) = &proof.upgrade {
            tree = Tree {
                fork: up.fork,
                length: up.length,
                byte_length: up.byte_length,
                roots: up.roots.clone(),
                signature: up.signature.clone(),
            };
            tree_hash = up.tree_hash;
        }
        for n in &proof.nodes {
            batch.put_tree_node(n.index, &stored(n));
        }
        let mut manifest = None;
        if let Some(m) = &proof.manifest {
            if self.manifest.is_none() {
                let mut auth = self.storage.auth().await?;
                auth.manifest = Some(m.clone());
                batch.put_auth(&auth);
                manifest = Some(m.clone());
            }
        }
        let mut staged = None;
        let mut contiguous = self.contiguous_length;
        let block = proof.block.as_ref().map(|(i, _)| *i);
        if let Some((index, value)) = &proof.block {
            if !self.bitfield.get(*index) {
                batch.put_block(*index, value);
                let s = self.bitfield.stage(*index, index + 1, true);
                if *index == contiguous {
                    contiguous = self.bitfield.first_unset(index + 1).min(tree.length);
                }
                if *index >= contiguous {
                    for (page, bytes) in s.encoded() {
                        batch.put_bitfield_page(page, &bytes);
                    }
                }
                staged = Some(s);
            }
        }
        if proof.upgrade.is_some() {
            // After the nodes: even a torn batch never leaves a head without its roots.
            Self::put_head(&mut batch, &tree, tree_hash);
        }
        if contiguous != self.contiguous_length {
            batch.put_hints(Hints { contiguous_length: contiguous });
        }
        self.storage.write(batch).await?;

        if let Some(s) = staged {
            self.bitfield.commit(s);
        }
        self.contiguous_length = contiguous;
        if let Some(m) = manifest {
            self.verifier = Some(Verifier::new(self.key, &m));
            self.manifest = Some(m);
        }
        let upgraded = proof.upgrade.is_some();
        self.tree = tree;
        self.tree_hash = tree_hash;
        self.remember(&proof.nodes);
        self.generation += 1;
        Ok(Applied { block, upgraded, length: self.tree.length })
    }

    /// Verifies `data` and, when valid, applies it.
    pub async fn receive(&mut self, data: Data) -> Result<Applied, ReceiveError> {
        let proof = self.verify(data).await?;
        self.apply(proof).await
    }

    /// Flushes storage durably.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.storage.flush().await
    }
}
