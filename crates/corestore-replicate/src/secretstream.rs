//! libsodium `crypto_secretstream_xchacha20poly1305` as secret-stream uses it (spec `wire.md`
//! §3.5): one push per frame with `TAG_MESSAGE`, no associated data, 17 bytes of overhead.
//!
//! Backed by the `RustCrypto` `crypto_secretstream` crate (pure Rust, checked here against the
//! §3.5 vector). Encryption writes straight behind a frame header in the caller's buffer and
//! decryption works in place, so a frame costs no extra allocation.

use std::fmt;

use bytes::BytesMut;
use crypto_secretstream::aead;
use crypto_secretstream::{Header, Key, PullStream, PushStream, Tag};
use rand_core::{CryptoRng, RngCore};

/// Bytes a push adds to its plaintext (1 encrypted tag byte + a 16-byte MAC).
pub const ABYTES: usize = 17;
/// Size of the stream header sent in the id frame.
pub const HEADERBYTES: usize = 24;

/// A frame failed to decrypt: too short, a bad MAC or an unknown tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secretstream: frame failed to authenticate")]
pub struct DecryptError;

/// The view of a `BytesMut` from `start` on, as an `aead::Buffer`.
struct Tail<'a> {
    buf: &'a mut BytesMut,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..).unwrap_or_default()
    }
}

impl aead::Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> aead::Result<()> {
        self.buf.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start.saturating_add(len));
    }
}

/// The sending half.
pub struct Encryptor {
    push: PushStream,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Encryptor(<redacted>)")
    }
}

impl Encryptor {
    /// A push stream for `key`, with a header drawn from `rng` (send it to the peer).
    pub fn new(rng: impl RngCore + CryptoRng, key: &[u8; 32]) -> (Self, [u8; HEADERBYTES]) {
        let (header, push) = PushStream::init(rng, &Key::from(*key));
        (Self { push }, *header.as_ref())
    }

    /// Appends the ciphertext of `plain` (`plain.len() + ABYTES` bytes) to `out`.
    pub fn encrypt_into(&mut self, plain: &[u8], out: &mut BytesMut) {
        let start = out.len();
        out.reserve(plain.len() + ABYTES);
        out.extend_from_slice(plain);
        let mut tail = Tail { buf: out, start };
        // Pushing only fails on a Buffer refusing to grow, which ours never does.
        let pushed = self.push.push(&mut tail, &[], Tag::Message);
        debug_assert!(pushed.is_ok());
    }
}

/// The receiving half.
pub struct Decryptor {
    pull: PullStream,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Decryptor(<redacted>)")
    }
}

impl Decryptor {
    /// A pull stream for `key` and the peer's `header`.
    pub fn new(key: &[u8; 32], header: &[u8; HEADERBYTES]) -> Self {
        Self { pull: PullStream::init(Header::from(*header), &Key::from(*key)) }
    }

    /// Decrypts `frame` in place, leaving the plaintext. The tag is not checked, as in
    /// secret-stream.
    pub fn decrypt_in_place(&mut self, frame: &mut BytesMut) -> Result<(), DecryptError> {
        if frame.len() < ABYTES {
            return Err(DecryptError);
        }
        let mut tail = Tail { buf: frame, start: 0 };
        self.pull.pull(&mut tail, &[]).map(drop).map_err(|_| DecryptError)
    }
}

/// An RNG that replays fixed bytes: lets tests force the secretstream header.
#[derive(Debug, Clone)]
pub struct FixedRng(pub [u8; HEADERBYTES]);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for (d, s) in dest.iter_mut().zip(self.0.iter().cycle()) {
            *d = *s;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Only for forcing test vectors: a fixed header is as safe as the key is fresh.
impl CryptoRng for FixedRng {}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "d5dd8c4d724496534addbffaf7d979052710b5c34e9f8be8";

    fn header() -> [u8; HEADERBYTES] {
        hex::decode(HEADER).unwrap().try_into().unwrap()
    }

    #[test]
    fn vector_spec_3_5() {
        let (mut enc, h) = Encryptor::new(FixedRng(header()), &[0x55; 32]);
        assert_eq!(h, header());
        let mut out = BytesMut::from(&b"xyz"[..]);
        enc.encrypt_into(b"hello", &mut out);
        assert_eq!(&out[..3], b"xyz");
        assert_eq!(hex::encode(&out[3..]), "b864ee4de0da48b4aa3b373bc08bb87ae67b99c89ff2");
        let mut second = BytesMut::new();
        enc.encrypt_into(b"", &mut second);
        assert_eq!(hex::encode(&second), "a158df2b9325307788531d53444ef4ab72");

        let mut dec = Decryptor::new(&[0x55; 32], &header());
        let mut first = out.split_off(3);
        dec.decrypt_in_place(&mut first).unwrap();
        assert_eq!(&first[..], b"hello");
        dec.decrypt_in_place(&mut second).unwrap();
        assert!(second.is_empty());
    }

    #[test]
    fn tampering_and_short_frames_fail() {
        let (mut enc, h) = Encryptor::new(FixedRng(header()), &[7; 32]);
        let mut out = BytesMut::new();
        enc.encrypt_into(b"payload", &mut out);
        let mut dec = Decryptor::new(&[7; 32], &h);
        assert_eq!(dec.decrypt_in_place(&mut BytesMut::from(&[0u8; 16][..])), Err(DecryptError));
        let mut bad = out.clone();
        bad[5] ^= 1;
        assert_eq!(dec.decrypt_in_place(&mut bad), Err(DecryptError));
    }
}
