//! compact-encoding 3.5.2 primitives (spec `wire.md` §6), shared by every layer that speaks the
//! JavaScript wire format.
//!
//! [`Encoder`] appends to a `Vec<u8>`; [`Decoder`] reads a borrowed slice and never panics or
//! allocates more than the input holds: every length is checked against the bytes remaining
//! before anything is copied, and array counts are bounded by [`MAX_ARRAY_LEN`] as in JavaScript.

/// Largest integer JavaScript's compact-encoding accepts (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_UINT: u64 = (1 << 53) - 1;

/// Largest element count compact-encoding's `array` decoder accepts (0x100000).
pub const MAX_ARRAY_LEN: u64 = 0x10_0000;

/// Why a compact-encoded value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("compact encoding: unexpected end of input ({needed} bytes needed, {remaining} left)")]
    UnexpectedEnd {
        /// Bytes the value needs.
        needed: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// An integer above 2^53 - 1, which JavaScript refuses.
    #[error("compact encoding: integer {value} is above 2^53 - 1")]
    UintTooLarge {
        /// The decoded value.
        value: u64,
    },
    /// An array count above the decoder's bound.
    #[error("compact encoding: array of {count} elements exceeds the limit of {max}")]
    ArrayTooLong {
        /// The count read from the input.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A string that is not valid UTF-8.
    #[error("compact encoding: string is not valid UTF-8")]
    InvalidUtf8,
    /// A value that is valid encoding but not a known variant (an enum id, a version).
    #[error("compact encoding: unknown {what} {value}")]
    UnknownVariant {
        /// What was being decoded.
        what: &'static str,
        /// The unknown value.
        value: u64,
    },
}

/// Number of bytes `uint(n)` takes.
pub const fn uint_len(n: u64) -> usize {
    if n <= 0xfc {
        1
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// Appends compact-encoded values to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }

    /// The encoded bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes encoded so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// `uint`: 1 byte below 0xfd, else a 0xfd/0xfe/0xff marker and a 2/4/8-byte little-endian value.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        if let Ok(small) = u8::try_from(n) {
            if small <= 0xfc {
                self.buf.push(small);
                return self;
            }
        }
        if let Ok(n) = u16::try_from(n) {
            self.buf.push(0xfd);
            self.buf.extend_from_slice(&n.to_le_bytes());
        } else if let Ok(n) = u32::try_from(n) {
            self.buf.push(0xfe);
            self.buf.extend_from_slice(&n.to_le_bytes());
        } else {
            self.buf.push(0xff);
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
        self
    }

    /// `uint8`.
    pub fn uint8(&mut self, n: u8) -> &mut Self {
        self.buf.push(n);
        self
    }

    /// `uint16`, little-endian.
    pub fn uint16(&mut self, n: u16) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// `uint24`, little-endian; the top byte of `n` is dropped.
    pub fn uint24(&mut self, n: u32) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes()[..3]);
        self
    }

    /// `uint32`, little-endian.
    pub fn uint32(&mut self, n: u32) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// `uint64`, little-endian.
    pub fn uint64(&mut self, n: u64) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// `bool`: one byte, 1 or 0.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.buf.push(u8::from(b));
        self
    }

    /// `fixed32`/`fixed64`/`raw`: the bytes themselves, no length.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// `buffer`: `uint(len) || bytes`.
    pub fn buffer(&mut self, bytes: &[u8]) -> &mut Self {
        self.uint(bytes.len() as u64).raw(bytes)
    }

    /// `optionalBuffer`: like [`Encoder::buffer`], `None` (or empty) encodes as `00`.
    pub fn optional_buffer(&mut self, bytes: Option<&[u8]>) -> &mut Self {
        self.buffer(bytes.unwrap_or_default())
    }

    /// `string`: `uint(byteLength) || utf-8`.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.buffer(s.as_bytes())
    }

    /// `int`: zig-zag (`0, -1, 1, -2, …` → `0, 1, 2, 3, …`), then `uint`.
    pub fn int(&mut self, n: i64) -> &mut Self {
        self.uint(zigzag_encode(n))
    }

    /// `fixed32`: exactly 32 bytes, no length.
    pub fn fixed32(&mut self, bytes: &[u8; 32]) -> &mut Self {
        self.raw(bytes)
    }

    /// `fixed64`: exactly 64 bytes, no length.
    pub fn fixed64(&mut self, bytes: &[u8; 64]) -> &mut Self {
        self.raw(bytes)
    }

    /// `array(enc)`: `uint(count)`, then each item written by `item`.
    pub fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.uint(items.len() as u64);
        for it in items {
            item(self, it);
        }
        self
    }

    /// `uint32array`: `uint(count) || count × u32le`.
    pub fn uint32_array(&mut self, words: &[u32]) -> &mut Self {
        self.uint(words.len() as u64);
        for w in words {
            self.uint32(*w);
        }
        self
    }
}

