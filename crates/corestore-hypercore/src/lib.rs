//! The signed append-only Merkle log (Hypercore), byte-compatible with JavaScript hypercore 11:
//! flat-tree math, tree hashing, manifest signatures, proofs (create / verify) and the bitfield,
//! and [`Hypercore`], the log itself on `corestore-storage`.
//!
//! The replication layer uses two entry points: [`Hypercore::create_proof`] answers a
//! [`Request`]; [`Hypercore::verify`] + [`Hypercore::apply`] (or [`Hypercore::receive`]) take a
//! [`Data`] message. Verification itself is pure ([`verify()`]), storage writes come after it.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod bitfield;
mod core;
pub mod flat;
mod hash;
mod message;
mod proof;
mod seek;
mod signature;
mod tree;
mod verify;

pub use crate::bitfield::{Bitfield, StagedPages, PAGE_BITS};
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
pub use crate::signature::{MultiSignature, SignError, SignedTree, SignerProof, Verifier};
pub use crate::tree::Tree;
pub use crate::verify::{
    verify, PendingProof, TrustedTree, UpgradedHead, VerifiedProof, VerifyError,
};
