//! The on-disk format of [`super::DiskStorage`]: one append-only log of checksummed batch records.
//!
//! ```text
//! file   = header record*
//! header = "CORESTORELOG" version:u32le                      (16 bytes)
//! record = len:u32le crc32(payload):u32le payload[len]
//! payload = op+
//! op     = 01 klen:u32le key vlen:u32le value                 put
//!        | 02 klen:u32le key                                  delete
//!        | 03 slen:u32le start elen:u32le end                 delete start..end
//! ```
//!
//! One [`WriteBatch`] is one record, written with one `pwrite`. On open the log is replayed in
//! order into an in-memory index (key → value position); the first record that is short or fails
//! its checksum ends the log and is cut off, since only an unflushed tail can be torn.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

use super::key::IndexKey;
use crate::backend::{BatchOp, WriteBatch};

/// The file magic.
pub(super) const MAGIC: &[u8; 12] = b"CORESTORELOG";
/// The log format this build writes and reads.
pub(super) const LOG_VERSION: u32 = 1;
/// Size of the file header.
pub(super) const HEADER_LEN: u64 = 16;
/// Size of a record header.
const RECORD_HEADER_LEN: usize = 8;
/// Largest record payload accepted (a batch above it is refused with `InvalidInput`).
pub(super) const MAX_RECORD: usize = 1 << 30;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_RANGE: u8 = 3;

/// Accounted bytes per live index entry besides key and value (op tag and lengths).
const ENTRY_OVERHEAD: u64 = 9;

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

impl Index {
    fn put(&mut self, key: IndexKey, loc: Loc) {
        let added = key.len() as u64 + u64::from(loc.len) + ENTRY_OVERHEAD;
        if let Some(old) = self.map.insert(key, loc) {
            self.live_bytes -= u64::from(old.len);
            self.live_bytes += u64::from(loc.len);
        } else {
            self.live_bytes += added;
        }
    }

    fn delete(&mut self, key: &[u8]) {
        self.remove(&IndexKey::new(key));
    }

    fn remove(&mut self, key: &IndexKey) {
        if let Some(old) = self.map.remove(key) {
            self.live_bytes -= key.len() as u64 + u64::from(old.len) + ENTRY_OVERHEAD;
        }
    }

