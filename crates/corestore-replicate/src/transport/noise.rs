//! The Noise `XX` handshake exactly as `@hyperswarm/secret-stream` runs it (spec `wire.md` §3.2,
//! §3.3): `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, empty prologue, empty payloads, and a
//! Diffie-Hellman on Ed25519 points (noise-curve-ed), not X25519.
//!
//! Hand-written over `RustCrypto` primitives (`blake2`, `chacha20poly1305`, `curve25519-dalek`,
//! `sha2`) because no maintained crate speaks this curve: `snow` would need a custom resolver that
//! still hashes the `Ed25519` protocol name, which is more code than the ~100 lines of `XX` below.
//! Messages here are unframed; the uint24 length prefix belongs to the stream.

use std::fmt;

use blake2::{Blake2b512, Digest};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use corestore_keys::KeyPair;
use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::Sha512;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The Noise protocol name hashed into the initial state.
pub const PROTOCOL_NAME: &[u8] = b"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b";

const HASHLEN: usize = 64;
const BLOCKLEN: usize = 128;
const TAGLEN: usize = 16;
/// Largest Noise message (spec §3.2).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Why a handshake failed. Deliberately coarse on the crypto path: it leaks nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A message shorter than its tokens need.
    #[error("noise: message {step} is too short ({len} bytes)")]
    MessageTooShort {
        /// Which handshake message (1..=3).
        step: u8,
        /// Its length.
        len: usize,
    },
    /// A message longer than Noise allows.
    #[error("noise: message of {len} bytes exceeds {MAX_MESSAGE_LEN}")]
    MessageTooLong {
        /// Its length.
        len: usize,
    },
    /// A public key that is not a valid prime-order Ed25519 point, or a DH giving the identity.
    #[error("noise: invalid remote public key")]
    InvalidPoint,
    /// An authentication tag did not verify.
    #[error("noise: decryption failed")]
    Decrypt,
    /// A message was read or written out of turn (or after the handshake finished).
    #[error("noise: message out of order")]
    OutOfOrder,
}

/// Our role in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends message 1 and 3.
    Initiator,
    /// Sends message 2.
    Responder,
}

/// The result of a finished handshake: transport keys, hash and both static keys.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HandshakeResult {
    /// Our sending key (`tx`, the first 32 bytes of the Split output for the initiator).
    pub tx: [u8; 32],
    /// Our receiving key.
    pub rx: [u8; 32],
    /// The 64-byte handshake hash (`stream.handshakeHash` in JavaScript).
    pub hash: [u8; 64],
    /// Our static public key.
    pub public_key: [u8; 32],
    /// The remote's static public key (its Ed25519 identity).
    pub remote_public_key: [u8; 32],
}

impl fmt::Debug for HandshakeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeResult")
            .field("public_key", &Hex(&self.public_key))
            .field("remote_public_key", &Hex(&self.remote_public_key))
            .finish_non_exhaustive()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// `HMAC-BLAKE2b-512(key, parts…)` (RFC 2104 over a 128-byte block).
fn hmac(key: &[u8; HASHLEN], parts: &[&[u8]]) -> Zeroizing<[u8; HASHLEN]> {
    let mut block = Zeroizing::new([0u8; BLOCKLEN]);
    block[..HASHLEN].copy_from_slice(key);
    let mut inner = Blake2b512::new();
    let mut ipad = Zeroizing::new([0u8; BLOCKLEN]);
    for (p, k) in ipad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x36;
    }
    inner.update(ipad.as_slice());
    for part in parts {
        inner.update(part);
    }
    let inner = inner.finalize();
    let mut opad = Zeroizing::new([0u8; BLOCKLEN]);
    for (p, k) in opad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x5c;
    }
    let mut outer = Blake2b512::new();
    outer.update(opad.as_slice());
    outer.update(inner);
    let mut out = Zeroizing::new([0u8; HASHLEN]);
    out.copy_from_slice(&outer.finalize());
    out
}

