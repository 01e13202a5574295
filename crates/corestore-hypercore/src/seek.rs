//! Resolving a seek request's byte offset to a tree node from stored node sizes (hypercore
//! `seekFromHead`, `seekUntrustedTree`, `seekTrustedTree` and `getByteOffset`), the one part of
//! proof creation that has to read storage while planning.

use crate::core::{CreateProofError, Hypercore};
use crate::flat::{self, Iter};
use crate::hash::Node;
use crate::proof::{ProofError, SeekTarget};

const MAX_STEPS: usize = 1024;

fn unpadded(node: &Node, padding: u64, leaves: u64) -> u64 {
    node.size.saturating_sub(padding.saturating_mul(leaves))
}

impl Hypercore {
    async fn node_or_missing(&self, index: u64) -> Result<Node, CreateProofError> {
        self.tree_node(index)
            .await?
            .ok_or(CreateProofError::Proof(ProofError::MissingNode { index }))
    }

    /// The tree node a seek resolves to for `target` (see [`crate::ProofPlan::seek_target`]).
    pub(crate) async fn resolve_seek(
        &self,
        target: SeekTarget,
        bytes: u64,
        padding: u64,
    ) -> Result<u64, CreateProofError> {
        match target {
            SeekTarget::FromHead { to } => self.seek_from_head(to, bytes, padding).await,
            SeekTarget::InTree { root } => self.seek_untrusted(root, bytes, padding).await,
        }
    }

    async fn seek_from_head(
        &self,
        head: u64,
        bytes: u64,
        padding: u64,
    ) -> Result<u64, CreateProofError> {
        let mut bytes = bytes;
        for root in flat::full_roots(head) {
            let node = self.node_or_missing(root).await?;
            let size = unpadded(&node, padding, flat::count_leaves(root));
            if bytes == size {
                return Ok(root);
            }
            if bytes > size {
                bytes -= size;
                continue;
            }
            return self.seek_trusted(root, bytes, padding).await;
        }
        Ok(head)
    }

    async fn seek_trusted(
        &self,
        root: u64,
        bytes: u64,
        padding: u64,
    ) -> Result<u64, CreateProofError> {
        if bytes == 0 {
            return Ok(root);
        }
        let mut bytes = bytes;
        let mut ite = Iter::new(root);
        let mut steps = 0;
        while ite.index & 1 == 1 {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(ProofError::InvalidSeek { bytes }.into());
            }
            let Some(left) = self.tree_node(ite.left_child()).await? else {
                ite.parent();
                return Ok(ite.index);
            };
            let size = unpadded(&left, padding, ite.count_leaves());
            if size == bytes {
                return Ok(ite.index);
            }
            if size > bytes {
                continue;
            }
            bytes -= size;
            ite.sibling();
        }
        Ok(ite.index)
    }

    async fn seek_untrusted(
        &self,
        root: u64,
        bytes: u64,
        padding: u64,
    ) -> Result<u64, CreateProofError> {
        let offset = self
            .byte_offset(root)
            .await?
            .saturating_sub(padding.saturating_mul(flat::left_span(root) / 2));
        if offset > bytes {
            return Err(ProofError::InvalidSeek { bytes }.into());
        }
        if offset == bytes {
            return Ok(root);
        }
        let rest = bytes - offset;
        let node = self.node_or_missing(root).await?;
        if unpadded(&node, padding, flat::count_leaves(root)) <= rest {
            return Err(ProofError::InvalidSeek { bytes }.into());
        }
        self.seek_trusted(root, rest, padding).await
    }

    /// Byte offset of the first block under tree node `index`.
    pub(crate) async fn byte_offset(&self, index: u64) -> Result<u64, CreateProofError> {
        if index == 2 * self.length() {
            return Ok(self.byte_length());
        }
        let index = if index & 1 == 1 { flat::left_span(index) } else { index };
        let mut head = 0u64;
        let mut offset = 0u64;
        for root in self.roots() {
            head = head.saturating_add(2 * (root.index.saturating_sub(head) + 1));
            if index >= head {
                offset = offset.saturating_add(root.size);
                continue;
            }
            let mut ite = Iter::new(root.index);
            let mut steps = 0;
            while ite.index != index {
                steps += 1;
                if steps > MAX_STEPS {
                    return Err(ProofError::InvalidRequest.into());
                }
                if index < ite.index {
                    ite.left_child();
                } else {
                    let left = self.node_or_missing(ite.left_child()).await?;
                    offset = offset.saturating_add(left.size);
                    ite.sibling();
                }
            }
            return Ok(offset);
        }
        Err(ProofError::InvalidRequest.into())
    }
}
