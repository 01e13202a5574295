//! What [`crate::Corestore::get`] opens ([`CoreRef`]), how ([`GetOptions`]), and how a request
//! resolves to a discovery key and the identity to open or create (corestore's `_auth`).

use std::time::Duration;

use corestore_keys::{parse_id, CoreKey, DiscoveryKey, KeyPair, Manifest, Namespace};

use crate::error::{GetError, KeyParseError};

/// Which core to open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreRef {
    /// A named core of the store's namespace: its key pair is derived from the primary key, so
    /// it is always writable. Names are local; peers never see them.
    Name(Vec<u8>),
    /// A core by its key (writable if this store holds its secret key).
    Key(CoreKey),
    /// A core already stored here, by its discovery key; refused with
    /// [`GetError::NotStored`] when it is not stored.
    DiscoveryKey(DiscoveryKey),
    /// The core of a key pair (single-signer manifest, as corestore builds it).
    KeyPair(KeyPair),
    /// The core of a manifest.
    Manifest(Manifest),
}

impl CoreRef {
    /// A named core (`store.get({ name })`).
    pub fn name(name: impl AsRef<[u8]>) -> Self {
        Self::Name(name.as_ref().to_vec())
    }

    /// A core key given as 64 hex characters or 52 z-base-32 characters (hypercore-id-encoding).
    pub fn parse_key(id: &str) -> Result<Self, KeyParseError> {
        parse_id(id).map(|bytes| Self::Key(CoreKey::from_bytes(bytes)))
    }

    /// A core key given as raw bytes (exactly 32).
    pub fn key_bytes(bytes: &[u8]) -> Result<Self, KeyParseError> {
        CoreKey::try_from_slice(bytes).map(Self::Key)
    }
}

impl From<CoreKey> for CoreRef {
    fn from(key: CoreKey) -> Self {
        Self::Key(key)
    }
}

impl From<DiscoveryKey> for CoreRef {
    fn from(discovery_key: DiscoveryKey) -> Self {
        Self::DiscoveryKey(discovery_key)
    }
}

impl From<KeyPair> for CoreRef {
    fn from(key_pair: KeyPair) -> Self {
        Self::KeyPair(key_pair)
    }
}

impl From<Manifest> for CoreRef {
    fn from(manifest: Manifest) -> Self {
        Self::Manifest(manifest)
    }
}

impl From<[u8; 32]> for CoreRef {
    /// Raw bytes are a core key, as `store.get(buffer)` reads them.
    fn from(bytes: [u8; 32]) -> Self {
        Self::Key(CoreKey::from_bytes(bytes))
    }
}

/// Options of one [`crate::Corestore::get_with`]; the defaults match JavaScript.
// The flags mirror JavaScript's independent boolean options; they are set through the builder.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOptions {
    pub(crate) writable: bool,
    pub(crate) create_if_missing: bool,
    pub(crate) eager: bool,
    pub(crate) wait: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) manifest: Option<Manifest>,
    pub(crate) key_pair: Option<KeyPair>,
}

impl Default for GetOptions {
    fn default() -> Self {
        Self {
            writable: true,
            create_if_missing: true,
            eager: false,
            wait: true,
            timeout: None,
            manifest: None,
            key_pair: None,
        }
    }
}

impl GetOptions {
    /// The defaults: writable when possible, create if missing, sparse, wait without timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// `false` gives a read-only session even on a core this store can write.
    #[must_use]
    pub fn writable(mut self, writable: bool) -> Self {
        self.writable = writable;
        self
    }

    /// `false` refuses to create a core that is not stored ([`GetError::NotStored`]).
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Download every block (eager) instead of only what is read (sparse, the default). Kept
    /// for replication.
    #[must_use]
    pub fn eager(mut self, eager: bool) -> Self {
        self.eager = eager;
        self
    }

    /// `false` makes `get(i)` of a missing block return `None` at once.
    #[must_use]
    pub fn wait(mut self, wait: bool) -> Self {
        self.wait = wait;
        self
    }

    /// How long `get(i)` waits for a missing block before [`crate::BlockError::Timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The manifest to use (for a named or key-pair core: instead of the default one).
    #[must_use]
    pub fn manifest(mut self, manifest: Manifest) -> Self {
        self.manifest = Some(manifest);
        self
    }

    /// The key pair that may write the core (with [`CoreRef::Key`] or [`CoreRef::Manifest`]).
    #[must_use]
    pub fn key_pair(mut self, key_pair: KeyPair) -> Self {
        self.key_pair = Some(key_pair);
        self
    }
}

