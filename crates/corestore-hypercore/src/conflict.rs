//! Equivocation: two valid signed trees at the same fork (hypercore `Core.checkConflict`, spec
//! `wire.md` §5.6b). The core is frozen, persistently, and the peer gets our counter-proof.

use corestore_storage::StorageError;

use crate::core::{CreateProofError, Hypercore};
use crate::hash;
use crate::message::{Data, Request, UpgradeRequest};
use crate::tree::Tree;
use crate::verify::{self, TrustedTree};

/// Why a possible conflict proof could not be checked (nothing changed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConflictError {
    /// The proof does not verify.
    #[error(transparent)]
    Invalid(#[from] verify::VerifyError),
    /// Our counter-proof could not be made.
    #[error(transparent)]
    CounterProof(#[from] CreateProofError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Hypercore {
    /// Checks `data` as a possible conflict proof, as JavaScript does for every unrequested
    /// `data` (`request = 0`) with an upgrade from 0: when it is a validly signed tree of our
    /// fork, whose upgrade length is no longer than ours and whose roots there differ from ours, the writer
    /// equivocated. The core is then frozen (persisted in the core's auth record; upgrades and
    /// reorgs are refused from then on, see [`Hypercore::is_frozen`]) and the returned `data` is
    /// our counter-proof (an upgrade from 0 of our tree at that length, request id 0) to send to
    /// the peer before closing the channel.
    ///
    /// `Ok(None)`: not a conflict (another fork, longer than ours, no upgrade from 0, no
    /// manifest known, or the same tree). An invalid proof is an error.
    ///
    /// ```no_run
    /// # async fn f(core: &mut corestore_hypercore::Hypercore, data: corestore_hypercore::Data)
    /// # -> Result<(), corestore_hypercore::ConflictError> {
    /// if let Some(counter_proof) = core.check_conflict(&data).await? {
    ///     // send `counter_proof` to the peer, then close its channel
    /// #   let _ = counter_proof;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn check_conflict(&mut self, data: &Data) -> Result<Option<Data>, ConflictError> {
        let Some(up) = data.upgrade.as_ref().filter(|u| u.start == 0) else { return Ok(None) };
        // Compared at the upgrade's own length (its nodes are the roots there); the signature
        // covers the sender's tree, possibly longer (additional nodes), as in JavaScript.
        let length = up.length;
        if data.fork != self.tree.fork || length > self.tree.length || up.start != 0 {
            return Ok(None);
        }
        let indexes: Vec<u64> = up.nodes.iter().map(|n| n.index).collect();
        if indexes != Tree::root_indexes(length) {
            return Ok(None);
        }
        let Some(manifest) = self.manifest.as_ref() else { return Ok(None) };
        let trusted = TrustedTree {
            key: &self.key,
            manifest: Some(manifest),
            fork: data.fork,
            length: 0,
            roots: &[],
        };
        let proof = verify::verify(data.clone(), &trusted)?.complete(|_| None)?;
        if proof.upgrade().is_none() {
            return Ok(None);
        }
        let mut ours = Vec::new();
        for index in Tree::root_indexes(length) {
            match self.tree_node(index).await? {
                Some(n) => ours.push(n),
                None => return Ok(None),
            }
        }
        if hash::tree_hash(&ours) == hash::tree_hash(&up.nodes) {
            return Ok(None);
        }
        let request = Request {
            fork: self.tree.fork,
            upgrade: Some(UpgradeRequest { start: 0, length }),
            ..Request::default()
        };
        let counter_proof = self.create_proof(&request).await?;
        let mut auth = self.storage.auth().await?;
        auth.frozen = true;
        let mut batch = self.storage.batch();
        batch.put_auth(&auth);
        self.storage.write(batch).await?;
        self.frozen = true;
        self.generation += 1;
        Ok(Some(counter_proof))
    }
}