/// Noise HKDF with two outputs and empty info.
fn hkdf(ck: &[u8; HASHLEN], ikm: &[u8]) -> (Zeroizing<[u8; HASHLEN]>, Zeroizing<[u8; HASHLEN]>) {
    let prk = hmac(ck, &[ikm]);
    let t1 = hmac(&prk, &[&[1]]);
    let t2 = hmac(&prk, &[t1.as_slice(), &[2]]);
    (t1, t2)
}

/// The Ed25519-point Diffie-Hellman of noise-curve-ed (`crypto_scalarmult_ed25519_noclamp` of the
/// clamped secret scalar), with libsodium's validity checks on the remote point.
pub fn dh(
    local: &KeyPair,
    remote_public: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, HandshakeError> {
    let compressed = CompressedEdwardsY(*remote_public);
    let point = compressed.decompress().ok_or(HandshakeError::InvalidPoint)?;
    if point.is_small_order() || !point.is_torsion_free() || point.compress() != compressed {
        return Err(HandshakeError::InvalidPoint);
    }
    let digest = Sha512::digest(local.seed().as_slice());
    let mut scalar = Zeroizing::new([0u8; 32]);
    scalar.copy_from_slice(&digest[..32]);
    let shared = point.mul_clamped(*scalar).compress().to_bytes();
    // The identity encodes as 01 00…00; libsodium refuses it (and an all-zero output).
    if shared == CompressedEdwardsY::default().0 || shared == [0; 32] {
        return Err(HandshakeError::InvalidPoint);
    }
    Ok(Zeroizing::new(shared))
}

/// Noise `SymmetricState` + `CipherState`.
struct Symmetric {
    h: [u8; HASHLEN],
    ck: Zeroizing<[u8; HASHLEN]>,
    k: Option<Zeroizing<[u8; 32]>>,
    n: u64,
}

impl Symmetric {
    fn new() -> Self {
        let mut h = [0u8; HASHLEN];
        h[..PROTOCOL_NAME.len()].copy_from_slice(PROTOCOL_NAME);
        let mut state = Self { h, ck: Zeroizing::new(h), k: None, n: 0 };
        state.mix_hash(&[]); // empty prologue
        state
    }

    fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Blake2b512::new();
        hasher.update(self.h);
        hasher.update(data);
        self.h.copy_from_slice(&hasher.finalize());
    }

    fn mix_key(&mut self, ikm: &[u8]) {
        let (t1, t2) = hkdf(&self.ck, ikm);
        self.ck = t1;
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&t2[..32]);
        self.k = Some(k);
        self.n = 0;
    }

    fn nonce(&self) -> chacha20poly1305::Nonce {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&self.n.to_le_bytes());
        nonce.into()
    }

    /// `EncryptAndHash(plaintext)`, appended to `out`.
    fn encrypt_and_hash(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(plaintext);
        if let Some(k) = &self.k {
            let cipher = ChaCha20Poly1305::new(k.as_slice().into());
            let nonce = self.nonce();
            let (_, body) = out.split_at_mut(start);
            // Encryption only fails for messages above 2^38 bytes; ours are below 64 KiB.
            if let Ok(tag) = cipher.encrypt_in_place_detached(&nonce, &self.h, body) {
                out.extend_from_slice(&tag);
            }
            self.n += 1;
        }
        let (_, ciphertext) = out.split_at(start);
        let ciphertext = ciphertext.to_vec();
        self.mix_hash(&ciphertext);
    }

    /// `DecryptAndHash(ciphertext)`.
    fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let plain = if let Some(k) = &self.k {
            let split = ciphertext.len().checked_sub(TAGLEN).ok_or(HandshakeError::Decrypt)?;
            let (body, tag) = ciphertext.split_at(split);
            let mut plain = body.to_vec();
            let cipher = ChaCha20Poly1305::new(k.as_slice().into());
            cipher
                .decrypt_in_place_detached(&self.nonce(), &self.h, &mut plain, tag.into())
                .map_err(|_| HandshakeError::Decrypt)?;
            self.n += 1;
            plain
        } else {
            ciphertext.to_vec()
        };
        self.mix_hash(ciphertext);
        Ok(plain)
    }

    fn split(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        let (t1, t2) = hkdf(&self.ck, &[]);
        let mut a = Zeroizing::new([0u8; 32]);
        let mut b = Zeroizing::new([0u8; 32]);
        a.copy_from_slice(&t1[..32]);
        b.copy_from_slice(&t2[..32]);
        (a, b)
    }
}

