//! Secret material: the store's primary key and Ed25519 key pairs. Both redact their `Debug`,
//! zeroize on drop and compare in constant time.

use std::fmt;
use std::sync::OnceLock;

use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::types::PublicKey;

/// Why key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Key material of the wrong size.
    #[error("invalid {what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// Which key.
        what: &'static str,
        /// Required size in bytes.
        expected: usize,
        /// Given size in bytes.
        actual: usize,
    },
    /// A 64-byte secret key whose second half is not the public key of its seed.
    #[error("invalid secret key: its public half does not match its seed")]
    KeyPairMismatch,
    /// An empty core name: JavaScript corestore refuses `get({ name: '' })`.
    #[error("a core name must not be empty")]
    EmptyName,
}

/// A corestore primary key: the 32-byte secret every named core's key pair derives from.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrimaryKey([u8; 32]);

impl PrimaryKey {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Copies a slice that must be exactly 32 bytes.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| KeyError::InvalidLength {
            what: "primary key",
            expected: 32,
            actual: bytes.len(),
        })
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, crate::IdError> {
        crate::id::parse_hex32(s).map(Self)
    }

    /// 32 fresh random bytes from the operating system.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret bytes. Do not log them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for PrimaryKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for PrimaryKey {}

impl fmt::Debug for PrimaryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrimaryKey(<redacted>)")
    }
}

/// An Ed25519 key pair, as libsodium's `crypto_sign_seed_keypair` makes it.
///
/// A pair read back from storage ([`KeyPair::from_stored_secret_key`]) takes its public half
/// as stored and builds its signing key at its first signature, so reopening thousands of
/// writable cores costs no curve arithmetic until they append.
#[derive(Clone)]
pub struct KeyPair {
    seed: Zeroizing<[u8; 32]>,
    public: PublicKey,
    /// The expanded signing key, built from the seed at the first signature when not already
    /// (boxed: an unused one costs a pointer).
    signing: OnceLock<Box<ed25519_dalek::SigningKey>>,
}

impl KeyPair {
    /// The key pair of a 32-byte seed (identical to libsodium `crypto_sign_seed_keypair`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey::from_bytes(signing.verifying_key().to_bytes());
        Self { seed: Zeroizing::new(*seed), public, signing: OnceLock::from(Box::new(signing)) }
    }

    /// A random key pair.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Reads a libsodium 64-byte secret key (`seed || publicKey`), checking its public half.
    pub fn from_secret_key(secret_key: &[u8]) -> Result<Self, KeyError> {
        let stored = Self::from_stored_secret_key(secret_key)?;
        let pair = Self::from_seed(&stored.seed);
        if pair.public.as_bytes().ct_eq(stored.public.as_bytes()).into() {
            Ok(pair)
        } else {
            Err(KeyError::KeyPairMismatch)
        }
    }

    /// Reads a libsodium 64-byte secret key (`seed || publicKey`) this program stored itself,
    /// taking its public half as it is: no curve arithmetic now. The public half is checked
    /// against the seed at the first signature, which fails with [`KeyError::KeyPairMismatch`]
    /// when they differ (a damaged store never signs under a public key that is not its own).
    pub fn from_stored_secret_key(secret_key: &[u8]) -> Result<Self, KeyError> {
        let Ok(bytes) = <&[u8; 64]>::try_from(secret_key) else {
            return Err(KeyError::InvalidLength {
                what: "secret key",
                expected: 64,
                actual: secret_key.len(),
            });
        };
        let (seed, public) = bytes.split_at(32);
        let mut pair = Self {
            seed: Zeroizing::new([0; 32]),
            public: PublicKey::from_bytes(public.try_into().unwrap_or_default()),
            signing: OnceLock::new(),
        };
        pair.seed.copy_from_slice(seed);
        Ok(pair)
    }

    /// Whether this pair's seed is `seed` (constant time).
    pub fn has_seed(&self, seed: &[u8; 32]) -> bool {
        self.seed.ct_eq(seed).into()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        self.seed.clone()
    }

    /// The libsodium 64-byte secret key: `seed || publicKey`.
    pub fn secret_key(&self) -> Zeroizing<[u8; 64]> {
        let mut out = Zeroizing::new([0u8; 64]);
        out[..32].copy_from_slice(&self.seed[..]);
        out[32..].copy_from_slice(self.public.as_bytes());
        out
    }

    /// A detached Ed25519 signature of `message`. Fails only for a pair read back from
    /// storage whose public half is not its seed's ([`KeyPair::from_stored_secret_key`]).
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], KeyError> {
        use ed25519_dalek::Signer as _;
        let signing = self
            .signing
            .get_or_init(|| Box::new(ed25519_dalek::SigningKey::from_bytes(&self.seed)));
        if !bool::from(signing.verifying_key().as_bytes().ct_eq(self.public.as_bytes())) {
            return Err(KeyError::KeyPairMismatch);
        }
        Ok(signing.sign(message).to_bytes())
    }
}