/// Reads compact-encoded values from a borrowed slice.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads exactly `n` bytes.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let remaining = self.buf.len();
        let end = usize::try_from(n)
            .ok()
            .filter(|&end| end <= remaining)
            .ok_or(DecodeError::UnexpectedEnd { needed: n, remaining })?;
        let (head, tail) = self.buf.split_at(end);
        self.buf = tail;
        Ok(head)
    }

    /// Reads exactly `N` bytes into an array (`fixed32`, `fixed64`).
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// `uint8`.
    pub fn uint8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>()?[0])
    }

    /// `uint16`.
    pub fn uint16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.fixed()?))
    }

    /// `uint24`.
    pub fn uint24(&mut self) -> Result<u32, DecodeError> {
        let [a, b, c] = self.fixed()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    /// `uint32`.
    pub fn uint32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    /// `uint64`; values above 2^53 - 1 are refused as JavaScript refuses them.
    pub fn uint64(&mut self) -> Result<u64, DecodeError> {
        let value = u64::from_le_bytes(self.fixed()?);
        if value > MAX_SAFE_UINT {
            return Err(DecodeError::UintTooLarge { value });
        }
        Ok(value)
    }

    /// `uint` (the compact varint). Non-minimal encodings are accepted, as in JavaScript.
    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        match self.uint8()? {
            n @ 0..=0xfc => Ok(u64::from(n)),
            0xfd => Ok(u64::from(self.uint16()?)),
            0xfe => Ok(u64::from(self.uint32()?)),
            0xff => self.uint64(),
        }
    }

    /// `uint` that must fit a `usize` (lengths, counts).
    pub fn uint_usize(&mut self) -> Result<usize, DecodeError> {
        let value = self.uint()?;
        usize::try_from(value).map_err(|_| DecodeError::UintTooLarge { value })
    }

    /// `bool`: true iff the byte is 1.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.uint8()? == 1)
    }

    /// `buffer`: `uint(len) || bytes`, borrowed.
    pub fn buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.uint()?;
        self.take(len)
    }

    /// `optionalBuffer`: an empty buffer decodes as `None`.
    pub fn optional_buffer(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let bytes = self.buffer()?;
        Ok((!bytes.is_empty()).then_some(bytes))
    }

    /// `string`: `uint(len) || utf-8`.
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.buffer()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// An array count, bounded by [`MAX_ARRAY_LEN`] and by the bytes left
    /// (each element takes at least `min_element_len` bytes), so callers may pre-allocate it.
    pub fn array_len(&mut self, min_element_len: usize) -> Result<usize, DecodeError> {
        let count = self.uint()?;
        if count > MAX_ARRAY_LEN {
            return Err(DecodeError::ArrayTooLong { count, max: MAX_ARRAY_LEN });
        }
        let needed = count.saturating_mul(min_element_len as u64);
        if needed > self.buf.len() as u64 {
            return Err(DecodeError::UnexpectedEnd { needed, remaining: self.buf.len() });
        }
        // `count <= MAX_ARRAY_LEN` fits every usize we build for.
        Ok(count as usize)
    }

    /// `uint32array`: `uint(count) || count × u32le`.
    pub fn uint32_array(&mut self) -> Result<Vec<u32>, DecodeError> {
        let count = self.array_len(4)?;
        (0..count).map(|_| self.uint32()).collect()
    }

    /// `raw`: every byte left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// `int`: a zig-zag `uint`.
    pub fn int(&mut self) -> Result<i64, DecodeError> {
        self.uint().map(zigzag_decode)
    }

    /// `fixed32`.
    pub fn fixed32(&mut self) -> Result<[u8; 32], DecodeError> {
        self.fixed()
    }

    /// `fixed64`.
    pub fn fixed64(&mut self) -> Result<[u8; 64], DecodeError> {
        self.fixed()
    }

    /// `array(enc)`: a bounded count (see [`Decoder::array_len`]), then each item read by `item`.
    pub fn array<T>(
        &mut self,
        min_element_len: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.array_len(min_element_len)?;
        let mut out = Vec::with_capacity(count.min(self.buf.len()));
        for _ in 0..count {
            out.push(item(self)?);
        }
        Ok(out)
    }
}

/// Zig-zag maps signed to unsigned: `0, -1, 1, -2` → `0, 1, 2, 3`.
pub const fn zigzag_encode(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)).cast_unsigned()
}

