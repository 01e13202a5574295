//! The on-disk format of [`super::DiskStorage`]: one append-only log of checksummed records,
//! each bound to its position in its file.
//!
//! ```text
//! file    = header record*
//! header  = "CORESTORELOG" version:u32le salt[16]                        (32 bytes)
//! record  = len:u32le pcrc:u32le hcrc:u32le kind:u8 00 00 00 payload[len] 00*  (to 8 bytes)
//! pcrc    = crc32(payload)
//! hcrc    = crc32(salt ‖ offset:u64le ‖ len ‖ pcrc ‖ kind)     offset = where the record starts
//! kind    = 01 batch: payload = op+ (see [`super::index`])
//!         | 02 flush mark: payload = durable:u64le
//! ```
//!
//! One [`WriteBatch`] is one record, written with one `pwrite`. Every record starts at a multiple
//! of 8, and its header checksum covers the file's random salt and the record's own offset and
//! length, so an all-zero header (what a lost page reads as), a record copied from elsewhere, or
//! record-shaped bytes inside a stored value never pass for a record: replay stops at the first
//! header that is not a record at exactly that place.
//!
//! After each completed flush a small mark records how much of the log that flush made
//! durable. A bad record before the highest durable length claimed by any mark found after it
//! is damage to flushed data: open refuses it ([`Replay::Damaged`]) instead of cutting it.
//! A bad record after it is an unflushed tail torn by a crash and is cut off.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

use super::index::{self, Apply, Index, Loc, Payload};
use crate::backend::WriteBatch;

/// The file magic.
pub(super) const MAGIC: &[u8; 12] = b"CORESTORELOG";
/// The log format this build writes (and converts older logs to).
pub(super) const LOG_VERSION: u32 = 2;
/// Size of the file header.
pub(super) const HEADER_LEN: u64 = 32;
/// Size of a record header.
const RECORD_HEADER_LEN: usize = 16;
/// Largest record payload accepted (a batch above it is refused with `InvalidInput`).
pub(super) const MAX_RECORD: usize = 1 << 30;

const KIND_BATCH: u8 = 1;
const KIND_MARK: u8 = 2;

/// The per-file random salt in every header checksum.
pub(super) type Salt = [u8; 16];

/// A fresh random salt for a new log file.
pub(super) fn new_salt() -> Salt {
    rand::random()
}

/// The file header of a log with `salt`.
pub(super) fn header(salt: &Salt) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..12].copy_from_slice(MAGIC);
    h[12..16].copy_from_slice(&LOG_VERSION.to_le_bytes());
    h[16..].copy_from_slice(salt);
    h
}

fn align(at: u64) -> u64 {
    at.div_ceil(8) * 8
}

fn header_crc(salt: &Salt, offset: u64, len: u32, pcrc: u32, kind: u8) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(salt);
    h.update(&offset.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(&pcrc.to_le_bytes());
    h.update(&[kind]);
    h.finalize()
}

/// A record ready to append once its offset is known ([`Record::seal`]).
pub(super) struct Record {
    /// Header, payload and padding.
    pub(super) bytes: Vec<u8>,
    kind: u8,
    len: u32,
    pcrc: u32,
    payload: Option<Payload>,
}

/// Encodes `batch` as one record whose payload is at most `max` bytes.
pub(super) fn encode_batch(batch: WriteBatch, max: usize) -> io::Result<Record> {
    let mut payload = index::encode(batch, RECORD_HEADER_LEN, max)?;
    let mut bytes = std::mem::take(&mut payload.bytes);
    let body = bytes.get(RECORD_HEADER_LEN..).unwrap_or_default();
    let len = u32::try_from(body.len()).map_err(|_| index::too_large())?;
    let pcrc = crc32fast::hash(body);
    pad(&mut bytes);
    Ok(Record { bytes, kind: KIND_BATCH, len, pcrc, payload: Some(payload) })
}

/// A flush mark claiming that the log's first `durable` bytes are durable.
pub(super) fn encode_mark(durable: u64) -> Record {
    let mut bytes = vec![0; RECORD_HEADER_LEN];
    bytes.extend_from_slice(&durable.to_le_bytes());
    let pcrc = crc32fast::hash(&durable.to_le_bytes());
    Record { bytes, kind: KIND_MARK, len: 8, pcrc, payload: None }
}

fn pad(bytes: &mut Vec<u8>) {
    let padded = align(bytes.len() as u64) as usize;
    bytes.resize(padded, 0);
}

impl Record {
    /// Fills in the header for a record written at `offset` of the log with `salt`.
    pub(super) fn seal(&mut self, salt: &Salt, offset: u64) {
        let hcrc = header_crc(salt, offset, self.len, self.pcrc, self.kind);
        self.bytes[..4].copy_from_slice(&self.len.to_le_bytes());
        self.bytes[4..8].copy_from_slice(&self.pcrc.to_le_bytes());
        self.bytes[8..12].copy_from_slice(&hcrc.to_le_bytes());
        self.bytes[12] = self.kind;
    }

