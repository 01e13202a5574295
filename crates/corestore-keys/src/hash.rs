//! BLAKE2b helpers exactly as libsodium's `crypto_generichash` and hypercore-crypto use them.
//!
//! Keyed hashing is BLAKE2b's native key parameter, never HMAC (spec `wire.md` §9.10).

use blake2::digest::{FixedOutput, Mac, Update};
use blake2::{Blake2b512, Blake2bMac, Digest};

type Blake2b256 = blake2::Blake2b<blake2::digest::consts::U32>;
type Blake2bMac256 = Blake2bMac<blake2::digest::consts::U32>;

/// Unkeyed BLAKE2b-256 of the concatenation of `parts` (libsodium `crypto_generichash_batch`).
pub fn blake2b_256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Blake2b256::new();
    for part in parts {
        Digest::update(&mut hasher, part);
    }
    hasher.finalize().into()
}

/// BLAKE2b-256 keyed with `key` (1..=64 bytes) over the concatenation of `parts`.
///
/// # Panics
/// Never for keys of 1 to 64 bytes; every caller in this workspace passes a fixed-size key
/// (32-byte core or primary key, 64-byte handshake hash), so the length is checked by the type
/// system at the call sites through [`blake2b_256_keyed32`] and [`blake2b_256_keyed64`].
fn keyed(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // `new_from_slice` only fails for keys longer than 64 bytes or empty keys.
    let Ok(mut mac) = <Blake2bMac256 as Mac>::new_from_slice(key) else {
        unreachable!("BLAKE2b keys of 32 and 64 bytes are always valid")
    };
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac.finalize_fixed().into()
}

/// BLAKE2b-256 keyed with a 32-byte key over the concatenation of `parts`.
pub fn blake2b_256_keyed32(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    keyed(key, parts)
}

/// BLAKE2b-256 keyed with a 64-byte key (a Noise handshake hash) over the concatenation of `parts`.
pub fn blake2b_256_keyed64(key: &[u8; 64], parts: &[&[u8]]) -> [u8; 32] {
    keyed(key, parts)
}

/// Unkeyed BLAKE2b-512 of the concatenation of `parts` (the Noise hash function).
pub fn blake2b_512(parts: &[&[u8]]) -> [u8; 64] {
    let mut hasher = Blake2b512::new();
    for part in parts {
        Update::update(&mut hasher, part);
    }
    hasher.finalize_fixed().into()
}

/// hypercore-crypto `namespace(name, count)`: `base = H(name)`, `id[i] = H(base || u8(i))`.
pub fn namespace<const N: usize>(name: &[u8]) -> [[u8; 32]; N] {
    let base = blake2b_256(&[name]);
    std::array::from_fn(|i| {
        let index = u8::try_from(i).unwrap_or(u8::MAX);
        blake2b_256(&[&base, &[index]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercore_hash_matches_spec() {
        assert_eq!(
            hex::encode(blake2b_256(&[b"hypercore"])),
            "f7939b245918bbd3b167df469af1da5ba003e21218138ec62b7f4b6f0283de13"
        );
    }

    #[test]
    fn parts_are_concatenated() {
        assert_eq!(blake2b_256(&[b"hyper", b"core"]), blake2b_256(&[b"hypercore"]));
        let key = [7u8; 32];
        assert_eq!(blake2b_256_keyed32(&key, &[b"a", b"bc"]), blake2b_256_keyed32(&key, &[b"abc"]));
    }

    #[test]
    fn keyed_is_not_unkeyed() {
        assert_ne!(blake2b_256_keyed32(&[0; 32], &[b"x"]), blake2b_256(&[b"x"]));
    }
}