    fn delete_range(&mut self, start: &[u8], end: &[u8]) {
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

/// A batch encoded as one record, with what it does to the index.
pub(super) struct EncodedBatch {
    /// Record header and payload, ready to append.
    pub(super) bytes: Vec<u8>,
    ops: Vec<IndexOp>,
}

enum IndexOp {
    /// `value_at` is the value's position inside `bytes`.
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

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "write batch exceeds the 1 GiB record limit")
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_large())?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Encodes `batch` as one record.
pub(super) fn encode(batch: WriteBatch) -> io::Result<EncodedBatch> {
    let size: usize = batch
        .ops()
        .iter()
        .map(|op| match op {
            BatchOp::Put { key, value } => 9 + key.len() + value.len(),
            BatchOp::Delete { key } => 5 + key.len(),
            BatchOp::DeleteRange { start, end } => 9 + start.len() + end.len(),
        })
        .sum();
    if size > MAX_RECORD {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(RECORD_HEADER_LEN + size);
    bytes.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    let mut ops = Vec::with_capacity(batch.len());
    for op in batch.into_ops() {
        match op {
            BatchOp::Put { key, value } => {
                bytes.push(OP_PUT);
                push_bytes(&mut bytes, &key)?;
                let len = u32::try_from(value.len()).map_err(|_| too_large())?;
                let value_at = bytes.len() as u64 + 4;
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
    let payload_len = u32::try_from(bytes.len() - RECORD_HEADER_LEN).map_err(|_| too_large())?;
    let crc = crc32fast::hash(&bytes[RECORD_HEADER_LEN..]);
    bytes[..4].copy_from_slice(&payload_len.to_le_bytes());
    bytes[4..RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(EncodedBatch { bytes, ops })
}

impl EncodedBatch {
    /// Applies the batch to `index`, the record having been written at `offset`.
    pub(super) fn apply(self, index: &mut Index, offset: u64) {
        for op in self.ops {
            match op {
                IndexOp::Put { key, value_at, len } => {
                    index.put(IndexKey::new(&key), Loc { offset: offset + value_at, len });
                }
                IndexOp::Delete { key } => index.delete(&key),
                IndexOp::DeleteRange { start, end } => index.delete_range(&start, &end),
            }
        }
    }
}

/// What replaying a log found.
#[derive(Debug)]
pub(super) enum Replay {
    /// The log replayed; `valid_len` is where the last intact record ends.
    Done { index: Index, valid_len: u64 },
    /// The file does not start with the log magic.
    NotALog,
    /// The log was written by an unknown format version.
    Version(u32),
    /// A record with a valid checksum does not parse: damage, not a torn write.
    Corrupt { offset: u64 },
}

/// Replays the log in `file` into an index.
pub(super) fn replay(file: &File) -> io::Result<Replay> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER_LEN as usize];
    if read_full(&mut reader, &mut header)? < header.len() || &header[..12] != MAGIC {
        return Ok(Replay::NotALog);
    }
    let version = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if version != LOG_VERSION {
        return Ok(Replay::Version(version));
    }
    let file_len = file.metadata()?.len();
    let mut index = Index::default();
    let mut offset = HEADER_LEN;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; RECORD_HEADER_LEN];
        if read_full(&mut reader, &mut head)? < head.len() {
            break;
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let body_at = offset + RECORD_HEADER_LEN as u64;
        if len > MAX_RECORD || body_at + len as u64 > file_len {
            break;
        }
        payload.resize(len, 0);
        if read_full(&mut reader, &mut payload)? < len || crc32fast::hash(&payload) != crc {
            break;
        }
        if apply_payload(&payload, body_at, &mut index).is_none() {
            return Ok(Replay::Corrupt { offset });
        }
        offset = body_at + len as u64;
    }
    Ok(Replay::Done { index, valid_len: offset })
}

/// Applies one checksummed payload found at `at`; `None` when it does not parse.
fn apply_payload(payload: &[u8], at: u64, index: &mut Index) -> Option<()> {
    let mut pos = 0usize;
    let take = |pos: &mut usize| -> Option<(usize, usize)> {
        let len_bytes = payload.get(*pos..*pos + 4)?;
        let len = u32::from_le_bytes(len_bytes.try_into().ok()?) as usize;
        let start = *pos + 4;
        let end = start.checked_add(len)?;
        payload.get(start..end)?;
        *pos = end;
        Some((start, end))
    };
    while pos < payload.len() {
        let tag = *payload.get(pos)?;
        pos += 1;
        match tag {
            OP_PUT => {
                let (ks, ke) = take(&mut pos)?;
                let (vs, ve) = take(&mut pos)?;
                let loc = Loc { offset: at + vs as u64, len: u32::try_from(ve - vs).ok()? };
                index.put(IndexKey::new(payload.get(ks..ke)?), loc);
            }
            OP_DELETE => {
                let (ks, ke) = take(&mut pos)?;
                index.delete(payload.get(ks..ke)?);
            }
            OP_DELETE_RANGE => {
                let (ss, se) = take(&mut pos)?;
                let (es, ee) = take(&mut pos)?;
                index.delete_range(payload.get(ss..se)?, payload.get(es..ee)?);
            }
            _ => return None,
        }
    }
    Some(())
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The 16-byte file header.
pub(super) fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..12].copy_from_slice(MAGIC);
    h[12..].copy_from_slice(&LOG_VERSION.to_le_bytes());
    h
}

/// Reads the value at `loc`.
pub(super) fn read_value(file: &File, loc: Loc) -> io::Result<Vec<u8>> {
    let mut value = vec![0; loc.len as usize];
    file.read_exact_at(&mut value, loc.offset)?;
    Ok(value)
}

/// Writes every live entry of `index` (values read from `old`) into `new` after its header, in
/// records of about `chunk` bytes; returns the new index and the file length.
pub(super) fn rewrite(
    old: &File,
    index: &Index,
    new: &File,
    chunk: usize,
) -> io::Result<(Index, u64)> {
    new.write_all_at(&header(), 0)?;
    let mut end = HEADER_LEN;
    let mut fresh = Index::default();
    let mut batch = WriteBatch::new();
    let mut size = 0;
    let entries = index.map.iter();
    let flush = |batch: &mut WriteBatch, fresh: &mut Index, end: &mut u64| -> io::Result<()> {
        let encoded = encode(std::mem::take(batch))?;
        new.write_all_at(&encoded.bytes, *end)?;
        let len = encoded.bytes.len() as u64;
        encoded.apply(fresh, *end);
        *end += len;
        Ok(())
    };
    for (key, loc) in entries {
        batch.put(key.to_vec(), read_value(old, *loc)?);
        size += key.len() + loc.len as usize + 9;
        if size >= chunk {
            flush(&mut batch, &mut fresh, &mut end)?;
            size = 0;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut fresh, &mut end)?;
    }
    Ok((fresh, end))
}