    /// Applies the record to `index`, it having been written at `offset`.
    pub(super) fn apply(self, index: &mut impl Apply, offset: u64) -> io::Result<()> {
        index.begin_record(offset, offset + self.bytes.len() as u64);
        match self.payload {
            Some(payload) => payload.apply(index, offset + RECORD_HEADER_LEN as u64),
            None => Ok(()),
        }
    }
}

/// A parsed record header.
struct Head {
    len: u32,
    pcrc: u32,
    kind: u8,
}

/// The header at `offset`, if it is a record of this file at exactly this place that fits in a
/// file of `file_len` bytes.
fn parse_head(bytes: &[u8], salt: &Salt, offset: u64, file_len: u64) -> Option<Head> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    let (len, pcrc, hcrc) = (word(0)?, word(4)?, word(8)?);
    let kind = *bytes.get(12)?;
    if len == 0
        || len as usize > MAX_RECORD
        || bytes.get(13..16)? != [0, 0, 0]
        || !matches!(kind, KIND_BATCH | KIND_MARK)
        || (kind == KIND_MARK && len != 8)
        || offset + RECORD_HEADER_LEN as u64 + u64::from(len) > file_len
        || hcrc != header_crc(salt, offset, len, pcrc, kind)
    {
        return None;
    }
    Some(Head { len, pcrc, kind })
}

#[cfg(test)]
thread_local! {
    /// Batch records replayed on this thread.
    pub(super) static REPLAYED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What replaying a log found.
#[derive(Debug)]
pub(super) enum Replay {
    /// The log replayed into the sink. `valid_len` is where the last intact record ends,
    /// padding included (it may be past the end of a file whose last padding was cut);
    /// `durable_len` is the highest durable length claimed by a flush mark.
    Done { salt: Salt, valid_len: u64, durable_len: u64 },
    /// A log of format version 1, replayed; it must be converted before appending.
    Legacy { index: Index, valid_len: u64 },
    /// The file does not start with the log magic.
    NotALog,
    /// The log was written by an unknown format version.
    Version(u32),
    /// A record with valid checksums does not parse.
    Corrupt { offset: u64 },
    /// The record at `offset` is bad, but a later flush mark says the log was durable up to
    /// `durable_len`: flushed data is damaged.
    Damaged { offset: u64, durable_len: u64 },
}

/// Replays the log in `file` into `sink`, from where [`Apply::start`] says (a version-1 log is
/// replayed into a fresh [`Index`] instead, returned in [`Replay::Legacy`]).
pub(super) fn replay(file: &File, sink: &mut impl Apply) -> io::Result<Replay> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 16];
    if read_full(&mut reader, &mut magic)? < magic.len() || &magic[..12] != MAGIC {
        return Ok(Replay::NotALog);
    }
    let version = u32::from_le_bytes([magic[12], magic[13], magic[14], magic[15]]);
    match version {
        1 => return super::legacy::replay(reader, file),
        LOG_VERSION => {}
        found => return Ok(Replay::Version(found)),
    }
    let mut salt = [0u8; 16];
    if read_full(&mut reader, &mut salt)? < salt.len() {
        return Ok(Replay::NotALog);
    }
    let file_len = file.metadata()?.len();
    let mut durable_len = 0;
    let mut offset = sink.start(file, &salt, file_len)?.clamp(HEADER_LEN, file_len.max(HEADER_LEN));
    if offset > HEADER_LEN {
        reader.seek_relative(i64::try_from(offset - HEADER_LEN).map_err(io::Error::other)?)?;
    }
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; RECORD_HEADER_LEN];
        if read_full(&mut reader, &mut head)? < head.len() {
            break;
        }
        let Some(h) = parse_head(&head, &salt, offset, file_len) else { break };
        let body_at = offset + RECORD_HEADER_LEN as u64;
        let next = align(body_at + u64::from(h.len));
        payload.resize((next - body_at) as usize, 0);
        let got = read_full(&mut reader, &mut payload)?;
        let body = payload.get(..h.len as usize).filter(|_| got >= h.len as usize);
        let Some(body) = body.filter(|b| crc32fast::hash(b) == h.pcrc) else { break };
        if h.kind == KIND_MARK {
            let claimed = u64::from_le_bytes(body.try_into().unwrap_or([0xff; 8]));
            if claimed > offset {
                return Ok(Replay::Corrupt { offset });
            }
            durable_len = durable_len.max(claimed);
        } else {
            #[cfg(test)]
            REPLAYED.with(|n| n.set(n.get() + 1));
            sink.begin_record(offset, next);
            if index::apply_payload(body, body_at, sink)?.is_none() {
                return Ok(Replay::Corrupt { offset });
            }
        }
        offset = next;
        sink.replayed(file, offset)?;
        if got < payload.len() {
            // The padding of the last record was cut: the log ends here.
            break;
        }
    }
    if offset < file_len {
        if let Some(claimed) = claimed_after(file, &salt, offset, file_len)? {
            if claimed > offset {
                return Ok(Replay::Damaged { offset, durable_len: claimed });
            }
        }
    }
    Ok(Replay::Done { salt, valid_len: offset, durable_len })
}

