//! Pure key derivation for the Rust Corestore, byte-identical to JavaScript corestore 7 /
//! hypercore 11: namespaces, primary key → named-core key pair, manifest → core key → discovery
//! key, replication capabilities, key ids. No I/O, no async.
//!
//! ```
//! use corestore_keys::{Namespace, NamedCore, PrimaryKey};
//!
//! let primary = PrimaryKey::from_bytes([1; 32]);
//! let core = NamedCore::derive(&primary, &Namespace::ROOT, b"test")?;
//! assert_eq!(core.key.to_hex(), "7d242a30142451d08a02f3b2288986b27d272e87168ce2156ba4d0fbd568ae80");
//! # Ok::<(), corestore_keys::KeyError>(())
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod compact;
pub mod constants;
mod derive;
pub mod hash;
mod id;
mod manifest;
mod secret;
mod types;

pub use derive::{capability, derive_key_pair, derive_seed, NamedCore, Role};
pub use id::{parse_hex32, parse_id, parse_z32, to_hex, to_z32, IdError};
pub use manifest::{
    HashAlgorithm, Manifest, ManifestError, Prologue, SignatureScheme, Signer, MAX_MANIFEST_VERSION,
};
pub use secret::{KeyError, KeyPair, PrimaryKey};
pub use types::{CoreKey, DiscoveryKey, Namespace, PublicKey};
