//! The signed append-only Merkle log (Hypercore), byte-compatible with JavaScript hypercore 11:
//! flat-tree math, tree hashing, manifest signatures, proofs (create / verify) and the bitfield,
//! and [`Hypercore`], the log itself on `corestore-storage`.
//!
//! The replication layer uses two entry points: [`Hypercore::create_proof`] answers a
//! [`Request`]; [`Hypercore::verify`] + [`Hypercore::apply`] (or [`Hypercore::receive`]) take a
//! [`Data`] message. Verification itself is pure ([`verify()`]), storage writes come after it.
//! When the writer truncates, replicas follow through [`Hypercore::verify_fork_proof`],
//! [`Reorg`] and [`Hypercore::apply_reorg`] (see [`reorg`]); two valid signed trees at one fork
//! freeze the core ([`Hypercore::check_conflict`]). [`Hypercore::clear`] drops local blocks and
//! keeps the tree, so they can be downloaded and verified again.
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
//! writer.append(&[b"hello", b"world"]).await?; // one signature, one atomic write
//!
//! // A reader that knows only the key: upgrade (with the manifest), then fetch block 1.
//! let mut reader =
//!     Hypercore::open(&store(Arc::new(MemoryStorage::new())).await?, *writer.key(), None).await?;
//! let upgrade = UpgradeRequest { start: 0, length: writer.length() };
//! let request = Request { id: 1, upgrade: Some(upgrade), manifest: true, ..Request::default() };
//! reader.receive(writer.create_proof(&request).await?).await?;
//! let nodes = reader.missing_nodes(2).await?;
//! let request = Request { id: 2, block: Some(NodeRequest { index: 1, nodes }), ..Request::default() };
//! reader.receive(writer.create_proof(&request).await?).await?;
//! assert_eq!(reader.get(1).await?.as_deref(), Some(&b"world"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bitfield;
mod clear;
mod conflict;
mod core;
pub mod flat;
mod hash;
mod message;
mod nodes;
mod proof;
mod receive;
pub mod reorg;
mod seek;
mod signature;
mod tree;
mod verify;

pub use crate::bitfield::{Bitfield, StagedPages, PAGE_BITS};
pub use crate::clear::{ClearError, ClearReport};
pub use crate::conflict::ConflictError;
pub use crate::core::{
    AppendError, Applied, CreateProofError, Hypercore, OpenError, ReceiveError, TruncateError,
};
pub use crate::hash::{
    leaf_hash, parent_hash, signable, signable_compat, total_size, tree_hash, Node,
};
pub use crate::message::{
    Data, DataBlock, DataDecodeError, DataHash, DataSeek, DataUpgrade, NodeRequest, Request,
    SeekRequest, UpgradeRequest,
};
pub use crate::proof::{ProofError, ProofPlan, SeekTarget};
pub use crate::reorg::{Reorg, ReorgApplied, ReorgError, ReorgWant};
pub use crate::signature::{MultiSignature, SignError, SignedTree, SignerProof, Verifier};
pub use crate::tree::Tree;
pub use crate::verify::{
    verify, verify_known, PendingProof, TrustedTree, UpgradedHead, VerifiedProof, VerifyError,
};