impl PartialEq for KeyPair {
    fn eq(&self, other: &Self) -> bool {
        self.secret_key()[..].ct_eq(&other.secret_key()[..]).into()
    }
}

impl Eq for KeyPair {}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_01_matches_libsodium() {
        let pair = KeyPair::from_seed(&[1; 32]);
        assert_eq!(
            pair.public_key().to_hex(),
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        assert_eq!(&pair.secret_key()[..32], &[1; 32]);
        assert_eq!(&pair.secret_key()[32..], pair.public_key().as_bytes());
        assert_eq!(KeyPair::from_secret_key(&pair.secret_key()[..]).unwrap(), pair);
    }

    #[test]
    fn secrets_are_redacted() {
        let pk = PrimaryKey::from_bytes([0x42; 32]);
        assert_eq!(format!("{pk:?}"), "PrimaryKey(<redacted>)");
        let pair = KeyPair::from_seed(&[0x42; 32]);
        assert!(!format!("{pair:?}").contains("4242"));
    }

    #[test]
    fn bad_secret_keys_are_refused() {
        assert!(matches!(
            KeyPair::from_secret_key(&[0; 10]),
            Err(KeyError::InvalidLength { expected: 64, actual: 10, .. })
        ));
        let mut sk = *KeyPair::from_seed(&[3; 32]).secret_key();
        sk[40] ^= 1;
        assert_eq!(KeyPair::from_secret_key(&sk), Err(KeyError::KeyPairMismatch));
        assert!(matches!(
            PrimaryKey::try_from_slice(&[0; 31]),
            Err(KeyError::InvalidLength { expected: 32, actual: 31, .. })
        ));
    }

    #[test]
    fn a_stored_pair_signs_as_its_seed_does_and_a_damaged_one_never_signs() {
        let pair = KeyPair::from_seed(&[5; 32]);
        let stored = KeyPair::from_stored_secret_key(&pair.secret_key()[..]).unwrap();
        assert_eq!(stored, pair);
        assert!(stored.has_seed(&[5; 32]));
        assert!(!stored.has_seed(&[6; 32]));
        assert_eq!(stored.public_key(), pair.public_key());
        assert_eq!(stored.sign(b"m").unwrap(), pair.sign(b"m").unwrap());

        // Another key's public half: taken as stored, refused at the first signature.
        let mut damaged = *pair.secret_key();
        damaged[32..].copy_from_slice(KeyPair::from_seed(&[6; 32]).public_key().as_bytes());
        let stored = KeyPair::from_stored_secret_key(&damaged).unwrap();
        assert_eq!(stored.sign(b"m"), Err(KeyError::KeyPairMismatch));
        assert_eq!(stored.sign(b"m"), Err(KeyError::KeyPairMismatch), "and at every later one");
        assert!(matches!(
            KeyPair::from_stored_secret_key(&[0; 63]),
            Err(KeyError::InvalidLength { expected: 64, actual: 63, .. })
        ));
    }

    #[test]
    fn sign_and_verify() {
        let pair = KeyPair::from_seed(&[9; 32]);
        let sig = pair.sign(b"msg").unwrap();
        assert!(pair.public_key().verify(b"msg", &sig));
        assert!(!pair.public_key().verify(b"msh", &sig));
        assert!(!pair.public_key().verify(b"msg", &sig[..63]));
    }
}
