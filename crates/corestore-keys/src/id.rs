//! Key ids as hypercore-id-encoding reads and writes them: 64 hex characters or 52 z-base-32
//! characters, optionally behind a `pear://` prefix.

const Z32_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Why a string or byte slice is not a 32-byte key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Neither 64 (hex) nor 52 (z-base-32) characters long.
    #[error("invalid key: expected 64 hex or 52 z-base-32 characters, got {len}")]
    InvalidLength {
        /// Characters in the input.
        len: usize,
    },
    /// A character outside the alphabet of the detected encoding.
    #[error("invalid key: character {ch:?} at position {position} is not valid {encoding}")]
    InvalidCharacter {
        /// The offending character.
        ch: char,
        /// Its character index.
        position: usize,
        /// `hex` or `z-base-32`.
        encoding: &'static str,
    },
    /// Raw bytes that are not 32 bytes long.
    #[error("invalid key: expected 32 bytes, got {len}")]
    InvalidByteLength {
        /// Bytes in the input.
        len: usize,
    },
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// z-base-32 of `bytes`, most significant bit first (the `z32` npm package's encoding).
pub fn to_z32(bytes: &[u8]) -> String {
    let bits = bytes.len() * 8;
    let mut out = String::with_capacity(bits.div_ceil(5));
    let bit = |i: usize| bytes.get(i / 8).map_or(0, |b| (b >> (7 - i % 8)) & 1);
    for start in (0..bits).step_by(5) {
        let quintet = (start..start + 5).fold(0u8, |acc, i| (acc << 1) | bit(i));
        out.push(char::from(Z32_ALPHABET[usize::from(quintet)]));
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn z32_value(c: u8) -> Option<u8> {
    Z32_ALPHABET.iter().position(|&a| a == c).and_then(|p| u8::try_from(p).ok())
}

fn invalid(s: &str, byte_pos: usize, encoding: &'static str) -> IdError {
    // Every byte before `byte_pos` was valid ASCII, so `byte_pos` is a char boundary; `get`
    // keeps this panic-free even if that ever changes.
    let position = s.get(..byte_pos).map_or(byte_pos, |head| head.chars().count());
    let ch = s.get(byte_pos..).and_then(|tail| tail.chars().next()).unwrap_or('\u{fffd}');
    IdError::InvalidCharacter { ch, position, encoding }
}

/// Parses 64 hex characters (either case) into 32 bytes.
pub fn parse_hex32(s: &str) -> Result<[u8; 32], IdError> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(IdError::InvalidLength { len: s.chars().count() });
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or_else(|| invalid(s, 2 * i, "hex"))?;
        let lo = hex_value(pair[1]).ok_or_else(|| invalid(s, 2 * i + 1, "hex"))?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

/// Parses 52 z-base-32 characters into 32 bytes (the 4 trailing pad bits are ignored, as the
/// `z32` package ignores them).
pub fn parse_z32(s: &str) -> Result<[u8; 32], IdError> {
    let chars = s.as_bytes();
    if chars.len() != 52 {
        return Err(IdError::InvalidLength { len: s.chars().count() });
    }
    let mut out = [0u8; 32];
    let mut acc: u32 = 0;
    let mut nbits = 0;
    let mut pos = 0;
    for (i, &c) in chars.iter().enumerate() {
        let v = z32_value(c).ok_or_else(|| invalid(s, i, "z-base-32"))?;
        acc = (acc << 5) | u32::from(v);
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            if let Some(slot) = out.get_mut(pos) {
                *slot = (acc >> nbits) as u8;
            }
            pos += 1;
            acc &= (1 << nbits) - 1;
        }
    }
    Ok(out)
}

/// Parses a key id as hypercore-id-encoding `decode` does: an optional `pear://` prefix (up to
/// the next `/`), then 52 z-base-32 or 64 hex characters.
pub fn parse_id(s: &str) -> Result<[u8; 32], IdError> {
    let s = match s.strip_prefix("pear://") {
        Some(rest) => rest.split('/').next().unwrap_or(rest),
        None => s,
    };
    match s.len() {
        52 => parse_z32(s),
        64 => parse_hex32(s),
        _ => Err(IdError::InvalidLength { len: s.chars().count() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn z32_known_value() {
        // z32.encode(Buffer.alloc(32)) is 52 'y's; 0xff… is all '9' but the last, padded char.
        assert_eq!(to_z32(&[0; 32]), "y".repeat(52));
        let ones = to_z32(&[0xff; 32]);
        assert_eq!(&ones[..51], "9".repeat(51));
        assert_eq!(parse_z32(&ones).unwrap(), [0xff; 32]);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert_eq!(parse_id("abc"), Err(IdError::InvalidLength { len: 3 }));
        let bad_hex = format!("{}zz", "0".repeat(62));
        assert!(matches!(
            parse_id(&bad_hex),
            Err(IdError::InvalidCharacter { ch: 'z', position: 62, encoding: "hex" })
        ));
        let bad_z32 = format!("{}l", "y".repeat(51));
        assert!(matches!(
            parse_id(&bad_z32),
            Err(IdError::InvalidCharacter { ch: 'l', position: 51, .. })
        ));
        // Multi-byte characters never panic on slicing.
        let unicode = "é".repeat(32);
        assert!(parse_id(&unicode).is_err());
        let unicode26 = format!("{}{}", "é".repeat(26), "");
        assert!(parse_id(&unicode26).is_err());
    }

    #[test]
    fn pear_prefix_is_stripped() {
        let id = to_z32(&[7; 32]);
        assert_eq!(parse_id(&format!("pear://{id}/some/path")).unwrap(), [7; 32]);
    }

    proptest! {
        #[test]
        fn round_trips(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(parse_id(&to_hex(&bytes)).unwrap(), bytes);
            prop_assert_eq!(parse_id(&to_hex(&bytes).to_uppercase()).unwrap(), bytes);
            prop_assert_eq!(parse_id(&to_z32(&bytes)).unwrap(), bytes);
            prop_assert_eq!(to_z32(&bytes).len(), 52);
        }

        #[test]
        fn parsing_random_strings_never_panics(s in ".{0,70}") {
            let _ = parse_id(&s);
        }
    }
}