/// Which message comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    One,
    Two,
    Three,
    Done,
    /// A message failed: the handshake is dead (never finished, never resumed).
    Failed,
}

/// A Noise `XX` handshake in progress. Feed it with [`Handshake::read_message`], take its
/// messages with [`Handshake::write_message`], then [`Handshake::into_result`] once
/// [`Handshake::is_finished`].
///
/// Order: the initiator writes 1, reads 2, writes 3; the responder reads 1, writes 2, reads 3.
pub struct Handshake {
    role: Role,
    step: Step,
    sym: Symmetric,
    s: KeyPair,
    e: KeyPair,
    re: Option<[u8; 32]>,
    rs: Option<[u8; 32]>,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("step", &self.step)
            .field("public_key", &self.s.public_key())
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// A new handshake with `static_key` (random when `None`) and a random ephemeral key.
    pub fn new(role: Role, static_key: Option<KeyPair>) -> Self {
        Self::with_keys(role, static_key.unwrap_or_else(KeyPair::generate), KeyPair::generate())
    }

    /// A handshake with a fixed ephemeral key: for test vectors only. A reused ephemeral key
    /// breaks forward secrecy.
    pub fn fixed_ephemeral_key_for_testing_only(
        role: Role,
        static_key: KeyPair,
        ephemeral: KeyPair,
    ) -> Self {
        Self::with_keys(role, static_key, ephemeral)
    }

