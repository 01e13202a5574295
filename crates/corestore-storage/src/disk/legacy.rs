//! Reading logs of format version 1, which open converts to the current format once.
//!
//! ```text
//! file   = "CORESTORELOG" 01000000 record*                         (16-byte header)
//! record = len:u32le crc32(payload):u32le payload[len]
//! ```
//!
//! Version 1 records are not bound to their position, so replay stops at the first record that
//! is empty (an all-zero header, as a lost page reads; version 1 never wrote empty records),
//! short, or fails its checksum. What follows is dropped by the conversion, as version 1 itself
//! cut it.

use std::fs::File;
use std::io::{self, Read};

use super::index::{self, Index};
use super::log::{read_full, Replay, MAX_RECORD};

const HEADER_LEN: u64 = 16;
const RECORD_HEADER_LEN: usize = 8;

/// Replays the records after the 16-byte header already read from `reader`.
pub(super) fn replay(mut reader: impl Read, file: &File) -> io::Result<Replay> {
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
        if len == 0 || len > MAX_RECORD || body_at + len as u64 > file_len {
            break;
        }
        payload.resize(len, 0);
        if read_full(&mut reader, &mut payload)? < len || crc32fast::hash(&payload) != crc {
            break;
        }
        if index::apply_payload(&payload, body_at, &mut index)?.is_none() {
            return Ok(Replay::Corrupt { offset });
        }
        offset = body_at + len as u64;
    }
    Ok(Replay::Legacy { index, valid_len: offset })
}
