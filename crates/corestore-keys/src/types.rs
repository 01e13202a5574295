//! 32-byte public identifiers: core keys, discovery keys, Ed25519 public keys, namespaces.

use std::fmt;
use std::str::FromStr;

use crate::constants::DISCOVERY_KEY_MESSAGE;
use crate::hash::blake2b_256_keyed32;
use crate::id::{parse_id, IdError};

macro_rules! key32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The raw bytes, by value.
            pub const fn to_bytes(self) -> [u8; 32] {
                self.0
            }

            /// Lowercase hex (64 characters).
            pub fn to_hex(&self) -> String {
                crate::id::to_hex(&self.0)
            }

            /// z-base-32 (52 characters), as hypercore-id-encoding writes keys.
            pub fn to_z32(&self) -> String {
                crate::id::to_z32(&self.0)
            }

            /// Wraps a slice that must be exactly 32 bytes long.
            pub fn try_from_slice(bytes: &[u8]) -> Result<Self, IdError> {
                <[u8; 32]>::try_from(bytes)
                    .map(Self)
                    .map_err(|_| IdError::InvalidByteLength { len: bytes.len() })
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Parses 64 hex characters or 52 z-base-32 characters (hypercore-id-encoding).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_id(s).map(Self)
            }
        }
    };
}

key32!(
    /// A core key: the manifest hash for corestore 7 cores (or the signer's public key for
    /// legacy "compat" cores). Knowing it is what lets a peer read and verify a core.
    CoreKey
);
key32!(
    /// A discovery key, `BLAKE2b-256_key("hypercore")`: names a core on the wire without
    /// revealing its key.
    DiscoveryKey
);
key32!(
    /// An Ed25519 public key (a compressed Edwards point).
    PublicKey
);
key32!(
    /// A corestore namespace: 32 zero bytes at the root, `BLAKE2b-256(parent || name)` below.
    Namespace
);

impl CoreKey {
    /// The discovery key of this core: keyed BLAKE2b-256 with the core key as key over `hypercore`.
    pub fn discovery_key(&self) -> DiscoveryKey {
        DiscoveryKey(blake2b_256_keyed32(&self.0, &[DISCOVERY_KEY_MESSAGE]))
    }
}

impl PublicKey {
    /// Verifies a detached Ed25519 signature as libsodium does (strict: rejects small-order and
    /// non-canonical points and `S >= L`). Any malformed input is simply `false`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &signature).is_ok()
    }
}

impl Namespace {
    /// The root namespace: 32 zero bytes.
    pub const ROOT: Self = Self([0; 32]);

    /// The child namespace `BLAKE2b-256(self || name)`, as `store.namespace(name)` computes it.
    /// `name` is raw bytes; pass `str::as_bytes()` for a string name (UTF-8, as JavaScript does).
    #[must_use]
    pub fn child(&self, name: impl AsRef<[u8]>) -> Self {
        Self(crate::hash::blake2b_256(&[&self.0, name.as_ref()]))
    }

    /// Folds a chain of names from the root: `ROOT.child(a).child(b)…`.
    pub fn from_chain<I, N>(names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<[u8]>,
    {
        names.into_iter().fold(Self::ROOT, |ns, name| ns.child(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_key_vectors() {
        let zero = CoreKey::from_bytes([0; 32]);
        assert_eq!(
            zero.discovery_key().to_hex(),
            "6b7ecf9ce456d56e5145ec4c5661e0c79ee47ddcc9c0504e90aa6fd60746365c"
        );
        let key: CoreKey =
            "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72".parse().unwrap();
        assert_eq!(
            key.discovery_key().to_hex(),
            "fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a"
        );
    }

    #[test]
    fn namespace_foo_vector() {
        assert_eq!(
            Namespace::ROOT.child("foo").to_hex(),
            "28ea4588ea0002b8730720c48627f60e07f57419942fc0601752adf5e7d46ea7"
        );
        assert_eq!(Namespace::from_chain(["a", "b"]), Namespace::ROOT.child("a").child("b"));
    }

    #[test]
    fn debug_and_display_are_hex() {
        let k = DiscoveryKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{k}"), "ab".repeat(32));
        assert_eq!(format!("{k:?}"), format!("DiscoveryKey({})", "ab".repeat(32)));
    }
}
