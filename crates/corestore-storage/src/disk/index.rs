//! The in-memory index of [`super::DiskStorage`] (key → value position) and the batch payload
//! encoding shared by every log format version:
//!
//! ```text
//! payload = op+
//! op      = 01 klen:u32le key vlen:u32le value                 put
//!         | 02 klen:u32le key                                  delete
//!         | 03 slen:u32le start elen:u32le end                 delete start..end
//! ```

use std::collections::BTreeMap;
use std::io;

use super::key::IndexKey;
use crate::backend::{BatchOp, WriteBatch};

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_RANGE: u8 = 3;

/// Accounted bytes per live index entry besides key and value (op tag and lengths).
pub(super) const ENTRY_OVERHEAD: u64 = 9;

/// Where a value lives in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) offset: u64,
    pub(super) len: u32,
}

/// The in-memory index: every live key and where its value is, plus the live byte count used to
/// decide when compaction pays off.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) map: BTreeMap<IndexKey, Loc>,
    pub(super) live_bytes: u64,
}

/// Something record operations are applied to: the in-memory [`Index`], or the persistent
/// index of [`super::lsm`].
pub(super) trait Apply {
    /// Where replay of the log with `salt`, `log_len` bytes long, starts (after the file
    /// header by default).
    fn start(&mut self, _log: &std::fs::File, _salt: &[u8; 16], _log_len: u64) -> io::Result<u64> {
        Ok(super::log::HEADER_LEN)
    }
    /// Called before the operations of the record in `at..end` of the log are applied.
    fn begin_record(&mut self, _at: u64, _end: u64) {}
    /// Sets `key` to the value at `loc`.
    fn put(&mut self, key: &[u8], loc: Loc) -> io::Result<()>;
    /// Removes `key`.
    fn delete(&mut self, key: &[u8]) -> io::Result<()>;
    /// Removes every key in `start..end`.
    fn delete_range(&mut self, start: &[u8], end: &[u8]) -> io::Result<()>;
    /// Called by replay after each record, with the log length it reached.
    fn replayed(&mut self, _log: &std::fs::File, _end: u64) -> io::Result<()> {
        Ok(())
    }
}

impl Apply for Index {
    fn put(&mut self, key: &[u8], loc: Loc) -> io::Result<()> {
        self.insert(IndexKey::new(key), loc);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> io::Result<()> {
        self.remove(&IndexKey::new(key));
        Ok(())
    }

    fn delete_range(&mut self, start: &[u8], end: &[u8]) -> io::Result<()> {
        self.remove_range(start, end);
        Ok(())
    }
}

impl Index {
    fn insert(&mut self, key: IndexKey, loc: Loc) {
        let added = key.len() as u64 + u64::from(loc.len) + ENTRY_OVERHEAD;
        if let Some(old) = self.map.insert(key, loc) {
            self.live_bytes -= u64::from(old.len);
            self.live_bytes += u64::from(loc.len);
        } else {
            self.live_bytes += added;
        }
    }

    fn remove(&mut self, key: &IndexKey) {
        if let Some(old) = self.map.remove(key) {
            self.live_bytes -= key.len() as u64 + u64::from(old.len) + ENTRY_OVERHEAD;
        }
    }

    fn remove_range(&mut self, start: &[u8], end: &[u8]) {
        if start >= end {
            return;
        }
        let doomed: Vec<IndexKey> = self
            .map
            .range(IndexKey::new(start)..IndexKey::new(end))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            self.remove(k);
        }
    }
}

/// A batch encoded as a payload, with what it does to the index.
pub(super) struct Payload {
    pub(super) bytes: Vec<u8>,
    ops: Vec<IndexOp>,
}

enum IndexOp {
    /// `value_at` is the value's position inside the payload.
    Put {
        key: Vec<u8>,
        value_at: u64,
        len: u32,
    },
    Delete {
        key: Vec<u8>,
    },
    DeleteRange {
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

pub(super) fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "write batch exceeds the 1 GiB record limit")
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_large())?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Encoded size of one operation.
pub(super) fn op_size(op: &BatchOp) -> usize {
    match op {
        BatchOp::Put { key, value } => 9 + key.len() + value.len(),
        BatchOp::Delete { key } => 5 + key.len(),
        BatchOp::DeleteRange { start, end } => 9 + start.len() + end.len(),
    }
}