    fn with_keys(role: Role, s: KeyPair, e: KeyPair) -> Self {
        Self { role, step: Step::One, sym: Symmetric::new(), s, e, re: None, rs: None }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our static public key.
    pub fn public_key(&self) -> [u8; 32] {
        *self.s.public_key().as_bytes()
    }

    /// True once all three messages have passed.
    pub fn is_finished(&self) -> bool {
        self.step == Step::Done
    }

    /// True when it is our turn to write.
    pub fn wants_write(&self) -> bool {
        matches!(
            (self.role, self.step),
            (Role::Initiator, Step::One | Step::Three) | (Role::Responder, Step::Two)
        )
    }

    fn mix_dh(&mut self, local: DhKey, remote: Option<[u8; 32]>) -> Result<(), HandshakeError> {
        let remote = remote.ok_or(HandshakeError::OutOfOrder)?;
        let key = match local {
            DhKey::Static => &self.s,
            DhKey::Ephemeral => &self.e,
        };
        let shared = dh(key, &remote)?;
        self.sym.mix_key(shared.as_slice());
        Ok(())
    }

    /// Writes our next message (unframed, empty payload). A call out of turn is refused
    /// ([`HandshakeError::OutOfOrder`]) and changes nothing; any other error is terminal.
    pub fn write_message(&mut self) -> Result<Vec<u8>, HandshakeError> {
        if !self.wants_write() {
            return Err(HandshakeError::OutOfOrder);
        }
        let result = self.write_next();
        if result.is_err() {
            self.step = Step::Failed;
        }
        result
    }

    fn write_next(&mut self) -> Result<Vec<u8>, HandshakeError> {
        if !self.wants_write() {
            return Err(HandshakeError::OutOfOrder);
        }
        let mut out = Vec::with_capacity(96);
        match self.step {
            Step::One => {
                let e = *self.e.public_key().as_bytes();
                out.extend_from_slice(&e);
                self.sym.mix_hash(&e);
                self.step = Step::Two;
            }
            Step::Two => {
                let e = *self.e.public_key().as_bytes();
                out.extend_from_slice(&e);
                self.sym.mix_hash(&e);
                self.mix_dh(DhKey::Ephemeral, self.re)?; // ee
                let s = *self.s.public_key().as_bytes();
                self.sym.encrypt_and_hash(&s, &mut out);
                self.mix_dh(DhKey::Static, self.re)?; // es (responder side)
                self.step = Step::Three;
            }
            Step::Three => {
                let s = *self.s.public_key().as_bytes();
                self.sym.encrypt_and_hash(&s, &mut out);
                self.mix_dh(DhKey::Static, self.re)?; // se (initiator side)
                self.step = Step::Done;
            }
            Step::Done | Step::Failed => return Err(HandshakeError::OutOfOrder),
        }
        self.sym.encrypt_and_hash(&[], &mut out);
        Ok(out)
    }

    /// Reads the remote's next message (unframed). Any payload is authenticated and ignored.
    /// A call out of turn is refused and changes nothing; any other error is terminal: the
    /// handshake never reports [`Handshake::is_finished`] afterwards, so a key claimed by a
    /// message that failed to authenticate is never returned.
    pub fn read_message(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        if self.wants_write() || matches!(self.step, Step::Done | Step::Failed) {
            return Err(HandshakeError::OutOfOrder);
        }
        let result = self.read_next(msg);
        if result.is_err() {
            self.step = Step::Failed;
        }
        result
    }

    fn read_next(&mut self, msg: &[u8]) -> Result<(), HandshakeError> {
        if self.wants_write() || matches!(self.step, Step::Done | Step::Failed) {
            return Err(HandshakeError::OutOfOrder);
        }
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(HandshakeError::MessageTooLong { len: msg.len() });
        }
        let too_short = |step| HandshakeError::MessageTooShort { step, len: msg.len() };
        let rest = match self.step {
            Step::One => {
                let (e, rest) = split32(msg).ok_or(too_short(1))?;
                self.sym.mix_hash(&e);
                self.re = Some(e);
                self.step = Step::Two;
                rest
            }
            Step::Two => {
                let (e, rest) = split32(msg).ok_or(too_short(2))?;
                self.sym.mix_hash(&e);
                self.re = Some(e);
                self.mix_dh(DhKey::Ephemeral, self.re)?; // ee
                let (enc_s, rest) = split_at_checked(rest, 32 + TAGLEN).ok_or(too_short(2))?;
                let rs = self.sym.decrypt_and_hash(enc_s)?;
                let rs: [u8; 32] = rs.as_slice().try_into().map_err(|_| too_short(2))?;
                self.rs = Some(rs);
                self.mix_dh(DhKey::Ephemeral, self.rs)?; // es (initiator side)
                self.step = Step::Three;
                rest
            }
            Step::Three => {
                let (enc_s, rest) = split_at_checked(msg, 32 + TAGLEN).ok_or(too_short(3))?;
                let rs = self.sym.decrypt_and_hash(enc_s)?;
                let rs: [u8; 32] = rs.as_slice().try_into().map_err(|_| too_short(3))?;
                self.rs = Some(rs);
                self.mix_dh(DhKey::Ephemeral, self.rs)?; // se (responder side)
                self.step = Step::Done;
                rest
            }
            Step::Done | Step::Failed => return Err(HandshakeError::OutOfOrder),
        };
        // `step` moved on above, but the `Failed` set by `read_message` on this error wins.
        self.sym.decrypt_and_hash(rest)?;
        Ok(())
    }

