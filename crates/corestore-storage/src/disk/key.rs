//! [`IndexKey`]: an index key whose first 40 bytes are kept inline as big-endian words, so the
//! index compares keys with a few integer comparisons and stores short keys without a heap
//! allocation. Every schema key but long aliases and user-data keys fits inline.

use std::fmt;

const WORDS: usize = 5;
const INLINE: usize = WORDS * 8;

/// A key ordered exactly as its bytes are (lexicographically).
///
/// The order of the fields is the order of comparison: the zero-padded first 40 bytes, then the
/// bytes beyond them, then the length. Padding is with the smallest byte, so when two heads are
/// equal the shorter key is a prefix of the longer one, which the tail (empty sorts first) and
/// then the length order correctly.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct IndexKey {
    head: [u64; WORDS],
    tail: Option<Box<[u8]>>,
    len: usize,
}

impl IndexKey {
    pub(super) fn new(bytes: &[u8]) -> Self {
        let mut head = [0u64; WORDS];
        for (word, chunk) in head.iter_mut().zip(bytes.chunks(8)) {
            let mut padded = [0u8; 8];
            padded[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_be_bytes(padded);
        }
        let tail = bytes.get(INLINE..).filter(|t| !t.is_empty()).map(Box::from);
        Self { head, tail, len: bytes.len() }
    }

    /// Appends the key's bytes to `out`.
    pub(super) fn extend_into(&self, out: &mut Vec<u8>) {
        let mut head = [0u8; INLINE];
        for (chunk, word) in head.chunks_exact_mut(8).zip(&self.head) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(head.get(..self.len.min(INLINE)).unwrap_or_default());
        if let Some(tail) = &self.tail {
            out.extend_from_slice(tail);
        }
    }

    /// Number of bytes in the key.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The key's bytes.
    pub(super) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        self.extend_into(&mut out);
        out
    }
}

/// Word by word, as the derived order would, but without the generic slice comparison (this is
/// the hot loop of every index insert and lookup).
impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        for (a, b) in self.head.iter().zip(&other.head) {
            if a != b {
                return a.cmp(b);
            }
        }
        self.tail.cmp(&other.tail).then(self.len.cmp(&other.len))
    }
}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IndexKey({:02x?})", self.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct byte values and lengths around the inline boundary, so prefixes, zero
        // padding and equal heads are all common.
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..50)
    }

    proptest! {
        #[test]
        fn orders_like_bytes(a in key_bytes(), b in key_bytes()) {
            let (ka, kb) = (IndexKey::new(&a), IndexKey::new(&b));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_eq!(ka.to_vec(), a.clone());
            prop_assert_eq!(ka.len(), a.len());
        }
    }

    #[test]
    fn prefixes_and_padding() {
        let cases: [&[u8]; 6] = [b"", b"\0", b"\0\0", b"a", b"a\0", b"b"];
        for pair in cases.windows(2) {
            assert!(IndexKey::new(pair[0]) < IndexKey::new(pair[1]), "{pair:?}");
        }
        let long = [7u8; 45];
        assert!(IndexKey::new(&long[..40]) < IndexKey::new(&long));
        assert!(IndexKey::new(&long[..44]) < IndexKey::new(&long));
    }
}