/// Encodes `batch` after `reserve` zero bytes (room for a record header); refuses a payload
/// above `max` bytes.
pub(super) fn encode(batch: WriteBatch, reserve: usize, max: usize) -> io::Result<Payload> {
    let size: usize = batch.ops().iter().map(op_size).sum();
    if size > max {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(reserve + size + 8);
    bytes.resize(reserve, 0);
    let mut ops = Vec::with_capacity(batch.len());
    for op in batch.into_ops() {
        match op {
            BatchOp::Put { key, value } => {
                bytes.push(OP_PUT);
                push_bytes(&mut bytes, &key)?;
                let len = u32::try_from(value.len()).map_err(|_| too_large())?;
                let value_at = (bytes.len() - reserve) as u64 + 4;
                push_bytes(&mut bytes, &value)?;
                ops.push(IndexOp::Put { key, value_at, len });
            }
            BatchOp::Delete { key } => {
                bytes.push(OP_DELETE);
                push_bytes(&mut bytes, &key)?;
                ops.push(IndexOp::Delete { key });
            }
            BatchOp::DeleteRange { start, end } => {
                bytes.push(OP_DELETE_RANGE);
                push_bytes(&mut bytes, &start)?;
                push_bytes(&mut bytes, &end)?;
                ops.push(IndexOp::DeleteRange { start, end });
            }
        }
    }
    Ok(Payload { bytes, ops })
}

impl Payload {
    /// Applies the batch to `index`, its payload having been written at `payload_at`.
    pub(super) fn apply(self, index: &mut impl Apply, payload_at: u64) -> io::Result<()> {
        for op in self.ops {
            match op {
                IndexOp::Put { key, value_at, len } => {
                    index.put(&key, Loc { offset: payload_at + value_at, len })?;
                }
                IndexOp::Delete { key } => index.delete(&key)?,
                IndexOp::DeleteRange { start, end } => index.delete_range(&start, &end)?,
            }
        }
        Ok(())
    }
}

/// Checks that `payload` parses as operations, without applying it.
pub(super) fn parses(payload: &[u8]) -> bool {
    walk(payload, |_| {}).is_some()
}

/// Applies one checksummed payload found at `at`; `Ok(None)` when it does not parse (then
/// nothing was applied).
pub(super) fn apply_payload(
    payload: &[u8],
    at: u64,
    index: &mut impl Apply,
) -> io::Result<Option<()>> {
    if !parses(payload) {
        return Ok(None);
    }
    let mut result = Ok(());
    walk(payload, |op| {
        if result.is_err() {
            return;
        }
        result = match op {
            Op::Put(key, start, len) => index.put(key, Loc { offset: at + start as u64, len }),
            Op::Delete(key) => index.delete(key),
            Op::DeleteRange(start, end) => index.delete_range(start, end),
        };
    });
    result.map(|()| Some(()))
}

enum Op<'a> {
    /// Key, value start inside the payload, value length.
    Put(&'a [u8], usize, u32),
    Delete(&'a [u8]),
    DeleteRange(&'a [u8], &'a [u8]),
}

fn walk<'a>(payload: &'a [u8], mut each: impl FnMut(Op<'a>)) -> Option<()> {
    let mut pos = 0usize;
    let take = |pos: &mut usize| -> Option<(usize, usize)> {
        let len_bytes = payload.get(*pos..pos.checked_add(4)?)?;
        let len = u32::from_le_bytes(len_bytes.try_into().ok()?) as usize;
        let start = *pos + 4;
        let end = start.checked_add(len)?;
        payload.get(start..end)?;
        *pos = end;
        Some((start, end))
    };
    if payload.is_empty() {
        return None;
    }
    while pos < payload.len() {
        let tag = *payload.get(pos)?;
        pos += 1;
        match tag {
            OP_PUT => {
                let (ks, ke) = take(&mut pos)?;
                let (vs, ve) = take(&mut pos)?;
                each(Op::Put(payload.get(ks..ke)?, vs, u32::try_from(ve - vs).ok()?));
            }
            OP_DELETE => {
                let (ks, ke) = take(&mut pos)?;
                each(Op::Delete(payload.get(ks..ke)?));
            }
            OP_DELETE_RANGE => {
                let (ss, se) = take(&mut pos)?;
                let (es, ee) = take(&mut pos)?;
                each(Op::DeleteRange(payload.get(ss..se)?, payload.get(es..ee)?));
            }
            _ => return None,
        }
    }
    Some(())
}