/// The inverse of [`zigzag_encode`].
pub const fn zigzag_decode(n: u64) -> i64 {
    (n >> 1).cast_signed() ^ (n & 1).cast_signed().wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uint_bytes(n: u64) -> Vec<u8> {
        let mut e = Encoder::new();
        e.uint(n);
        e.into_vec()
    }

    #[test]
    fn uint_vectors_from_spec() {
        let cases: [(u64, &str); 6] = [
            (0, "00"),
            (252, "fc"),
            (253, "fdfd00"),
            (65535, "fdffff"),
            (65536, "fe00000100"),
            (1 << 32, "ff0000000001000000"),
        ];
        for (n, hex) in cases {
            assert_eq!(hex::encode(uint_bytes(n)), hex, "uint({n})");
            assert_eq!(Decoder::new(&hex::decode(hex).unwrap()).uint().unwrap(), n);
            assert_eq!(uint_len(n), hex.len() / 2);
        }
    }

    #[test]
    fn zigzag_int_vectors() {
        for (n, z) in
            [(0i64, 0u64), (-1, 1), (1, 2), (-2, 3), (i64::MAX, u64::MAX - 1), (i64::MIN, u64::MAX)]
        {
            assert_eq!(zigzag_encode(n), z);
            assert_eq!(zigzag_decode(z), n);
        }
        let mut e = Encoder::new();
        e.int(-3);
        assert_eq!(e.into_vec(), [5]);
    }

    #[test]
    fn non_minimal_uint_is_accepted() {
        assert_eq!(Decoder::new(&[0xfd, 5, 0]).uint().unwrap(), 5);
    }

    #[test]
    fn unsafe_uint_is_refused() {
        let bytes = uint_bytes(1 << 53);
        assert_eq!(Decoder::new(&bytes).uint(), Err(DecodeError::UintTooLarge { value: 1 << 53 }));
    }

    #[test]
    fn huge_buffer_length_is_an_error_not_an_allocation() {
        let mut e = Encoder::new();
        e.uint(MAX_SAFE_UINT);
        let bytes = e.into_vec();
        assert!(matches!(Decoder::new(&bytes).buffer(), Err(DecodeError::UnexpectedEnd { .. })));
    }

    #[test]
    fn array_count_is_bounded() {
        let bytes = uint_bytes(MAX_ARRAY_LEN + 1);
        assert!(matches!(Decoder::new(&bytes).array_len(0), Err(DecodeError::ArrayTooLong { .. })));
        let bytes = uint_bytes(1000);
        assert!(matches!(
            Decoder::new(&bytes).uint32_array(),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn optional_buffer_empty_is_none() {
        let mut e = Encoder::new();
        e.optional_buffer(None).optional_buffer(Some(b"ab"));
        let bytes = e.into_vec();
        assert_eq!(bytes, [0, 2, b'a', b'b']);
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.optional_buffer().unwrap(), None);
        assert_eq!(d.optional_buffer().unwrap(), Some(&b"ab"[..]));
    }

    proptest! {
        #[test]
        fn round_trip(n in 0..=MAX_SAFE_UINT, b in proptest::collection::vec(any::<u8>(), 0..300),
                      s in ".{0,40}", words in proptest::collection::vec(any::<u32>(), 0..20),
                      flag in any::<bool>(), w24 in 0u32..(1 << 24)) {
            let mut e = Encoder::new();
            e.uint(n).buffer(&b).string(&s).uint32_array(&words).bool(flag).uint24(w24)
                .uint16(7).uint64(n).raw(&[1, 2, 3]);
            let bytes = e.into_vec();
            let mut d = Decoder::new(&bytes);
            prop_assert_eq!(d.uint().unwrap(), n);
            prop_assert_eq!(d.buffer().unwrap(), &b[..]);
            prop_assert_eq!(d.string().unwrap(), &s[..]);
            prop_assert_eq!(d.uint32_array().unwrap(), words);
            prop_assert_eq!(d.bool().unwrap(), flag);
            prop_assert_eq!(d.uint24().unwrap(), w24);
            prop_assert_eq!(d.uint16().unwrap(), 7);
            prop_assert_eq!(d.uint64().unwrap(), n);
            prop_assert_eq!(d.rest(), &[1, 2, 3][..]);
            prop_assert!(d.is_empty());
        }

        #[test]
        fn int_fixed_and_array_round_trip(n in -(MAX_SAFE_UINT.cast_signed() / 2)..=(MAX_SAFE_UINT.cast_signed() / 2),
                                           a in any::<[u8; 32]>(), b in any::<[u8; 32]>(),
                                           items in proptest::collection::vec(".{0,8}", 0..10)) {
            let mut e = Encoder::new();
            let mut b64 = [0u8; 64];
            b64[..32].copy_from_slice(&a);
            b64[32..].copy_from_slice(&b);
            e.int(n).fixed32(&a).fixed64(&b64).array(&items, |e, s| { e.string(s); });
            let bytes = e.into_vec();
            let mut d = Decoder::new(&bytes);
            prop_assert_eq!(d.int().unwrap(), n);
            prop_assert_eq!(d.fixed32().unwrap(), a);
            prop_assert_eq!(d.fixed64().unwrap(), b64);
            let got = d.array(1, |d| d.string().map(str::to_owned)).unwrap();
            prop_assert_eq!(got, items);
            prop_assert!(d.is_empty());
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::new(&bytes);
            let _ = d.uint();
            let _ = d.buffer();
            let _ = d.string();
            let _ = d.uint32_array();
            let _ = d.optional_buffer();
            let _ = d.fixed::<32>();
            let _ = d.int();
            let _ = d.fixed64();
            let _ = d.array(1, Decoder::uint);
        }
    }
}
