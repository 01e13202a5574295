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
    let core = if let Some(stored) = Hypercore::open_existing(&storage, &auth.discovery_key).await?
    {
        let learns_key_pair = auth.key_pair.is_some() && !stored.is_writable();
        let learns_manifest = auth.manifest.is_some() && stored.manifest().is_none();
        if learns_key_pair || learns_manifest {
            // Opening a stored core with what it lacks loads it and stores the addition.
            let key = *stored.key();
            let manifest = stored.manifest().cloned().or(auth.manifest);
            drop(stored);
            match auth.key_pair {
                Some(kp) if learns_key_pair => signed(&storage, kp, manifest, key).await?,
                _ => Hypercore::open(&storage, key, manifest).await?,
            }
        } else {
            stored
        }
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
                    key_pair: Some(StoredKeyPair {
                        public_key: kp.public_key(),
                        secret_key: Some(kp.secret_key()),
                    }),
                };
                storage.create_core(&record, Some((&namespace, &name))).await?;
                Hypercore::open_existing(&storage, &auth.discovery_key).await?.ok_or(not_stored)?
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
