//! [`Keys`]: the index of a [`super::DiskStorage`], in memory (the default) or persistent.

use std::fs::File;
use std::io;

use super::index::{Apply, Index, Loc};
use super::key::IndexKey;
use super::log::Salt;
use super::lsm::Lsm;

/// The key → value-position index, whichever kind the store was opened with.
#[derive(Debug)]
pub(super) enum Keys {
    /// Every key in memory.
    Memory(Index),
    /// Sorted runs on disk plus a bounded in-memory table.
    Persistent(Box<Lsm>),
}

impl Keys {
    pub(super) fn get(&self, key: &[u8]) -> io::Result<Option<Loc>> {
        match self {
            Self::Memory(index) => Ok(index.map.get(&IndexKey::new(key)).copied()),
            Self::Persistent(lsm) => lsm.get(key),
        }
    }

    pub(super) fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Loc)>> {
        match self {
            Self::Memory(index) => Ok(index
                .map
                .range(IndexKey::new(start)..IndexKey::new(end))
                .take(limit)
                .map(|(k, loc)| (k.to_vec(), *loc))
                .collect()),
            Self::Persistent(lsm) => lsm.range(start, end, limit),
        }
    }

    /// Number of live keys (for the persistent index, a full merge over it).
    pub(super) fn len(&self) -> io::Result<usize> {
        match self {
            Self::Memory(index) => Ok(index.map.len()),
            Self::Persistent(lsm) => lsm.count(),
        }
    }

    /// True when a log of `log_len` bytes holds more than `ratio` times the live data.
    pub(super) fn mostly_garbage(&self, log_len: u64, ratio: u64) -> bool {
        match self {
            Self::Memory(index) => log_len > ratio * index.live_bytes,
            Self::Persistent(lsm) => log_len > ratio * log_len.saturating_sub(lsm.garbage),
        }
    }

    /// After a write: moves a full in-memory table of the persistent index to disk, recording
    /// that the log is durable up to `synced`. Returns whether it did.
    pub(super) fn maybe_spill(&mut self, log_end: u64, synced: u64) -> io::Result<bool> {
        match self {
            Self::Persistent(lsm) if lsm.is_full() => lsm.spill(log_end, synced).map(|()| true),
            _ => Ok(false),
        }
    }
}

impl Apply for Keys {
    fn start(&mut self, log: &File, salt: &Salt, log_len: u64) -> io::Result<u64> {
        match self {
            Self::Memory(index) => index.start(log, salt, log_len),
            Self::Persistent(lsm) => lsm.start(log, salt, log_len),
        }
    }

    fn begin_record(&mut self, at: u64, end: u64) {
        match self {
            Self::Memory(index) => index.begin_record(at, end),
            Self::Persistent(lsm) => lsm.begin_record(at, end),
        }
    }

    fn put(&mut self, key: &[u8], loc: Loc) -> io::Result<()> {
        match self {
            Self::Memory(index) => index.put(key, loc),
            Self::Persistent(lsm) => lsm.put(key, loc),
        }
    }

    fn delete(&mut self, key: &[u8]) -> io::Result<()> {
        match self {
            Self::Memory(index) => index.delete(key),
            Self::Persistent(lsm) => lsm.delete(key),
        }
    }

    fn delete_range(&mut self, start: &[u8], end: &[u8]) -> io::Result<()> {
        match self {
            Self::Memory(index) => index.delete_range(start, end),
            Self::Persistent(lsm) => lsm.delete_range(start, end),
        }
    }

    fn replayed(&mut self, log: &File, end: u64) -> io::Result<()> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Persistent(lsm) => lsm.replayed(log, end),
        }
    }
}
