//! What a [`Replicator`](super::Replicator) sees of its core, and how it is tuned.

use std::time::Duration;

use corestore_hypercore::Hypercore;
use corestore_keys::{CoreKey, Manifest};

/// What a replicator needs to know of its core (implemented by [`Hypercore`]).
pub trait CoreView {
    /// The core key.
    fn key(&self) -> &CoreKey;
    /// The current fork.
    fn fork(&self) -> u64;
    /// The current length.
    fn length(&self) -> u64;
    /// Every block below this is stored locally.
    fn contiguous_length(&self) -> u64;
    /// True when block `index` is stored locally.
    fn has(&self, index: u64) -> bool;
    /// The manifest, when known.
    fn manifest(&self) -> Option<&Manifest>;
}

impl CoreView for Hypercore {
    fn key(&self) -> &CoreKey {
        Hypercore::key(self)
    }
    fn fork(&self) -> u64 {
        Hypercore::fork(self)
    }
    fn length(&self) -> u64 {
        Hypercore::length(self)
    }
    fn contiguous_length(&self) -> u64 {
        Hypercore::contiguous_length(self)
    }
    fn has(&self, index: u64) -> bool {
        Hypercore::has(self, index)
    }
    fn manifest(&self) -> Option<&Manifest> {
        Hypercore::manifest(self)
    }
}

pub(crate) fn has_manifest(core: &impl CoreView) -> bool {
    core.manifest().is_some_and(|m| !m.is_compat(core.key()))
}

/// Tuning of a replicator.
#[derive(Debug, Clone)]
pub struct ReplicatorConfig {
    /// A request unanswered for this long is cancelled and retried on another peer.
    pub request_timeout: Duration,
    /// Requests in flight per peer at first and at least.
    pub min_window: u32,
    /// Requests in flight per peer at most.
    pub max_window: u32,
    /// Download every block (eager), not only the ones asked for (sparse).
    pub eager: bool,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(20),
            min_window: 16,
            max_window: 512,
            eager: false,
        }
    }
}
