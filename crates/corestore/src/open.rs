//! Opening or creating the [`Hypercore`] behind a [`SharedCore`]: run once per discovery key by
//! the cache's single-flight opener.

use std::sync::Arc;

use corestore_hypercore::Hypercore;
use corestore_keys::Manifest;
use corestore_storage::{CoreAuth, Storage, StoredKeyPair};

use crate::core::{CoreFlags, SharedCore};
use crate::error::GetError;
use crate::get::Auth;

/// Opens the stored core of `auth` (adding a key pair or manifest learned now), or creates it
/// when `create` allows.
pub(crate) async fn open_core(
    storage: Arc<Storage>,
    auth: Auth,
    create: bool,
    flags: CoreFlags,
) -> Result<SharedCore, GetError> {
    let not_stored = GetError::NotStored { discovery_key: auth.discovery_key };
    let core = if let Some(stored) = storage.open_core(&auth.discovery_key).await? {
        // Open with what the record has plus what this get brings (stored on load). Passing
        // the key pair we already hold saves re-deriving it from the stored secret key.
        let record = stored.auth().await?;
        reload(&storage, record.key, record.manifest.or(auth.manifest), auth.key_pair).await?
    } else if !create {
        return Err(not_stored);
    } else {
        match (auth.key, auth.key_pair, auth.alias) {
            (Some(key), Some(kp), Some((namespace, name))) => {
                // A named core: its record and its alias in one batch.
                let manifest =
                    auth.manifest.unwrap_or_else(|| Manifest::single_signer(kp.public_key()));
                let record = CoreAuth {
                    key,
                    discovery_key: auth.discovery_key,
                    manifest: Some(manifest),
                    frozen: false,
                    key_pair: Some(StoredKeyPair {
                        public_key: kp.public_key(),
                        secret_key: Some(kp.secret_key()),
                    }),
                };
                let manifest = record.manifest.clone();
                storage.create_core(&record, Some((&namespace, &name))).await?;
                Hypercore::create(&storage, kp, manifest).await?
            }
            (Some(key), Some(kp), None) => signed(&storage, kp, auth.manifest, key).await?,
            (Some(key), None, _) => Hypercore::open(&storage, key, auth.manifest).await?,
            (None, _, _) => return Err(not_stored),
        }
    };
    Ok(SharedCore::new(core, flags))
}

/// Opens `key` writable with `key_pair`: with its manifest, or the single-signer manifest of
/// the key pair when that is the core's; otherwise read-only (the key pair is not a signer).
async fn signed(
    storage: &Arc<Storage>,
    key_pair: corestore_keys::KeyPair,
    manifest: Option<Manifest>,
    key: corestore_keys::CoreKey,
) -> Result<Hypercore, GetError> {
    let manifest = manifest.or_else(|| {
        let own = Manifest::single_signer(key_pair.public_key());
        (own.hash() == key).then_some(own)
    });
    match manifest {
        Some(m) if m.hash() == key => Ok(Hypercore::create(storage, key_pair, Some(m)).await?),
        manifest => Ok(Hypercore::open(storage, key, manifest).await?),
    }
}

/// Loads the stored core `key` with `manifest` and `key_pair` (each stored if the record lacked
/// it): writable when the key pair signs the manifest, else read-only. Passing the key pair
/// we already hold saves re-deriving it from the stored secret key.
pub(crate) async fn reload(
    storage: &Arc<Storage>,
    key: corestore_keys::CoreKey,
    manifest: Option<Manifest>,
    key_pair: Option<corestore_keys::KeyPair>,
) -> Result<Hypercore, corestore_hypercore::OpenError> {
    match (key_pair, manifest) {
        (Some(kp), Some(m))
            if m.hash() == key && m.signers.iter().any(|s| s.public_key == kp.public_key()) =>
        {
            Hypercore::create(storage, kp, Some(m)).await
        }
        (_, manifest) => Hypercore::open(storage, key, manifest).await,
    }
}