/// True when the log with `salt` holds intact records from `from` to exactly `to` (both record
/// boundaries): checks headers and payload checksums, applies nothing.
pub(super) fn verify(file: &File, salt: &Salt, from: u64, to: u64) -> io::Result<bool> {
    let file_len = file.metadata()?.len();
    let mut offset = from;
    let mut head = [0u8; RECORD_HEADER_LEN];
    let mut payload = Vec::new();
    while offset < to {
        if offset + RECORD_HEADER_LEN as u64 > file_len {
            return Ok(false);
        }
        file.read_exact_at(&mut head, offset)?;
        let Some(h) = parse_head(&head, salt, offset, file_len) else { return Ok(false) };
        payload.resize(h.len as usize, 0);
        file.read_exact_at(&mut payload, offset + RECORD_HEADER_LEN as u64)?;
        if crc32fast::hash(&payload) != h.pcrc {
            return Ok(false);
        }
        offset = align(offset + RECORD_HEADER_LEN as u64 + u64::from(h.len));
    }
    Ok(offset == to)
}

/// The highest durable length claimed by a flush mark after the bad record at `bad`: every
/// aligned position up to the end of the file is tried (the header checksum makes a wrong
/// candidate cost a few nanoseconds).
fn claimed_after(file: &File, salt: &Salt, bad: u64, file_len: u64) -> io::Result<Option<u64>> {
    const CHUNK: u64 = 1 << 20;
    let mut best = None;
    let mut buf = vec![0u8; (CHUNK as usize) + RECORD_HEADER_LEN];
    let mut base = bad + 8;
    while base + (RECORD_HEADER_LEN as u64) <= file_len {
        let n = (file_len - base).min(buf.len() as u64) as usize;
        let window = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(window, base)?;
        let mut i = 0;
        while i + RECORD_HEADER_LEN <= n && (i as u64) < CHUNK {
            let at = base + i as u64;
            if let Some(h) = window.get(i..).and_then(|b| parse_head(b, salt, at, file_len)) {
                if h.kind == KIND_MARK {
                    let mut body = [0u8; 8];
                    file.read_exact_at(&mut body, at + RECORD_HEADER_LEN as u64)?;
                    if crc32fast::hash(&body) == h.pcrc {
                        let claimed = u64::from_le_bytes(body);
                        best = Some(best.map_or(claimed, |b: u64| b.max(claimed)));
                    }
                }
            }
            i += 8;
        }
        base += CHUNK;
    }
    Ok(best)
}

/// Reads until `buf` is full or the file ends; returns how much was read.
pub(super) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// Reads the value at `loc`.
pub(super) fn read_value(file: &File, loc: Loc) -> io::Result<Vec<u8>> {
    let mut value = vec![0; loc.len as usize];
    file.read_exact_at(&mut value, loc.offset)?;
    Ok(value)
}

/// Writes every live entry of `index` (values read from `old`) into `new`, a fresh log with
/// `salt`, in records of about `chunk` bytes and never above `max` bytes; returns the new index
/// and the file length.
pub(super) fn rewrite(
    old: &File,
    index: &Index,
    new: &File,
    salt: &Salt,
    chunk: usize,
    max: usize,
) -> io::Result<(Index, u64)> {
    let mut fresh = Index::default();
    let entries = index.map.iter().map(|(k, loc)| Ok((k.to_vec(), *loc)));
    let end = rewrite_into(old, entries, new, salt, chunk, max, &mut fresh)?;
    Ok((fresh, end))
}

/// [`rewrite`] from any ascending stream of live entries into any index `fresh`; returns the
/// file length.
pub(super) fn rewrite_into(
    old: &File,
    entries: impl Iterator<Item = io::Result<(Vec<u8>, Loc)>>,
    new: &File,
    salt: &Salt,
    chunk: usize,
    max: usize,
    fresh: &mut impl Apply,
) -> io::Result<u64> {
    new.write_all_at(&header(salt), 0)?;
    let mut end = HEADER_LEN;
    let mut batch = WriteBatch::new();
    let mut size = 0;
    let flush = |batch: &mut WriteBatch,
                 fresh: &mut dyn FnMut(Record, u64) -> io::Result<()>,
                 end: &mut u64|
     -> io::Result<()> {
        let mut record = encode_batch(std::mem::take(batch), max)?;
        record.seal(salt, *end);
        new.write_all_at(&record.bytes, *end)?;
        let len = record.bytes.len() as u64;
        fresh(record, *end)?;
        *end += len;
        Ok(())
    };
    let mut sink = |record: Record, at: u64| record.apply(fresh, at);
    for entry in entries {
        let (key, loc) = entry?;
        let entry = key.len() + loc.len as usize + index::ENTRY_OVERHEAD as usize;
        if size > 0 && size + entry > max {
            flush(&mut batch, &mut sink, &mut end)?;
            size = 0;
        }
        batch.put(key, read_value(old, loc)?);
        size += entry;
        if size >= chunk {
            flush(&mut batch, &mut sink, &mut end)?;
            size = 0;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut sink, &mut end)?;
    }
    Ok(end)
}
