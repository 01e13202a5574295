//! Key derivation through `Corestore::get` matches all 48 JavaScript corestore 7.12.5 vectors
//! (`corestore-keys/tests/fixtures/keys.json`, a copy of `shared/vectors/keys.json`).

use corestore::keys::{KeyPair, PrimaryKey};
use corestore::{CoreRef, Corestore, GetError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    primary_key: String,
    namespace_chain: Vec<String>,
    name: String,
    secret_key: String,
    public_key: String,
    manifest_encoding: String,
    core_key: String,
    discovery_key: String,
    library_get_by_name: bool,
}

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[tokio::test]
async fn get_by_name_derives_the_javascript_keys() -> anyhow::Result<()> {
    let file: File =
        serde_json::from_str(include_str!("../../corestore-keys/tests/fixtures/keys.json"))?;
    assert_eq!(file.vectors.len(), 48);
    for (i, v) in file.vectors.iter().enumerate() {
        let ctx = format!("vector {i} (chain {:?}, name {:?})", v.namespace_chain, v.name);
        let primary = PrimaryKey::from_hex(&v.primary_key)?;
        let root = Corestore::builder().primary_key(primary).open().await?;
        let mut store = root.clone();
        for ns in &v.namespace_chain {
            store = store.namespace(ns)?;
        }
        let core = match store.get(CoreRef::name(&v.name)).await {
            Ok(core) => {
                assert!(v.library_get_by_name, "{ctx}: JavaScript refuses this name");
                core
            }
            Err(GetError::EmptyName) => {
                assert!(!v.library_get_by_name, "{ctx}: JavaScript accepts this name");
                // JavaScript derives these through createKeyPair + get({ keyPair }).
                let key_pair = KeyPair::from_secret_key(&hex::decode(&v.secret_key)?)?;
                store.get(key_pair).await?
            }
            Err(e) => panic!("{ctx}: {e}"),
        };
        assert_eq!(core.key().to_hex(), v.core_key, "{ctx}: core key");
        assert_eq!(core.discovery_key().to_hex(), v.discovery_key, "{ctx}: discovery key");
        let manifest = core.manifest().expect("a named core has a manifest");
        assert_eq!(hex::encode(manifest.encode()), v.manifest_encoding, "{ctx}: manifest");
        assert_eq!(manifest.signers[0].public_key.to_hex(), v.public_key, "{ctx}: public key");
        assert!(core.writable(), "{ctx}: named cores are writable");
        root.close().await?;
    }
    Ok(())
}

/// A reopened named core takes its key pair from its stored record (a reopen derives only the
/// seed from the name, no Ed25519 key pair), but only a record that fits: one whose public half
/// was replaced is not used, the pair is derived again, and the core still appends with
/// signatures its key verifies.
#[tokio::test]
async fn a_reopened_named_core_uses_its_stored_key_pair_only_when_it_fits() -> anyhow::Result<()> {
    use corestore::storage::{MemoryStorage, Storage, StorageBackend};
    use std::sync::Arc;

    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let primary = PrimaryKey::from_bytes([7; 32]);
    let open = || Corestore::builder().storage(backend.clone()).primary_key(primary.clone()).open();
    let store = open().await?;
    let core = store.get(CoreRef::name("a")).await?;
    core.append(b"before").await?;
    let (key, discovery_key) = (*core.key(), *core.discovery_key());
    store.close().await?;

    let store = open().await?;
    let core = store.get(CoreRef::name("a")).await?;
    assert!(core.writable());
    assert_eq!(core.append(b"again").await?, 2);
    store.close().await?;

    // Replace the stored public half with another key's.
    let storage = Storage::open(backend.clone()).await?;
    let stored = storage.open_core(&discovery_key).await?.expect("stored");
    let mut auth = stored.auth().await?;
    let other = KeyPair::from_seed(&[9; 32]).public_key();
    let pair = auth.key_pair.as_mut().expect("a named core stores its key pair");
    pair.public_key = other;
    let secret = pair.secret_key.as_mut().expect("and its secret key");
    secret[32..].copy_from_slice(other.as_bytes());
    let mut batch = stored.batch();
    batch.put_auth(&auth);
    stored.write(batch).await?;
    drop((stored, storage));

    let store = open().await?;
    let core = store.get(CoreRef::name("a")).await?;
    assert_eq!(*core.key(), key, "the same core, not one of the stored public key");
    assert_eq!(core.append(b"after").await?, 3);
    let reader = Corestore::builder().open().await?;
    let replica = reader.get(key).await?;
    let _streams = corestore::testing::connect(&store, &reader)?;
    assert_eq!(replica.get(2).await?.as_deref(), Some(&b"after"[..]), "its signature verifies");
    reader.close().await?;
    store.close().await?;
    Ok(())
}
