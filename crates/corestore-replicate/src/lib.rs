//! Replication for the Rust Corestore, wire-compatible with JavaScript: the Noise secret-stream
//! transport, protomux channels and the hypercore/alpha protocol, as sans-IO state machines with
//! a thin tokio driver.
//!
//! This crate is a skeleton until the transport issue lands; it exports nothing yet.
