//! Named-core derivation (spec `keys.md` §4–6) and the replication capability (`wire.md` §5.2).

use zeroize::Zeroizing;

use crate::constants;
use crate::hash::{blake2b_256_keyed32, blake2b_256_keyed64};
use crate::manifest::Manifest;
use crate::secret::{KeyError, KeyPair, PrimaryKey};
use crate::types::{CoreKey, DiscoveryKey, Namespace};

/// `seed = BLAKE2b-256_primaryKey(CORESTORE_NS || namespace || name)`.
pub fn derive_seed(
    primary_key: &PrimaryKey,
    namespace: &Namespace,
    name: &[u8],
) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(blake2b_256_keyed32(
        primary_key.as_bytes(),
        &[constants::corestore_ns(), namespace.as_bytes(), name],
    ))
}

/// corestore `createKeyPair(name, namespace)`: the Ed25519 key pair of a seed derived from the
/// primary key. Accepts an empty name, as `createKeyPair('')` does.
pub fn derive_key_pair(primary_key: &PrimaryKey, namespace: &Namespace, name: &[u8]) -> KeyPair {
    KeyPair::from_seed(&derive_seed(primary_key, namespace, name))
}

/// Everything corestore derives for `namespace(…).get({ name })`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCore {
    /// The namespace the core lives in.
    pub namespace: Namespace,
    /// The writer's key pair.
    pub key_pair: KeyPair,
    /// The single-signer manifest corestore 7 builds (version 1).
    pub manifest: Manifest,
    /// The core key: the manifest hash.
    pub key: CoreKey,
    /// The discovery key.
    pub discovery_key: DiscoveryKey,
}

impl NamedCore {
    /// Derives a named core as `store.namespace(…).get({ name })` does; an empty name is refused
    /// with [`KeyError::EmptyName`] like JavaScript refuses it.
    pub fn derive(
        primary_key: &PrimaryKey,
        namespace: &Namespace,
        name: &[u8],
    ) -> Result<Self, KeyError> {
        if name.is_empty() {
            return Err(KeyError::EmptyName);
        }
        Ok(Self::from_key_pair(*namespace, derive_key_pair(primary_key, namespace, name)))
    }

    /// The core corestore makes for `get({ keyPair })`: the same manifest form as a named core.
    pub fn from_key_pair(namespace: Namespace, key_pair: KeyPair) -> Self {
        let manifest = Manifest::single_signer(key_pair.public_key());
        let key = manifest.hash();
        Self { namespace, key_pair, manifest, key, discovery_key: key.discovery_key() }
    }
}

/// Which end of a replication stream a capability is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The Noise initiator.
    Initiator,
    /// The Noise responder.
    Responder,
}

/// The replication capability proving knowledge of `key` on one stream:
/// `BLAKE2b-256_handshakeHash(REPLICATE_INITIATOR|RESPONDER || key)`.
pub fn capability(role: Role, key: &CoreKey, handshake_hash: &[u8; 64]) -> [u8; 32] {
    let ns = match role {
        Role::Initiator => constants::replicate_initiator(),
        Role::Responder => constants::replicate_responder(),
    };
    blake2b_256_keyed64(handshake_hash, &[ns, key.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_7_1_vectors() {
        let pk = PrimaryKey::from_bytes([1; 32]);
        assert_eq!(
            hex::encode(*derive_seed(&pk, &Namespace::ROOT, b"test")),
            "2ff48cb915ed6cf673aeb3f62dcd193c83b740124bb211492ddcdb03b3defd08"
        );
        let core = NamedCore::derive(&pk, &Namespace::ROOT, b"test").unwrap();
        assert_eq!(
            core.key_pair.public_key().to_hex(),
            "dba177fab8fdf15b9d1110866914dab9f95d9e6c61e36c5a9bed70bea9a051af"
        );
        assert_eq!(
            core.key.to_hex(),
            "7d242a30142451d08a02f3b2288986b27d272e87168ce2156ba4d0fbd568ae80"
        );
        assert_eq!(
            core.discovery_key.to_hex(),
            "bc5b460eddc10a530fd472464a22325a9b34190045516d236aace9207d753a4a"
        );
        let foo = Namespace::ROOT.child("foo");
        assert_eq!(
            derive_key_pair(&pk, &foo, b"test").public_key().to_hex(),
            "dee4efc2ffa6fbc03d2f85be492dabef737657fed7699c6ef550c06243b2954c"
        );
    }

    #[test]
    fn empty_name_is_refused() {
        let pk = PrimaryKey::from_bytes([1; 32]);
        assert_eq!(NamedCore::derive(&pk, &Namespace::ROOT, b""), Err(KeyError::EmptyName));
    }

    #[test]
    fn capability_vectors() {
        let key: CoreKey =
            "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72".parse().unwrap();
        let hh = [0xab; 64];
        assert_eq!(
            hex::encode(capability(Role::Initiator, &key, &hh)),
            "6445960348fa6ae30ea912d6f28b8b82f6185e6609a6358a297b10c2de826142"
        );
        assert_eq!(
            hex::encode(capability(Role::Responder, &key, &hh)),
            "7641cc22c8ae2db53fc43881e8fb292b1ec573cc2fe293ef0e71b89bc4027a05"
        );
    }
}
