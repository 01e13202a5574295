//! The signed append-only Merkle log (Hypercore), byte-compatible with JavaScript hypercore 11:
//! flat-tree math, tree hashing, signatures, proofs and the bitfield.
//!
//! This crate is a skeleton until the hypercore issue lands; it exports nothing yet.
