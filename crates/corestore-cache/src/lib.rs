//! The registry of open cores: one shared core per discovery key, cheap sessions on it, and the
//! core closed when its last session closes.
//!
//! This crate is a skeleton until the Corestore API issue lands; it exports nothing yet.
