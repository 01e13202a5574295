//! The uint24 little-endian length-prefixed framing of secret-stream (spec `wire.md` §3.1),
//! as a pure `tokio_util::codec` [`Decoder`]/[`Encoder`] in the style of `length_delimited`: a
//! `Head`/`Data` state so a header is parsed once, and the maximum frame size checked before
//! anything is allocated.

use std::io;

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 3;
/// Largest frame body uint24 can describe (`MAX_ATOMIC_WRITE` in secret-stream).
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame longer than the codec's maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The announced or requested length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the partial frame.
        buffered: usize,
    },
    /// The underlying transport failed.
    #[error("transport: {0}")]
    Io(#[from] io::Error),
}

impl From<FrameError> for io::Error {
    fn from(err: FrameError) -> Self {
        match err {
            FrameError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    Head,
    Data(usize),
}

/// uint24-LE framing. Items are frame bodies, handed off without copying.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame_len: usize,
    state: DecodeState,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec accepting frames up to [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self { max_frame_len: MAX_FRAME_LEN, state: DecodeState::Head }
    }

    /// A codec refusing frames above `max` bytes (capped at [`MAX_FRAME_LEN`]).
    #[must_use]
    pub fn with_max_frame_len(max: usize) -> Self {
        Self { max_frame_len: max.min(MAX_FRAME_LEN), state: DecodeState::Head }
    }

    /// The maximum frame body length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    fn decode_head(&self, src: &mut BytesMut) -> Result<Option<usize>, FrameError> {
        let Some(&[a, b, c]) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([a, b, c, 0]) as usize;
        if len > self.max_frame_len {
            return Err(FrameError::FrameTooLarge { len, max: self.max_frame_len });
        }
        src.advance(HEADER_LEN);
        // Reserve only now that the length is known to be acceptable.
        src.reserve(len.saturating_sub(src.len()));
        Ok(Some(len))
    }

    /// Writes a frame header for a body of `len` bytes.
    pub fn encode_head(&self, len: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
        if len > self.max_frame_len {
            return Err(FrameError::FrameTooLarge { len, max: self.max_frame_len });
        }
        let bytes = (len as u32).to_le_bytes();
        dst.put_slice(bytes.get(..HEADER_LEN).unwrap_or_default());
        Ok(())
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let len = match self.state {
            DecodeState::Head => match self.decode_head(src)? {
                Some(len) => {
                    self.state = DecodeState::Data(len);
                    len
                }
                None => return Ok(None),
            },
            DecodeState::Data(len) => len,
        };
        if src.len() < len {
            return Ok(None);
        }
        self.state = DecodeState::Head;
        let frame = src.split_to(len);
        src.reserve(HEADER_LEN);
        Ok(Some(frame))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && self.state == DecodeState::Head => Ok(None),
            None => Err(FrameError::Truncated { buffered: src.len() }),
        }
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(HEADER_LEN + item.len());
        self.encode_head(item.len(), dst)?;
        dst.put_slice(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_byte_at_a_time() {
        let mut codec = FrameCodec::new();
        let mut wire = BytesMut::new();
        codec.encode(&b"hello"[..], &mut wire).unwrap();
        codec.encode(&b""[..], &mut wire).unwrap();
        assert_eq!(&wire[..3], &[5, 0, 0]);
        let mut src = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire {
            src.put_u8(b);
            while let Some(f) = codec.decode(&mut src).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames, [&b"hello"[..], &b""[..]]);
    }

    #[test]
    fn oversized_frame_is_refused_before_allocation() {
        let mut codec = FrameCodec::with_max_frame_len(1024);
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff][..]);
        let cap = src.capacity();
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::FrameTooLarge { len: 0xff_ffff, max: 1024 })
        ));
        assert_eq!(src.capacity(), cap);
        let mut dst = BytesMut::new();
        assert!(codec.encode(&[0u8; 1025][..], &mut dst).is_err());
        let io: io::Error = FrameError::FrameTooLarge { len: 1, max: 0 }.into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn truncated_frame_at_eof_is_an_error() {
        let mut codec = FrameCodec::new();
        let mut src = BytesMut::from(&[4, 0, 0, 1][..]);
        assert!(matches!(codec.decode_eof(&mut src), Err(FrameError::Truncated { .. })));
        let mut codec = FrameCodec::new();
        assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
    }

    proptest! {
        #[test]
        fn round_trip(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
                      chunk in 1usize..50) {
            let mut codec = FrameCodec::new();
            let mut wire = BytesMut::new();
            for f in &frames {
                codec.encode(&f[..], &mut wire).unwrap();
            }
            let mut src = BytesMut::new();
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                src.extend_from_slice(piece);
                while let Some(f) = codec.decode(&mut src).unwrap() {
                    out.push(f.to_vec());
                }
            }
            prop_assert_eq!(out, frames);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut codec = FrameCodec::with_max_frame_len(16);
            let mut src = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut src) {}
        }
    }
}
