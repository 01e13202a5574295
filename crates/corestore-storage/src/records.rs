//! The typed records of the schema and their compact encodings.

use corestore_keys::compact::{DecodeError, Decoder, Encoder};
use corestore_keys::{CoreKey, DiscoveryKey, Manifest, ManifestError, PublicKey};
use zeroize::Zeroizing;

/// A core's identity: what `auth` holds in JavaScript's hypercore-storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreAuth {
    /// The core key.
    pub key: CoreKey,
    /// Its discovery key.
    pub discovery_key: DiscoveryKey,
    /// The manifest, once known (a reader may learn it from a peer).
    pub manifest: Option<Manifest>,
    /// The writer's key pair, when this store may have it.
    pub key_pair: Option<StoredKeyPair>,
    /// Two valid signed trees conflict (the writer equivocated): the core takes no more upgrades
    /// (JavaScript `auth.frozen`). Records written before this field read as `false`.
    pub frozen: bool,
}

/// A stored key pair: the public key, and the libsodium secret key when the core is writable.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKeyPair {
    /// The public key.
    pub public_key: PublicKey,
    /// The 64-byte libsodium secret key (`seed || publicKey`), if any.
    pub secret_key: Option<Zeroizing<[u8; 64]>>,
}

impl std::fmt::Debug for StoredKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKeyPair")
            .field("public_key", &self.public_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The signed head of a core's tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TreeHead {
    /// Fork id (bumped on truncate).
    pub fork: u64,
    /// Number of blocks.
    pub length: u64,
    /// The tree hash of the roots at `length`.
    pub tree_hash: [u8; 32],
    /// The signature over (manifest hash, tree hash, length, fork), in wire form.
    pub signature: Vec<u8>,
}

/// A stored Merkle tree node (its index is the record key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredNode {
    /// Bytes covered by the node.
    pub size: u64,
    /// The node hash.
    pub hash: [u8; 32],
}

/// Per-core hints that can be recomputed but are expensive to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hints {
    /// Number of blocks present from 0 without a gap.
    pub contiguous_length: u64,
}

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not a valid record.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The stored manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A full-range `u64`, little-endian. Records use it rather than the compact `uint`, which (as in
/// JavaScript) refuses values above 2^53 - 1: what this crate stores must read back.
fn u64_le(d: &mut Decoder<'_>) -> Result<u64, DecodeError> {
    Ok(u64::from_le_bytes(d.fixed()?))
}

const AUTH_HAS_MANIFEST: u64 = 1;
const AUTH_HAS_PUBLIC_KEY: u64 = 2;
const AUTH_HAS_SECRET_KEY: u64 = 4;
const AUTH_FROZEN: u64 = 8;

impl CoreAuth {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(256);
        let mut flags = 0;
        if self.manifest.is_some() {
            flags |= AUTH_HAS_MANIFEST;
        }
        if self.frozen {
            flags |= AUTH_FROZEN;
        }
        if let Some(kp) = &self.key_pair {
            flags |= AUTH_HAS_PUBLIC_KEY;
            if kp.secret_key.is_some() {
                flags |= AUTH_HAS_SECRET_KEY;
            }
        }
        e.uint(flags).raw(self.key.as_bytes()).raw(self.discovery_key.as_bytes());
        if let Some(m) = &self.manifest {
            e.buffer(&m.encode());
        }
        if let Some(kp) = &self.key_pair {
            e.raw(kp.public_key.as_bytes());
            if let Some(sk) = &kp.secret_key {
                e.raw(&sk[..]);
            }
        }
        e.into_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut d = Decoder::new(bytes);
        let flags = d.uint()?;
        let key = CoreKey::from_bytes(d.fixed()?);
        let discovery_key = DiscoveryKey::from_bytes(d.fixed()?);
        let manifest = if flags & AUTH_HAS_MANIFEST == 0 {
            None
        } else {
            Some(Manifest::decode(d.buffer()?)?)
        };
        let key_pair = if flags & AUTH_HAS_PUBLIC_KEY == 0 {
            None
        } else {
            let public_key = PublicKey::from_bytes(d.fixed()?);
            let secret_key = if flags & AUTH_HAS_SECRET_KEY == 0 {
                None
            } else {
                Some(Zeroizing::new(d.fixed::<64>()?))
            };
            Some(StoredKeyPair { public_key, secret_key })
        };
        Ok(Self { key, discovery_key, manifest, key_pair, frozen: flags & AUTH_FROZEN != 0 })
    }
}

impl TreeHead {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(64 + self.signature.len());
        e.raw(&self.fork.to_le_bytes())
            .raw(&self.length.to_le_bytes())
            .raw(&self.tree_hash)
            .buffer(&self.signature);
        e.into_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut d = Decoder::new(bytes);
        Ok(Self {
            fork: u64_le(&mut d)?,
            length: u64_le(&mut d)?,
            tree_hash: d.fixed()?,
            signature: d.buffer()?.to_vec(),
        })
    }
}

impl StoredNode {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(41);
        e.raw(&self.size.to_le_bytes()).raw(&self.hash);
        e.into_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut d = Decoder::new(bytes);
        Ok(Self { size: u64_le(&mut d)?, hash: d.fixed()? })
    }
}

impl Hints {
    pub(crate) fn encode(self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(8);
        e.raw(&self.contiguous_length.to_le_bytes());
        e.into_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        Ok(Self { contiguous_length: u64_le(&mut Decoder::new(bytes))? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corestore_keys::{KeyPair, Manifest};

    #[test]
    fn frozen_auth_round_trips_and_old_records_are_not_frozen() {
        let kp = KeyPair::from_seed(&[3; 32]);
        let manifest = Manifest::single_signer(kp.public_key());
        let key = manifest.hash();
        let auth = CoreAuth {
            key,
            discovery_key: key.discovery_key(),
            manifest: Some(manifest),
            key_pair: None,
            frozen: false,
        };
        let old = auth.encode();
        assert_eq!(old[0], 1, "a record without the frozen flag, as older versions wrote it");
        assert_eq!(CoreAuth::decode(&old).unwrap(), auth);
        let frozen = CoreAuth { frozen: true, ..auth };
        assert_eq!(CoreAuth::decode(&frozen.encode()).unwrap(), frozen);
    }
}
