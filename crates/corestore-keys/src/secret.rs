//! Secret material: the store's primary key and Ed25519 key pairs. Both redact their `Debug`,
//! zeroize on drop and compare in constant time.

use std::fmt;

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
#[derive(Clone)]
pub struct KeyPair {
    signing: ed25519_dalek::SigningKey,
}

impl KeyPair {
    /// The key pair of a 32-byte seed (identical to libsodium `crypto_sign_seed_keypair`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { signing: ed25519_dalek::SigningKey::from_bytes(seed) }
    }

    /// A random key pair.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Reads a libsodium 64-byte secret key (`seed || publicKey`), checking its public half.
    pub fn from_secret_key(secret_key: &[u8]) -> Result<Self, KeyError> {
        let Ok(bytes) = <&[u8; 64]>::try_from(secret_key) else {
            return Err(KeyError::InvalidLength {
                what: "secret key",
                expected: 64,
                actual: secret_key.len(),
            });
        };
        let (seed, public) = bytes.split_at(32);
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(seed.try_into().unwrap_or_default());
        let pair = Self::from_seed(&seed);
        if pair.public_key().as_bytes().ct_eq(public).into() {
            Ok(pair)
        } else {
            Err(KeyError::KeyPairMismatch)
        }
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_bytes(self.signing.verifying_key().to_bytes())
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The libsodium 64-byte secret key: `seed || publicKey`.
    pub fn secret_key(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.signing.to_keypair_bytes())
    }

    /// A detached Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.signing.sign(message).to_bytes()
    }
}

impl PartialEq for KeyPair {
    fn eq(&self, other: &Self) -> bool {
        self.signing.to_bytes().ct_eq(&other.signing.to_bytes()).into()
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
    fn sign_and_verify() {
        let pair = KeyPair::from_seed(&[9; 32]);
        let sig = pair.sign(b"msg");
        assert!(pair.public_key().verify(b"msg", &sig));
        assert!(!pair.public_key().verify(b"msh", &sig));
        assert!(!pair.public_key().verify(b"msg", &sig[..63]));
    }
}