    /// The transport keys, handshake hash and remote key, once [`Handshake::is_finished`].
    pub fn into_result(self) -> Result<HandshakeResult, HandshakeError> {
        let (Step::Done, Some(remote_public_key)) = (self.step, self.rs) else {
            return Err(HandshakeError::OutOfOrder);
        };
        let (a, b) = self.sym.split();
        let (tx, rx) = match self.role {
            Role::Initiator => (*a, *b),
            Role::Responder => (*b, *a),
        };
        Ok(HandshakeResult {
            tx,
            rx,
            hash: self.sym.h,
            public_key: *self.s.public_key().as_bytes(),
            remote_public_key,
        })
    }
}

#[derive(Clone, Copy)]
enum DhKey {
    Static,
    Ephemeral,
}

fn split32(msg: &[u8]) -> Option<([u8; 32], &[u8])> {
    let (head, rest) = split_at_checked(msg, 32)?;
    Some((head.try_into().ok()?, rest))
}

fn split_at_checked(msg: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (msg.len() >= at).then(|| msg.split_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(byte: u8) -> KeyPair {
        KeyPair::from_seed(&[byte; 32])
    }

    fn pair(i_static: KeyPair, r_static: KeyPair) -> (Handshake, Handshake) {
        (
            Handshake::fixed_ephemeral_key_for_testing_only(Role::Initiator, i_static, kp(0x33)),
            Handshake::fixed_ephemeral_key_for_testing_only(Role::Responder, r_static, kp(0x44)),
        )
    }

    #[test]
    fn dh_vector_spec_3_3() {
        let a = dh(&kp(0x11), kp(0x22).public_key().as_bytes()).unwrap();
        let b = dh(&kp(0x22), kp(0x11).public_key().as_bytes()).unwrap();
        assert_eq!(
            hex::encode(*a),
            "2b6355c5f0e9667ee457b73ad5dc3cb172abf8d62362402d732c4e8241b97380"
        );
        assert_eq!(*a, *b);
    }

    #[test]
    fn full_handshake_vector_spec_3_7() {
        let (mut i, mut r) = pair(kp(0x11), kp(0x22));
        let m1 = i.write_message().unwrap();
        assert_eq!(
            hex::encode(&m1),
            "17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce"
        );
        r.read_message(&m1).unwrap();
        let m2 = r.write_message().unwrap();
        assert_eq!(
            hex::encode(&m2),
            concat!(
                "d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c48",
                "57fad62264e58c462cf599a3a94f59ffe686a8603c1b6f8c0bc07f4de6db04a5",
                "66c1bcd64d53fd78a7cc6a6a4efb20f0f6725cbf580bc37f7bc1503773389b42"
            )
        );
        i.read_message(&m2).unwrap();
        let m3 = i.write_message().unwrap();
        assert_eq!(
            hex::encode(&m3),
            concat!(
                "adec8846a8bb239fabc493e519ea5dc1e69ef015935a5cdcbf5f8bff6794c6e6",
                "57548e0c16588a228ab22e2061e6292b06e83bf6efacbf95c1899f9c8f630f8c"
            )
        );
        r.read_message(&m3).unwrap();
        let (i, r) = (i.into_result().unwrap(), r.into_result().unwrap());
        let hash = concat!(
            "904bbe89cd78fb98b811db439e8c9b546f524311b5ca9cc38393af54937661f2",
            "5ebc1dbfd3f12d1bb77a8dfbc52027ce3c4111c60e4dfac926822ef8d79e9bcc"
        );
        assert_eq!(hex::encode(i.hash), hash);
        assert_eq!(hex::encode(r.hash), hash);
        let tx = "78b14100bcd57f02f9e58fabd03b064db09f4811cfb0c69c74c8c68c4003090b";
        let rx = "5c949cf136128f8f2bc59d63473515e57da48520f8e7742e3f40745a47b75db9";
        assert_eq!((hex::encode(i.tx), hex::encode(i.rx)), (tx.into(), rx.into()));
        assert_eq!((hex::encode(r.rx), hex::encode(r.tx)), (tx.into(), rx.into()));
        assert_eq!(i.remote_public_key, *kp(0x22).public_key().as_bytes());
        assert_eq!(r.remote_public_key, *kp(0x11).public_key().as_bytes());
        assert!(!format!("{i:?}").contains(tx));
    }

    #[test]
    fn random_keys_agree() {
        let mut i = Handshake::new(Role::Initiator, None);
        let mut r = Handshake::new(Role::Responder, None);
        r.read_message(&i.write_message().unwrap()).unwrap();
        i.read_message(&r.write_message().unwrap()).unwrap();
        r.read_message(&i.write_message().unwrap()).unwrap();
        let (i, r) = (i.into_result().unwrap(), r.into_result().unwrap());
        assert_eq!(i.hash, r.hash);
        assert_eq!((i.tx, i.rx), (r.rx, r.tx));
    }

    #[test]
    fn bad_messages_are_typed_errors() {
        let (mut i, mut r) = pair(kp(0x11), kp(0x22));
        assert_eq!(r.write_message().unwrap_err(), HandshakeError::OutOfOrder);
        assert!(matches!(r.read_message(&[0; 31]), Err(HandshakeError::MessageTooShort { .. })));
        let (_, mut r) = pair(kp(0x11), kp(0x22));
        // The identity point and a small-order point are refused at the first DH.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        r.read_message(&identity).unwrap();
        assert_eq!(r.write_message().unwrap_err(), HandshakeError::InvalidPoint);
        // A failed write is terminal too: never retried, never finished.
        assert!(!r.wants_write() && !r.is_finished());
        assert_eq!(r.write_message().unwrap_err(), HandshakeError::OutOfOrder);
        // A flipped bit in message 2 fails authentication.
        let (_, mut r) = pair(kp(0x11), kp(0x22));
        r.read_message(&i.write_message().unwrap()).unwrap();
        let mut m2 = r.write_message().unwrap();
        m2[40] ^= 1;
        assert_eq!(i.read_message(&m2).unwrap_err(), HandshakeError::Decrypt);
    }

    #[test]
    fn a_failed_read_never_finishes_the_handshake() {
        // Message 3 whose static key decrypts but whose payload tag is forged.
        let (mut i, mut r) = pair(kp(0x11), kp(0x22));
        r.read_message(&i.write_message().unwrap()).unwrap();
        i.read_message(&r.write_message().unwrap()).unwrap();
        let mut m3 = i.write_message().unwrap();
        *m3.last_mut().unwrap() ^= 1;
        assert_eq!(r.read_message(&m3).unwrap_err(), HandshakeError::Decrypt);
        assert!(!r.is_finished());
        assert!(!r.wants_write());
        assert_eq!(r.read_message(&m3).unwrap_err(), HandshakeError::OutOfOrder);
        assert_eq!(r.into_result().unwrap_err(), HandshakeError::OutOfOrder);
        // Message 2 with a forged payload tag: the initiator must not move on to message 3.
        let (mut i, mut r) = pair(kp(0x11), kp(0x22));
        r.read_message(&i.write_message().unwrap()).unwrap();
        let mut m2 = r.write_message().unwrap();
        *m2.last_mut().unwrap() ^= 1;
        assert_eq!(i.read_message(&m2).unwrap_err(), HandshakeError::Decrypt);
        assert!(!i.wants_write() && !i.is_finished());
        assert_eq!(i.write_message().unwrap_err(), HandshakeError::OutOfOrder);
        assert_eq!(i.into_result().unwrap_err(), HandshakeError::OutOfOrder);
    }

    #[test]
    fn non_canonical_and_torsion_points_are_refused() {
        // y = p (non-canonical encoding of y = 0).
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(dh(&kp(1), &p).is_err());
        // A point with a torsion component: base point + a small-order point.
        let base = curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
        let torsion = curve25519_dalek::constants::EIGHT_TORSION[1];
        assert!(dh(&kp(1), &(base + torsion).compress().to_bytes()).is_err());
        assert!(dh(&kp(1), &base.compress().to_bytes()).is_ok());
    }
}
