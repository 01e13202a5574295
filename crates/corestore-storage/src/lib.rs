//! Pluggable async storage for the Rust Corestore: a small object-safe backend trait, the record
//! schema every core is kept in, an in-memory backend and the default disk backend.
//!
//! This crate is a skeleton until the storage issue lands; it exports nothing yet.