/// What opening a core needs, resolved from a [`CoreRef`] and [`GetOptions`].
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) discovery_key: DiscoveryKey,
    pub(crate) key: Option<CoreKey>,
    pub(crate) manifest: Option<Manifest>,
    pub(crate) key_pair: Option<KeyPair>,
    /// `(namespace, name)` of a named core, stored as its alias on creation.
    pub(crate) alias: Option<(Namespace, Vec<u8>)>,
}

impl Auth {
    /// corestore `_auth`. For a [`CoreRef::Name`], `named` is its derived key pair and the
    /// discovery key stored under its alias, if that core is this key pair's (a named core first
    /// created with another manifest keeps it).
    pub(crate) fn resolve(
        what: CoreRef,
        options: &GetOptions,
        namespace: &Namespace,
        named: Option<(KeyPair, Option<DiscoveryKey>)>,
    ) -> Result<Self, GetError> {
        let manifest = options.manifest.clone();
        let key_pair = options.key_pair.clone();
        let keyed = |key: CoreKey, manifest, key_pair, alias| Self {
            discovery_key: key.discovery_key(),
            key: Some(key),
            manifest,
            key_pair,
            alias,
        };
        let signed = |key_pair: KeyPair, manifest: Option<Manifest>, alias| {
            let manifest =
                manifest.unwrap_or_else(|| Manifest::single_signer(key_pair.public_key()));
            keyed(manifest.hash(), Some(manifest), Some(key_pair), alias)
        };
        Ok(match what {
            CoreRef::Name(name) => {
                let Some((key_pair, stored_alias)) = named.filter(|_| !name.is_empty()) else {
                    return Err(GetError::EmptyName);
                };
                let alias = Some((*namespace, name));
                match stored_alias {
                    Some(discovery_key) => {
                        Self { discovery_key, key: None, manifest, key_pair: Some(key_pair), alias }
                    }
                    None => signed(key_pair, manifest, alias),
                }
            }
            CoreRef::Key(key) => keyed(key, manifest, key_pair, None),
            CoreRef::DiscoveryKey(discovery_key) => {
                Self { discovery_key, key: None, manifest, key_pair, alias: None }
            }
            CoreRef::KeyPair(key_pair) => signed(key_pair, manifest, None),
            CoreRef::Manifest(manifest) => keyed(manifest.hash(), Some(manifest), key_pair, None),
        })
    }
}

/// The key pair of the name whose derived seed is `seed`, and the discovery key stored under
/// its alias if that core is this key pair's: two primary keys share the alias record of a
/// `(namespace, name)`, so a session with another primary key must not open the other key's
/// core (JavaScript does; we check the signer). When the aliased core holds this seed and its
/// stored public key is the one the core was made for, the stored pair is used as it is, so a
/// reopen costs no Ed25519 derivation (the bulk of opening a named core); otherwise the pair
/// is derived from the seed.
pub(crate) async fn named_key_pair(
    storage: &std::sync::Arc<corestore_storage::Storage>,
    namespace: &Namespace,
    name: &[u8],
    seed: &[u8; 32],
    manifest: Option<&Manifest>,
) -> Result<(KeyPair, Option<DiscoveryKey>), GetError> {
    let Some(discovery_key) = storage.alias(namespace, name).await? else {
        return Ok((KeyPair::from_seed(seed), None));
    };
    let record = match storage.open_core(&discovery_key).await? {
        Some(core) => Some(core.auth().await?),
        None => None,
    };
    let own = |key_pair: &KeyPair| {
        let expected = match manifest {
            Some(m) => m.hash(),
            None => Manifest::single_signer(key_pair.public_key()).hash(),
        };
        expected.discovery_key() == discovery_key
            || record
                .as_ref()
                .and_then(|r| r.manifest.as_ref())
                .is_some_and(|m| m.signers.iter().any(|s| s.public_key == key_pair.public_key()))
    };
    let stored = record
        .as_ref()
        .and_then(|r| r.key_pair.as_ref()?.secret_key.as_ref())
        .and_then(|sk| KeyPair::from_stored_secret_key(&sk[..]).ok())
        .filter(|kp| kp.has_seed(seed) && own(kp));
    if let Some(key_pair) = stored {
        return Ok((key_pair, Some(discovery_key)));
    }
    // A new pair for this name, another primary key's alias, or a record whose public half
    // does not fit it: derive the pair, as a first open does.
    let key_pair = KeyPair::from_seed(seed);
    let own = own(&key_pair);
    Ok((key_pair, own.then_some(discovery_key)))
}
